"""Fixtures for the GAN tests: very small options and easily learned synthetic image sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from microtune.gan.config import make_options


def small_options(model: str = "stylegan2", resolution: int = 16, **overrides):
    """A StyleGAN2/DCGAN config small enough for a CPU test (milliseconds per step)."""
    if model == "dcgan":
        values = dict(dcgan_ngf=4, dcgan_ndf=4, z_dim=8, batch=4, kimg=0.016, tick_kimg=0.008)
    else:
        values = dict(
            channel_base=128, channel_max=16, z_dim=16, w_dim=16, batch=4, r1_interval=2, pl_interval=2,
            kimg=0.016, tick_kimg=0.008, augpipe="bg", ada_target=0.0, ada_kimg=0.05, device="cpu",
        )
    values.update(overrides)
    return make_options(cfg="tiny", model=model, resolution=resolution, **values)


def stripes(count: int, resolution: int, seed: int = 0) -> np.ndarray:
    """(count, R, R) uint8: bright left half, dark right half, light noise; trivially learnable."""
    rng = np.random.default_rng(seed)
    base = np.full((resolution, resolution), 40.0)
    base[:, : resolution // 2] = 215.0
    return np.clip(base + rng.normal(0, 8, (count, resolution, resolution)), 0, 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def _few_threads():
    """Keep tests modest on the shared 2-core machine and deterministic."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pytest_collection_modifyitems(config, items):
    """Skip this folder's ``slow`` tests unless they were selected with ``-m slow``."""
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords and "tests/gan/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)
