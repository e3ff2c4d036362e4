"""Orchestration costs of ``microtune sweep`` on this machine, with real Ray and a real MLflow server.

1. Overhead per trial: a grid of trials that train for one minibatch and measure nothing; the
   wall time of the study divided by its trials, and the mean duration of a trial's MLflow run
   (process start, dataset, networks, tracking, checkpoint) on a local Ray.
2. Trials per hour on 1 vs 2 nodes: the same study on a one-node and a two-node local cluster
   (``LocalCluster``, 1 CPU per node, one trial per CPU).
3. ``rt_asha`` against the grid at proxy scale: r_t in 0.3..0.9 on a 32×32 synthetic dataset,
   FIFO grid vs ASHA (rungs 0.1, 0.2, 0.4, 0.8 kimg), trial-seconds spent (sum of MLflow run
   durations) and which r_t each picks. Scored with the random-weight detector: the ranking is a
   check of the machinery, not a finding about r_t.

Usage (from the repository root, which holds tools/localcluster.py):
    python -m benchmarks.sweep_overhead [--json benchmarks/results/sweep_overhead.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from microtune.tracking import mlflow_io
from microtune.tracking.server import ensure_local_server
from tools.localcluster import LocalCluster


def write_spec(project: Path, name: str, **fields) -> Path:
    spec = {"name": name, "dataset": str(project / "ds"),
            "train": {"cfg": "demo", "kimg": 0.016, "tick_kimg": 0.016, "device": "cpu", "num_threads": 1},
            "search": {"method": "grid", "seeds": list(range(8)), "params": {"augpipe": ["bg"]}},
            "metrics": {"eval_every_kimg": 0.016}, "resources": {"cpu": 1, "gpu": 0}, **fields}
    path = project / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def launch(project: Path, spec: Path, env: dict | None = None, *extra: str) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "microtune", "sweep", "launch", str(spec), "--force", *extra],
                            cwd=project, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{spec.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def runs(uri: str, name: str):
    return mlflow_io.load_runs(uri, name, launch="latest")


def overhead(project: Path, uri: str) -> dict:
    spec = write_spec(project, "overhead", max_concurrent=2)
    wall = launch(project, spec)
    table = runs(uri, "overhead")
    return {"trials": len(table), "wall_s": round(wall, 1), "wall_per_trial_s": round(wall / len(table), 2),
            "mean_trial_run_s": round(float(table["duration_s"].mean()), 2),
            "trials_per_hour": round(3600 * len(table) / wall)}


def nodes(project: Path, uri: str) -> list[dict]:
    rows = []
    for workers in ((), (1,)):
        cluster = LocalCluster(head_cpus=1, worker_cpus=workers, dashboard=False)
        try:
            spec = write_spec(project, f"nodes{1 + len(workers)}")
            wall = launch(project, spec, cluster.client_env(), "--address", cluster.gcs)
        finally:
            cluster.stop()
        count = len(runs(uri, spec.stem))
        rows.append({"nodes": 1 + len(workers), "trials": count, "wall_s": round(wall, 1),
                     "trials_per_hour": round(3600 * count / wall)})
    return rows


def asha_vs_grid(project: Path, uri: str) -> list[dict]:
    rows = []
    base = {"train": {"cfg": "demo", "kimg": 0.8, "tick_kimg": 0.1, "device": "cpu", "num_threads": 1},
            "search": {"method": "grid", "seeds": [0], "params": {"ada_target": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]}},
            "metrics": {"protocols": ["fid64_full"], "detector": "random-seed:0", "eval_every_kimg": 0.1},
            "max_concurrent": 2}
    for kind, extra in (("grid", {}), ("asha", {"scheduler": {"type": "asha", "metric": "fid", "mode": "min",
                                                               "rungs_kimg": [0.1, 0.2, 0.4, 0.8]}})):
        spec = write_spec(project, f"rt_{kind}", **base, **extra)
        wall = launch(project, spec)
        table = runs(uri, spec.stem)
        best = table.sort_values("metrics.best_fid").iloc[0]
        rows.append({"scheduler": kind, "trials": len(table), "wall_s": round(wall, 1),
                     "trial_seconds": round(float(table["duration_s"].sum()), 1),
                     "kimg_trained": round(float(table["metrics.kimg"].sum()), 2),
                     "best_ada_target": float(best["params.ada_target"]),
                     "best_fid": round(float(best["metrics.best_fid"]), 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    project = Path(tempfile.mkdtemp(prefix="mt-bench-"))
    subprocess.run([sys.executable, "-m", "microtune", "data", "synth", str(project / "ds"), "--count", "64",
                    "--resolution", "32", "--specimens", "4"], check=True, capture_output=True)
    server = ensure_local_server(project)
    try:
        result = {"benchmark": "sweep_overhead", "cpu_count": os.cpu_count(), "machine": platform.machine()}
        result["overhead"] = overhead(project, server.uri)
        print("overhead", result["overhead"], flush=True)
        result["nodes"] = nodes(project, server.uri)
        print("nodes", result["nodes"], flush=True)
        result["asha_vs_grid"] = asha_vs_grid(project, server.uri)
        print("asha_vs_grid", result["asha_vs_grid"], flush=True)
    finally:
        server.stop()
        shutil.rmtree(project, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
