"""HPTL (model: hptl) sweeps end to end: real Ray, the real MLflow server, real (tiny) training."""

from __future__ import annotations

import os
import signal

from analysis import hptl_tables
from microtune.tracking import mlflow_io, schema
from tests.sweep.conftest import killed_on_exit, run_cli, start_cli, wait_for, write_seg_spec


def test_hptl_depth_sweep_with_a_baseline_arm(sweep_project, sweep_server, seg_dataset, tmp_path):
    spec = write_seg_spec(sweep_project, "segdepths", seg_dataset)
    rc, log = run_cli(sweep_project, "sweep", "launch", str(spec), "--force", log_name="segdepths.log")
    assert rc == 0, log
    assert "3/3 trials finished" in log and "best seg_acc" in log
    runs = mlflow_io.load_runs(sweep_server.uri, "segdepths", launch="latest")
    assert len(runs) == 3 and set(runs["status"]) == {"FINISHED"}
    by_method = runs.groupby(f"params.{schema.PARAM_METHOD}")
    assert by_method.size().to_dict() == {"HPTL": 2, "OTSU": 1}
    assert sorted(runs.loc[runs[f"params.{schema.PARAM_METHOD}"] == "HPTL", "params.depths"]) == ["0,0,0", "2,8,9"]
    assert set(runs["params.method_key"]) == {"hptl", "otsu"}
    assert set(runs[f"params.{schema.PARAM_DATASET_SIZE}"]) == {"16"}
    for _, run in runs.iterrows():
        assert 0 <= run[f"metrics.{schema.SEG_ACC}"] <= 1 and 0 <= run[f"metrics.{schema.SEG_MIOU}"] <= 1
        history = mlflow_io.load_histories(sweep_server.uri, "segdepths", [schema.SEG_ACC], run_ids=[run["run_id"]])
        steps = sorted(history["step"])
        if run["params.method_key"] == "hptl":
            # 3 stages (FCN-32s, -16s, -8s) x 2 epochs x 32 crops: a point per epoch at crops seen
            assert steps == [32, 64, 96, 128, 160, 192]
        else:
            assert len(steps) == 1  # Otsu is fitted once
    # the study's Table 2 analogue from these runs, by the analysis script
    hptl_tables.make_from_uri(sweep_server.uri, "segdepths", tmp_path)
    table = (tmp_path / "hptl_methods.md").read_text()
    assert "HPTL t=0,0,0" in table and "HPTL t=2,8,9" in table and "OTSU" in table
    status = run_cli(sweep_project, "sweep", "status", "segdepths", log_name="segdepths-status.log")[1]
    assert status.splitlines()[0].split()[:6] == ["trial", "state", "stage", "epoch", "seg_acc", "seg_miou"]
    assert status.count("TERMINATED") == 4 and "3 of 3 trial(s) started: 3 TERMINATED" in status  # rows + summary


def test_killed_segmentation_trial_restarts_in_a_new_run(sweep_project, sweep_server, seg_dataset):
    spec = write_seg_spec(sweep_project, "segretry", seg_dataset, train={"samples_per_epoch": 320},
                          search={"method": "grid", "seeds": [0], "params": {"depths": ["2,8,9"]}})
    with killed_on_exit(start_cli(sweep_project, "sweep", "launch", str(spec), "--force", log_name="segretry.log")) as proc:
        study = sweep_project / "runs" / "sweeps" / "segretry"
        wait_for(lambda: any(study.glob("*/worker.pid")) and "stage 3" in _results(study), 240, "stage 3 reports")
        os.kill(int(next(study.glob("*/worker.pid")).read_text()), signal.SIGKILL)
        rc = proc.wait(timeout=400)
    log = (sweep_project / "segretry.log").read_text()
    assert rc == 0, log
    runs = mlflow_io.load_runs(sweep_server.uri, "segretry", launch="latest")
    assert sorted(runs["status"]) == ["FAILED", "FINISHED"]
    abandoned = runs[runs["status"] == "FAILED"].iloc[0]
    assert abandoned[f"tags.{schema.RETRIED}"] == "true"
    finished = runs[runs["status"] == "FINISHED"].iloc[0]
    history = mlflow_io.load_histories(sweep_server.uri, "segretry", [schema.SEG_ACC], run_ids=[finished["run_id"]])
    assert sorted(history["step"]) == [320 * k for k in range(1, 7)]  # the new attempt's curve, complete and alone


def _results(study) -> str:
    """Every result.json Tune wrote for the study's trials, concatenated ('seg_stage': 3 → 'stage 3')."""
    text = "".join(p.read_text() for p in study.glob("*/result.json"))
    return text.replace('"seg_stage": ', "stage ")
