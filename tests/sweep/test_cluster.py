"""A real two-node Ray cluster on this machine (two `ray start` processes with their own temp dir,
ports and token): `ray job submit` of a study, and a study that loses its worker node.

Everything started here is stopped by PID (see :class:`tools.localcluster.LocalCluster`);
nothing else on the machine is touched.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from microtune.tracking import mlflow_io, schema
from tests.sweep.conftest import killed_on_exit, run_cli, start_cli, wait_for, write_spec
from tools.localcluster import RAY, LocalCluster

@pytest.fixture(scope="module")
def cluster():
    handle = LocalCluster(head_cpus=1, worker_cpus=(1,))
    yield handle
    handle.stop()


def _cluster_cli(cluster, project, *args, log_name):
    """`microtune ...` as a driver of the test cluster (its token in the environment)."""
    saved = dict(os.environ)
    try:
        os.environ.update(cluster.client_env())
        return start_cli(project, *args, log_name=log_name)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_ray_job_submit_runs_a_study_on_the_cluster(cluster, sweep_project, sweep_server):
    spec = write_spec(sweep_project, "jobsub", search={"method": "grid", "seeds": [0], "params": {"augpipe": ["bg"]}})
    entry = f"cd {sweep_project} && {sys.executable} -m microtune sweep launch {spec.name} --force"
    result = subprocess.run([RAY, "job", "submit", "--address", cluster.dashboard, "--", "bash", "-c", entry],
                            env=cluster.env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1/1 trials finished" in result.stdout
    assert "succeeded" in (result.stdout + result.stderr).lower()
    runs = mlflow_io.load_runs(sweep_server.uri, "jobsub", launch="latest")
    assert len(runs) == 1 and runs["status"].iloc[0] == "FINISHED"


def test_study_survives_losing_its_worker_node(cluster, sweep_project, sweep_server):
    spec = write_spec(sweep_project, "nodeloss", train={"kimg": 0.4}, max_concurrent=2)
    proc = _cluster_cli(cluster, sweep_project, "sweep", "launch", str(spec), "--force",
                        "--address", cluster.gcs, log_name="nodeloss.log")
    study = sweep_project / "runs" / "sweeps" / "nodeloss"
    with killed_on_exit(proc):
        # both trials (one per node: each node has 1 CPU) have reported with a checkpoint
        wait_for(lambda: len({p.parent for p in study.glob("*/checkpoint_*")}) >= 2, 300, "both trials' checkpoints")
        assert cluster.kill_worker(0) > 0, "the worker node's raylet was not found"  # the node dies
        rc = proc.wait(timeout=500)
    log = (sweep_project / "nodeloss.log").read_text()
    assert rc == 0, log[-4000:]
    runs = mlflow_io.load_runs(sweep_server.uri, "nodeloss", launch="latest")
    assert len(runs) == 2 and set(runs["status"]) == {"FINISHED"}
    for run_id in runs["run_id"]:
        hist = mlflow_io.load_histories(sweep_server.uri, "nodeloss", [schema.FID], run_ids=[run_id])
        assert sorted(hist["step"]) == [112, 208, 304, 400]
    status = run_cli(sweep_project, "sweep", "status", "nodeloss", log_name="nodeloss-status.log")[1]
    header = status.splitlines()[0].split()                  # the table, then the MLflow addresses
    rows = [line.split() for line in status.splitlines()[1:] if line.startswith(tuple(runs["tags.trial_id"]))]
    failures = [int(row[header.index("failures")]) for row in rows]
    assert len(failures) == 2
    assert sum(failures) >= 1  # the trial on the lost node failed once and was restored
