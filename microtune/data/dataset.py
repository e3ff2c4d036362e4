"""The on-disk dataset format, its content hash, and nested subsets by specimen.

A dataset is a directory holding

``manifest.json``
    format version, count, resolution, channels, content sha256, class names (when masks exist),
    one record per image (source file, specimen id, tile position, preprocessing parameters) and
    the source files that were skipped, with the reason.
``images.npy``
    an ``(N, H, W)`` uint8 array (grayscale), memory-mappable.
``masks.npy``
    optional, an ``(N, H, W)`` uint8 array of class ids, same order as the images.

Datasets are written by :class:`DatasetWriter` into a temporary directory beside the target and
renamed into place only once complete, so a dataset appears whole or not at all.

The content hash is the sha256 of a fixed prefix, the array shape, the image bytes in order and,
when present, the mask bytes. It therefore changes if and only if the images, the masks or their
order change; metadata (source names, preprocessing notes) does not enter it.

The manifest records the hash at write time; :meth:`Dataset.verified_hash` returns the hash of the
arrays as they are *now*, which is what caches keyed by dataset content (real-image statistics)
must use.  Re-hashing gigabytes on every use would be slow, so the hash is remembered in a
fingerprint file, ``.microtune-fingerprint.json`` in the dataset (or, when the dataset cannot be
written, in a fallback folder the caller names), beside each array file's size, inode, device,
mtime and ctime in nanoseconds.  It is trusted only while all of these are unchanged (an in-place
write changes mtime and ctime; a copy or a replacement changes the inode; ``touch -d`` cannot put
ctime back) and only when the array files were at least :data:`RACY_NS` older than the
fingerprint when it was written: a file modified again within one timestamp tick of being hashed
could keep its mtime, so such "racily clean" entries are re-hashed (the rule git uses for its
index, see git's Documentation/technical/racy-git.txt).  On any mismatch the arrays are re-hashed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from microtune import __version__
from microtune.errors import DatasetError
from microtune.io import atomic_output, partial_directory, replace_directory

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
IMAGES = "images.npy"
MASKS = "masks.npy"
_HASH_PREFIX = b"microtune-dataset-v1"
FINGERPRINT = ".microtune-fingerprint.json"
#: A fingerprint is trusted only if every array file's mtime is this much older than the
#: fingerprint file's: 2 s covers the coarsest common timestamp granularity (FAT; ext3/HFS+: 1 s).
RACY_NS = 2_000_000_000


class ContentHasher:
    """Incremental content hash of a dataset (see the module docstring for the rule)."""

    def __init__(self) -> None:
        self._images = hashlib.sha256()
        self._masks = hashlib.sha256()
        self._count = 0
        self._shape: tuple[int, int] | None = None
        self._has_masks: bool | None = None

    def update(self, image: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Add one image (and its mask) in dataset order."""
        if self._has_masks is None:
            self._has_masks = mask is not None
        if (mask is not None) != self._has_masks:
            raise ValueError("either every image has a mask or none has")
        self._shape = image.shape
        self._images.update(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
        if mask is not None:
            self._masks.update(np.ascontiguousarray(mask, dtype=np.uint8).tobytes())
        self._count += 1

    def hexdigest(self) -> str:
        """The hash of everything added so far."""
        h = hashlib.sha256(_HASH_PREFIX)
        h.update(json.dumps([self._count, list(self._shape or ())]).encode())
        h.update(self._images.digest())
        if self._has_masks:
            h.update(b"masks")
            h.update(self._masks.digest())
        return h.hexdigest()


def content_hash(images: np.ndarray, masks: np.ndarray | None = None) -> str:
    """Content hash of an ``(N, H, W)`` image array and optional mask array."""
    hasher = ContentHasher()
    for i in range(images.shape[0]):
        hasher.update(images[i], None if masks is None else masks[i])
    return hasher.hexdigest()


@dataclass(frozen=True)
class Dataset:
    """A dataset directory opened for reading.

    Use :meth:`open`; ``images`` and ``masks`` are read-only memory maps.
    """

    path: Path
    manifest: dict[str, Any]
    images: np.ndarray
    masks: np.ndarray | None
    #: ``os.stat`` identity of each array file when it was mapped (see :meth:`verified_hash`).
    opened: dict[str, dict[str, int]] | None = field(default=None, compare=False, repr=False)
    #: The last verification in this process (stats, hash, time), for datasets without a fingerprint file.
    _memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Dataset:
        """Open and validate a dataset directory (cheap: does not re-hash the content)."""
        path = Path(path)
        if not path.is_dir():
            raise DatasetError(f"{path}: not a dataset directory (it does not exist or is a file).")
        manifest_path = path / MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text())
        except FileNotFoundError:
            raise DatasetError(f"{manifest_path}: missing; {path} is not a microtune dataset.") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{manifest_path}: unreadable manifest ({exc}).") from None
        _check_manifest(manifest, manifest_path)
        names = [IMAGES, MASKS] if manifest.get("class_names") else [IMAGES]
        opened = {name: _file_stat(path / name) for name in names if (path / name).exists()}
        images = _load_array(path / IMAGES, manifest)
        masks = _load_array(path / MASKS, manifest) if manifest.get("class_names") else None
        return cls(path=path, manifest=manifest, images=images, masks=masks, opened=opened)

    # -- metadata -------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Number of images."""
        return int(self.manifest["count"])

    @property
    def resolution(self) -> int:
        """Side of the square images, in pixels."""
        return int(self.manifest["resolution"])

    @property
    def channels(self) -> int:
        """Channels per image (1: grayscale)."""
        return int(self.manifest["channels"])

    @property
    def content_hash(self) -> str:
        """sha256 of the content as recorded in the manifest (see :meth:`verify`)."""
        return str(self.manifest["content_sha256"])

    @property
    def class_names(self) -> list[str] | None:
        """Names of the mask classes, index = class id; None without masks."""
        names = self.manifest.get("class_names")
        return list(names) if names else None

    @property
    def specimens(self) -> np.ndarray:
        """Specimen id of every image, as an array of strings."""
        return np.array([rec["specimen"] for rec in self.manifest["images"]], dtype=object)

    def verify(self) -> None:
        """Re-hash the arrays and raise :class:`DatasetError` if they differ from the manifest."""
        actual = content_hash(self.images, self.masks)
        if actual != self.content_hash:
            raise DatasetError(
                f"{self.path}: content hash {actual[:12]} does not match the manifest's "
                f"{self.content_hash[:12]}; the arrays were changed after the dataset was written."
            )

    def verified_hash(self, fallback_dir: str | os.PathLike[str] | None = None) -> str:
        """sha256 of the arrays as they are now (the manifest's :attr:`content_hash` if unchanged).

        Cheap when a trusted fingerprint matches (a few ``stat`` calls), a full re-hash otherwise
        (see the module docstring); the result is remembered in ``DIR/.microtune-fingerprint.json``
        or, when the dataset folder cannot be written, in ``fallback_dir``.  Raises
        :class:`DatasetError` when an array file was replaced after :meth:`open` mapped it or
        changed while it was being hashed.
        """
        stats = self._current_stats()
        memo = self._memo
        if memo.get("stats") == stats and not any(memo["at_ns"] - st["mtime_ns"] < RACY_NS for st in stats.values()):
            return memo["sha256"]
        places = _fingerprint_places(self.path, fallback_dir)
        for place in places:
            known = _read_fingerprint(place, stats)
            if known is not None:
                return known
        actual = content_hash(self.images, self.masks)
        if self._current_stats() != stats:
            raise DatasetError(f"{self.path}: the arrays changed while they were being hashed; run again once "
                               f"nothing writes to them.")
        memo.update(stats=stats, sha256=actual, at_ns=time.time_ns())
        record = {"format": 1, "dataset": str(self.path.absolute()), "manifest_sha256": self.content_hash,
                  "verified_sha256": actual, "files": stats}
        for place in places:
            if _write_fingerprint(place, record, stats):
                break
        return actual

    def _current_stats(self) -> dict[str, dict[str, int]]:
        names = [IMAGES] if self.masks is None else [IMAGES, MASKS]
        stats = {}
        for name in names:
            try:
                stats[name] = _file_stat(self.path / name)
            except OSError as exc:
                raise DatasetError(f"{self.path / name}: cannot be read any more ({exc.strerror}).") from None
            was = (self.opened or {}).get(name)
            if was is not None and (was["ino"], was["dev"]) != (stats[name]["ino"], stats[name]["dev"]):
                raise DatasetError(f"{self.path / name}: was replaced after the dataset was opened; open it again.")
        return stats

    # -- subsets --------------------------------------------------------------------------------
    def subset(self, n: int, seed: int = 0) -> np.ndarray:
        """Indices of a training subset of ``n`` images, stratified across specimens.

        For one seed the subsets are nested (``subset(10) ⊂ subset(50) ⊂ …``), as the study's
        training-set-size axis needs, and every prefix spreads its images over the specimens as
        evenly as possible (per-specimen counts differ by at most one among specimens that still
        have images left).

        Returns
        -------
        numpy.ndarray
            Sorted int64 indices into :attr:`images`.
        """
        return stratified_subset(self.specimens, n, seed)


def subset_problem(n: int, total: int, pool: str = "the dataset's {} images") -> str | None:
    """The one size rule for a training subset: None when ``n`` images can be drawn from ``total``,
    else the problem in words (``pool`` names what was counted). Callers add where ``n`` came from
    (a flag, a YAML path)."""
    return None if n <= total else f"a subset of {n} images is larger than {pool.format(total)}"


def stratified_subset(specimens: Sequence[str] | np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Nested, specimen-stratified subset of ``n`` indices (see :meth:`Dataset.subset`)."""
    specimens = np.asarray(specimens, dtype=object)
    total = len(specimens)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DatasetError(f"subset size must be a positive integer, got {n!r}.")
    if problem := subset_problem(n, total):
        raise DatasetError(problem[0].upper() + problem[1:] + ".")
    order = stratified_order(specimens, seed)
    return np.sort(order[:n]).astype(np.int64)


def stratified_order(specimens: np.ndarray, seed: int) -> np.ndarray:
    """A permutation of all indices whose every prefix is a stratified subset.

    Specimens are visited in a seeded random order, round-robin, each contributing its images in
    a seeded random order; exhausted specimens drop out of the rotation.
    """
    rng = np.random.default_rng(seed)
    names = sorted(set(specimens.tolist()))
    rng.shuffle(names)
    queues = []
    for name in names:
        members = np.flatnonzero(specimens == name)
        queues.append(list(rng.permutation(members)))
    order: list[int] = []
    depth = 0
    while len(order) < len(specimens):
        for queue in queues:
            if depth < len(queue):
                order.append(int(queue[depth]))
        depth += 1
    return np.asarray(order, dtype=np.int64)


def _check_manifest(manifest: Any, where: Path) -> None:
    if not isinstance(manifest, dict):
        raise DatasetError(f"{where}: the manifest is not a JSON object.")
    for key in ("format_version", "count", "resolution", "channels", "content_sha256", "images"):
        if key not in manifest:
            raise DatasetError(f"{where}: the manifest has no '{key}' field.")
    if manifest["format_version"] != FORMAT_VERSION:
        raise DatasetError(
            f"{where}: format_version {manifest['format_version']!r} is not supported "
            f"(this microtune reads version {FORMAT_VERSION})."
        )
    if len(manifest["images"]) != manifest["count"]:
        raise DatasetError(f"{where}: 'count' is {manifest['count']} but {len(manifest['images'])} images are listed.")


def _file_stat(path: Path) -> dict[str, int]:
    st = os.stat(path)
    return {"size": st.st_size, "ino": st.st_ino, "dev": st.st_dev, "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns}


def _fingerprint_places(dataset: Path, fallback_dir: str | os.PathLike[str] | None) -> list[Path]:
    """Where a dataset's fingerprint may live: in the dataset, then in the fallback folder."""
    places = [dataset / FINGERPRINT]
    if fallback_dir is not None:
        name = hashlib.sha256(str(dataset.absolute()).encode()).hexdigest()[:24]
        places.append(Path(fallback_dir) / f"{name}.json")
    return places


def _read_fingerprint(place: Path, stats: dict[str, dict[str, int]]) -> str | None:
    """The hash a trusted fingerprint at ``place`` records for exactly these ``stats``, else None."""
    try:
        with open(place) as fh:
            written_ns = os.fstat(fh.fileno()).st_mtime_ns
            record = json.load(fh)
        if not isinstance(record, dict) or record.get("format") != 1 or record.get("files") != stats:
            return None
        if any(written_ns - st["mtime_ns"] < RACY_NS for st in stats.values()):
            return None  # racily clean: the files may have changed within their timestamp tick
        value = record.get("verified_sha256")
        return value if isinstance(value, str) and len(value) == 64 else None
    except (OSError, ValueError):
        return None


class _Racy(Exception):
    """Raised inside the atomic write of a fingerprint that could never be trusted, to drop it."""


def _write_fingerprint(place: Path, record: dict[str, Any], stats: dict[str, dict[str, int]]) -> bool:
    """Write ``record`` atomically (mode 0666 less the umask, like the arrays); False if impossible.

    Nothing is written for racily clean files (modified within :data:`RACY_NS` of now): the
    fingerprint could never be trusted, and a later call records one that can.
    """
    try:
        place.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(place) as tmp:
            with open(tmp, "w") as fh:
                json.dump(record, fh, indent=1)
                fh.flush()
                written_ns = os.fstat(fh.fileno()).st_mtime_ns
            if any(written_ns - st["mtime_ns"] < RACY_NS for st in stats.values()):
                raise _Racy
    except _Racy:
        pass
    except OSError:
        return False
    return True


def _load_array(path: Path, manifest: dict[str, Any]) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing from the dataset.") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable array ({exc}).") from None
    res = manifest["resolution"]
    expected = (manifest["count"], res, res)
    if array.dtype != np.uint8 or array.shape != expected:
        raise DatasetError(
            f"{path}: expected a uint8 array of shape {expected}, found {array.dtype} {array.shape}."
        )
    return array


class DatasetWriter:
    """Write a dataset atomically: stream images in, then :meth:`commit` renames it into place.

    Parameters
    ----------
    out : path
        Target directory; must not exist unless ``force`` (then it is replaced at commit time).
    resolution : int
        Side of the square images, in pixels.
    with_masks : bool
        Every image comes with a mask of class ids (class names are given to :meth:`commit`).
    force : bool
        Replace an existing ``out``.

    Use as a context manager: leaving the block with an exception removes the temporary directory
    and leaves ``out`` untouched.
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        *,
        resolution: int,
        with_masks: bool = False,
        force: bool = False,
    ) -> None:
        self.out = Path(out).absolute()
        if self.out.exists() and not force:
            raise DatasetError(f"{self.out}: output already exists; pass --force to replace it.")
        self.resolution = resolution
        self.with_masks = with_masks
        self.force = force
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = partial_directory(self.out)  # also removes those of writers that died
        self._image_raw = open(self._tmp / "images.raw", "wb")
        self._mask_raw = open(self._tmp / "masks.raw", "wb") if with_masks else None
        self._hasher = ContentHasher()
        self.records: list[dict[str, Any]] = []

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def add(self, image: np.ndarray, record: dict[str, Any], mask: np.ndarray | None = None) -> None:
        """Append one ``(R, R)`` uint8 image, its manifest record and (with classes) its mask."""
        shape = (self.resolution, self.resolution)
        if image.dtype != np.uint8 or image.shape != shape:
            raise ValueError(f"expected a uint8 image of shape {shape}, got {image.dtype} {image.shape}")
        if (mask is None) != (self._mask_raw is None):
            raise ValueError("a mask must be given exactly when the writer was made with_masks")
        self._image_raw.write(np.ascontiguousarray(image).tobytes())
        if mask is not None:
            if mask.shape != shape:
                raise ValueError(f"mask shape {mask.shape} differs from image shape {shape}")
            self._mask_raw.write(np.ascontiguousarray(mask, dtype=np.uint8).tobytes())
        self._hasher.update(image, mask)
        self.records.append(dict(record))

    def commit(self, *, class_names: Sequence[str] | None = None, **extra: Any) -> Path:
        """Finish the arrays and manifest and move the dataset into place; returns its path.

        ``class_names`` (index = class id) is required exactly when the writer has masks;
        ``extra`` fields are added to the manifest.
        """
        count = len(self.records)
        if count == 0:
            raise DatasetError(f"{self.out}: no images to write.")
        if bool(class_names) != self.with_masks:
            raise ValueError("class_names must be given exactly when the writer has masks")
        self._image_raw.close()
        _raw_to_npy(self._tmp / "images.raw", self._tmp / IMAGES, (count, self.resolution, self.resolution))
        if self._mask_raw is not None:
            self._mask_raw.close()
            _raw_to_npy(self._tmp / "masks.raw", self._tmp / MASKS, (count, self.resolution, self.resolution))
        manifest = {
            "format_version": FORMAT_VERSION,
            "created_by": f"microtune {__version__}",
            "count": count,
            "resolution": self.resolution,
            "channels": 1,
            "dtype": "uint8",
            "content_sha256": self._hasher.hexdigest(),
            "class_names": list(class_names) if class_names else None,
            **extra,
            "images": [{"index": i, **rec} for i, rec in enumerate(self.records)],
        }
        manifest.setdefault("skipped", [])
        with open(self._tmp / MANIFEST, "w") as fh:
            json.dump(manifest, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        return self._move_into_place()

    def abort(self) -> None:
        """Discard everything written so far."""
        for fh in (self._image_raw, self._mask_raw):
            if fh is not None and not fh.closed:
                fh.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _move_into_place(self) -> Path:
        try:
            return replace_directory(self._tmp, self.out, replace=self.force)
        except FileExistsError:
            self.abort()
            raise DatasetError(f"{self.out}: output appeared while writing; pass --force to replace it.") from None


def _raw_to_npy(raw: Path, npy: Path, shape: tuple[int, int, int]) -> None:
    """Prefix a raw uint8 byte stream with a .npy header (streamed, bounded memory)."""
    with open(npy, "wb") as out, open(raw, "rb") as src:
        header = {"descr": "|u1", "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(out, header)
        shutil.copyfileobj(src, out, length=16 << 20)
        out.flush()
        os.fsync(out.fileno())
    raw.unlink()
