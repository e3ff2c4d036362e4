"""Real ``mlflow server`` on 127.0.0.1: nesting, curves, artifacts, reuse, and an outage."""

from __future__ import annotations

import os
import signal
import time

import pytest

from microtune.errors import MicrotuneError
from microtune.tracking import schema
from microtune.tracking.mlflow_io import (
    LOCAL_PREFIX, Tracker, download_artifact, ensure_local_server, list_artifacts, load_histories,
    load_runs, sync_spools,
)
from microtune.tracking.server import find_local_server, health_ok

STEPS = [k * 4000 for k in range(6)]  # nimg


def fid_curve(seed: int, step: int) -> float:
    return 200.0 / (1 + step / 4000) + seed


def test_parent_and_two_children_round_trip(mlflow_server, tmp_path):
    tracker = Tracker(mlflow_server.uri, spool_dir=tmp_path / "study")
    parent = tracker.start_study_run("roundtrip", name="launch", tags={schema.STUDY: "roundtrip"},
                                     params={"search": {"method": "grid"}})
    children = {}
    for seed in (0, 1):
        trial = Tracker(mlflow_server.uri, spool_dir=tmp_path / f"trial{seed}")
        run = trial.start_trial_run("roundtrip", parent_run_id=parent, name=f"trial_{seed}",
                                    tags={schema.DETECTOR: "random-seed:0"},
                                    params={"augpipe": "bg", "seed": seed, "subset": None})
        for step in STEPS:
            trial.log_metrics(run, {schema.FID: fid_curve(seed, step), schema.KIMG: step / 1000}, step=step)
        grid = tmp_path / f"fakes{seed}.png"
        grid.write_bytes(b"\x89PNG fake grid")
        trial.log_artifact(run, grid, artifact_path=schema.ARTIFACT_SAMPLES_DIR)
        trial.end_run(run, "FINISHED")
        assert trial.pending == 0
        children[seed] = run
    tracker.end_run(parent)
    assert tracker.pending == 0 and not parent.startswith(LOCAL_PREFIX)

    runs = load_runs(mlflow_server.uri, "roundtrip").set_index("run_id")
    assert set(runs.index) == set(children.values())
    assert (runs["parent_run_id"] == parent).all() and (runs["status"] == "FINISHED").all()
    assert (runs[f"tags.{schema.ROLE}"] == schema.ROLE_TRIAL).all()
    assert runs.loc[children[1], "params.seed"] == "1" and runs.loc[children[1], "params.subset"] == "None"
    study = load_runs(mlflow_server.uri, "roundtrip", role=schema.ROLE_STUDY)
    assert list(study["run_id"]) == [parent] and study.loc[0, "params.search.method"] == "grid"

    hist = load_histories(mlflow_server.uri, "roundtrip", [schema.FID])
    for seed, run in children.items():
        curve = hist[hist.run_id == run]
        assert list(curve.step) == STEPS
        assert list(curve.value) == pytest.approx([fid_curve(seed, s) for s in STEPS])

    files = list_artifacts(mlflow_server.uri, children[0])
    assert files == [f"{schema.ARTIFACT_SAMPLES_DIR}/fakes0.png"]
    local = download_artifact(mlflow_server.uri, children[0], files[0], tmp_path / "dl")
    assert local.read_bytes() == b"\x89PNG fake grid"


def test_running_server_is_reused(mlflow_server):
    again = ensure_local_server(mlflow_server.project)
    assert not again.started and again.uri == mlflow_server.uri
    assert find_local_server(mlflow_server.project).pid == again.pid


def test_taken_port_is_refused(mlflow_server, tmp_path):
    with pytest.raises(MicrotuneError, match=f"port {mlflow_server.port} .* already in use"):
        ensure_local_server(tmp_path / "other", port=mlflow_server.port)


def test_server_outage_loses_no_metric(mlflow_server, tmp_path):
    """Kill the server mid-trial; keep logging; restart it on the same store; flush and sync."""
    uri = mlflow_server.uri
    study = Tracker(uri, spool_dir=tmp_path / "study")
    parent = study.start_study_run("outage", name="launch")
    trial = Tracker(uri, spool_dir=tmp_path / "trial0")
    run = trial.start_trial_run("outage", parent_run_id=parent, name="trial_0", params={"seed": 0})
    for step in STEPS[:3]:
        trial.log_metrics(run, {schema.FID: fid_curve(0, step)}, step=step)

    victim = find_local_server(mlflow_server.project)
    os.killpg(victim.pid, signal.SIGKILL)  # a crash, not a clean stop
    deadline = time.monotonic() + 10
    while health_ok(uri, 0.5) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not health_ok(uri, 0.5)

    started = time.monotonic()
    for step in STEPS[3:]:
        trial.log_metrics(run, {schema.FID: fid_curve(0, step)}, step=step)
    trial.log_metrics(run, {schema.FID: -1.0}, step=STEPS[1])  # a re-report of a logged step
    trial.end_run(run, "FINISHED")
    # a trial that starts while the server is down gets a local id and a spool of its own
    late = Tracker(uri, spool_dir=tmp_path / "trial1")
    late_run = late.start_trial_run("outage", parent_run_id=parent, name="trial_1", params={"seed": 1})
    assert late_run.startswith(LOCAL_PREFIX)
    for step in STEPS:
        late.log_metrics(late_run, {schema.FID: fid_curve(1, step)}, step=step)
    late.end_run(late_run, "FINISHED")
    assert time.monotonic() - started < 30  # logging never waits long on a dead server
    assert trial.pending == 4 and late.pending > 0

    restarted = ensure_local_server(mlflow_server.project, port=mlflow_server.port)
    assert restarted.started and restarted.uri == uri
    assert trial.flush() == 0
    report = sync_spools([tmp_path], uri)  # delivers trial1's spool; study and trial0 are empty
    assert report == {"spools": 3, "delivered": report["delivered"], "pending": 0} and report["delivered"] > 0
    assert sync_spools([tmp_path], uri)["delivered"] == 0  # nothing twice

    runs = load_runs(uri, "outage").set_index("run_name")
    assert set(runs.index) == {"trial_0", "trial_1"} and (runs["parent_run_id"] == parent).all()
    assert (runs["status"] == "FINISHED").all()
    hist = load_histories(uri, "outage", [schema.FID])
    raw = trial.client.get_metric_history(runs.loc["trial_0", "run_id"], schema.FID)
    assert sorted(m.step for m in raw) == STEPS  # no missing, no duplicated step
    for seed, name in ((0, "trial_0"), (1, "trial_1")):
        curve = hist[hist.run_id == runs.loc[name, "run_id"]]
        assert list(curve.step) == STEPS
        assert list(curve.value) == pytest.approx([fid_curve(seed, s) for s in STEPS])
