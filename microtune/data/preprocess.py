"""The study's preprocessing pipeline for one micrograph.

Order, after the StyleGAN2-ADA SEM study's Methods ("Preliminary processing pipeline on the SEM
data"): 8-bit grayscale (see :mod:`microtune.data.ingest`) → databar removal → median filter →
histogram matching to a reference → centre crop R×R (or non-overlapping R×R tiles). The median
filter and histogram matching are scikit-image's, as in the study. Masks follow the same databar
cut and crop, never the filters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A row belongs to an SEM databar when most of it is one flat level (a uniform band with text) or
# saturated (black band with white text, or the reverse). Micrograph rows are textured and noisy,
# so neither holds for them.
_FLAT_TOLERANCE = 2          # grey levels around the row's mode that count as "the same level"
_FLAT_SHARE = 0.5            # share of a row at its mode level for the row to be flat
_SATURATED_SHARE = 0.6       # share of a row at <= 15 or >= 240 for the row to be saturated
_BAR_DENSITY = 0.85          # share of bar-like rows within the detected band
_MAX_BAR_SHARE = 0.4         # a databar never covers more than this share of the height
_MIN_BAR_ROWS = 4            # thinner bottom bands are not databars


@dataclass(frozen=True)
class Tile:
    """One R×R output image cut from a preprocessed micrograph."""

    pixels: np.ndarray          # (R, R) uint8
    mask: np.ndarray | None     # (R, R) uint8 class ids, or None
    y: int                      # top row in the databar-free image, pixels
    x: int                      # left column, pixels


def bar_like_rows(image: np.ndarray) -> np.ndarray:
    """Boolean per row: does the row look like part of an SEM databar?"""
    rows = image.astype(np.int16)
    width = rows.shape[1]
    height = rows.shape[0]
    keys = (np.arange(height, dtype=np.int64)[:, None] * 256 + image).ravel()
    counts = np.bincount(keys, minlength=height * 256).reshape(height, 256)
    mode = counts.argmax(axis=1)
    near_mode = np.abs(rows - mode[:, None]) <= _FLAT_TOLERANCE
    flat = near_mode.sum(axis=1) >= _FLAT_SHARE * width
    saturated = ((image <= 15) | (image >= 240)).sum(axis=1) >= _SATURATED_SHARE * width
    return flat | saturated


def detect_databar(image: np.ndarray) -> int:
    """Height in rows of the information band at the bottom of an SEM image (0 if none).

    The band is the tallest bottom run of rows, reaching the last row, in which at least 85 % of
    rows are bar-like (:func:`bar_like_rows`) and whose top row is bar-like, within the bottom
    40 % of the image and at least 4 rows high.
    """
    height = image.shape[0]
    lowest_top = height - int(_MAX_BAR_SHARE * height)
    flags = bar_like_rows(image[lowest_top:])
    if not flags[-min(3, len(flags)):].all():
        return 0
    best = 0
    count = 0
    for depth, flag in enumerate(flags[::-1], start=1):
        count += int(flag)
        if flag and count >= _BAR_DENSITY * depth:
            best = depth
    return best if best >= _MIN_BAR_ROWS else 0


def median_filter(image: np.ndarray, size: int) -> np.ndarray:
    """scikit-image median filter with a ``size``×``size`` square footprint (0 or 1: unchanged)."""
    if size <= 1:
        return image
    from skimage.filters import median

    return median(image, footprint=np.ones((size, size), dtype=bool), mode="reflect")


def match_histogram(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """scikit-image histogram matching of ``image`` to ``reference``, back to uint8."""
    from skimage.exposure import match_histograms

    matched = match_histograms(image, reference)
    return np.clip(np.rint(matched), 0, 255).astype(np.uint8)


def histogram(image: np.ndarray) -> np.ndarray:
    """Normalised 256-bin grey-level histogram."""
    counts = np.bincount(image.ravel(), minlength=256).astype(np.float64)
    return counts / counts.sum()


def closest_to_median_histogram(histograms: np.ndarray) -> int:
    """Index of the histogram with the smallest L1 distance to the bin-wise median histogram."""
    median = np.median(histograms, axis=0)
    return int(np.abs(histograms - median).sum(axis=1).argmin())


def crop_positions(height: int, width: int, resolution: int, mode: str) -> list[tuple[int, int]]:
    """Top-left corners of the R×R crops: one centred crop, or a centred grid of tiles."""
    if mode == "center":
        return [((height - resolution) // 2, (width - resolution) // 2)]
    if mode == "tiles":
        ny, nx = height // resolution, width // resolution
        y0, x0 = (height - ny * resolution) // 2, (width - nx * resolution) // 2
        return [(y0 + i * resolution, x0 + j * resolution) for i in range(ny) for j in range(nx)]
    raise ValueError(f"unknown crop mode {mode!r}")


def cut_tiles(
    image: np.ndarray, mask: np.ndarray | None, *, resolution: int, mode: str
) -> list[Tile]:
    """Cut the R×R outputs from a preprocessed image (and its mask, identically)."""
    tiles = []
    for y, x in crop_positions(image.shape[0], image.shape[1], resolution, mode):
        window = (slice(y, y + resolution), slice(x, x + resolution))
        tiles.append(Tile(
            pixels=np.ascontiguousarray(image[window]),
            mask=None if mask is None else np.ascontiguousarray(mask[window]),
            y=y,
            x=x,
        ))
    return tiles
