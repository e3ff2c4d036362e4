"""``microtune data prepare``: a folder of micrographs → a validated, hashed dataset.

The work per source file (:func:`process_file`) runs in ``workers`` processes; results stream, in
source order, into a :class:`~microtune.data.dataset.DatasetWriter`, which renames the finished
dataset into place, so an interrupted run leaves no dataset behind.
"""

from __future__ import annotations

import csv
import functools
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from microtune.data import labels, preprocess
from microtune.data.dataset import DatasetWriter
from microtune.data.ingest import colour_note, ignored_reason, read_image
from microtune.errors import DatasetError, MicrotuneError

MASK_SUFFIXES = labels.MASK_EXTENSIONS


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
    mask_colors: str | None = None         # colour map of the masks: name=COLOUR,... or a JSON/YAML file
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
        if self.mask_colors is not None:
            if self.masks is None:
                raise MicrotuneError("--mask-colors needs --masks.")
            names = self.colour_map().names
            if self.class_names is not None and tuple(self.class_names) != names:
                raise MicrotuneError(
                    f"--class-names {','.join(self.class_names)} differs from the classes of --mask-colors "
                    f"({','.join(names)}); the colour map names the classes, so drop --class-names.")

    def colour_map(self) -> labels.ColourMap | None:
        """The parsed ``--mask-colors`` (None without one)."""
        return None if self.mask_colors is None else _parse_colour_map(self.mask_colors)


@dataclass
class SourceFile:
    """One file of the source folder and what it maps to."""

    path: Path            # absolute path
    rel: str              # path relative to the source folder, with '/'
    specimen: str         # specimen id
    mask: Path | None     # label file, when masks are prepared
    mask_problem: str | None = None  # why there is no (single) label file, when masks are prepared


@dataclass
class FileResult:
    """What processing one source file produced: tiles and records, or the reason it is bad."""

    rel: str
    tiles: list[preprocess.Tile] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    histogram: np.ndarray | None = None
    fatal: bool = False                 # the error is a setting to fix, not a file --skip-bad may skip
    needs_map: bool = False             # the error asks for --mask-colors (a proposal is added)
    mask_alignment: str | None = None   # what aligning the mask dropped, for the folder summary


@functools.lru_cache(maxsize=8)
def _parse_colour_map(value: str) -> labels.ColourMap:
    return labels.parse_colour_map(value)


# -- discovering the sources ----------------------------------------------------------------------

def discover(src: Path, options: PrepareOptions,
             ignored: list[dict[str, str]] | None = None) -> list[SourceFile]:
    """Every file under ``src`` (sorted) to be read as a micrograph, with its specimen and mask file.

    Not read, and appended to ``ignored`` as ``{"file", "reason"}``: hidden files and folders,
    system clutter (Thumbs.db, desktop.ini), files of known non-image types (README.txt, .csv,
    .hdr, ... see :func:`~microtune.data.ingest.ignored_reason`), the ``--masks`` folder when it
    lies inside ``src``, and label files beside their images when ``--masks`` is ``src`` itself.
    """
    if not src.exists():
        raise DatasetError(f"{src}: source folder does not exist.")
    if not src.is_dir():
        raise DatasetError(f"{src}: source is not a folder.")
    mask_dir = Path(options.masks).absolute() if options.masks else None
    if mask_dir is not None and not mask_dir.is_dir():
        raise DatasetError(f"{mask_dir}: --masks folder does not exist.")
    skipped_here: list[dict[str, str]] = []
    paths = _walk(src, mask_dir, skipped_here)
    finder = labels.MaskFinder(mask_dir) if mask_dir is not None else None
    beside = mask_dir is not None and mask_dir.resolve() == src.resolve()
    found: dict[Path, tuple[Path | None, str | None]] = {}
    if finder is not None:
        for path in paths:
            found[path] = finder.find(path.relative_to(src).as_posix(), image=path, beside=beside)
        label_files = {mask: path for path, (mask, _) in found.items() if mask is not None}
        for path in [p for p in paths if p in label_files]:
            paths.remove(path)
            skipped_here.append({"file": path.relative_to(src).as_posix(),
                                 "reason": f"label file of {label_files[path].name}"})
    if ignored is not None:
        ignored.extend(sorted(skipped_here, key=lambda e: e["file"]))
    if not paths:
        names = [e["file"] for e in sorted(skipped_here, key=lambda e: e["file"])]
        extra = (f" apart from {len(names)} ignored file(s) ({', '.join(names[:5])}"
                 f"{', ...' if len(names) > 5 else ''})") if names else ""
        raise DatasetError(f"{src}: the source folder is empty{extra}.")
    specimen_of = _specimen_mapper(src, options.specimens)
    files = []
    for path in paths:
        rel = path.relative_to(src).as_posix()
        mask, problem = found.get(path, (None, None))
        files.append(SourceFile(path=path, rel=rel, specimen=specimen_of(rel), mask=mask,
                                mask_problem=problem))
    return files


def _walk(src: Path, mask_dir: Path | None, ignored: list[dict[str, str]]) -> list[Path]:
    """Files under ``src`` to read, sorted; what is left out goes to ``ignored``."""
    mask_real = mask_dir.resolve() if mask_dir is not None else None
    paths = []
    for root, dirs, names in os.walk(src):
        here = Path(root)
        keep = []
        for name in sorted(dirs):
            rel = (here / name).relative_to(src).as_posix() + "/"
            if name.startswith(".") or name == "__MACOSX":
                ignored.append({"file": rel, "reason": "hidden folder" if name.startswith(".")
                                else "macOS archive metadata"})
            elif mask_real is not None and (here / name).resolve() == mask_real:
                ignored.append({"file": rel, "reason": "the --masks folder"})
            else:
                keep.append(name)
        dirs[:] = keep
        for name in names:
            path = here / name
            if not path.is_file():
                continue
            reason = ignored_reason(name)
            if reason is None:
                paths.append(path)
            else:
                ignored.append({"file": path.relative_to(src).as_posix(), "reason": reason})
    return sorted(paths)


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
    if bar and _colour_only_in_databar(ingested.colour_rows, Path(path), image.shape[0]):
        # a logo or a coloured scale bar: the luminance of everything kept is exact, nothing is lost
        ingested.warnings = [w for w in ingested.warnings if w != colour_note(path)]
        ingested.conversions = [*ingested.conversions, "colour only in the databar"]
    return preprocess.median_filter(image, options.median), bar, ingested


def _colour_only_in_databar(colour_rows: np.ndarray | None, path: Path, kept: int) -> bool:
    """Is the colour of a colour image only in its databar (rows ``kept`` and below)?

    JPEG stores colour in blocks of 16 rows (4:2:0 subsampling; 8 rows without) and the decoder
    interpolates it with the row above: colour in a databar bleeds into the rows above its top
    that share its 16-row block, and one more. Those rows do not count for a JPEG file.
    """
    if colour_rows is None:
        return False
    if path.suffix.lower() in (".jpg", ".jpeg"):
        kept = max(0, (kept // 16) * 16 - 1)
    return not colour_rows[:kept].any()


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
        mask, mask_record = None, None
        if options.masks:
            mask, mask_record, alignment, mask_notes = _load_mask(source, options, ingested.pixels.shape, bar)
            image = image[: alignment.rows, : alignment.cols]
            result.mask_alignment = alignment.warning()
            result.warnings = [*result.warnings, *mask_notes]
            if image.shape[0] < res or image.shape[1] < res:
                raise DatasetError(f"{source.path}: image is {image.shape[1]}×{image.shape[0]} pixels after "
                                   f"aligning it with its mask, smaller than --resolution {res}.")
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
                    **({"mask": mask_record} if mask_record else {}),
                },
            })
    except DatasetError as exc:
        result.error = str(exc)
        result.fatal = getattr(exc, "fatal", False)
        result.needs_map = getattr(exc, "needs_map", False)
        result.tiles, result.records = [], []
    return result


def _load_mask(source: SourceFile, options: PrepareOptions, shape: tuple[int, int], bar: int
               ) -> tuple[np.ndarray, dict[str, Any], labels.Alignment, list[str]]:
    """The mask of ``source`` as class ids, cut to the area it shares with the image (see
    :mod:`microtune.data.labels`); with its manifest record, alignment and notes."""
    if source.mask is None:
        raise DatasetError(f"{source.path}: {source.mask_problem or 'no mask file for this image.'}")
    cmap = options.colour_map()
    raw = labels.read_label(source.mask, palette_colours=cmap is not None)
    alignment = labels.align(raw.shape, shape, bar, source.mask)
    resolved = labels.to_class_ids(raw, cmap, options.class_names)
    mask = np.ascontiguousarray(resolved.ids[: alignment.rows, : alignment.cols])
    record = {"file": source.mask.name, "shape": list(raw.shape), "reading": resolved.reading,
              **alignment.as_record()}
    return mask, record, alignment, resolved.notes


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
                    *, show_progress: bool = True, warn: Callable[[str], None] | None = None) -> Path:
    """Prepare the dataset ``out`` from the micrographs in ``src``; returns ``out``.

    Raises :class:`DatasetError` (one sentence naming the file) on bad input unless
    ``options.skip_bad``; then bad files are listed in the manifest's ``skipped`` and the call
    still fails when nothing is left. Warnings (also in the manifest's ``warnings``) go, once
    each, to ``warn`` (default: :func:`warnings.warn`).
    """
    options.validate()
    src, out = Path(src).absolute(), Path(out).absolute()
    if out.exists() and not options.force:
        raise DatasetError(f"{out}: output already exists; pass --force to replace it.")
    ignored: list[dict[str, str]] = []
    files = discover(src, options, ignored)
    reference, reference_name = _resolve_reference(files, options, show_progress)
    cmap = options.colour_map()
    options = replace(options, reference=reference_name,
                      masks=str(Path(options.masks).absolute()) if options.masks else None,
                      specimens=_absolute_csv(options.specimens),
                      mask_colors=cmap.as_text() if cmap is not None else None)
    skipped: list[dict[str, str]] = []
    notes: list[str] = []
    highest_class = 0
    class_pixels = np.zeros(256, np.int64)
    aligned: dict[str, list[str]] = {}
    bars: list[tuple[str, tuple[int, int], int]] = []
    with DatasetWriter(out, resolution=options.resolution, with_masks=options.masks is not None,
                       force=options.force) as writer:
        results = _map(process_file, files, options, reference)
        for result in _progress(results, len(files), "prepare", show_progress):
            if result.error is not None:
                if result.needs_map:
                    raise DatasetError(labels.needs_map_sentence(result.error, [f.mask for f in files if f.mask]))
                if not options.skip_bad or result.fatal:
                    raise DatasetError(result.error)
                skipped.append({"file": result.rel, "reason": result.error})
                continue
            notes.extend(result.warnings)
            if result.records:
                first = result.records[0]["preprocessing"]
                bars.append((result.rel, tuple(first["source_shape"]), first["databar_rows"]))
            if result.mask_alignment:
                aligned.setdefault(result.mask_alignment, []).append(result.rel)
            for tile, record in zip(result.tiles, result.records):
                writer.add(tile.pixels, record, tile.mask)
                if tile.mask is not None:
                    highest_class = max(highest_class, int(tile.mask.max()))
                    class_pixels += np.bincount(tile.mask.ravel(), minlength=256)
        if not writer.records:
            raise DatasetError(f"{src}: no usable image is left after skipping {len(skipped)} bad files.")
        if options.masks:
            class_names = list(cmap.names) if cmap is not None else _class_names(options.class_names, highest_class)
            notes.extend(_mask_summary(aligned, class_names, class_pixels))
        else:
            class_names = None
        databar, databar_notes = databar_summary(bars, options.databar)
        notes.extend(databar_notes)
        notes = list(dict.fromkeys(notes))  # each warning once
        for note in notes:
            if warn is None:
                warnings.warn(note, stacklevel=2)
            else:
                warn(note)
        return writer.commit(
            databar=databar,
            class_names=class_names,
            source=str(src),
            preprocessing=asdict(options),
            specimen_count=len({r["specimen"] for r in writer.records}),
            skipped=skipped,
            ignored=ignored,
            warnings=notes,
        )


def databar_summary(bars: list[tuple[str, tuple[int, int], int]], mode: str
                    ) -> tuple[dict[str, Any], list[str]]:
    """The manifest's ``databar`` record (rows cut per source size), and warnings where sources of
    one size disagree (``--databar auto`` only).

    ``bars`` holds (source file, (height, width) of the source, databar rows cut) per source.
    Images of one size from one instrument carry the same databar, so a size whose sources got
    different cuts (a bar in some, none in others, or bars of different heights) is flagged:
    either a bar was missed, or micrograph rows were cut.
    """
    groups: dict[tuple[int, int], dict[int, list[str]]] = {}
    for rel, shape, rows in bars:
        groups.setdefault(shape, {}).setdefault(int(rows), []).append(rel)
    sizes, notes = [], []
    for (height, width), by_rows in sorted(groups.items(), key=lambda kv: (-sum(map(len, kv[1].values())), kv[0])):
        total = sum(len(v) for v in by_rows.values())
        sizes.append({"width": width, "height": height, "images": total,
                      "rows": {str(k): len(v) for k, v in sorted(by_rows.items())}})
        if mode == "auto" and len(by_rows) > 1:
            ranked = sorted(by_rows.items(), key=lambda kv: (-len(kv[1]), kv[0]))
            parts = []
            for k, (rows, files) in enumerate(ranked):
                what = f"{len(files)} {'has' if len(files) == 1 else 'have'} " + \
                    (f"a {rows}-row bar" if rows else "none")
                if k:  # name the files of the less common cuts
                    what += f" ({', '.join(files[:3])}{', ...' if len(files) > 3 else ''})"
                parts.append(what)
            notes.append(
                f"databar: the {total} images of {width}×{height} pixels disagree: {'; '.join(parts)}; "
                "check where each was cut (microtune data inspect DATASET --sheet marks it) or give "
                "the bar's height with --databar ROWS."
            )
    return {"mode": mode, "sizes": sizes}, notes


def databar_lines(databar: dict[str, Any]) -> list[str]:
    """Human-readable summary of a manifest's ``databar`` record (one line per source size)."""
    lines = []
    for size in databar.get("sizes", []):
        rows = {int(k): n for k, n in size["rows"].items()}
        total, cut = size["images"], sum(n for k, n in rows.items() if k)
        if cut:
            heights = ", ".join(f"{k} rows ×{n}" for k, n in sorted(rows.items()) if k)
            text = f"bar cut in {cut} of {total} image(s) ({heights})"
            text += f", no bar in {rows[0]}" if rows.get(0) else ""
        else:
            text = f"no bar cut in {total} image(s)"
        mode = str(databar.get("mode"))
        how = "auto" if mode == "auto" else "none" if mode == "none" else f"--databar {mode}"
        lines.append(f"databar      {size['width']}×{size['height']} ({how}): {text}")
    return lines


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


def _mask_summary(aligned: dict[str, list[str]], class_names: list[str], class_pixels: np.ndarray) -> list[str]:
    """Folder-level mask warnings: masks aligned with something dropped, classes with no pixel."""
    out = []
    for what, files in aligned.items():
        shown = ", ".join(files[:3]) + (", ..." if len(files) > 3 else "")
        out.append(f"{len(files)} mask(s) {what} ({shown}; per image in the manifest's preprocessing.mask).")
    empty = [f"{name!r} (id {k})" for k, name in enumerate(class_names) if class_pixels[k] == 0]
    if empty:
        out.append(f"class {', '.join(empty)} has no pixel in the dataset's masks.")
    return out


def _class_names(given: tuple[str, ...] | None, highest: int) -> list[str]:
    if given is None:
        return [f"class{i}" for i in range(highest + 1)]
    if highest >= len(given):
        raise DatasetError(f"--class-names lists {len(given)} classes but the masks contain class id {highest}.")
    return list(given)
