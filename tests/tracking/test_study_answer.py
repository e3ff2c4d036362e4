"""The Tracker's table artifact and experiment tags, against a real MLflow SQLite store."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from microtune.errors import MicrotuneError
from microtune.sweep import families
from microtune.tracking import dashboard, schema
from microtune.tracking.mlflow_io import Tracker


@pytest.fixture()
def store(tmp_path) -> str:
    return "sqlite:///" + str(tmp_path / "mlflow.db")


def test_log_table_replaces_and_mlflow_reads_it_as_a_table(store, tmp_path, request):
    import mlflow
    from mlflow.tracking import MlflowClient

    tracker = Tracker(store)
    parent = tracker.start_study_run("s", name="launch")
    first = pd.DataFrame({"trial": ["a", "b"], "best_fid": [12.5, None], "state": ["FINISHED", "RUNNING"]})
    tracker.log_table(parent, first, schema.ARTIFACT_SUMMARY, tmp_path / "files")
    second = first.assign(best_fid=[12.5, 9.25], state=["FINISHED", "FINISHED"])
    tracker.log_table(parent, second, schema.ARTIFACT_SUMMARY, tmp_path / "files")  # replaces, not appends
    assert tracker.pending == 0
    previous = mlflow.get_tracking_uri()  # load_table searches runs with the global URI (MLflow 3.17)
    mlflow.set_tracking_uri(store)
    request.addfinalizer(lambda: mlflow.set_tracking_uri(previous))
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("s").experiment_id
    table = client.load_table(exp, schema.ARTIFACT_SUMMARY, run_ids=[parent])
    pd.testing.assert_frame_equal(table, second)
    tags = client.get_run(parent).data.tags
    assert json.loads(tags[schema.LOGGED_ARTIFACTS]) == [{"path": schema.ARTIFACT_SUMMARY, "type": "table"}]
    with pytest.raises(MicrotuneError, match="must end in .json"):
        tracker.log_table(parent, second, "summary.csv", tmp_path)


def test_view_tag_round_trips_through_an_experiment_tag(store):
    tracker = Tracker(store)
    exp = tracker.ensure_experiment("s")
    key, tag, value = dashboard.view_tag(exp, families.get("stylegan2").study_view({"fid", "recall"}), 1000)
    tracker.set_experiment_tag("s", tag, value)
    from mlflow.tracking import MlflowClient

    stored = MlflowClient(store).get_experiment(exp).tags[tag]
    envelope = json.loads(stored)   # what MLflow's UI parses: name, createdAt (number), state (a string)
    assert envelope["name"] == dashboard.VIEW_NAME and envelope["createdAt"] == 1000
    assert json.loads(envelope["state"])["groupBy"]["groupByKeys"][0]["groupByData"] == schema.ROLE
    assert dashboard.view_key(exp) == key == dashboard.view_key(exp)   # one view per experiment


def test_summary_and_best_of_a_study():
    records = [
        {"trial": "t1", "name": "t1 augpipe=bg-seed=0", "axes": {"augpipe": "bg", "seed": 0},
         "result": {"best_fid": 20.0, "best_recall": 0.30, "kimg": 0.5}, "state": "FINISHED"},
        {"trial": "t0", "name": "t0 augpipe=none-seed=0", "axes": {"augpipe": "none", "seed": 0},
         "result": {"best_fid": 15.0, "best_recall": 0.20, "kimg": 0.3}, "state": "STOPPED"},
        {"trial": "t2", "name": "t2 augpipe=bgc-seed=0", "axes": {"augpipe": "bgc", "seed": 0},
         "result": {"best_fid": 5.0, "best_recall": 0.90, "kimg": 0.1}, "state": "FAILED"},
        {"trial": "t3", "name": "t3", "axes": {"augpipe": "bgc", "seed": 1}, "result": {}, "state": "PENDING"},
    ]
    gan, seg_view = families.get("stylegan2").study_view({"fid", "recall"}), families.get("hptl").study_view(set())
    frame = dashboard.summary_frame(records, gan, ["augpipe", "seed"])
    assert list(frame.columns) == ["trial", "augpipe", "seed", "best_fid", "best_recall", "kimg", "state", "run"]
    assert list(frame["trial"]) == ["t0", "t1", "t2", "t3"]
    # a failed trial's numbers are not the study's answer
    assert dashboard.study_best(frame, gan) == {"best_fid": (15.0, "t0"), "best_recall": (0.30, "t1")}
    seg = dashboard.summary_frame([{"trial": "s0", "axes": {"depths": "2,8,9"}, "state": "FINISHED",
                                    "result": {"seg_acc": 0.97, "seg_miou": 0.8}}], seg_view, ["depths"])
    assert list(seg.columns) == ["trial", "depths", "seg_acc", "seg_miou", "state", "run"]
    assert dashboard.study_best(seg, seg_view) == {"seg_acc": (0.97, "s0"), "seg_miou": (0.8, "s0")}
