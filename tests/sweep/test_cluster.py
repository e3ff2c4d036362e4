"""A real two-node Ray cluster on this machine (two `ray start` processes with their own temp dir,
ports and token): `ray job submit` of a study, and a study that loses its worker node.

Everything this module starts is stopped by PID (processes whose command line names the cluster's
own temp dir); nothing else on the machine is touched.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from microtune.tracking import mlflow_io, schema
from tests.sweep.conftest import run_cli, start_cli, wait_for, write_spec

RAY = str(Path(sys.executable).with_name("ray"))


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@dataclass
class Cluster:
    temp_dir: str
    env: dict
    gcs: str
    dashboard: str
    worker_node_manager_port: int

    def processes(self, needle: str = "") -> list[int]:
        """PIDs of processes whose command line names this cluster's temp dir (and ``needle``)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if self.temp_dir in cmdline and needle in cmdline:
                pids.append(int(entry.name))
        return pids


def _node_ports(prefix: str) -> list[str]:
    p = free_ports(8)
    return [f"--node-manager-port={p[0]}", f"--object-manager-port={p[1]}", f"--min-worker-port={p[2]}",
            f"--max-worker-port={p[2] + 40}", f"--dashboard-agent-listen-port={p[3]}",
            f"--dashboard-agent-grpc-port={p[4]}", f"--runtime-env-agent-port={p[5]}",
            f"--metrics-export-port={p[6]}"], p[0]


@pytest.fixture(scope="module")
def cluster(sweep_project):
    temp_dir = tempfile.mkdtemp(prefix="mt-ray-", dir="/tmp")  # short: Ray's socket paths are long
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    gcs_port, dash_port, client_port = free_ports(3)
    head_ports, _ = _node_ports("head")
    subprocess.run([RAY, "start", "--head", f"--port={gcs_port}", "--node-ip-address=127.0.0.1",
                    f"--temp-dir={temp_dir}", "--num-cpus=1", "--include-dashboard=true",
                    "--dashboard-host=127.0.0.1", f"--dashboard-port={dash_port}",
                    f"--ray-client-server-port={client_port}", "--disable-usage-stats", *head_ports],
                   env=env, check=True, capture_output=True, timeout=180)
    worker_ports, worker_nm = _node_ports("worker")
    subprocess.run([RAY, "start", f"--address=127.0.0.1:{gcs_port}", "--node-ip-address=127.0.0.1",
                    "--num-cpus=1", "--disable-usage-stats", *worker_ports],
                   env=env, check=True, capture_output=True, timeout=180)
    handle = Cluster(temp_dir, env, f"127.0.0.1:{gcs_port}", f"http://127.0.0.1:{dash_port}", worker_nm)
    yield handle
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in handle.processes():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(2)
    shutil.rmtree(temp_dir, ignore_errors=True)


def _cluster_cli(cluster, project, *args, log_name):
    """`microtune ...` as a driver of the test cluster (token in its environment)."""
    os.environ_backup = dict(os.environ)
    try:
        os.environ.update({k: v for k, v in cluster.env.items() if k.startswith("RAY_")})
        return start_cli(project, *args, log_name=log_name)
    finally:
        os.environ.clear()
        os.environ.update(os.environ_backup)


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
    try:
        # both trials (one per node: each node has 1 CPU) have reported with a checkpoint
        wait_for(lambda: len({p.parent for p in study.glob("*/checkpoint_*")}) >= 2, 300, "both trials' checkpoints")
        raylets = cluster.processes(f"--node_manager_port={cluster.worker_node_manager_port}")
        assert raylets, "the worker node's raylet was not found"
        for pid in raylets:
            os.kill(pid, signal.SIGKILL)  # the worker node dies
        rc = proc.wait(timeout=500)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log = (sweep_project / "nodeloss.log").read_text()
    assert rc == 0, log[-4000:]
    runs = mlflow_io.load_runs(sweep_server.uri, "nodeloss", launch="latest")
    assert len(runs) == 2 and set(runs["status"]) == {"FINISHED"}
    for run_id in runs["run_id"]:
        hist = mlflow_io.load_histories(sweep_server.uri, "nodeloss", [schema.FID], run_ids=[run_id])
        assert sorted(hist["step"]) == [112, 208, 304, 400]
    status = run_cli(sweep_project, "sweep", "status", "nodeloss", log_name="nodeloss-status.log")[1]
    failures = [int(line.split()[7]) for line in status.splitlines()[1:]]
    assert sum(failures) >= 1  # the trial on the lost node failed once and was restored
