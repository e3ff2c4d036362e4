"""The study's findings at proxy scale on a laptop CPU (issue 14, parts 2 and 3).

One command per study, each a real ``microtune sweep launch`` (local Ray, the project's MLflow
server on 127.0.0.1) of a spec in ``sweeps/``, then the study's analysis script on its MLflow
experiment, then a JSON summary under ``benchmarks/results/``:

- ``dataset_size``  (``sweeps/proxy_dataset_size.yaml``): best FID against log10(training-set
  size) and best recall against sqrt(size) (the SEM study's Fig. 3 / Supp. Fig. 2): slope,
  intercept and R^2 of the least-squares line through the per-size medians (the fit of
  ``analysis/dataset_size.py``), and the same fit through every trial.
- ``target_rt``     (``sweeps/proxy_target_rt.yaml``): best FID per ADA target, min/median/max
  over seeds; where the minimum is (study, Fig. 2: r_t = 0.5).
- ``augmentations`` (``sweeps/proxy_augmentations.yaml``): best FID and FID at the end of training
  per augmentation type.
- ``rt_asha``       (``sweeps/proxy_rt_asha.yaml`` against ``proxy_target_rt.yaml``): the r_t
  decision made by the grid and by ASHA, each with 3 seed sets; trial-seconds (sum of the trial
  runs' durations in MLflow) and whether ASHA picks the grid's r_t. The grid's seed sets are the
  three seeds of ``benchmarks/results/proxy_target_rt.json`` when it exists (run ``target_rt``
  first), else the grid is run here once per seed set.

Data: ``microtune data synth --count 1000 --resolution 32 --specimens 100 --seed 0`` (made once
under ``runs/proxy/data``). Every study runs in its own project directory ``runs/proxy/<study>``
(its own MLflow store and server, stopped at the end when this command started it). ``--kimg`` and ``--seeds`` shorten a study
(the derived spec is written beside it and recorded in the JSON). The machine's load average is
sampled every 15 s during the launch and recorded beside the wall time.

Usage (repository root)::

    python benchmarks/proxy_study.py dataset_size [--kimg 8 --seeds 0]   # --quick = both
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
STUDIES = {"dataset_size": "proxy_dataset_size", "target_rt": "proxy_target_rt",
           "augmentations": "proxy_augmentations", "rt_asha": "proxy_rt_asha"}
ANALYSIS = {"dataset_size": ["dataset_size.py", "samples.py"], "target_rt": ["target_rt.py", "samples.py"],
            "augmentations": ["augmentations.py", "samples.py"], "rt_asha": []}
DATA = dict(count=1000, resolution=32, specimens=100, seed=0)


class LoadSampler:
    """Samples the 1-minute load average every ``every`` seconds in a thread."""

    def __init__(self, every: float = 15.0) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(every)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        a = np.asarray(self.samples or [float("nan")])
        return {"load1_mean": round(float(a.mean()), 2), "load1_max": round(float(a.max()), 2), "samples": len(a)}


def make_data(root: Path, resolution: int = DATA["resolution"]) -> Path:
    """The proxy set (``DATA`` at ``resolution``) under ``root/data``, made once; also used by proxy_long_run.py."""
    out = root / "data" / f"proxy-synth{resolution}"
    if not (out / "manifest.json").is_file():
        cmd = [sys.executable, "-m", "microtune", "data", "synth", str(out), "--force",
               *(f"--{k}={v}" for k, v in {**DATA, "resolution": resolution}.items())]
        subprocess.run(cmd, check=True)
    return out


def derived_spec(name: str, project: Path, *, kimg: float | None, seeds: list[int] | None,
                 experiment: str | None = None) -> Path:
    """The spec of ``sweeps/<name>.yaml``, with --kimg/--seeds applied, written into the project."""
    spec = yaml.safe_load((ROOT / "sweeps" / f"{name}.yaml").read_text())
    if kimg is not None:
        spec["train"]["kimg"] = kimg
        every = spec["metrics"]["eval_every_kimg"]
        spec["metrics"]["eval_every_kimg"] = min(every, kimg / 3)
        if "scheduler" in spec:  # keep the rungs on evaluations and below the budget
            e = spec["metrics"]["eval_every_kimg"]
            spec["scheduler"]["rungs_kimg"] = [e, 2 * e, 4 * e] if 4 * e <= kimg else [e, 2 * e]
    if seeds is not None:
        spec["search"]["seeds"] = seeds
    if experiment:
        spec["name"] = experiment
    path = project / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def launch(project: Path, spec: Path, dataset: Path, cache: Path) -> dict:
    cmd = [sys.executable, "-m", "microtune", "sweep", "launch", str(spec), "--dataset", str(dataset), "--force",
           "--cache-dir", str(cache), "--no-report"]
    log = project / f"{spec.stem}.log"
    start = time.time()
    with LoadSampler() as load, open(log, "w") as fh:
        rc = subprocess.run(cmd, cwd=project, stdout=fh, stderr=subprocess.STDOUT).returncode
    wall = time.time() - start
    if rc != 0:
        raise SystemExit(f"{spec.name}: microtune sweep launch exited {rc}; see {log}")
    return {"wall_s": round(wall, 1), **load.summary()}


def trial_table(uri: str, experiment: str, axis: str):
    from microtune.tracking import mlflow_io, schema

    runs = mlflow_io.load_runs(uri, experiment, launch="latest")
    rows = []
    for _, r in runs.iterrows():
        rows.append({"axis": _value(r.get(f"params.{axis}")), "seed": int(float(r["params.seed"])),
                     "status": r["status"], "duration_s": round(float(r["duration_s"]), 1),
                     "best_fid": _num(r.get(f"metrics.{schema.BEST_FID}")),
                     "final_fid": _num(r.get(f"metrics.{schema.FID}")),  # at the end of training (the last evaluation)
                     "best_recall": _num(r.get(f"metrics.{schema.BEST_RECALL}")),
                     "kimg": _num(r.get(f"metrics.{schema.KIMG}")),
                     "ada_p": _num(r.get(f"metrics.{schema.ADA_P}"))})  # the last p: how much ADA augmented
    return sorted(rows, key=lambda x: (str(type(x["axis"])), x["axis"], x["seed"]))


def _num(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(v) else round(v, 5)


def _value(text):
    if text is None or (isinstance(text, float) and np.isnan(text)) or text in ("None", ""):
        return None
    try:
        f = float(text)
        return int(f) if f.is_integer() else f
    except ValueError:
        return text


def groups(rows: list[dict], key: str) -> dict:
    """min/median/max of ``key`` over seeds, per axis value."""
    out = {}
    for value in dict.fromkeys(r["axis"] for r in rows):
        vals = [r[key] for r in rows if r["axis"] == value and r[key] is not None]
        if vals:
            out[str(value)] = {"min": min(vals), "median": float(np.median(vals)), "max": max(vals), "n": len(vals)}
    return out


def fit(x, y) -> dict:
    """Least-squares line y = slope x + intercept and its R^2: the fit analysis/dataset_size.py draws."""
    from analysis.loader import linear_fit

    line = linear_fit(x, y)
    return {"slope": round(line["slope"], 5), "intercept": round(line["intercept"], 5), "r2": round(line["r2"], 4),
            "n": line["n_points"]}


def size_laws(rows: list[dict], count: int, recall: bool = True) -> dict:
    """The study's two laws (the FID law only, without ``recall``), fitted through the per-size medians
    and through every trial."""
    ok = [r for r in rows if r["best_fid"] is not None]
    size = lambda r: r["axis"] if r["axis"] is not None else count  # noqa: E731
    sizes = sorted({size(r) for r in ok})
    keys = ("best_fid", "best_recall") if recall else ("best_fid",)
    med = {k: [float(np.median([r[k] for r in ok if size(r) == s and r[k] is not None])) for s in sizes] for k in keys}
    laws = {"fid_vs_log10_size_medians": fit(np.log10(sizes), med["best_fid"]),
            "fid_vs_log10_size_trials": fit(np.log10([size(r) for r in ok]), [r["best_fid"] for r in ok]),
            "sizes": sizes, "median_best_fid": med["best_fid"]}
    if recall:
        laws.update({"recall_vs_sqrt_size_medians": fit(np.sqrt(sizes), med["best_recall"]),
                     "recall_vs_sqrt_size_trials": fit(np.sqrt([size(r) for r in ok]), [r["best_recall"] for r in ok]),
                     "median_best_recall": med["best_recall"]})
    return laws


def analyse(study: str, uri: str, experiment: str, out: Path) -> list[str]:
    made = []
    for script in ANALYSIS[study]:
        cmd = [sys.executable, str(ROOT / "analysis" / script), "--tracking-uri", uri, "--experiment", experiment,
               "--out", str(out)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"warning: {script} exited {result.returncode}: {result.stderr.strip()[-500:]}", flush=True)
        made += sorted(p.name for p in out.glob("*.png"))
    return sorted(set(made))


def run_study(study: str, args, root: Path, dataset: Path) -> dict:
    from microtune.tracking.server import ensure_local_server

    name = STUDIES[study]
    project = root / study
    project.mkdir(parents=True, exist_ok=True)
    cache = root / "metrics-cache"
    server = ensure_local_server(project)
    axis = {"dataset_size": "subset", "augmentations": "augpipe"}.get(study, "ada_target")
    result: dict = {"benchmark": f"proxy_{study}", "spec": f"sweeps/{name}.yaml", "data": DATA,
                    "cpu_count": os.cpu_count(), "machine": platform.machine(),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        if study == "rt_asha":
            result["rung_evidence"] = rung_evidence(root)
            result["arms"] = []
            grid_json = ROOT / "benchmarks" / "results" / "proxy_target_rt.json"
            kinds = [("grid", "proxy_target_rt"), ("asha", "proxy_rt_asha")]
            if args.kimg is None and grid_json.is_file():  # the grid's 3 seed sets = target_rt's 3 seeds
                result["arms"] += grid_arms_from(json.loads(grid_json.read_text()))
                result["grid_from"] = str(grid_json.relative_to(ROOT))
                kinds = kinds[1:]
            for kind, base in kinds:
                for seed_set in ([0], [1], [2]):
                    exp = f"{base}_s{seed_set[0]}"
                    spec = derived_spec(base, project, kimg=args.kimg, seeds=seed_set, experiment=exp)
                    timing = launch(project, spec, dataset, cache)
                    rows = trial_table(server.uri, exp, axis)
                    done = [r for r in rows if r["best_fid"] is not None]
                    best = min(done, key=lambda r: r["best_fid"]) if done else None
                    arm = {"scheduler": kind, "seeds": seed_set, **timing, "trials": rows,
                           "trial_seconds": round(sum(r["duration_s"] for r in rows), 1),
                           "kimg_trained": round(sum(r["kimg"] or 0 for r in rows), 2),
                           "chosen_ada_target": best["axis"] if best else None}
                    result["arms"].append(arm)
                    print(json.dumps({k: v for k, v in arm.items() if k != "trials"}), flush=True)
            result["summary"] = asha_summary(result["arms"])
        else:
            spec = derived_spec(name, project, kimg=args.kimg, seeds=args.seeds)
            result["derived_spec"] = yaml.safe_load(spec.read_text())
            result.update(launch(project, spec, dataset, cache))
            rows = trial_table(server.uri, name, axis)
            result["trials"] = rows
            result["trial_seconds"] = round(sum(r["duration_s"] for r in rows), 1)
            result["best_fid"] = groups(rows, "best_fid")
            result["final_fid"] = groups(rows, "final_fid")
            result["best_recall"] = groups(rows, "best_recall")
            if study == "dataset_size":
                result["laws"] = size_laws(rows, DATA["count"])
            else:
                med = {k: v["median"] for k, v in result["best_fid"].items()}
                result["best_median_fid_at"] = min(med, key=med.get) if med else None
            figures = root / "figures" / study
            figures.mkdir(parents=True, exist_ok=True)
            result["figures"] = analyse(study, server.uri, name, figures)
            for png in result["figures"]:
                shutil.copy2(figures / png, ROOT / "benchmarks" / "results" / f"proxy_{study}_{png}")
    finally:
        if server.started:  # another process (a running study, the UI) may share it
            server.stop()
    return result


def grid_arms_from(target_rt: dict) -> list[dict]:
    """The grid arms of the ASHA comparison from a finished proxy_target_rt run (one per seed)."""
    arms = []
    for seed in sorted({r["seed"] for r in target_rt["trials"]}):
        rows = [r for r in target_rt["trials"] if r["seed"] == seed]
        done = [r for r in rows if r["best_fid"] is not None]
        best = min(done, key=lambda r: r["best_fid"]) if done else None
        arms.append({"scheduler": "grid", "seeds": [seed], "trials": rows,
                     "trial_seconds": round(sum(r["duration_s"] for r in rows), 1),
                     "kimg_trained": round(sum(r["kimg"] or 0 for r in rows), 2),
                     "chosen_ada_target": best["axis"] if best else None,
                     "load1_mean": target_rt.get("load1_mean")})
    return arms


def rung_evidence(root: Path) -> dict | None:
    """Where the grid's curves separate (the issue: "rungs placed where the proxy curves separate"):
    for each evaluation of the finished target_rt grid, Spearman's rho between every trial's best FID
    so far and its final best FID, and in how many seeds the r_t with the lowest best FID so far is
    already the final one. None when that study has not been run under ``root``."""
    from scipy.stats import spearmanr

    from microtune.tracking import mlflow_io, schema
    from microtune.tracking.server import ensure_local_server

    project = root / "target_rt"
    if not (project / ".microtune").is_dir():
        return None
    server = ensure_local_server(project)
    try:
        runs = mlflow_io.load_runs(server.uri, STUDIES["target_rt"], launch="latest")
        hist = mlflow_io.load_histories(server.uri, STUDIES["target_rt"], [schema.FID], run_ids=list(runs["run_id"]))
    finally:
        if server.started:
            server.stop()
    curves = {}
    for run_id, h in hist.groupby("run_id"):
        run = runs[runs["run_id"] == run_id].iloc[0]
        h = h.sort_values("step")
        curves[run_id] = {"rt": _value(run[f"params.{schema.AXIS_TARGET}"]), "seed": int(float(run["params.seed"])),
                          "kimg": (h["step"] / 1000).round(2).tolist(), "best": np.minimum.accumulate(h["value"]).tolist()}
    n = min(len(c["best"]) for c in curves.values())
    final = [c["best"][-1] for c in curves.values()]
    seeds = sorted({c["seed"] for c in curves.values()})
    rows = []
    for j in range(n):
        now = [c["best"][j] for c in curves.values()]
        same = 0
        for seed in seeds:
            mine = [c for c in curves.values() if c["seed"] == seed]
            same += min(mine, key=lambda c: c["best"][j])["rt"] == min(mine, key=lambda c: c["best"][-1])["rt"]
        rows.append({"kimg": float(np.median([c["kimg"][j] for c in curves.values()])),
                     "spearman_best_so_far_vs_final": round(float(spearmanr(now, final).statistic), 3),
                     "seeds_with_final_choice": f"{same}/{len(seeds)}"})
    return {"trials": len(curves), "evaluations": rows}


def asha_summary(arms: list[dict]) -> dict:
    grid = [a for a in arms if a["scheduler"] == "grid"]
    asha = [a for a in arms if a["scheduler"] == "asha"]
    # the grid's decision: the r_t with the lowest median best FID over the three seed sets
    per_rt: dict = {}
    for a in grid:
        for r in a["trials"]:
            if r["best_fid"] is not None:
                per_rt.setdefault(r["axis"], []).append(r["best_fid"])
    med = {k: float(np.median(v)) for k, v in per_rt.items()}
    decision = min(med, key=med.get) if med else None
    spread = {k: (min(v), max(v)) for k, v in per_rt.items()}
    grid_s = sum(a["trial_seconds"] for a in grid) / max(len(grid), 1)
    asha_s = sum(a["trial_seconds"] for a in asha) / max(len(asha), 1)

    def within(rt) -> bool:  # ASHA's pick is the grid's, or its best-FID range overlaps the grid's winner's
        if rt is None or decision is None:
            return False
        return rt == decision or spread[rt][0] <= spread[decision][1]

    return {"grid_decision": decision, "grid_median_best_fid": med,
            "asha_choices": [a["chosen_ada_target"] for a in asha],
            "asha_agrees_or_within_spread": [within(a["chosen_ada_target"]) for a in asha],
            "grid_trial_seconds_mean": round(grid_s, 1), "asha_trial_seconds_mean": round(asha_s, 1),
            "asha_fraction_of_grid": round(asha_s / grid_s, 3) if grid_s else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", choices=sorted(STUDIES))
    p.add_argument("--kimg", type=float, default=None, help="training length per trial (default: the spec's)")
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=None,
                   help="comma list of seeds (default: the spec's)")
    p.add_argument("--quick", action="store_true", help="--kimg 8 --seeds 0 (minutes; not the headline numbers)")
    p.add_argument("--root", type=Path, default=ROOT / "runs" / "proxy", help="working directory (default runs/proxy)")
    p.add_argument("--json", type=Path, default=None,
                   help="results file (default benchmarks/results/proxy_<study>.json; --quick: ..._quick.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.kimg = args.kimg or 8
        args.seeds = args.seeds or [0]
    root = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    dataset = make_data(root)
    start = time.time()
    result = run_study(args.study, args, root, dataset)
    result["total_wall_s"] = round(time.time() - start, 1)
    out = args.json or ROOT / "benchmarks" / "results" / f"proxy_{args.study}{'_quick' if args.quick else ''}.json"
    from microtune.io import atomic_write_json

    atomic_write_json(out, result, indent=1, default=str)
    print(f"wrote {out} ({result['total_wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
