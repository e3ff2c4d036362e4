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

# Databar detection. An SEM information band ("databar") is drawn, not imaged: a band across the
# whole width whose background is one noise-free grey level (white, black or grey), carrying text
# and a scale bar in a contrasting level, often with a thin frame line below it or a separator line
# above it. A micrograph row is imaged: shot noise spreads it over many levels. The thresholds below
# were set on 1152 rendered bars (white, black, grey; 4 image sizes; 0-3 frame rows; 0-2 separator
# rows; PNG and JPEG at quality 95, 75 and 50: exact on all but 42 of the quality-50 ones) and on
# the shared UHCS micrographs and microtune.data.synth images, which have no bar and lose no row,
# also as JPEGs down to quality 30 (a study run while writing this; tests/data/test_databar.py
# keeps a subset of those cases).
_LEVEL_TOLERANCE = 6       # grey levels around the bar's background level that count as background
_BAR_ROW_SHARE = 0.4       # a bar row has at least this share of its pixels at the background level
_BAR_DENSITY = 0.85        # share of bar rows within the band (rows through text may dip below)
_BLANK_TOLERANCE = 2       # drawn, noise-free: within ±2 grey levels of the level, a bar has
_BLANK_ROW_SHARE = 0.65    # ... at least one row with this share (a margin; micrographs: <= 0.55)
_EDGE_ROWS = 3             # the top edge compares the band's top 3 rows with the 3 rows above it:
_EDGE_STEP = 0.3           # ... the background share drops by at least this much across it
_STRIPS = 8                # the band is cut into this many vertical strips, and at least
_STRIPS_NEEDED = 6         # ... this many of them have
_STRIP_SHARE = 0.3         # ... this share of their pixels at the background level (a full-width band)
_MAX_BAR_SHARE = 0.4       # a databar never covers more than this share of the height
_MIN_BAR_ROWS = 4          # thinner bands are not databars
_MAX_LINE_ROWS = 4         # frame rows below the band, separator rows above it: at most this many each
_LINE_SHARE = 0.6          # a separator row has this share within ±6 of its own level


@dataclass(frozen=True)
class Tile:
    """One R×R output image cut from a preprocessed micrograph."""

    pixels: np.ndarray          # (R, R) uint8
    mask: np.ndarray | None     # (R, R) uint8 class ids, or None
    y: int                      # top row in the databar-free image, pixels
    x: int                      # left column, pixels


@dataclass(frozen=True)
class Databar:
    """A databar found at the bottom of a micrograph (``rows == 0``: none)."""

    rows: int = 0                 # rows to cut at the bottom, frame and separator lines included
    level: int | None = None      # the band's background grey level
    frame_rows: int = 0           # rows below the band at another level (a frame line)
    separator_rows: int = 0       # line rows above the band (a separator between image and bar)


def _cumulative_row_histograms(rows: np.ndarray) -> np.ndarray:
    """(n, 257) cumulative grey-level counts per row: ``c[i, v]`` = pixels of row i below v."""
    height = rows.shape[0]
    keys = (np.arange(height, dtype=np.int64)[:, None] * 256 + rows).ravel()
    counts = np.bincount(keys, minlength=height * 256).reshape(height, 256)
    return np.concatenate([np.zeros((height, 1), np.int64), counts.cumsum(axis=1)], axis=1)


def _share_near(cumulative: np.ndarray, level: int, tolerance: int, width: int) -> np.ndarray:
    """Per row: share of pixels within ±tolerance of ``level``."""
    lo, hi = max(0, level - tolerance), min(255, level + tolerance) + 1
    return (cumulative[:, hi] - cumulative[:, lo]) / width


def _most_in_window(cumulative: np.ndarray, tolerance: int) -> np.ndarray:
    """Per row: the most pixels found within one ±tolerance window of grey levels."""
    levels = np.arange(256)
    lo = np.clip(levels - tolerance, 0, 255)
    hi = np.clip(levels + tolerance, 0, 255) + 1
    return (cumulative[:, hi] - cumulative[:, lo]).max(axis=1)


def find_databar(image: np.ndarray) -> Databar:
    """The information band at the bottom of an SEM image, if there is one.

    Rule (rows counted from the bottom, within the bottom 40 % of the height):

    1. The band's background level L is the most common grey level of one of the bottom five
       rows; each of these levels is tried.
    2. Up to 4 rows at the very bottom may be at another level (a frame line, as dark on a bright
       bar or bright on a dark one; JPEG may smear them); above them the band starts.
    3. A *bar row* has at least 40 % of its pixels within ±6 of L. The band is a run of rows in
       which at least 85 % are bar rows, with a bar row at its top, at least 4 rows high.
    4. It must be drawn, not imaged: at least one row of it is a blank margin (65 % of the row
       within ±2 of L; micrograph rows reach 55 % at most, even as JPEGs of quality 30); the
       background share of its top 3 rows exceeds that of the 3 image rows above it by at least
       0.3 (a sharp edge, not a gradual dark or bright region); at least 6 of 8 vertical strips
       of the band are 30 % background (it spans the width); and it ends below the 40 % limit.
    5. Up to 4 line rows directly above the band (60 % of the row within ±6 of one level: a
       separator line), when the row above them is not at their level, are part of the bar.

    The tallest band passing these tests is the databar; its frame and separator rows are
    included in :attr:`Databar.rows`.
    """
    height, width = image.shape
    limit = int(_MAX_BAR_SHARE * height)
    if limit < _MIN_BAR_ROWS + 1 or width < _STRIPS:
        return Databar()
    # bottom-up: index d is row height-1-d; one extra row above the search band for the edge test
    window = image[height - limit - 1:][::-1]
    cumulative = _cumulative_row_histograms(window)
    modes = np.diff(cumulative[: _MAX_LINE_ROWS + 1], axis=1).argmax(axis=1)
    best = Databar()
    for level in sorted({int(m) for m in modes}):
        found = _band_at_level(window, cumulative, level, limit)
        if found.rows > best.rows:
            best = found
    return best


def _band_at_level(window: np.ndarray, cumulative: np.ndarray, level: int, limit: int) -> Databar:
    """The tallest databar with background ``level`` in ``window`` (bottom-up rows), or none."""
    width = window.shape[1]
    share = _share_near(cumulative, level, _LEVEL_TOLERANCE, width)
    blank_share = _share_near(cumulative, level, _BLANK_TOLERANCE, width)
    bar = share >= _BAR_ROW_SHARE
    frame = 0
    while frame < limit and not bar[frame]:
        frame += 1
    if frame > _MAX_LINE_ROWS:
        return Databar()
    # every top (bottom-up index) at which the band from `frame` up is dense enough, tallest first
    counts = np.cumsum(bar[frame:limit])
    depths = np.arange(1, len(counts) + 1)
    tops = frame + np.flatnonzero(bar[frame:limit] & (counts >= _BAR_DENSITY * depths))
    line = _most_in_window(cumulative, _LEVEL_TOLERANCE) >= _LINE_SHARE * width
    for top in tops[::-1]:
        above = top + 1
        if top - frame + 1 < _MIN_BAR_ROWS or blank_share[frame:above].max() < _BLANK_ROW_SHARE:
            continue
        separators = _separator_rows(window, line, above, limit)
        outside = above + separators          # the first image row above the bar
        if outside + _EDGE_ROWS > limit + 1:
            continue                          # reaches the search limit: no edge
        top_rows = slice(max(frame, above - _EDGE_ROWS), above)
        if share[top_rows].max() - share[outside: outside + _EDGE_ROWS].max() < _EDGE_STEP:
            continue
        near = np.abs(window[frame:above].astype(np.int16) - level) <= _LEVEL_TOLERANCE
        strips = [part.mean() for part in np.array_split(near, _STRIPS, axis=1)]
        if sum(s >= _STRIP_SHARE for s in strips) < _STRIPS_NEEDED:
            continue
        return Databar(rows=int(outside), level=level, frame_rows=int(frame), separator_rows=separators)
    return Databar()


def _separator_rows(window: np.ndarray, line: np.ndarray, above: int, limit: int) -> int:
    """Line rows directly above the band (bottom-up index ``above``): a drawn separator.

    Up to 4 consecutive rows, each with 60 % of its pixels within ±6 of one level, are a separator
    only when the row above them is not at the top one's level (a line has an edge on both sides;
    a smooth stretch of micrograph does not end after a few rows).
    """
    rows = 0
    while rows < _MAX_LINE_ROWS and above + rows < limit and line[above + rows]:
        rows += 1
    if rows:
        level = int(np.median(window[above + rows - 1]))
        beyond = np.abs(window[above + rows].astype(np.int16) - level) <= _LEVEL_TOLERANCE
        if beyond.mean() >= _BAR_ROW_SHARE:
            return 0
    return rows


def detect_databar(image: np.ndarray) -> int:
    """Rows to cut at the bottom of ``image`` for its databar (0 if none); see :func:`find_databar`."""
    return find_databar(image).rows


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
