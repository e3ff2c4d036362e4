"""Metric protocols and the on-disk cache of real-image statistics.

Protocol names follow NVlabs' StyleGAN2-ADA metric names and encode their sizes:

* ``fid50k_full``: FID between 50 000 generated images and **all** real images;
* ``kid50k_full``: KID, same sizes (100 subsets of at most 1000);
* ``pr50k3_full``: precision/recall with 50 000 generated images and k = 3;
* smaller variants for sweeps: ``fid10k_full``, ``fid500_full``, ``kid2k_full``, ``pr1k3_full``,
  ``pr500_full`` (k defaults to 3).  Grammar: ``(fid|kid|pr)<N>[k][<K>]_full`` where ``k``
  multiplies N by 1000 and ``<K>`` (pr only, after ``k``) is the neighbourhood size.

Real statistics depend on the real images and the detector only, never on the number of
generated images, so ``fid10k_full`` and ``fid50k_full`` share one cache entry.  An entry is keyed
by (dataset content hash, detector tag + weights sha256, real-side protocol ``full`` + feature
cap, the seed of the real-feature subset when the dataset has more images than the cap, cache
format) and holds, for the FID/KID detector, the float64 mean and covariance of all real
features plus up to ``feature_cap`` real feature vectors (KID), and for the P/R detector those
feature vectors only.  Entries are ``.npz`` files written atomically (:mod:`microtune.io`: a
temporary file moved into place, readable like any file the user creates); an advisory lock
(:func:`microtune.io.exclusive`) makes concurrent trials on one machine compute an entry once, and on a shared file system the worst case is duplicate (identical) work.

The dataset hash must be the hash of the arrays as they are now
(:meth:`microtune.data.dataset.Dataset.verified_hash`), not the one the manifest recorded when
the dataset was written: an in-place edit of ``images.npy`` would otherwise reuse stale
statistics.  Format 2 (this one) keys by the verified hash and the subset seed; entries of format
1 were keyed by the manifest's hash without the seed, so none of them is read again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from microtune.errors import MicrotuneError
from microtune.io import atomic_output, exclusive

__all__ = ["Protocol", "parse_protocol", "RealStatistics", "StatisticsCache", "CACHE_FORMAT"]

CACHE_FORMAT = 2
_PROTOCOL_RE = re.compile(r"^(fid|kid|pr)(\d+)(k?)(\d*)_full$")


@dataclasses.dataclass(frozen=True)
class Protocol:
    """A parsed protocol name.

    Attributes
    ----------
    name : str
        The protocol name, e.g. ``fid10k_full``.
    metric : {"fid", "kid", "pr"}
        Metric family.
    num_gen : int
        Number of generated images.
    k : int or None
        Neighbourhood size for precision/recall.
    """

    name: str
    metric: str
    num_gen: int
    k: int | None = None

    @property
    def role(self) -> str:
        """Detector role: ``"fid"`` (Inception, FID and KID) or ``"pr"`` (VGG-16)."""
        return "pr" if self.metric == "pr" else "fid"


def parse_protocol(name: str) -> Protocol:
    """Parse ``fid50k_full``-style names (see the module docstring); bad names raise MicrotuneError."""
    match = _PROTOCOL_RE.match(name)
    if match is None:
        raise MicrotuneError(f"metric protocol {name!r} is not understood; use names like fid50k_full, "
                             f"kid10k_full, pr50k3_full or fid500_full.")
    metric, digits, kilo, tail = match.groups()
    num_gen = int(digits) * (1000 if kilo else 1)
    if tail and (metric != "pr" or not kilo):
        raise MicrotuneError(f"metric protocol {name!r}: only pr<N>k<K>_full takes a neighbourhood size K.")
    k = (int(tail) if tail else 3) if metric == "pr" else None
    if num_gen < 2 or (k is not None and not 1 <= k < num_gen):
        raise MicrotuneError(f"metric protocol {name!r}: needs at least 2 generated images and 1 <= k < N.")
    return Protocol(name=name, metric=metric, num_gen=num_gen, k=k)


@dataclasses.dataclass
class RealStatistics:
    """Detector statistics of a real dataset.

    Attributes
    ----------
    count : int
        Real images seen (all of them).
    features : ndarray, shape (min(count, cap), d), float32
        Features of all real images, or of a seeded random subset of ``cap`` of them.
    mean, cov : ndarray or None
        Float64 mean and covariance of the features of all real images (FID role only).
    """

    count: int
    features: np.ndarray
    mean: np.ndarray | None = None
    cov: np.ndarray | None = None


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_output(path) as tmp:
        np.savez(tmp, **arrays)


class StatisticsCache:
    """Directory of cached :class:`RealStatistics`, shared by every trial that sees it.

    Parameters
    ----------
    root : path or None
        Cache root; entries live in ``<root>/real-stats/``.  ``None`` disables the disk cache.
    """

    def __init__(self, root: str | os.PathLike | None):
        self.root = Path(root) if root is not None else None
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(content_hash: str, detector_tag: str, weights_sha256: str, feature_cap: int,
            subset_seed: int | None = None) -> dict:
        """The identity of an entry (stored inside it and hashed into its file name).

        ``content_hash`` is the verified hash of the real images as they are now;
        ``subset_seed`` is the seed that picked the kept real features when there were more real
        images than ``feature_cap`` (None when all were kept, so every seed shares the entry).
        """
        return {"format": CACHE_FORMAT, "dataset_sha256": content_hash, "detector": detector_tag,
                "detector_sha256": weights_sha256, "protocol": "full", "feature_cap": int(feature_cap),
                "subset_seed": None if subset_seed is None else int(subset_seed)}

    def path_for(self, key: dict, detector_name: str) -> Path:
        """File of the entry with ``key``."""
        if self.root is None:
            raise ValueError("the statistics cache is disabled (no cache directory)")
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        return self.root / "real-stats" / f"{key['dataset_sha256'][:12]}-{detector_name}-{digest}.npz"

    def _read(self, path: Path, key: dict) -> RealStatistics | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                if json.loads(str(data["key"])) != key:
                    return None
                return RealStatistics(
                    count=int(data["count"]), features=data["features"],
                    mean=data["mean"] if "mean" in data.files else None,
                    cov=data["cov"] if "cov" in data.files else None)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None  # truncated or foreign file: recompute and replace it

    def get_or_compute(self, key: dict, detector_name: str,
                       compute: Callable[[], RealStatistics]) -> RealStatistics:
        """Return the cached entry for ``key`` or run ``compute`` once and store its result."""
        if self.root is None:
            self.misses += 1
            return compute()
        path = self.path_for(key, detector_name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MicrotuneError(f"--cache-dir {self.root} cannot be written ({exc.strerror}).") from None
        stats = self._read(path, key)
        if stats is None:
            with self._locked(path):
                stats = self._read(path, key)  # another process may have finished it meanwhile
                if stats is None:
                    self.misses += 1
                    stats = compute()
                    arrays = {"key": np.array(json.dumps(key, sort_keys=True)), "count": np.array(stats.count),
                              "features": stats.features}
                    if stats.mean is not None:
                        arrays.update(mean=stats.mean, cov=stats.cov)
                    _atomic_savez(path, arrays)
                    return stats
        self.hits += 1
        return stats

    def _locked(self, path: Path):
        return exclusive(path.with_suffix(".lock"))
