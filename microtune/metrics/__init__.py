"""Generative and segmentation metrics: FID, KID, precision/recall, pixel accuracy and IoU.

Evaluation interface (what the training loop calls)
---------------------------------------------------
::

    from microtune.metrics import make_evaluator, generator_sampler

    evaluator = make_evaluator(dataset,                    # Dataset, its path, or .images/.content_hash
                               metrics=("fid", "kid", "pr"),  # or "fid50k_full", "pr10k3_full", ...
                               num_gen=500,                # generated images per metric (CPU: hundreds)
                               detector="standard",        # or "random-seed:0" (offline, labelled)
                               detector_weights=[path],    # --detector-weights files or folders
                               cache_dir="~/.cache/microtune", device="auto")
    values = evaluator(sample, step_nimg)   # {"fid": .., "kid": .., "precision": .., "recall": ..}
    tag = evaluator.detector                # e.g. "inception-v3-tf:6726825d0af5,vgg16-fc2:397923af8e79"

Generator contract: ``sample(n: int, seed_offset: int) -> torch.Tensor`` returns ``n`` images of
shape ``(n, C, H, W)``, ``C`` = 1 or 3, float in [-1, 1] (or uint8 in [0, 255]); image ``seed_offset
+ i`` must depend only on its index so any batching gives the same set.
:func:`generator_sampler(G, seed=0)` builds one from a generator module with a ``z_dim`` attribute
(latent of image ``j`` drawn from ``torch.Generator`` seeded ``seed + j``).  Outputs are quantised
to uint8 as NVlabs does (``x·127.5 + 128``), grayscale is repeated to 3 channels, and images are
resized to the detector's input inside the detector.

Log ``evaluator.detector`` as the ``detector`` tag of every metric: values made with
``random-seed:N`` are not comparable with published numbers and must be labelled as such.

Modules
-------
fid, kid, precision_recall, segmentation
    Pure maths on features / label maps (numpy, float64 where it matters).
detectors
    Inception-v3 (FID), VGG-16 fc2 (P/R), the seeded random fallback, weight lookup + sha256.
cache
    Protocol names (``fid50k_full`` …) and the on-disk cache of real-image statistics.
evaluator
    :func:`make_evaluator`, :class:`Evaluator`, :func:`generator_sampler`.
commands
    ``microtune metrics`` (registered by ``microtune.cli``).

Importing this package does not import torch; the names below load their module on first use.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "make_evaluator": "evaluator",
    "Evaluator": "evaluator",
    "generator_sampler": "evaluator",
    "compute_real_statistics": "evaluator",
    "frechet_distance": "fid",
    "feature_statistics": "fid",
    "RunningStatistics": "fid",
    "kernel_inception_distance": "kid",
    "precision_recall": "precision_recall",
    "ConfusionMatrix": "segmentation",
    "confusion_matrix": "segmentation",
    "segmentation_scores": "segmentation",
    "load_detector": "detectors",
    "parse_protocol": "cache",
    "StatisticsCache": "cache",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
