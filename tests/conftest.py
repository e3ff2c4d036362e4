"""Shared fixtures: real files written by the tests, the shared UHCS data when present."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
UHCS = SHARED_DATA / "uhcs"


def textured(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A noisy, textured uint8 micrograph-like image (no flat or saturated rows)."""
    y, x = np.mgrid[0:height, 0:width]
    base = 110 + 40 * np.sin(x / 7.0 + rng.uniform(0, 6)) * np.cos(y / 11.0)
    return np.clip(base + rng.normal(0, 12, (height, width)), 20, 230).astype(np.uint8)


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def micrograph_folder(tmp_path: Path, rng: np.random.Generator) -> Path:
    """Six 96×80 PNG micrographs in two specimen sub-folders."""
    src = tmp_path / "src"
    for specimen in ("A", "B"):
        for k in range(3):
            write_png(src / specimen / f"{specimen}{k}.png", textured(rng, 80, 96))
    return src


@pytest.fixture
def uhcs() -> Path:
    """The shared real UHCS micrographs; the test is skipped where ../shared is absent."""
    if not (UHCS / "images").is_dir():
        pytest.skip("../shared/data/uhcs is not present on this machine")
    return UHCS


def microtune_cmd(*args: str) -> list[str]:
    """Command line that runs the microtune CLI with this interpreter."""
    return [sys.executable, "-m", "microtune", *args]
