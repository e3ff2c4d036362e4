"""Fixtures for sweeps with real components: a project with a small dataset, a real MLflow server
on 127.0.0.1, and helpers to run the CLI as a separate process (each launch starts its own Ray)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from microtune.tracking.server import ensure_local_server, find_local_server
from tests.conftest import microtune_cmd


@pytest.fixture(scope="session")
def sweep_project(tmp_path_factory) -> Path:
    """A project directory holding a 32×32 synthetic dataset of 32 images from 4 specimens."""
    project = tmp_path_factory.mktemp("sweep-project")
    result = subprocess.run(microtune_cmd("data", "synth", str(project / "ds"), "--count", "32",
                                          "--resolution", "32", "--specimens", "4"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return project


@pytest.fixture(scope="session")
def sweep_server(sweep_project):
    """The project's MLflow server (what `sweep launch` would start), stopped by PID at the end."""
    server = ensure_local_server(sweep_project)
    yield server
    current = find_local_server(sweep_project)
    for handle in {server.pid: server, **({current.pid: current} if current else {})}.values():
        if handle.is_alive():
            handle.stop()


def write_spec(project: Path, name: str, **overrides) -> Path:
    """A small CPU spec in the project: demo cfg, 32×32, random-seed detector, 0.1-kimg evaluations."""
    spec = {
        "name": name,
        "dataset": str(project / "ds"),
        "train": {"cfg": "demo", "kimg": 0.2, "tick_kimg": 0.05, "device": "cpu", "num_threads": 1},
        "search": {"method": "grid", "seeds": [0], "params": {"augpipe": ["none", "bg"]}},
        "metrics": {"protocols": ["fid32_full", "pr32_full"], "detector": "random-seed:0", "eval_every_kimg": 0.1},
        "resources": {"cpu": 1, "gpu": 0},
        "max_concurrent": 2,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    path = project / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def start_cli(project: Path, *args: str, log_name: str) -> subprocess.Popen:
    """Start `microtune ...` in the project directory, output to a log file, own process group."""
    log = open(project / log_name, "w")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(microtune_cmd(*args), cwd=project, stdout=log, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)


@contextlib.contextmanager
def killed_on_exit(proc: subprocess.Popen):
    """Yield ``proc``; on leaving (also after a failed wait), SIGKILL its process group if it still runs,
    so that no driver, Ray or trial process outlives the test."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_cli(project: Path, *args: str, log_name: str, timeout: float = 400) -> tuple[int, str]:
    with killed_on_exit(start_cli(project, *args, log_name=log_name)) as proc:
        rc = proc.wait(timeout=timeout)
    return rc, (project / log_name).read_text()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def study_record(project: Path, name: str) -> dict:
    return json.loads((project / "runs" / "sweeps" / name / "microtune_study.json").read_text())


def checkpoints(project: Path, name: str) -> list[Path]:
    return sorted((project / "runs" / "sweeps" / name).glob("*/checkpoint_*"))


@pytest.fixture(scope="session")
def seg_dataset(sweep_project) -> Path:
    """A 48×48 synthetic 3-phase dataset with masks (16 images, 4 specimens) in the sweep project."""
    out = sweep_project / "seg-ds"
    result = subprocess.run(microtune_cmd("data", "synth", str(out), "--count", "16", "--resolution", "64",
                                          "--specimens", "4", "--inclusions"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return out


def write_seg_spec(project: Path, name: str, dataset: Path, **overrides) -> Path:
    """A CPU-sized HPTL (model: hptl) grid spec: two depth settings plus an Otsu arm."""
    spec = {
        "name": name, "model": "hptl", "dataset": str(dataset),
        "train": {"method": "hptl", "epochs": 2, "batch": 8, "crop": 48, "lr": 2e-3, "width": 0.0625,
                  "samples_per_epoch": 32, "source": "textures", "source_steps": 20, "dropout": 0.0},
        "search": {"method": "grid", "seeds": [0], "params": {"depths": ["2,8,9", "0,0,0"]},
                   "arms": [{"method": "otsu"}]},
        "resources": {"cpu": 1, "gpu": 0},
        "max_concurrent": 2,
    }
    for key, value in overrides.items():
        spec[key] = {**spec[key], **value} if key == "train" else value
    path = project / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


# -- finished studies shared by the tests that only read them (one launch each per session) --------

@pytest.fixture(scope="session")
def dash_study(sweep_project, sweep_server) -> dict:
    """One launch of a 2 × 2 grid (augpipe none/bg × seeds 0, 1, like ``make demo``'s quickstart; the
    seeds make the curves differ at 0.2 kimg, where ADA has not augmented yet), with the analysis at
    the end: its log and record. Read by tests/sweep/test_dashboard.py and test_sweep_e2e.py."""
    spec = write_spec(sweep_project, "dash", search={"method": "grid", "seeds": [0, 1],
                                                     "params": {"augpipe": ["none", "bg"]}})
    rc, log = run_cli(sweep_project, "sweep", "launch", str(spec), "--force", log_name="dash.log", timeout=600)
    assert rc == 0, log
    return {"log": log, "record": study_record(sweep_project, "dash"), "uri": sweep_server.uri}


@pytest.fixture(scope="session")
def pareto_study(sweep_project, sweep_server) -> dict:
    """One launch of a multi-objective Optuna study (NSGA-II, 3 samples of r_t × augpipe, fid and
    recall) kept in an Optuna storage of the project: its log, record and storage URL.
    Read by tests/sweep/test_sweep_e2e.py and test_dashboard.py."""
    spec = write_spec(
        sweep_project, "pareto",
        search={"method": "optuna", "sampler": "nsga2", "seeds": [0], "num_samples": 3,
                "params": {"ada_target": {"type": "float", "low": 0.3, "high": 0.9}, "augpipe": ["bg", "bgc"]},
                "objectives": [{"metric": "fid", "mode": "min"}, {"metric": "recall", "mode": "max"}]},
        train={"kimg": 0.1},
    )
    storage = "sqlite:///" + str(sweep_project / "studies.db")
    rc, log = run_cli(sweep_project, "sweep", "launch", str(spec), "--force", "--optuna-storage", storage,
                      log_name="pareto.log")
    assert rc == 0, log
    return {"log": log, "record": study_record(sweep_project, "pareto"), "uri": sweep_server.uri, "storage": storage}
