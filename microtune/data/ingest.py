"""Read any micrograph file into an 8-bit grayscale array, with per-file errors that say why.

Supported: PNG, TIFF (8- and 16-bit, first page), JPEG, BMP. Rules:

- 8-bit grayscale is taken as it is.
- Grayscale stored as RGB(A) (all colour channels equal) is converted silently; alpha is dropped.
- Real colour is converted to luminance with ITU-R BT.601 weights (Y = 0.299 R + 0.587 G + 0.114 B,
  the weights Pillow's "L" mode uses) and a warning is recorded.
- 16-bit (or other integer / float) data are scaled to 8 bits by a linear stretch of the image's
  own [min, max] range onto [0, 255], rounded to nearest. SEM detectors often fill only 10–14 of the
  16 bits, so a fixed division by 257 would leave such images nearly black; the stretch keeps all
  the grey levels the detector produced, and histogram matching normalises contrast afterwards. A
  constant image maps to 0. The manifest records the original range.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from microtune.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
_TIFF_SUFFIXES = (".tif", ".tiff")
# Files that users' folders commonly hold beside micrographs and that are never images: operating
# system clutter, notes, instrument metadata side-cars (e.g. the .txt/.hdr files some SEMs write
# next to each TIFF), documents and archives. They are ignored (and listed); any other file that is
# not an image (say a .dm3) still stops a prepare, so no image format is skipped silently.
IGNORED_NAMES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini", ".ds_store", "icon\r"})
IGNORED_SUFFIXES = frozenset({
    ".txt", ".md", ".rst", ".rtf", ".csv", ".tsv", ".json", ".yaml", ".yml", ".xml", ".html", ".htm",
    ".log", ".ini", ".cfg", ".db", ".hdr", ".pdf", ".doc", ".docx", ".odt", ".xls", ".xlsx", ".ods",
    ".ppt", ".pptx", ".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".tar", ".py", ".ipynb",
})
# ITU-R BT.601 luma weights (also those of Pillow's "L" conversion).
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])


@dataclass
class IngestedImage:
    """An image read from disk as 8-bit grayscale, with notes on how it was converted."""

    pixels: np.ndarray                                # (H, W) uint8
    source_dtype: str                                 # dtype found in the file, e.g. "uint16"
    conversions: list[str] = field(default_factory=list)  # e.g. ["rgb->luma", "uint16 stretch 12..4021"]
    warnings: list[str] = field(default_factory=list)     # human-readable, one per issue
    colour_rows: np.ndarray | None = None  # rgb->luma only: per row, does it hold colour (R, G, B unequal)?


def ignored_reason(name: str) -> str | None:
    """Why a file called ``name`` is not a micrograph to read (hidden, system clutter, a known
    non-image type), or None when it must be read (and fail if it is not an image)."""
    lower = name.lower()
    if lower in IGNORED_NAMES:
        return "system file"
    if name.startswith("."):
        return "hidden file"
    suffix = Path(lower).suffix
    if suffix in IGNORED_SUFFIXES:
        return f"not an image ({suffix} file)"
    return None


def read_image(path: str | Path) -> IngestedImage:
    """Read ``path`` as an 8-bit grayscale image.

    Raises
    ------
    DatasetError
        One sentence naming the file: not an image, unreadable or truncated, empty, or of an
        unsupported layout.
    """
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DatasetError(
            f"{path}: not an image file (supported: {', '.join(s.lstrip('.') for s in IMAGE_SUFFIXES)})."
        )
    if path.suffix.lower() in _TIFF_SUFFIXES:
        array = _read_tiff(path)
    else:
        array = _read_pillow(path)
    return to_gray8(array, path)


def _read_pillow(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()  # forces decoding: a truncated file raises here
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB" if im.mode != "1" else "L")
            return np.asarray(im)
    except UnidentifiedImageError:
        raise DatasetError(f"{path}: not a readable image (the file's content is not a known image format).") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable or truncated image ({short_reason(exc)}).") from None


def _read_tiff(path: Path) -> np.ndarray:
    array, colormap, miniswhite = read_tiff_page(path)
    if colormap is not None:  # palette TIFF: look the indices up in the colour map (16-bit entries)
        return np.moveaxis(colormap[:, array], 0, -1)
    if miniswhite:
        return np.iinfo(array.dtype).max - array if array.dtype.kind == "u" else array.max() - array
    return array


def read_tiff_page(path: Path, error: type[DatasetError] = DatasetError) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """The first page of a TIFF: (its array, the palette's colour map or None, whether 0 is white).
    A damaged file raises ``error`` with one sentence naming it (images and label masks share this)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.pages:
                raise error(f"{path}: unreadable or truncated TIFF (no image pages found).")
            page = tif.pages[0]
            array = page.asarray()
            palette = page.photometric == tifffile.PHOTOMETRIC.PALETTE and page.colormap is not None
            return (array, np.asarray(page.colormap) if palette else None,
                    page.photometric == tifffile.PHOTOMETRIC.MINISWHITE)
    except DatasetError:
        raise
    except Exception as exc:  # tifffile raises many types for damaged files
        raise error(f"{path}: unreadable or truncated TIFF ({short_reason(exc)}).") from None


def to_gray8(array: np.ndarray, path: str | Path = "<array>") -> IngestedImage:
    """Convert an array read from a file to (H, W) uint8 following the module's rules."""
    source_dtype = str(array.dtype)
    colour_rows = None
    conversions: list[str] = []
    notes: list[str] = []
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[-1] not in (3, 4):
        array = np.moveaxis(array, 0, -1)  # planar TIFF (C, H, W)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3:
        if array.shape[-1] in (2, 4):  # gray+alpha or RGBA: drop alpha
            array = array[..., :-1]
        if array.shape[-1] == 1:
            array = array[..., 0]
        elif array.shape[-1] == 3:
            r, g, b = array[..., 0], array[..., 1], array[..., 2]
            if np.array_equal(r, g) and np.array_equal(g, b):
                array = r
                conversions.append("gray-rgb->gray")
            else:
                colour_rows = ((r != g) | (g != b)).any(axis=1)
                array = array.astype(np.float64) @ LUMA_WEIGHTS
                conversions.append("rgb->luma")
                notes.append(colour_note(path))
        else:
            raise DatasetError(f"{path}: unsupported image layout with {array.shape[-1]} channels.")
    if array.ndim != 2:
        raise DatasetError(f"{path}: unsupported image shape {array.shape} (expected a 2-D grayscale or RGB image).")
    if array.size == 0 or min(array.shape) < 1:
        raise DatasetError(f"{path}: the image is empty.")
    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype == np.bool_:
        pixels = array.astype(np.uint8) * 255
    elif "rgb->luma" in conversions and source_dtype == "uint8":
        pixels = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    else:
        pixels, lo, hi = _stretch(array)
        conversions.append(f"{source_dtype} stretch {lo:g}..{hi:g}->0..255")
    return IngestedImage(pixels=np.ascontiguousarray(pixels), source_dtype=source_dtype,
                         conversions=conversions, warnings=notes, colour_rows=colour_rows)


def colour_note(path: str | Path) -> str:
    """The warning recorded when a colour image is converted to luminance."""
    return f"{path}: colour image converted to luminance (BT.601 weights)."


def _stretch(array: np.ndarray) -> tuple[np.ndarray, float, float]:
    values = array.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        values = np.where(finite, values, np.nan)
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    if not np.isfinite(lo) or hi <= lo:
        return np.zeros(array.shape, np.uint8), lo, hi
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        scaled = np.rint((np.nan_to_num(values, nan=lo) - lo) * (255.0 / (hi - lo)))
    return np.clip(scaled, 0, 255).astype(np.uint8), lo, hi


def short_reason(exc: BaseException) -> str:
    """An exception's first line, at most 160 characters, for a one-sentence message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160].rstrip(".")
