"""A finished proxy study scored again with a second detector (issue 14: is the result the detector's?).

Every trial of the latest launch of ``runs/proxy/<study>`` (``benchmarks/proxy_study.py``) keeps a
G_ema snapshot at each evaluation (``train/network-nimg*.pt``). This script computes FID of 1000
generated images (latents from seeds 0..999, the trials' own convention) against all real images
with ``--detector`` for every snapshot, takes each trial's best, and writes per axis value the
min/median/max, and for ``dataset_size`` the least-squares line of best FID against log10(size)
(the fit of ``analysis/dataset_size.py``) — the same numbers ``proxy_study.py`` writes, from another
detector. First it re-scores each trial's last snapshot with the study's own detector and records
the difference to the FID the trial logged: 0 up to float noise when the re-scoring is faithful.

Usage (repository root)::

    python benchmarks/proxy_redetect.py dataset_size --detector texture-vgg19-seed:0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

from proxy_study import DATA, STUDIES, LoadSampler, groups, size_laws  # beside this script (its folder is sys.path[0])

ROOT = Path(__file__).resolve().parents[1]
AXES = {"dataset_size": "subset", "augmentations": "augpipe", "target_rt": "ada_target"}


def trials(study_dir: Path) -> list[dict]:
    """Each trial directory of the study's latest launch: its config, snapshots and logged results."""
    out = []
    for trial in sorted(p for p in study_dir.iterdir() if p.is_dir() and p.name.startswith("_trainable_")):
        snaps = sorted(trial.glob("train/network-nimg*.pt"))
        lines = (trial / "result.json").read_text().splitlines() if (trial / "result.json").is_file() else []
        if not snaps or not lines:
            continue
        logged = {int(r["nimg"]): r["fid"] for r in map(json.loads, lines) if r.get("fid") is not None}
        out.append({"dir": trial, "config": json.loads((trial / "params.json").read_text()), "snapshots": snaps,
                    "logged_fid": logged})
    return out


def score(evaluator, snapshot: Path) -> float:
    from microtune.gan.checkpoint import load_generator
    from microtune.metrics.evaluator import generator_sampler

    generator, _ = load_generator(snapshot, device="cpu")
    return float(evaluator(generator_sampler(generator, seed=0))["fid"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("study", choices=sorted(AXES))
    p.add_argument("--detector", default="texture-vgg19-seed:0", help="the second detector (default texture-vgg19-seed:0)")
    p.add_argument("--root", type=Path, default=ROOT / "runs" / "proxy", help="proxy_study's working directory")
    p.add_argument("--json", type=Path, default=None, help="default benchmarks/results/proxy_<study>_<detector>.json")
    args = p.parse_args(argv)
    import torch
    import yaml

    from microtune.data.dataset import Dataset
    from microtune.metrics.evaluator import make_evaluator

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    name = STUDIES[args.study]
    study_dir = args.root / args.study / "runs" / "sweeps" / name
    if not study_dir.is_dir():
        raise SystemExit(f"{study_dir}: no finished study; run python benchmarks/proxy_study.py {args.study} first.")
    spec = yaml.safe_load((args.root / args.study / f"{name}.yaml").read_text())
    own = spec["metrics"]["detector"]
    dataset = Dataset.open(args.root / "data" / f"proxy-synth{DATA['resolution']}")
    cache = args.root / "metrics-cache"
    axis = AXES[args.study]
    found = trials(study_dir)
    start = time.time()
    rows, checks = [], []
    with LoadSampler() as load:
        check = make_evaluator(dataset, ["fid1k_full"], detector=own, cache_dir=cache)
        for t in found:  # the re-scoring reproduces what the trial logged with its own detector
            last = t["snapshots"][-1]
            nimg = int(re.search(r"nimg(\d+)", last.name).group(1))
            if nimg in t["logged_fid"]:
                again = score(check, last)
                checks.append({"trial": t["dir"].name[:24], "nimg": nimg, "logged": round(t["logged_fid"][nimg], 6),
                               "rescored": round(again, 6), "abs_diff": abs(again - t["logged_fid"][nimg])})
        second = make_evaluator(dataset, ["fid1k_full"], detector=args.detector, cache_dir=cache)
        for t in found:
            curve = [round(score(second, s), 5) for s in t["snapshots"]]
            kimg = [int(re.search(r"nimg(\d+)", s.name).group(1)) / 1000 for s in t["snapshots"]]
            rows.append({"axis": t["config"].get(axis), "seed": t["config"].get("seed"), "kimg": kimg, "fid": curve,
                         "best_fid": min(curve), "final_fid": curve[-1]})
            print(json.dumps({k: rows[-1][k] for k in ("axis", "seed", "best_fid", "final_fid")}), flush=True)
    result = {"benchmark": f"proxy_{args.study}_redetect", "study": name, "own_detector": own,
              "detector": second.detector, "cpu_count": os.cpu_count(), "machine": platform.machine(),
              "wall_s": round(time.time() - start, 1), **load.summary(),
              "rescoring_check": {"trials": len(checks), "max_abs_diff": max((c["abs_diff"] for c in checks), default=None),
                                  "rows": checks},
              "trials": rows, "best_fid": groups(rows, "best_fid"), "final_fid": groups(rows, "final_fid")}
    if args.study == "dataset_size":
        result.update(size_laws(rows, DATA["count"], recall=False))
    slug = re.sub(r"[^a-z0-9]+", "_", args.detector.lower()).strip("_")
    out = args.json or ROOT / "benchmarks" / "results" / f"proxy_{args.study}_{slug}.json"
    from microtune.io import atomic_write_json

    atomic_write_json(out, result, indent=1, default=str)
    print(f"wrote {out} ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
