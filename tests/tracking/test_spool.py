"""The spool and the Tracker's idempotent replays, on a SQLite store (one writer process)."""

from __future__ import annotations

import json
import warnings

import pytest

from microtune.errors import MicrotuneError
from microtune.tracking import schema
from microtune.tracking.mlflow_io import (
    PARAM_VALUE_LIMIT, TRUNCATION_MARKER, Tracker, flatten, load_histories, load_runs, shape_params,
)
from microtune.tracking.spool import SPOOL_FILENAME, Spool, find_spools


@pytest.fixture
def sqlite_uri(tmp_path) -> str:
    return "sqlite:///" + str(tmp_path / "mlflow.db")


def test_flatten_and_shape_params():
    assert flatten({"a": {"b": 1, "c": {"d": None}}, "e": [1, 2]}) == {"a.b": 1, "a.c.d": None, "e": [1, 2]}
    shaped = shape_params({"x": {"y": True}, "lst": (1, "a"), "long": "z" * 2000, "none": None})
    assert shaped["x.y"] == "True" and shaped["lst"] == '[1, "a"]' and shaped["none"] == "None"
    assert len(shaped["long"]) == PARAM_VALUE_LIMIT and shaped["long"].endswith(TRUNCATION_MARKER)


def test_spool_survives_a_torn_line(tmp_path):
    spool = Spool(tmp_path)
    first = spool.append("log_batch", run="r", metrics=[["fid", 1.0, 5, 0]])
    second = spool.append("log_batch", run="r", metrics=[["fid", float("nan"), 6, 1]])
    spool.ack(first["id"])
    with open(tmp_path / SPOOL_FILENAME, "ab") as handle:
        handle.write(b'{"id": "cut-short", "op": "log_ba')  # a crash mid-append
    with pytest.warns(RuntimeWarning, match="unreadable"):
        again = Spool(tmp_path)
    assert [r["id"] for r in again.pending()] == [second["id"]]
    third = again.append("set_status", run="r", status="FINISHED", end_time=1)
    with pytest.warns(RuntimeWarning, match="unreadable"):  # the torn line stays, terminated
        assert [r["id"] for r in Spool(tmp_path / SPOOL_FILENAME).pending()] == [second["id"], third["id"]]
    assert find_spools([tmp_path, tmp_path / SPOOL_FILENAME]) == [(tmp_path / SPOOL_FILENAME).resolve()]


def test_replay_after_lost_acknowledgements_duplicates_nothing(tmp_path, sqlite_uri):
    """MLflow stored everything but the acks never reached the spool: a replay adds nothing."""
    tracker = Tracker(sqlite_uri, spool_dir=tmp_path / "trial")
    parent = tracker.start_study_run("replay", name="launch")
    run = tracker.start_trial_run("replay", parent_run_id=parent, name="t", params={"seed": 3})
    for step in (0, 1000, 2000):
        tracker.log_metrics(run, {schema.FID: 50.0 - step / 100}, step=step)
    tracker.end_run(run)
    assert tracker.pending == 0
    path = tmp_path / "trial" / SPOOL_FILENAME
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines if "ack" not in x))

    replay = Tracker(sqlite_uri, spool_dir=tmp_path / "trial")
    assert replay.pending == len([x for x in lines if "op" in x])
    assert replay.flush() == 0
    runs = load_runs(sqlite_uri, "replay", role=None)
    assert len(runs) == 2  # the runs were found by their key, not created again
    hist = load_histories(sqlite_uri, "replay", [schema.FID])
    assert list(hist.step) == [0, 1000, 2000]
    raw = replay.client.get_metric_history(run, schema.FID)
    assert sorted(m.step for m in raw) == [0, 1000, 2000]


def test_resumed_trial_continues_its_run(tmp_path, sqlite_uri):
    """A trial restarted in a new process reuses its run id and spool; a re-reported step is skipped."""
    first = Tracker(sqlite_uri, spool_dir=tmp_path / "trial")
    parent = first.start_study_run("resume", name="launch")
    run = first.start_trial_run("resume", parent_run_id=parent, name="t")
    first.log_metrics(run, {schema.FID: 9.0}, step=0)
    first.log_metrics(run, {schema.FID: 8.0}, step=1000)
    first.end_run(run, "FAILED")
    second = Tracker(sqlite_uri, spool_dir=tmp_path / "trial")  # the retried trial, a new process
    assert second.start_trial_run("resume", parent_run_id=parent, name="t") == run
    second.log_metrics(run, {schema.FID: 7.5}, step=1000)  # re-reported after restoring step 0
    second.log_metrics(run, {schema.FID: 7.0}, step=2000)
    second.end_run(run)
    hist = load_histories(sqlite_uri, "resume", [schema.FID])
    assert list(zip(hist.step, hist.value)) == [(0, 9.0), (1000, 8.0), (2000, 7.0)]
    assert load_runs(sqlite_uri, "resume").loc[0, "status"] == "FINISHED"
    other = second.start_trial_run("resume", parent_run_id=parent, name="t2")  # another trial: a new run
    assert other != run and len(load_runs(sqlite_uri, "resume")) == 2


def test_refused_record_is_dropped_with_a_warning(tmp_path, sqlite_uri):
    tracker = Tracker(sqlite_uri, spool_dir=tmp_path)
    run = tracker.start_study_run("refused", params={"lr": 0.1})
    with pytest.warns(RuntimeWarning, match="refused"):
        tracker.log_params(run, {"lr": 0.2})  # params are immutable in MLflow
    tracker.log_metrics(run, {"loss_G": 1.0}, step=0)  # later records still go through
    assert tracker.pending == 0
    assert load_runs(sqlite_uri, "refused", role=None).loc[0, "params.lr"] == "0.1"


def test_read_side_refuses_bad_input(tmp_path, sqlite_uri):
    with pytest.raises(MicrotuneError, match="no MLflow database"):
        load_runs("sqlite:///" + str(tmp_path / "missing.db"), "x")
    Tracker(sqlite_uri).ensure_experiment("present")
    with pytest.raises(MicrotuneError, match="'absent' does not exist .*present"):
        load_runs(sqlite_uri, "absent")
    with pytest.raises(MicrotuneError, match="does not answer"):
        load_runs("http://127.0.0.1:9", "x")
    with pytest.raises(MicrotuneError, match="status"):
        Tracker(sqlite_uri).end_run("abc", "DONE")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_runs(sqlite_uri, "present").empty


def test_importing_mlflow_io_is_cheap():
    import subprocess
    import sys

    code = "import sys, microtune.tracking.mlflow_io; print('mlflow' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
