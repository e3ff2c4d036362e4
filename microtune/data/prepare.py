"""``microtune data prepare``: a folder of micrographs → a validated, hashed dataset.

The work per source file (:func:`process_file`) runs in ``workers`` processes; results stream, in
source order, into a :class:`~microtune.data.dataset.DatasetWriter`, which renames the finished
dataset into place, so an interrupted run leaves no dataset behind.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from microtune.data import preprocess
from microtune.data.dataset import DatasetWriter
from microtune.data.ingest import read_image
from microtune.errors import DatasetError, MicrotuneError

MASK_SUFFIXES = (".npy", ".png", ".tif", ".tiff")


@dataclass(frozen=True)
class PrepareOptions:
    """Options of ``microtune data prepare`` (validated by :meth:`validate`)."""

    resolution: int = 512                  # side of the output images, pixels
    reference: str | None = None           # histogram-matching reference: None, "auto" or a file
    median: int = 3                        # median filter size in pixels (odd; 0 = off)
    databar: str = "auto"                  # "auto", "none", or a row count to cut at the bottom
    crop: str = "center"                   # "center" (one R×R crop) or "tiles" (R×R grid)
    specimens: str | None = None           # None (one per file), "FOLDERS", or a CSV file,specimen
    masks: str | None = None               # folder of label files named like the images
    class_names: tuple[str, ...] | None = None  # mask class names, index = class id
    skip_bad: bool = False                 # skip bad files (listed in the manifest) instead of failing
    workers: int = 1                       # processes
    force: bool = False                    # replace an existing output

    def validate(self) -> None:
        """Raise :class:`MicrotuneError` naming the first invalid option."""
        if not 8 <= self.resolution <= 8192:
            raise MicrotuneError(f"--resolution must be between 8 and 8192 pixels, got {self.resolution}.")
        if self.median < 0 or (self.median > 1 and self.median % 2 == 0):
            raise MicrotuneError(f"--median must be 0 (off) or an odd size in pixels, got {self.median}.")
        if self.databar not in ("auto", "none") and not (self.databar.isdigit()):
            raise MicrotuneError(f"--databar must be auto, none or a number of pixel rows, got {self.databar!r}.")
        if self.crop not in ("center", "tiles"):
            raise MicrotuneError(f"--crop must be center or tiles, got {self.crop!r}.")
        if self.workers < 1:
            raise MicrotuneError(f"--workers must be at least 1, got {self.workers}.")
        if self.class_names is not None and self.masks is None:
            raise MicrotuneError("--class-names needs --masks.")


@dataclass
class SourceFile:
    """One file of the source folder and what it maps to."""

    path: Path            # absolute path
    rel: str              # path relative to the source folder, with '/'
    specimen: str         # specimen id
    mask: Path | None     # label file, when masks are prepared


@dataclass
class FileResult:
    """What processing one source file produced: tiles and records, or the reason it is bad."""

    rel: str
    tiles: list[preprocess.Tile] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    histogram: np.ndarray | None = None


# -- discovering the sources ----------------------------------------------------------------------

def discover(src: Path, options: PrepareOptions) -> list[SourceFile]:
    """Every non-hidden file under ``src`` (sorted), with its specimen and mask file."""
    if not src.exists():
        raise DatasetError(f"{src}: source folder does not exist.")
    if not src.is_dir():
        raise DatasetError(f"{src}: source is not a folder.")
    paths = sorted(
        p for p in src.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(src).parts)
    )
    if not paths:
        raise DatasetError(f"{src}: the source folder is empty.")
    specimen_of = _specimen_mapper(src, options.specimens)
    mask_dir = Path(options.masks) if options.masks else None
    if mask_dir is not None and not mask_dir.is_dir():
        raise DatasetError(f"{mask_dir}: --masks folder does not exist.")
    files = []
    for path in paths:
        rel = path.relative_to(src).as_posix()
        files.append(SourceFile(path=path, rel=rel, specimen=specimen_of(rel),
                                mask=_find_mask(mask_dir, rel) if mask_dir else None))
    return files


def _specimen_mapper(src: Path, specimens: str | None) -> Callable[[str], str]:
    if specimens is None:
        return lambda rel: rel.rsplit(".", 1)[0]
    if specimens.upper() == "FOLDERS":
        def from_folder(rel: str) -> str:
            if "/" not in rel:
                raise DatasetError(
                    f"{src / rel}: --specimens FOLDERS needs every image inside a specimen sub-folder, "
                    "but this file is directly in the source folder."
                )
            return rel.split("/", 1)[0]
        return from_folder
    table = read_specimen_csv(Path(specimens))

    def from_csv(rel: str) -> str:
        for key in (rel, rel.rsplit("/", 1)[-1]):
            if key in table:
                return table[key]
        raise DatasetError(f"{src / rel}: no specimen for this file in {specimens} (unknown specimen mapping).")
    return from_csv


def read_specimen_csv(path: Path) -> dict[str, str]:
    """Read a ``file,specimen`` CSV (header required) into a mapping."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the --specimens CSV ({exc.strerror}).") from None
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["file", "specimen"]:
        raise DatasetError(f"{path}: the --specimens CSV must start with the header 'file,specimen'.")
    table: dict[str, str] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise DatasetError(f"{path}: line {lineno} needs a file and a specimen.")
        name, specimen = row[0].strip(), row[1].strip()
        if table.get(name, specimen) != specimen:
            raise DatasetError(f"{path}: line {lineno} gives {name} a second specimen ({specimen}).")
        table[name] = specimen
    return table


def _find_mask(mask_dir: Path, rel: str) -> Path | None:
    stem = rel.rsplit(".", 1)[0]
    for suffix in MASK_SUFFIXES:
        candidate = mask_dir / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


# -- one file ---------------------------------------------------------------------------------------

_REFERENCE: np.ndarray | None = None


def _set_reference(reference: np.ndarray | None) -> None:
    global _REFERENCE
    _REFERENCE = reference


def load_grayscale(path: Path, options: PrepareOptions) -> tuple[np.ndarray, int, Any]:
    """Ingest, remove the databar, median-filter; returns (image, databar rows, ingest notes)."""
    ingested = read_image(path)
    image = ingested.pixels
    if options.databar == "auto":
        bar = preprocess.detect_databar(image)
    elif options.databar == "none":
        bar = 0
    else:
        bar = int(options.databar)
        if bar >= image.shape[0]:
            raise DatasetError(f"{path}: --databar {bar} removes the whole {image.shape[0]}-row image.")
    if bar:
        image = image[: image.shape[0] - bar]
    return preprocess.median_filter(image, options.median), bar, ingested


def process_file(source: SourceFile, options: PrepareOptions, histogram_only: bool = False) -> FileResult:
    """Run the pipeline on one file; never raises for a bad file (the error is in the result)."""
    result = FileResult(rel=source.rel)
    try:
        image, bar, ingested = load_grayscale(source.path, options)
        result.warnings = ingested.warnings
        height, width = image.shape
        res = options.resolution
        if height < res or width < res:
            cut = f" after removing the {bar}-row databar" if bar else ""
            raise DatasetError(
                f"{source.path}: image is {width}×{height} pixels{cut}, smaller than --resolution {res}."
            )
        if histogram_only:
            result.histogram = preprocess.histogram(image)
            return result
        mask = _load_mask(source, ingested.pixels.shape, bar) if source.mask or options.masks else None
        if _REFERENCE is not None:
            image = preprocess.match_histogram(image, _REFERENCE)
        for tile in preprocess.cut_tiles(image, mask, resolution=res, mode=options.crop):
            result.tiles.append(tile)
            result.records.append({
                "source": source.rel,
                "specimen": source.specimen,
                "tile": [tile.y, tile.x],
                "preprocessing": {
                    "source_dtype": ingested.source_dtype,
                    "source_shape": list(ingested.pixels.shape),
                    "conversions": ingested.conversions,
                    "databar_rows": bar,
                    "median": options.median,
                    "reference": options.reference,
                    "crop": options.crop,
                },
            })
    except DatasetError as exc:
        result.error = str(exc)
        result.tiles, result.records = [], []
    return result


def _load_mask(source: SourceFile, shape: tuple[int, int], bar: int) -> np.ndarray:
    if source.mask is None:
        raise DatasetError(f"{source.path}: no mask file with this name in the --masks folder.")
    path = source.mask
    if path.suffix == ".npy":
        try:
            mask = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path}: unreadable mask array ({exc}).") from None
    else:
        mask = read_image(path).pixels
    if mask.shape != shape:
        raise DatasetError(f"{path}: mask shape {mask.shape} differs from its image's {shape}.")
    if mask.dtype.kind not in "iub" or mask.min() < 0 or mask.max() > 255:
        raise DatasetError(f"{path}: mask values must be integer class ids between 0 and 255.")
    mask = mask.astype(np.uint8)
    return mask[: mask.shape[0] - bar] if bar else mask


# -- the whole folder -------------------------------------------------------------------------------

def _map(fn: Callable, items: list, options: PrepareOptions,
         reference: np.ndarray | None = None) -> Iterator[FileResult]:
    """Apply ``fn(item, options)`` to every item, in order, in ``options.workers`` processes."""
    if options.workers == 1 or len(items) == 1:
        _set_reference(reference)
        yield from (fn(item, options) for item in items)
        return
    pool = ProcessPoolExecutor(max_workers=options.workers, initializer=_set_reference,
                               initargs=(reference,))
    try:
        chunk = max(1, min(8, len(items) // (4 * options.workers)))
        yield from pool.map(fn, items, [options] * len(items), chunksize=chunk)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _histogram_only(source: SourceFile, options: PrepareOptions) -> FileResult:
    return process_file(source, options, histogram_only=True)


def _progress(iterable: Iterable, total: int, desc: str, show: bool) -> Iterable:
    if not show:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="file", disable=None, leave=False)


def choose_reference(files: list[SourceFile], options: PrepareOptions, show_progress: bool) -> SourceFile:
    """The file whose histogram is closest to the median histogram (``--reference auto``)."""
    good, histograms = [], []
    for source, result in zip(files, _progress(_map(_histogram_only, files, options), len(files),
                                               "reference", show_progress)):
        if result.error is None:
            good.append(source)
            histograms.append(result.histogram)
        elif not options.skip_bad:
            raise DatasetError(result.error)
    if not good:
        raise DatasetError("no usable image is left to choose a histogram reference from.")
    return good[preprocess.closest_to_median_histogram(np.stack(histograms))]


def prepare_dataset(src: str | os.PathLike[str], out: str | os.PathLike[str], options: PrepareOptions,
                    *, show_progress: bool = True) -> Path:
    """Prepare the dataset ``out`` from the micrographs in ``src``; returns ``out``.

    Raises :class:`DatasetError` (one sentence naming the file) on bad input unless
    ``options.skip_bad``; then bad files are listed in the manifest's ``skipped`` and the call
    still fails when nothing is left.
    """
    options.validate()
    src, out = Path(src).absolute(), Path(out).absolute()
    if out.exists() and not options.force:
        raise DatasetError(f"{out}: output already exists; pass --force to replace it.")
    files = discover(src, options)
    reference, reference_name = _resolve_reference(files, options, show_progress)
    options = replace(options, reference=reference_name,
                      masks=str(Path(options.masks).absolute()) if options.masks else None,
                      specimens=_absolute_csv(options.specimens))
    skipped: list[dict[str, str]] = []
    notes: list[str] = []
    highest_class = 0
    with DatasetWriter(out, resolution=options.resolution, with_masks=options.masks is not None,
                       force=options.force) as writer:
        results = _map(process_file, files, options, reference)
        for result in _progress(results, len(files), "prepare", show_progress):
            if result.error is not None:
                if not options.skip_bad:
                    raise DatasetError(result.error)
                skipped.append({"file": result.rel, "reason": result.error})
                continue
            notes.extend(result.warnings)
            for tile, record in zip(result.tiles, result.records):
                writer.add(tile.pixels, record, tile.mask)
                if tile.mask is not None:
                    highest_class = max(highest_class, int(tile.mask.max()))
        if not writer.records:
            raise DatasetError(f"{src}: no usable image is left after skipping {len(skipped)} bad files.")
        class_names = _class_names(options.class_names, highest_class) if options.masks else None
        for note in notes:
            warnings.warn(note, stacklevel=2)
        return writer.commit(
            class_names=class_names,
            source=str(src),
            preprocessing=asdict(options),
            specimen_count=len({r["specimen"] for r in writer.records}),
            skipped=skipped,
            warnings=notes,
        )


def _resolve_reference(files: list[SourceFile], options: PrepareOptions,
                       show_progress: bool) -> tuple[np.ndarray | None, str | None]:
    if options.reference is None:
        return None, None
    if options.reference == "auto":
        chosen = choose_reference(files, options, show_progress)
        image, _, _ = load_grayscale(chosen.path, options)
        return image, chosen.rel
    path = Path(options.reference)
    if not path.is_file():
        raise DatasetError(f"{path}: --reference file does not exist.")
    image, _, _ = load_grayscale(path, options)
    return image, str(path.absolute())


def _absolute_csv(specimens: str | None) -> str | None:
    if specimens is None or specimens.upper() == "FOLDERS":
        return specimens
    return str(Path(specimens).absolute())


def _class_names(given: tuple[str, ...] | None, highest: int) -> list[str]:
    if given is None:
        return [f"class{i}" for i in range(highest + 1)]
    if highest >= len(given):
        raise DatasetError(f"--class-names lists {len(given)} classes but the masks contain class id {highest}.")
    return list(given)
