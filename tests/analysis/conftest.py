"""One real MLflow SQLite store per session, filled with studies whose curves are known.

The store lives in /dev/shm where there is one: SQLite commits every write with an fsync, which on
this machine's disk made filling the store four times slower than the work itself.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.analysis import fake_studies


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> str:
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="microtune-analysis-", dir=shm)) if shm.is_dir() else tmp_path_factory.mktemp("store")
    uri = "sqlite:///" + str(root / "mlflow.db")
    fake_studies.fill(uri)
    fake_studies.fill_pareto(uri)
    fake_studies.fill_hptl(uri)
    yield uri
    shutil.rmtree(root, ignore_errors=True)
