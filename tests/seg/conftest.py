"""Fixtures of the segmentation tests: a tiny synthetic 3-phase dataset with masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from microtune.data.dataset import DatasetWriter
from microtune.data.synth import CLASS_NAMES, synthesize


def write_synthetic(out: Path, *, count: int = 16, resolution: int = 64, specimens: int = 4, seed: int = 0) -> Path:
    """A synthetic 3-phase dataset (ferrite, martensite, inclusion) written like `data synth --inclusions`."""
    with DatasetWriter(out, resolution=resolution, with_masks=True) as writer:
        for k, (image, mask, specimen) in enumerate(synthesize(count=count, resolution=resolution,
                                                                specimens=specimens, seed=seed, inclusions=True)):
            writer.add(image, {"source": f"synth_{k:03d}.png", "specimen": specimen, "tile": [0, 0],
                               "preprocessing": {}}, mask)
        return writer.commit(class_names=list(CLASS_NAMES[:3]), source="synthetic")


@pytest.fixture(scope="session")
def synth3(tmp_path_factory) -> Path:
    """16 synthetic 64×64 3-phase micrographs in 4 specimens (S03 is the test specimen)."""
    return write_synthetic(tmp_path_factory.mktemp("seg") / "synth3")


def majority_rate(masks: np.ndarray) -> float:
    """Pixel share of the most frequent class (the accuracy of always predicting it)."""
    counts = np.bincount(np.asarray(masks).reshape(-1))
    return float(counts.max() / counts.sum())
