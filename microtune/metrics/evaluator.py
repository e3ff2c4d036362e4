"""The evaluation interface the training loop and ``microtune metrics`` call.

``make_evaluator(dataset, metrics, ...)`` loads the detectors once and returns an
:class:`Evaluator`; ``evaluator(sample, step_nimg)`` streams generated images through the detectors
and returns ``{"fid": ..., "kid": ..., "precision": ..., "recall": ...}`` (the requested ones).
Real-image statistics come from :class:`~microtune.metrics.cache.StatisticsCache`, computed once
per (dataset content, detector) and then reused by every call, trial and process.  The content is
identified by the hash of the arrays as they are now (:func:`dataset_identity`), so statistics of
a dataset edited in place are never reused.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from microtune.device import select_device
from microtune.errors import MicrotuneError
from microtune.metrics.cache import Protocol, RealStatistics, StatisticsCache, parse_protocol
from microtune.metrics.detectors import Detector, WeightsSpec, load_detector
from microtune.metrics.fid import RunningStatistics, frechet_distance
from microtune.metrics.kid import kernel_inception_distance
from microtune.metrics.precision_recall import precision_recall
from microtune.tracking import schema

__all__ = ["Evaluator", "make_evaluator", "compute_real_statistics", "generator_sampler", "to_uint8", "Sampler",
           "dataset_identity"]

log = logging.getLogger(__name__)

#: ``sample(n, seed_offset) -> (n, C, H, W)`` images in [-1, 1] (float) or [0, 255] (uint8).
Sampler = Callable[[int, int], torch.Tensor]

_SHORT_NAMES = {"fid": "fid{n}_full", "kid": "kid{n}_full", "pr": "pr{n}_full"}


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] → uint8 as NVlabs' metrics do: ``(x·127.5 + 128)`` clamped."""
    if images.dtype == torch.uint8:
        return images
    return (images.float() * 127.5 + 128.0).clamp(0, 255).to(torch.uint8)


def _uint8_batches(images: np.ndarray, batch_size: int):
    for start in range(0, images.shape[0], batch_size):
        batch = torch.from_numpy(np.array(images[start : start + batch_size], copy=True))  # memmaps are read-only
        yield start, batch[:, None] if batch.ndim == 3 else batch


def compute_real_statistics(images: np.ndarray, detector: Detector, *, with_moments: bool, feature_cap: int,
                            batch_size: int = 64, seed: int = 0) -> RealStatistics:
    """Run ``detector`` over all real images (N, H, W) or (N, C, H, W) uint8, streaming.

    Keeps float64 moments of all features (``with_moments``) and the features of all images, or of
    a seeded random subset of ``feature_cap`` images when there are more.
    """
    n = images.shape[0]
    keep = np.sort(np.random.default_rng(seed).choice(n, feature_cap, replace=False)) if n > feature_cap else None
    running = RunningStatistics(detector.feature_dim) if with_moments else None
    kept: list[np.ndarray] = []
    for start, batch in _uint8_batches(images, batch_size):
        feats = detector.features(batch).cpu().numpy()
        if running is not None:
            running.update(feats)
        if keep is None:
            kept.append(feats)
        else:
            lo, hi = np.searchsorted(keep, [start, start + feats.shape[0]])
            kept.append(feats[keep[lo:hi] - start])
    mean, cov = running.mean_cov() if running is not None else (None, None)
    return RealStatistics(count=n, features=np.concatenate(kept).astype(np.float32), mean=mean, cov=cov)


class Evaluator:
    """Computes generative metrics of a sampler against one real dataset.

    Build it with :func:`make_evaluator`.  Call ``evaluator(sample, step_nimg)``.

    Attributes
    ----------
    detector : str
        Tag of the detector(s) every value is made with, e.g. ``"inception-v3-tf:6726825d0af5,
        vgg16-fc2:397923af8e79"`` or ``"random-seed:0"``; log it next to the metrics.
    protocols : list of Protocol
        Effective protocols (names carry the generated-image counts).
    cache : StatisticsCache
        Real-statistics cache (``hits``/``misses`` counters).
    last_seconds : float
        Wall time of the last call.
    content_hash : str
        Hash of the real images the statistics belong to (verified against the arrays).
    warnings : list of str
        Sentences about the real data a user should see (e.g. arrays changed since the manifest).
    """

    def __init__(self, *, images: np.ndarray, content_hash: str, protocols: Sequence[Protocol],
                 detectors: dict[str, Detector], cache: StatisticsCache, batch_size: int, feature_cap: int,
                 kid_subsets: int, kid_subset_size: int, seed: int, identity: Callable[[], str] | None = None,
                 warnings: Sequence[str] = ()):
        self.images, self.content_hash = images, content_hash
        self.identity = identity
        self.warnings = list(warnings)
        self.protocols = list(protocols)
        self.detectors = detectors
        self.cache = cache
        self.batch_size, self.feature_cap = batch_size, feature_cap
        self.kid_subsets, self.kid_subset_size, self.seed = kid_subsets, kid_subset_size, seed
        tags = list(dict.fromkeys(d.tag for d in detectors.values()))
        self.detector = ",".join(tags)
        self.last_seconds = 0.0
        self._real: dict[str, RealStatistics] = {}

    @property
    def num_gen(self) -> int:
        """Generated images one call draws (the largest protocol)."""
        return max(p.num_gen for p in self.protocols)

    def _moments_needed(self, det: Detector) -> bool:
        return any(r == "fid" for r, d in self.detectors.items() if d is det)

    def real_statistics(self, role: str) -> RealStatistics:
        """Real statistics for a detector role (``"fid"`` or ``"pr"``): memory, then disk, then compute."""
        det = self.detectors[role]
        if id(det) not in self._real:
            moments = self._moments_needed(det)
            subset_seed = self.seed if self.images.shape[0] > self.feature_cap else None
            key = self.cache.key(self.content_hash, det.tag, det.weights_sha256, self.feature_cap, subset_seed)
            key["moments"] = moments

            def compute() -> RealStatistics:
                stats = compute_real_statistics(self.images, det, with_moments=moments, feature_cap=self.feature_cap,
                                                batch_size=self.batch_size, seed=self.seed)
                if self.identity is not None and self.identity() != self.content_hash:
                    raise MicrotuneError("the real images changed while their statistics were computed; run again "
                                         "once nothing writes to the dataset.")
                return stats

            self._real[id(det)] = self.cache.get_or_compute(key, det.name, compute)
        return self._real[id(det)]

    def _generated_features(self, sample: Sampler) -> tuple[RunningStatistics | None, dict[str, np.ndarray]]:
        """Stream generated images through each detector once; returns FID moments and kept features.

        Memory: the FID moments (d × d float64) plus the features KID and P/R need (n × d float32).
        """
        fid_n = max((p.num_gen for p in self.protocols if p.metric == "fid"), default=0)
        keep_n = {"fid": max((p.num_gen for p in self.protocols if p.metric == "kid"), default=0),
                  "pr": max((p.num_gen for p in self.protocols if p.metric == "pr"), default=0)}
        need = {role: max(p.num_gen for p in self.protocols if p.role == role) for role in self.detectors}
        unique = {id(d): d for d in self.detectors.values()}
        det_need = {i: max(need[r] for r, d in self.detectors.items() if id(d) == i) for i in unique}
        running = RunningStatistics(self.detectors["fid"].feature_dim) if fid_n else None
        kept: dict[str, list[np.ndarray]] = {role: [] for role in self.detectors}
        total, started = self.num_gen, time.monotonic()
        for start in range(0, total, self.batch_size):
            n = min(self.batch_size, total - start)
            images = sample(n, start)
            if not torch.is_tensor(images) or images.ndim != 4 or images.shape[0] != n or images.shape[1] not in (1, 3):
                got = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
                raise ValueError(f"sample({n}, {start}) must return a (n, 1|3, H, W) tensor, got {got}")
            if tuple(images.shape[-2:]) != tuple(self.images.shape[-2:]):
                (h, w), (rh, rw) = images.shape[-2:], self.images.shape[-2:]
                raise MicrotuneError(f"the generated images are {w}x{h} but the real images are {rw}x{rh}; metrics "
                                     f"compare images of one resolution (the detectors would resize them silently).")
            images = to_uint8(images)
            feats = {i: det.features(images[: det_need[i] - start]).cpu().numpy()
                     for i, det in unique.items() if start < det_need[i]}
            if running is not None and start < fid_n:
                running.update(feats[id(self.detectors["fid"])][: fid_n - start])
            for role, det in self.detectors.items():
                if start < keep_n[role]:
                    kept[role].append(feats[id(det)][: keep_n[role] - start])
            if time.monotonic() - started > 30 and (start // self.batch_size) % 20 == 0:
                log.info("generated %d/%d images", start + n, total)
        return running, {role: np.concatenate(v) for role, v in kept.items() if v}

    def __call__(self, sample: Sampler | torch.nn.Module, step_nimg: int | None = None) -> dict[str, float]:
        """Evaluate a sampler; returns the requested metrics (``fid``, ``kid``, ``precision``, ``recall``).

        Parameters
        ----------
        sample : callable or torch.nn.Module
            A generator module (wrapped with :func:`generator_sampler`, seeds ``seed + j``; so the
            training loop can pass ``evaluate=evaluator`` and call ``evaluator(G_ema, nimg)``), or
            ``sample(n, seed_offset)`` that returns ``n`` generated images (n, C, H, W), C = 1 or 3, float
            in [-1, 1] or uint8; image ``seed_offset + i`` must depend only on its index (e.g. the
            latent of image j drawn from seed ``base_seed + j``) so an evaluation is reproducible.
        step_nimg : int, optional
            Training progress (real images shown to D); only logged.
        """
        started = time.monotonic()
        if isinstance(sample, torch.nn.Module):
            sample = generator_sampler(sample, seed=self.seed)
        real = {role: self.real_statistics(role) for role in self.detectors}
        running, gen = self._generated_features(sample)
        out: dict[str, float] = {}
        for p in self.protocols:
            if p.metric == "fid":
                mean, cov = running.mean_cov()
                out[schema.FID] = frechet_distance(real["fid"].mean, real["fid"].cov, mean, cov)
            elif p.metric == "kid":
                out[schema.KID] = kernel_inception_distance(real["fid"].features, gen["fid"][: p.num_gen],
                                                       num_subsets=self.kid_subsets,
                                                       max_subset_size=self.kid_subset_size, seed=self.seed)[0]
            else:
                device = self.detectors["pr"].device
                out[schema.PRECISION], out[schema.RECALL] = precision_recall(real["pr"].features, gen["pr"][: p.num_gen],
                                                                   k=p.k, device=device)
        self.last_seconds = time.monotonic() - started
        log.info("metrics at nimg=%s (%s, %.1fs): %s", step_nimg, self.detector, self.last_seconds,
                 {k: round(v, 4) for k, v in out.items()})
        return out

    evaluate = __call__


def dataset_identity(dataset: Any, cache_dir: str | os.PathLike | None = None
                     ) -> tuple[str, Callable[[], str] | None, list[str]]:
    """``(hash, recheck, warnings)`` identifying the real images of ``dataset`` as they are now.

    For a :class:`~microtune.data.dataset.Dataset` the hash is :meth:`Dataset.verified_hash` (a
    fingerprint check, a re-hash when the arrays changed; fingerprints of read-only datasets go
    to ``cache_dir/fingerprints``), ``recheck`` repeats it, and a warning says when the arrays no
    longer match the manifest.  Other objects supply ``content_hash`` and are trusted.
    """
    verified = getattr(dataset, "verified_hash", None)
    if verified is None:
        return str(dataset.content_hash), None, []
    fallback = Path(cache_dir).expanduser() / "fingerprints" if cache_dir is not None else None

    def recheck() -> str:
        return verified(fallback)

    actual = recheck()
    warnings = []
    if actual != dataset.content_hash:
        warnings.append(f"{dataset.path}: the arrays changed after the dataset was written (manifest sha256 "
                        f"{dataset.content_hash[:12]}, arrays now {actual[:12]}); metrics use the arrays as they "
                        f"are now and cache their statistics under the new hash.")
        log.warning("%s", warnings[-1])
    return actual, recheck, warnings


def _protocols(metrics: Sequence[str], num_gen: int | None, pr_k: int) -> list[Protocol]:
    protocols: list[Protocol] = []
    for name in metrics:
        name = name.strip()
        if name in _SHORT_NAMES:
            n = num_gen if num_gen is not None else 50_000
            proto = parse_protocol(f"pr{n}_full") if name == "pr" else parse_protocol(_SHORT_NAMES[name].format(n=n))
            proto = Protocol(proto.name, proto.metric, proto.num_gen, pr_k if name == "pr" else None)
        else:
            proto = parse_protocol(name)
            if num_gen is not None:
                proto = Protocol(f"{proto.metric}{num_gen}_full", proto.metric, num_gen, proto.k)
        if any(p.metric == proto.metric for p in protocols):
            raise MicrotuneError(f"--metrics lists {proto.metric} twice; give each of fid, kid, pr at most once.")
        protocols.append(proto)
    if not protocols:
        raise MicrotuneError("--metrics is empty; choose from fid, kid, pr or protocol names like fid50k_full.")
    return protocols


def make_evaluator(
    dataset: Any,
    metrics: Sequence[str] = ("fid", "kid", "pr"),
    *,
    num_gen: int | None = None,
    detector: str = "standard",
    detector_weights: Sequence[str | os.PathLike] = (),
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    allow_download: bool = True,
    feature_cap: int = 50_000,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    pr_k: int = 3,
    seed: int = 0,
    specs: dict[str, WeightsSpec] | None = None,
) -> Evaluator:
    """Build an :class:`Evaluator` for a real dataset.

    Parameters
    ----------
    dataset : Dataset, path, or object with ``images`` (N, H, W) uint8 and ``content_hash``
        The real images: ALL of them are used (the study's protocol), whatever the training subset.
    metrics : sequence of str
        ``"fid"``, ``"kid"``, ``"pr"`` (sizes from ``num_gen``, default 50 000) and/or protocol
        names such as ``"fid10k_full"`` or ``"pr50k3_full"``.
    num_gen : int, optional
        Generated images per metric; overrides the sizes in protocol names.
    detector : str
        ``"standard"`` (Inception-v3 for FID/KID, VGG-16 fc2 for P/R; weights must be found) or
        ``"random-seed:N"`` (offline, explicitly labelled; see :mod:`microtune.metrics.detectors`).
    detector_weights : sequence of path
        Weight files or folders (``--detector-weights``).
    cache_dir : path, optional
        Root for detector weights (``detectors/``), real statistics (``real-stats/``) and the
        content fingerprints of datasets whose folder cannot be written (``fingerprints/``);
        ``None`` keeps real statistics in memory only.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
    batch_size : int
        Images per detector batch.
    allow_download : bool
        Let standard weights be downloaded into ``cache_dir`` when missing.
    feature_cap : int
        Most real feature vectors kept for KID and P/R (a seeded subset beyond it).
    kid_subsets, kid_subset_size : int
        KID subsets (Bińkowski et al.: 100 of 1000).
    pr_k : int
        Neighbourhood size for the short name ``"pr"`` (the study: 3).
    seed : int
        Seed for KID subsets and the real-feature subset.
    specs : dict, optional
        Replacement weight specs (tests).
    """
    if isinstance(dataset, (str, os.PathLike)):
        from microtune.data.dataset import Dataset

        dataset = Dataset.open(dataset)
    protocols = _protocols(metrics, num_gen, pr_k)
    dev = select_device(device)
    roles = list(dict.fromkeys(p.role for p in protocols))
    detectors: dict[str, Detector] = {}
    for role in roles:
        if detector != "standard" and detectors:
            detectors[role] = next(iter(detectors.values()))  # one offline net serves both roles
            continue
        detectors[role] = load_detector(role, detector, weights=detector_weights, cache_dir=cache_dir, device=dev,
                                        allow_download=allow_download, specs=specs)
    content_hash, recheck, warnings = dataset_identity(dataset, cache_dir)
    return Evaluator(images=dataset.images, content_hash=content_hash, protocols=protocols,
                     detectors=detectors, cache=StatisticsCache(cache_dir), batch_size=batch_size,
                     feature_cap=feature_cap, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, seed=seed,
                     identity=recheck, warnings=warnings)


def generator_sampler(generator: torch.nn.Module, *, seed: int = 0, truncation_psi: float = 1.0,
                      device: str | torch.device | None = None) -> Sampler:
    """Wrap a generator ``G(z) -> images`` (with attribute ``z_dim``) as a :data:`Sampler`.

    Image ``j`` uses the latent ``z ~ N(0, I)`` drawn from ``torch.Generator`` seeded with
    ``seed + j`` (the seed convention of :mod:`microtune.gan.generate`), so any batch split gives
    the same images.  StyleGAN2 generators (with a ``mapping`` network) run with
    ``noise_mode="const"`` so an image depends on its seed only.
    """
    if not hasattr(generator, "z_dim"):
        raise ValueError("generator_sampler needs a generator with a z_dim attribute")
    dev = torch.device(device) if device is not None else next(generator.parameters()).device
    kwargs = {"truncation_psi": truncation_psi, "noise_mode": "const"} if hasattr(generator, "mapping") else {}

    @torch.inference_mode()
    def sample(n: int, seed_offset: int) -> torch.Tensor:
        z = torch.stack([torch.randn(generator.z_dim, generator=torch.Generator().manual_seed(seed + seed_offset + i))
                         for i in range(n)]).to(dev)
        return generator(z, **kwargs)

    return sample
