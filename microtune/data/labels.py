"""Label images (masks): finding them, reading them, turning them into class ids, aligning them.

A mask becomes an (H, W) array of class ids 0..K-1 by these rules.

**Which file.** The mask of ``SRC/sub/x.png`` is ``MASKS/sub/x<suffix>.<ext>`` with ``<suffix>`` one
of ``""``, ``_mask``, ``_label``, ``_labels``, ``_gt`` (any case) and ``<ext>`` one of ``.npy``,
``.png``, ``.tif``, ``.tiff``, ``.bmp`` (any case). Two matching files are refused (naming both),
as is a JPEG (lossy compression changes label values at every edge).

**What the values mean.** Each file is read as one of two kinds:

- *grey*: one value per pixel: ``.npy`` integer arrays, grey or 16-bit PNG/TIFF, RGB(A) files in
  which R = G = B everywhere (and nothing is transparent), and palette PNGs/TIFFs *without* a colour
  map (their palette indices are the values, their palette colours are not looked at);
- *colour*: RGB(A) files with at least one pixel where the channels differ (or a fully transparent
  pixel), and palette files when a colour map is given (their palette colours are looked up).

Without a colour map (``--mask-colors``), grey values are the class ids. A mask with more than
:data:`MAX_CLASSES` distinct values, or values at or above that cap with no ``--class-names`` naming
that many classes, is refused with a sentence saying how to map it; a colour mask is refused with a
proposed ``--mask-colors`` value built from all masks of the folder, to check and copy.

With a colour map ``name=COLOUR[|COLOUR...],...`` (COLOUR: ``#rrggbb``, ``#rgb``, a grey level
0-255, or ``gray``), the class ids are the map's order, 0..K-1, and:

- a colour-mask pixel takes the class of its colour. The class written ``gray`` (at most one) takes
  every pixel that no entry names and that is grey (R = G = B) or fully transparent (alpha 0): the
  unpainted micrograph of an overlay. Transparent pixels go to that class before their (meaningless)
  colour is looked up. Any other colour is refused, with its pixel count.
- a grey mask is read as the map's grey levels when every value is one (``bg=0,pore=255``), as class
  ids when every value is below K, and as an unpainted overlay (the ``gray`` class, except the
  levels the map names) when neither holds. A mask that both the grey-level and the class-id
  reading cover, with different results, is refused as ambiguous.

**Where the mask lies.** A mask covers its image from the top-left corner. It may be as large as the
whole image (its databar rows are then cut like the image's), or as large as the part kept after
the databar cut, or at most :data:`SLACK` rows/columns smaller than that kept part: then the image
is cropped to the mask (the common top-left area), with a warning and the numbers in the manifest.
A mask taller than the kept part but not taller than the image has labels where the databar was
cut; those rows are dropped with a warning. Any other size is refused, suggesting ``--databar N``
when the difference in height would be a databar.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from microtune.data.ingest import read_tiff_page, short_reason
from microtune.errors import DatasetError, MicrotuneError

MAX_CLASSES = 32                 # more distinct values than this is not a label image of class ids
SLACK = 2                        # a mask may be this many rows/columns short of the kept image area
LABEL_NAME_SUFFIXES = ("", "_mask", "_label", "_labels", "_gt")
MASK_EXTENSIONS = (".npy", ".png", ".tif", ".tiff", ".bmp")
_LOSSY_EXTENSIONS = (".jpg", ".jpeg")
_UNPAINTED_WORDS = ("gray", "grey")


class LabelError(DatasetError):
    """A mask that cannot become class ids. ``fatal``: not a bad file that ``--skip-bad`` may skip,
    but a setting the user must give (``needs_map``: a colour map)."""

    def __init__(self, message: str, *, fatal: bool = False, needs_map: bool = False):
        super().__init__(message)
        self.fatal = fatal or needs_map
        self.needs_map = needs_map


# -- colour maps ------------------------------------------------------------------------------------

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class ColourMap:
    """Class names in id order, the colours of each, and the class of unpainted pixels."""

    names: tuple[str, ...]
    colours: tuple[tuple[Colour, ...], ...]     # per class, explicit colours
    unpainted: int | None                        # class of grey/transparent pixels no entry names
    origin: str = "--mask-colors"                # where the map came from, for messages

    def lookup(self) -> dict[int, int]:
        """Packed colour ``0xRRGGBB`` → class id, for the explicit colours."""
        return {_pack(c): k for k, cs in enumerate(self.colours) for c in cs}

    def grey_levels(self) -> dict[int, int]:
        """Grey level → class id, for the explicit colours that are grey."""
        return {c[0]: k for k, cs in enumerate(self.colours) for c in cs if c[0] == c[1] == c[2]}

    def as_text(self) -> str:
        """The map in the inline ``--mask-colors`` form."""
        return ",".join(f"{name}={'|'.join(self._values(k))}" for k, name in enumerate(self.names))

    def as_json(self) -> dict[str, list[str]]:
        """``{name: [colour, ...]}`` in id order, for the manifest."""
        return {name: self._values(k) for k, name in enumerate(self.names)}

    def _values(self, k: int) -> list[str]:
        values = [_hex(c) for c in self.colours[k]]
        return values + (["gray"] if self.unpainted == k else [])


def _pack(colour: Colour) -> int:
    return (int(colour[0]) << 16) | (int(colour[1]) << 8) | int(colour[2])


def _unpack(packed: int) -> Colour:
    return (packed >> 16) & 255, (packed >> 8) & 255, packed & 255


def _hex(colour: Colour) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def parse_colour_map(value: str) -> ColourMap:
    """Parse ``--mask-colors``: inline ``name=COLOUR[|COLOUR],...`` or a JSON/YAML file mapping each
    class name (in id order) to a colour or a list of colours. Raises :class:`MicrotuneError`."""
    text = value.strip()
    if not text:
        raise MicrotuneError("--mask-colors is empty; give name=#rrggbb,... or a JSON/YAML file.")
    path = Path(os.path.expanduser(text))
    if path.suffix.lower() in (".json", ".yaml", ".yml") or ("=" not in text and path.is_file()):
        return _colour_map_from_file(path)
    if "=" not in text:
        raise MicrotuneError(f"--mask-colors {text!r}: neither NAME=COLOUR entries nor an existing "
                             "JSON/YAML file.")
    entries: list[tuple[str, list[Any]]] = []
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, colours = part.partition("=")
        if not sep:
            raise MicrotuneError(f"--mask-colors: entry {part.strip()!r} is not NAME=COLOUR "
                                 "(e.g. matrix=#000000).")
        entries.append((name.strip(), [c.strip() for c in colours.split("|")]))
    return _build_map(entries, "--mask-colors")


def _colour_map_from_file(path: Path) -> ColourMap:
    origin = f"--mask-colors {path}"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise MicrotuneError(f"{origin}: file does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MicrotuneError(f"{origin}: cannot read the file ({getattr(exc, 'strerror', None) or exc}).") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        raise MicrotuneError(f"{origin}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'} "
                             f"({str(exc).splitlines()[0]}).") from None
    if not isinstance(data, dict) or not data:
        raise MicrotuneError(f"{origin}: must map each class name to a colour, e.g. matrix: '#000000'.")
    entries = []
    for name, colours in data.items():
        if colours is None:
            raise MicrotuneError(f"{origin}: class {name!r} has no colour (in YAML a # starts a comment: "
                                 f"quote colours, e.g. {name}: '#ff0000').")
        entries.append((str(name), colours if isinstance(colours, list) else [colours]))
    return _build_map(entries, origin)


def _build_map(entries: list[tuple[str, list[Any]]], origin: str) -> ColourMap:
    if not entries:
        raise MicrotuneError(f"{origin}: no classes given.")
    if len(entries) > 256:
        raise MicrotuneError(f"{origin}: {len(entries)} classes; at most 256 fit in the 8-bit masks.")
    names: list[str] = []
    colours: list[tuple[Colour, ...]] = []
    unpainted: int | None = None
    owner: dict[Colour, str] = {}
    for k, (name, values) in enumerate(entries):
        if not name or any(ch in name for ch in ",=|"):
            raise MicrotuneError(f"{origin}: class name {name!r} must be non-empty, without , = or |.")
        if name in names:
            raise MicrotuneError(f"{origin}: class {name!r} is listed twice.")
        names.append(name)
        mine: list[Colour] = []
        for value in values:
            if isinstance(value, str) and value.strip().lower() in _UNPAINTED_WORDS:
                if unpainted is not None:
                    raise MicrotuneError(f"{origin}: both {names[unpainted]!r} and {name!r} claim the "
                                         "unpainted (gray) pixels; give 'gray' to one class.")
                unpainted = k
                continue
            colour = _parse_colour(value, name, origin)
            if colour in owner:
                raise MicrotuneError(f"{origin}: colour {_hex(colour)} is given to both {owner[colour]!r} "
                                     f"and {name!r}.")
            owner[colour] = name
            mine.append(colour)
        if not mine and unpainted != k:
            raise MicrotuneError(f"{origin}: class {name!r} has no colour.")
        colours.append(tuple(mine))
    return ColourMap(names=tuple(names), colours=tuple(colours), unpainted=unpainted, origin=origin)


def _parse_colour(value: Any, name: str, origin: str) -> Colour:
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        level = int(value)
        if 0 <= level <= 255:
            return level, level, level
    elif isinstance(value, str):
        text = value.strip().lower()
        if text.startswith("#") and len(text) in (4, 7) and all(c in "0123456789abcdef" for c in text[1:]):
            digits = text[1:] if len(text) == 7 else "".join(c * 2 for c in text[1:])
            return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    raise MicrotuneError(f"{origin}: class {name!r} has colour {value!r}; expected #rrggbb, a grey level "
                         "0-255, or gray (the unpainted pixels of an overlay).")


# -- finding the mask of an image -------------------------------------------------------------------

class MaskFinder:
    """Looks up the mask file of each image in a masks folder (folder listings cached)."""

    def __init__(self, mask_dir: Path):
        self.mask_dir = mask_dir
        self._listing: dict[Path, list[str]] = {}

    def _names(self, folder: Path) -> list[str]:
        if folder not in self._listing:
            try:
                self._listing[folder] = sorted(e.name for e in os.scandir(folder) if e.is_file())
            except OSError:
                self._listing[folder] = []
        return self._listing[folder]

    def find(self, rel: str, image: Path | None = None,
             beside: bool = False) -> tuple[Path | None, str | None]:
        """``(mask, None)``, or ``(None, reason)``: a clause for a missing or ambiguous mask.
        ``beside``: masks lie in the images' own folder, so a mask needs one of the name suffixes
        (``x.png`` beside ``x.tif`` is another image, not its mask)."""
        parent, _, filename = rel.rpartition("/")
        stem = filename.rsplit(".", 1)[0] if "." in filename else filename
        folder = self.mask_dir / parent if parent else self.mask_dir
        suffixes = LABEL_NAME_SUFFIXES[1:] if beside else LABEL_NAME_SUFFIXES
        found, lossy = [], []
        for name in self._names(folder):
            base, dot, ext = name.rpartition(".")
            if not dot or not base.startswith(stem) or base[len(stem):].lower() not in suffixes:
                continue
            candidate = folder / name
            if image is not None and candidate == image:
                continue  # masks beside the images: an image is not its own mask
            ext = "." + ext.lower()
            if ext in MASK_EXTENSIONS:
                found.append(candidate)
            elif ext in _LOSSY_EXTENSIONS:
                lossy.append(candidate)
        if len(found) == 1:
            return found[0], None
        where = f"{folder}/" if parent else f"{self.mask_dir}/"
        if len(found) > 1:
            return None, (f"{len(found)} mask files match this image ({', '.join(p.name for p in found)} in "
                          f"{where}); keep one of them in the --masks folder.")
        if lossy:
            return None, (f"its only mask candidate {lossy[0]} is a JPEG, whose lossy compression changes "
                          "label values along every edge; save the labels as PNG or TIFF.")
        tried = ", ".join(f"{stem}{s}" for s in suffixes)
        exts = ",".join(e.lstrip(".") for e in MASK_EXTENSIONS)
        return None, (f"no mask file for this image in {where}: looked for {tried} with extension "
                      f".{{{exts}}}.")


# -- reading a label file ---------------------------------------------------------------------------

@dataclass
class RawLabel:
    """A label file's values before they become class ids."""

    path: Path
    values: np.ndarray                   # (H, W): grey values / ids, or packed 0xRRGGBB colours
    colour: bool                         # values are packed colours
    transparent: np.ndarray | None = None  # (H, W) bool, alpha == 0, colour masks only
    source: str = ""                     # "array", "grey", "palette indices", "rgb", "palette colours"

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape  # type: ignore[return-value]


def read_label(path: Path, *, palette_colours: bool) -> RawLabel:
    """Read a mask file; ``palette_colours``: read palette files by their colours, not indices."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _from_array(path, _load_npy(path), "array")
    if suffix in (".tif", ".tiff"):
        return _read_tiff_label(path, palette_colours)
    if suffix in (".png", ".bmp"):
        return _read_pillow_label(path, palette_colours)
    raise LabelError(f"{path}: a mask must be .npy, .png, .tif, .tiff or .bmp.")


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise LabelError(f"{path}: unreadable mask array ({short_reason(exc)}).") from None


def _read_pillow_label(path: Path, palette_colours: bool) -> RawLabel:
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("P", "PA"):
                if not palette_colours:
                    return _from_array(path, np.asarray(im.convert("P") if im.mode == "PA" else im),
                                       "palette indices")
                return _from_array(path, np.asarray(im.convert("RGBA")), "palette colours")
            if im.mode == "LA":
                im = im.getchannel("L")
            elif im.mode not in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F", "RGB", "RGBA"):
                raise LabelError(f"{path}: unsupported mask colour mode {im.mode}; save it as grey, "
                                 "palette or RGB.")
            return _from_array(path, np.asarray(im), "grey")
    except UnidentifiedImageError:
        raise LabelError(f"{path}: not a readable image (the file's content is not a known image format).") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise LabelError(f"{path}: unreadable or truncated mask ({short_reason(exc)}).") from None


def _read_tiff_label(path: Path, palette_colours: bool) -> RawLabel:
    array, colormap, _ = read_tiff_page(path, LabelError)  # miniswhite: class ids are the stored values
    if colormap is not None:
        if not palette_colours:
            return _from_array(path, array, "palette indices")
        colours = (colormap >> 8).astype(np.uint8)  # 16-bit entries
        return _from_array(path, np.moveaxis(colours[:, array], 0, -1), "palette colours")
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[-1] not in (3, 4):
        array = np.moveaxis(array, 0, -1)  # planar (C, H, W)
    return _from_array(path, array, "grey")


def _from_array(path: Path, array: np.ndarray, source: str) -> RawLabel:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[-1] == 2:
        array = array[..., 0]  # grey + alpha: the alpha of a grey label carries no class
    if array.ndim == 2:
        if array.dtype == np.bool_:
            array = array.astype(np.uint8)
        elif array.dtype.kind == "f":
            if not np.all(np.isfinite(array)) or not np.array_equal(array, np.rint(array)):
                raise LabelError(f"{path}: mask values must be whole-number class ids, found fractions "
                                 "or NaN.")
            array = array.astype(np.int64)
        elif array.dtype.kind not in "iu":
            raise LabelError(f"{path}: mask values must be integer class ids, not {array.dtype}.")
        if array.size == 0:
            raise LabelError(f"{path}: the mask is empty.")
        if array.dtype.kind == "i" and array.min() < 0:
            raise LabelError(f"{path}: mask values must be class ids of 0 or more, found {int(array.min())}.")
        return RawLabel(path=path, values=np.asarray(array, dtype=np.int64), colour=False, source=source)
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        if array.dtype != np.uint8:
            raise LabelError(f"{path}: colour masks must have 8 bits per channel, this one has {array.dtype}.")
        rgb = array[..., :3]
        transparent = array[..., 3] == 0 if array.shape[-1] == 4 else None
        if transparent is not None and not transparent.any():
            transparent = None
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        if transparent is None and np.array_equal(r, g) and np.array_equal(g, b):
            return RawLabel(path=path, values=r.astype(np.int64), colour=False,
                            source="grey" if source != "palette colours" else source)
        packed = (r.astype(np.int32) << 16) | (g.astype(np.int32) << 8) | b.astype(np.int32)
        return RawLabel(path=path, values=packed, colour=True, transparent=transparent,
                        source="rgb" if source == "grey" else source)
    raise LabelError(f"{path}: unsupported mask shape {array.shape} (expected a 2-D label image or RGB).")


# -- values → class ids -----------------------------------------------------------------------------

@dataclass
class Resolved:
    """Class ids of one mask and how they were read."""

    ids: np.ndarray                     # (H, W) uint8
    reading: str                        # e.g. "class ids", "colour map", "grey levels of the map"
    notes: list[str] = field(default_factory=list)


def to_class_ids(raw: RawLabel, cmap: ColourMap | None, class_names: tuple[str, ...] | None) -> Resolved:
    """Turn a read mask into class ids 0..K-1 following the module's rules."""
    if cmap is None:
        return _ids_without_map(raw, class_names)
    if raw.colour:
        return _colour_through_map(raw, cmap)
    return _grey_through_map(raw, cmap)


def _ids_without_map(raw: RawLabel, class_names: tuple[str, ...] | None) -> Resolved:
    path = raw.path
    if raw.colour:
        count = len(np.unique(raw.values))
        raise LabelError(f"{path}: a colour mask ({count} colours) needs --mask-colors to say which colour "
                         "is which class.", needs_map=True)
    values = _distinct(raw.values)
    limit = len(class_names) if class_names else MAX_CLASSES
    if len(values) > max(limit, MAX_CLASSES):
        raise LabelError(
            f"{path}: the mask has {len(values)} distinct values, more than the {max(limit, MAX_CLASSES)} "
            "classes a label image may have here, so it is not an image of class ids; if its grey levels "
            "or colours stand for classes, map them with --mask-colors 'name=LEVEL,...' or "
            "'name=#rrggbb,...' (and 'name=gray' for the unpainted pixels of an overlay).", needs_map=True)
    top = int(values[-1])
    if class_names:
        if top >= len(class_names):
            raise LabelError(f"{path}: the mask contains class id {top} but --class-names lists only "
                             f"{len(class_names)} classes (ids 0..{len(class_names) - 1}).", fatal=True)
    elif top >= MAX_CLASSES:
        raise LabelError(f"{path}: mask values {_list(values)} are not class ids 0..K-1 (at most "
                         f"{MAX_CLASSES} classes); to use these grey levels as classes, map them with "
                         "--mask-colors.", needs_map=True)
    reading = "palette indices" if raw.source == "palette indices" else "class ids"
    return Resolved(ids=raw.values.astype(np.uint8), reading=reading)


def _colour_through_map(raw: RawLabel, cmap: ColourMap) -> Resolved:
    path = raw.path
    values = raw.values
    ids = np.full(values.shape, -1, np.int16)
    lookup = cmap.lookup()
    for packed, k in lookup.items():       # a few comparisons per class: faster than a sort
        ids[values == packed] = k
    overlay = False
    if cmap.unpainted is not None and (ids < 0).any():
        grey = (((values >> 16) & 255) == ((values >> 8) & 255)) & (((values >> 8) & 255) == (values & 255))
        unpainted = grey & (ids < 0)
        overlay = bool(unpainted.any())
        ids[unpainted] = cmap.unpainted
    if raw.transparent is not None:
        if cmap.unpainted is None:
            n = int(raw.transparent.sum())
            raise LabelError(f"{path}: {n} pixels are fully transparent and {cmap.origin} names no class "
                             "for unpainted pixels; add NAME=gray to the map.")
        ids[raw.transparent] = cmap.unpainted
        overlay = True
    bad = ids < 0
    if bad.any():
        missing = np.unique(values[bad], return_counts=True)
        order = np.argsort(-missing[1], kind="stable")
        shown = ", ".join(f"{_hex(_unpack(int(missing[0][i])))} ({int(missing[1][i])} px)" for i in order[:4])
        more = f" and {len(order) - 4} more" if len(order) > 4 else ""
        hint = ("" if cmap.unpainted is not None or not all(_is_grey(int(c)) for c in missing[0])
                else "; or, if they are the unpainted micrograph of an overlay, add NAME=gray")
        raise LabelError(f"{path}: {int(bad.sum())} pixels ({bad.mean():.1%}) have colours that "
                         f"{cmap.origin} does not map: {shown}{more}; add them to the map{hint}.")
    ids = ids.astype(np.uint8)
    reading = "colour map" + (" (overlay: grey pixels unpainted)" if overlay else "")
    return Resolved(ids=ids, reading=reading, notes=_single_class_note(raw, ids, cmap))


def _grey_through_map(raw: RawLabel, cmap: ColourMap) -> Resolved:
    path = raw.path
    values = _distinct(raw.values)
    k = len(cmap.names)
    levels = cmap.grey_levels()
    by_levels = all(int(v) in levels for v in values)
    by_ids = int(values[-1]) < k
    if by_levels and by_ids:
        differ = [int(v) for v in values if levels[int(v)] != int(v)]
        if differ:
            v = differ[0]
            raise LabelError(
                f"{path}: this grey mask is ambiguous under {cmap.origin}: its value {v} is class "
                f"{cmap.names[v]!r} if values are class ids, but {cmap.names[levels[v]]!r} if they are grey "
                "levels of the map; make the map's grey levels equal the class ids, or convert the mask.")
    if by_levels:
        lut = np.zeros(int(values[-1]) + 1, np.uint8)
        for v in values:
            lut[int(v)] = levels[int(v)]
        return Resolved(ids=lut[raw.values], reading="grey levels of the map")
    if by_ids:
        return Resolved(ids=raw.values.astype(np.uint8), reading="class ids (map order)")
    if cmap.unpainted is not None and int(values[-1]) <= 255:
        lut = np.full(256, cmap.unpainted, np.uint8)
        for level, cls in levels.items():
            lut[level] = cls
        ids = lut[raw.values]
        return Resolved(ids=ids, reading="grey overlay (unpainted)", notes=_single_class_note(raw, ids, cmap))
    outside = [int(v) for v in values if int(v) not in levels][:6]
    raise LabelError(
        f"{path}: grey mask values {_list(np.asarray(outside))} are neither class ids below {k} "
        f"({', '.join(cmap.names)}) nor grey levels that {cmap.origin} maps; add them to the map "
        "(e.g. name=255), or name the class of unpainted pixels with NAME=gray.")


def _single_class_note(raw: RawLabel, ids: np.ndarray, cmap: ColourMap) -> list[str]:
    if cmap.unpainted is not None and ids.size and np.all(ids == cmap.unpainted):
        return [f"{raw.path}: no painted pixel; the whole mask is class {cmap.names[cmap.unpainted]!r}."]
    return []


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a non-negative integer array (a histogram when they are small)."""
    top = int(values.max())
    if top < 65536:
        return np.flatnonzero(np.bincount(values.ravel(), minlength=top + 1))
    return np.unique(values)


def _is_grey(packed: int) -> bool:
    r, g, b = _unpack(packed)
    return r == g == b


def _list(values: np.ndarray, limit: int = 6) -> str:
    shown = ", ".join(str(int(v)) for v in values[:limit])
    return "{" + shown + (", ..." if len(values) > limit else "") + "}"


# -- a proposed colour map for a folder -------------------------------------------------------------

def propose_colour_map(paths: list[Path]) -> str | None:
    """A ``--mask-colors`` value covering every colour (or grey level) of the masks ``paths``, in
    order of pixel count, or None when they have too many colours to be label images.

    When the colour masks hold more than :data:`MAX_CLASSES` grey levels they are taken as overlays
    (a grey micrograph with painted phases): the proposal starts with ``class0=gray``.
    """
    colours: Counter[int] = Counter()     # packed colours of colour masks
    greys: Counter[int] = Counter()       # values of grey masks
    transparent_seen = False
    for path in paths:
        try:
            raw = read_label(path, palette_colours=True)
        except LabelError:
            continue
        values = raw.values
        if raw.transparent is not None:  # transparent pixels are unpainted, whatever their colour
            transparent_seen = True
            values = values[~raw.transparent]
        uniq, counts = np.unique(values, return_counts=True)
        target = colours if raw.colour else greys
        target.update(dict(zip(uniq.tolist(), counts.tolist())))
        if len(colours) > 4096 or len(greys) > 4096:
            return None
    entries: list[str] = []
    if colours:
        grey_levels = [c for c in colours if _is_grey(c)]
        painted = [c for c in colours if not _is_grey(c)]
        if len(grey_levels) > MAX_CLASSES or transparent_seen:
            if len(painted) > MAX_CLASSES:
                return None
            entries.append("gray")
            chosen = painted if len(grey_levels) > MAX_CLASSES else list(colours)
        elif len(colours) > MAX_CLASSES:
            return None
        else:
            chosen = list(colours)
        chosen.sort(key=lambda c: (-colours[c], c))
        entries += [_hex(_unpack(c)) for c in chosen]
    elif greys:
        if len(greys) > MAX_CLASSES or max(greys) > 255:
            return None
        entries += [str(v) for v in sorted(greys, key=lambda v: (-greys[v], v))]
    else:
        return None
    return ",".join(f"class{k}={value}" for k, value in enumerate(entries))


def needs_map_sentence(first_error: str, paths: list[Path]) -> str:
    """The refusal for masks that need ``--mask-colors``, with a proposal to copy when one exists."""
    proposal = propose_colour_map(paths)
    head = first_error.rstrip(".")
    if proposal is None:
        return (f"{head}; the folder's {len(paths)} mask(s) hold too many colours to propose a map (lossy or "
                "anti-aliased?): write one as --mask-colors 'name=#rrggbb,...'.")
    return (f"{head}; the colours of the folder's {len(paths)} masks, most frequent first, are "
            f"--mask-colors '{proposal}' (check it and rename the classes; the order gives the class ids).")


# -- alignment with the image -----------------------------------------------------------------------

@dataclass(frozen=True)
class Alignment:
    """How a mask lies on its image: both are cut to the top-left ``rows`` × ``cols``."""

    rows: int                    # rows of the common area, from the top of the image
    cols: int                    # columns of the common area, from the left
    covers: str                  # "image" (whole image), "kept" (image minus databar) or "part"
    mask_rows_dropped: int       # mask rows below the common area (in the databar cut)
    image_rows_dropped: int      # kept image rows below the mask
    image_cols_dropped: int      # image columns right of the mask

    def as_record(self) -> dict[str, Any]:
        return {"covers": self.covers, "common_shape": [self.rows, self.cols],
                "mask_rows_dropped": self.mask_rows_dropped, "image_rows_dropped": self.image_rows_dropped,
                "image_cols_dropped": self.image_cols_dropped}

    def warning(self) -> str | None:
        """A short phrase for the folder summary when something was dropped beyond the databar."""
        parts = []
        if self.image_rows_dropped or self.image_cols_dropped:
            short = []
            if self.image_rows_dropped:
                short.append(f"{self.image_rows_dropped} row{'s' * (self.image_rows_dropped > 1)}")
            if self.image_cols_dropped:
                short.append(f"{self.image_cols_dropped} column{'s' * (self.image_cols_dropped > 1)}")
            parts.append(f"are {' and '.join(short)} short of the image's kept area: aligned top-left, "
                         "the image's last rows/columns are cropped away to match")
        if self.covers == "part" and self.mask_rows_dropped:
            parts.append(f"reach {self.mask_rows_dropped} rows into the cut databar: those mask rows are "
                         "dropped")
        return "; ".join(parts) or None


def align(mask_shape: tuple[int, int], image_shape: tuple[int, int], bar: int, path: Path) -> Alignment:
    """Place a mask of ``mask_shape`` on an image of ``image_shape`` (before the databar cut) whose
    bottom ``bar`` rows are cut, by the module's top-left rule; raises :class:`LabelError`."""
    h, w = mask_shape
    height, width = image_shape
    kept = height - bar
    if w > width or w < width - SLACK or h > height or h < kept - SLACK:
        shape = f"{h}×{w} (rows×columns)"
        where = (f"{height}×{width} with {kept} rows kept after the {bar}-row databar cut" if bar
                 else f"{height}×{width} with no databar cut")
        hint = ""
        if w == width and 0 < height - h <= 0.4 * height and height - h != bar:
            hint = f"; if its image has a {height - h}-row databar, pass --databar {height - h}"
        raise LabelError(
            f"{path}: mask is {shape} but its image is {where}; a mask must cover the whole image, the "
            f"part kept after the databar, or at most {SLACK} rows/columns less, from the top-left "
            f"corner{hint}.")
    rows = min(h, kept)
    if h == height:
        covers = "image"
    elif h == kept and w == width:
        covers = "kept"
    else:
        covers = "part"
    return Alignment(rows=rows, cols=w, covers=covers, mask_rows_dropped=h - rows,
                     image_rows_dropped=kept - rows, image_cols_dropped=width - w)
