"""Micrograph datasets: ingest, preprocessing, on-disk format, synthetic micrographs.

``from microtune.data import Dataset`` opens datasets; ``prepare_dataset`` and ``PrepareOptions``
(``microtune data prepare`` in Python) are imported on first use.
"""

from __future__ import annotations

from typing import Any

from microtune.data.dataset import Dataset, DatasetWriter, content_hash

__all__ = ["Dataset", "DatasetWriter", "PrepareOptions", "content_hash", "prepare_dataset"]


def __getattr__(name: str) -> Any:
    if name in ("PrepareOptions", "prepare_dataset"):
        from microtune.data import prepare

        return getattr(prepare, name)
    raise AttributeError(f"module 'microtune.data' has no attribute {name!r}")
