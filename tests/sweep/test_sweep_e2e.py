"""Sweeps end to end with real Ray, a real MLflow server on 127.0.0.1 and real (tiny) training."""

from __future__ import annotations

import os
import signal

import numpy as np

from microtune.tracking import mlflow_io, schema
from tests.sweep.conftest import checkpoints, killed_on_exit, run_cli, start_cli, wait_for, write_spec


def trial_runs(uri: str, name: str):
    return mlflow_io.load_runs(uri, name, launch="latest")


def curve(uri: str, name: str, run_id: str, key: str) -> np.ndarray:
    hist = mlflow_io.load_histories(uri, name, [key], run_ids=[run_id])
    return hist.sort_values("step")["step"].to_numpy()


def test_grid_sweep_logs_parent_and_child_runs(dash_study, sweep_project, sweep_server):
    """The session's 2 × 2 grid launch (augpipe none/bg × seeds 0, 1; tests/sweep/conftest.py)."""
    log, record = dash_study["log"], dash_study["record"]
    assert f"MLflow UI: {sweep_server.uri}" in log          # reused the project's server
    assert "4/4 trials finished" in log
    assert record["tracking_uri"] == sweep_server.uri
    runs = trial_runs(sweep_server.uri, "dash")
    assert len(runs) == 4
    assert set(runs["parent_run_id"]) == {record["parent_run_id"]}
    assert sorted(zip(runs["params.augpipe"], runs["params.seed"])) == [("bg", "0"), ("bg", "1"), ("none", "0"), ("none", "1")]
    assert set(runs["status"]) == {"FINISHED"}
    assert set(runs[f"tags.{schema.DETECTOR}"]) == {"random-seed:0"}
    parents = mlflow_io.load_runs(sweep_server.uri, "dash", role="study")
    assert record["parent_run_id"] in set(parents["run_id"])
    for run_id in runs["run_id"]:
        fid_steps = curve(sweep_server.uri, "dash", run_id, schema.FID)
        recall_steps = curve(sweep_server.uri, "dash", run_id, schema.RECALL)
        # evaluations every 0.1 kimg up to 0.2 kimg, batch 16: at nimg 112 and 208
        assert list(fid_steps) == [112, 208] and list(recall_steps) == [112, 208]
        artifacts = mlflow_io.list_artifacts(sweep_server.uri, run_id, "checkpoints")
        assert {"checkpoints/final.pt", "checkpoints/best.pt"} <= set(artifacts)
    status = run_cli(sweep_project, "sweep", "status", "dash", log_name="dash-status-e2e.log")[1]
    assert status.count("TERMINATED") == 5  # four rows and the summary line
    assert "4 of 4 trial(s) started: 4 TERMINATED" in status


def test_killed_trial_is_retried_from_its_checkpoint(sweep_project, sweep_server):
    spec = write_spec(sweep_project, "retry", train={"kimg": 0.5},
                      search={"method": "grid", "seeds": [0], "params": {"augpipe": ["bg"]}})
    with killed_on_exit(start_cli(sweep_project, "sweep", "launch", str(spec), "--force", log_name="retry.log")) as proc:
        wait_for(lambda: len(checkpoints(sweep_project, "retry")) >= 2, 240, "two trial checkpoints")
        # Ray's saved state says PENDING for a running trial; status checks the reporting process
        wait_for(lambda: "1 RUNNING" in run_cli(sweep_project, "sweep", "status", "retry",
                                                log_name="retry-status-live.log")[1], 60, "status RUNNING")
        pid_file = next((sweep_project / "runs" / "sweeps" / "retry").glob("*/worker.pid"))
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        rc = proc.wait(timeout=400)
    log = (sweep_project / "retry.log").read_text()
    assert rc == 0, log
    runs = trial_runs(sweep_server.uri, "retry")
    assert len(runs) == 1 and runs["status"].iloc[0] == "FINISHED"  # one run, continued after the retry
    run_id = runs["run_id"].iloc[0]
    fid_steps = curve(sweep_server.uri, "retry", run_id, schema.FID)
    assert list(fid_steps) == [112, 208, 304, 400, 512]              # every evaluation exactly once
    loss_steps = curve(sweep_server.uri, "retry", run_id, schema.LOSS_G)
    assert len(loss_steps) == len(set(loss_steps)) and np.all(np.diff(loss_steps) > 0)
    assert np.all(np.diff(loss_steps) <= 64)                          # a tick every 0.05 kimg: no gap
    status = run_cli(sweep_project, "sweep", "status", "retry", log_name="retry-status.log")[1]
    assert "TERMINATED" in status and status.splitlines()[1].split()[7] == "1"  # failures column


def test_driver_killed_then_resume_completes_the_study(sweep_project, sweep_server):
    spec = write_spec(sweep_project, "resume", train={"kimg": 0.3}, max_concurrent=1)
    with killed_on_exit(start_cli(sweep_project, "sweep", "launch", str(spec), "--force", log_name="resume-1.log")):
        wait_for(lambda: "1/2 done" in (sweep_project / "resume-1.log").read_text(), 300, "the first trial")
        wait_for(lambda: any(p.parent.name.endswith("00001") or "00001" in p.parent.name
                             for p in checkpoints(sweep_project, "resume")), 120, "a checkpoint of the second trial")
    # leaving the block killed the driver and everything it started: no trial is RUNNING
    status = run_cli(sweep_project, "sweep", "status", "resume", log_name="resume-status.log")[1]
    assert "RUNNING" not in status and "1 TERMINATED" in status, status
    rc, log = run_cli(sweep_project, "sweep", "resume", "resume", log_name="resume-2.log")
    assert rc == 0, log
    runs = trial_runs(sweep_server.uri, "resume")
    assert len(runs) == 2 and set(runs["status"]) == {"FINISHED"}   # no trial re-run as a new run
    for run_id in runs["run_id"]:
        steps = curve(sweep_server.uri, "resume", run_id, schema.FID)
        assert list(steps) == [112, 208, 304]


def test_tracking_server_down_for_a_while_loses_no_metric(sweep_project, sweep_server):
    from microtune.tracking.server import ensure_local_server, find_local_server

    spec = write_spec(sweep_project, "outage", train={"kimg": 0.5},
                      search={"method": "grid", "seeds": [0], "params": {"augpipe": ["bg"]}})
    with killed_on_exit(start_cli(sweep_project, "sweep", "launch", str(spec), "--force", log_name="outage.log")) as proc:
        wait_for(lambda: len(checkpoints(sweep_project, "outage")) >= 1, 240, "a first checkpoint")
        server = find_local_server(sweep_project)
        server.stop()                                         # the tracking server goes away ...
        results = next((sweep_project / "runs" / "sweeps" / "outage").glob("*/result.json"))
        wait_for(lambda: len(results.read_text().splitlines()) >= 3, 240, "training on without it")
        restarted = ensure_local_server(sweep_project, port=sweep_server.port)  # ... and comes back
        assert restarted.uri == sweep_server.uri
        rc = proc.wait(timeout=400)
    log = (sweep_project / "outage.log").read_text()
    assert rc == 0, log
    runs = trial_runs(sweep_server.uri, "outage")
    assert len(runs) == 1 and runs["status"].iloc[0] == "FINISHED"
    run_id = runs["run_id"].iloc[0]
    assert list(curve(sweep_server.uri, "outage", run_id, schema.FID)) == [112, 208, 304, 400, 512]
    loss_steps = curve(sweep_server.uri, "outage", run_id, schema.LOSS_G)
    assert len(loss_steps) == len(set(loss_steps)) and np.all(np.diff(loss_steps) <= 64) and loss_steps[-1] == 512


def test_optuna_search_repeats_seeds_under_asha(sweep_project, sweep_server):
    spec = write_spec(
        sweep_project, "optuna",
        search={"method": "optuna", "sampler": "tpe", "seeds": [0, 1], "num_samples": 2,
                "params": {"ada_target": {"type": "float", "low": 0.3, "high": 0.9, "step": 0.3}},
                "objectives": [{"metric": "fid", "mode": "min"}]},
        scheduler={"type": "asha", "metric": "fid", "mode": "min", "rungs_kimg": [0.1, 0.2]},
    )
    rc, log = run_cli(sweep_project, "sweep", "launch", str(spec), "--force", log_name="optuna.log")
    assert rc == 0, log
    runs = trial_runs(sweep_server.uri, "optuna")
    assert len(runs) == 4                                     # 2 sampled configurations × 2 seeds
    for _, group in runs.groupby("params.ada_target"):
        assert sorted(group["params.seed"]) == ["0", "1"]      # Repeater: each sample once per seed
    assert set(runs["params.ada_target"].astype(float)) <= {0.3, 0.6, 0.9}
    for _, run in runs.iterrows():                            # ASHA stops only at a rung, before the end
        status, kimg = run[f"tags.{schema.TRIAL_STATUS}"], run["metrics.kimg"]
        assert (status, kimg) in {("FINISHED", 0.208), ("STOPPED", 0.112)}, (status, kimg)


def test_multi_objective_optuna_search(pareto_study, sweep_server):
    """The session's NSGA-II study of fid and recall over r_t × augpipe (tests/sweep/conftest.py)."""
    runs = trial_runs(sweep_server.uri, "pareto")
    assert len(runs) == 3 and set(runs["status"]) == {"FINISHED"}
    assert runs["metrics.best_fid"].notna().all() and runs["metrics.best_recall"].notna().all()
    assert set(runs["params.augpipe"]) <= {"bg", "bgc"}
