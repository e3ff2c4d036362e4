"""HPTL paper Tables 2-3 analogue on the real UHCS data, at a CPU-feasible size.

What it measures: for each segmentation method (HPTL, HPTL-R, HPTL-2H, FCN-8s from scratch,
multi-level Otsu, RBF SVM; DeepLabV3+ with ``--methods ...,deeplab``) trained on UHCS's
``train16A`` images and evaluated on ``test4A``, the final train/test cross-entropy, their gap, inference ms per image, pixel accuracy and mean IoU, as
:mod:`analysis.hptl_tables` tabulates them from MLflow; plus the wall-clock seconds of each method
and of the whole benchmark, and the majority-class pixel rate of the test set (the accuracy of
predicting "matrix" everywhere: the floor a method has to beat).

Steps:

1. ``microtune data prepare /work/shared/data/uhcs/images TMP/uhcs --resolution 128 --crop tiles
   --masks .../labels --class-names matrix,network,spheroidite,widmanstatten --quiet``
   (24 SEM images -> 360 tiles of 128x128; 16 images = 240 tiles train, 4 images = 60 tiles test).
2. :func:`microtune.seg.run.run_segmentation` once per method, in this process, with the split
   ``lists:train16A.txt,test4A.txt`` and the small CPU settings below (all overridable).
3. Each method is a child (trial) run of one study run in experiment ``hptl_uhcs`` of an MLflow
   sqlite store ``sqlite:///TMP/mlflow.db``: param ``method`` = the table label (``HPTL``, ...),
   the other options as params, per-epoch metrics at step = training crops seen (via ``report``)
   and the final metrics at the step after the last one.
4. ``python analysis/hptl_tables.py --tracking-uri URI --experiment hptl_uhcs --out OUT``; the
   Markdown tables are printed, and with ``--json`` the rows and timings are written.

The sizes are far below the paper's (full-width VGG-19, 224 crops, many epochs, ImageNet
source): width 1/16, 128-pixel crops, 8 epochs of 512 crops per trained network, batch-norm
convolutions and no dropout (tiny nets), Adam lr 1e-3, and a texture-task source VGG-19 (300
steps, shared by the three HPTL variants through a cache). Numbers are therefore a smoke-scale
comparison, not a reproduction. Runs in roughly 8-10 minutes on 2 CPU cores.

Usage::

    python benchmarks/hptl_uhcs.py --json benchmarks/results/hptl_uhcs.json --out /tmp/hptl_uhcs_out
    python benchmarks/hptl_uhcs.py --epochs 4 --width 0.125 --methods hptl,otsu
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

UHCS = Path("/work/shared/data/uhcs")
CLASS_NAMES = "matrix,network,spheroidite,widmanstatten"
EXPERIMENT = "hptl_uhcs"
METHODS = ("hptl", "hptl-r", "hptl-2h", "fcn8s-scratch", "otsu", "svm")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, default=None, help="write table rows and timings here")
    p.add_argument("--out", type=Path, default=None, help="table directory (default: TMP/tables)")
    p.add_argument("--data-root", type=Path, default=UHCS, help=f"UHCS directory (default {UHCS})")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods (default: all six)")
    p.add_argument("--epochs", type=int, default=8, help="epochs per trained network / HPTL stage (default 8)")
    p.add_argument("--width", type=float, default=1 / 16, help="VGG/FCN channel multiplier (default 1/16)")
    p.add_argument("--crop", type=int, default=128, help="training crop side (default 128)")
    p.add_argument("--samples-per-epoch", type=int, default=512, help="training crops per epoch (default 512)")
    p.add_argument("--batch", type=int, default=16, help="crops per step (default 16)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3; paper 1e-4)")
    p.add_argument("--source-steps", type=int, default=300, help="texture-source VGG-19 steps (default 300)")
    p.add_argument("--svm-samples", type=int, default=4000, help="SVM training pixels (default 4000)")
    p.add_argument("--deeplab-backbone", default="resnet18",
                   help="DeepLabV3+ encoder when deeplab is among --methods (default resnet18: CPU-sized)")
    p.add_argument("--no-batch-norm", action="store_true", help="plain VGG convs (default: VGG-BN for tiny nets)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout after fc6/fc7 (default 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (dataset, mlflow.db)")
    return p.parse_args(argv)


def prepare(root: Path, dst: Path) -> Path:
    cmd = [sys.executable, "-m", "microtune", "data", "prepare", str(root / "images"), str(dst),
           "--resolution", "128", "--crop", "tiles", "--masks", str(root / "labels"),
           "--class-names", CLASS_NAMES, "--quiet"]
    exe = Path(sys.executable).with_name("microtune")
    if exe.exists():
        cmd = [str(exe), *cmd[3:]]
    subprocess.run(cmd, check=True, cwd=REPO)
    return dst


def majority_rate(data: Path, split: str) -> tuple[str, float, dict[str, float]]:
    """(majority class, its pixel fraction, all class fractions) of the test split."""
    import numpy as np

    from microtune.seg.run import SegOptions, load_split

    _, (_, te_y), names = load_split(SegOptions(data=str(data), split=split))
    counts = np.bincount(np.asarray(te_y).ravel(), minlength=len(names))[:len(names)]
    frac = counts / counts.sum()
    return names[int(frac.argmax())], float(frac.max()), {n: float(f) for n, f in zip(names, frac)}


def finite(metrics: dict) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        try:
            v = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            out[k] = v
    return out


def run_method(tracker, study_id: str, options, log_prefix: str) -> dict:
    """Run one method as a child run; returns its final metrics, seconds and status."""
    from microtune.data.dataset import Dataset
    from microtune.seg.run import run_segmentation
    from microtune.sweep.seg_trial import seg_params
    from microtune.tracking import schema

    run_id = tracker.start_trial_run(EXPERIMENT, parent_run_id=study_id, name=options.method,
                                     tags={schema.MODEL: options.method, schema.STUDY: EXPERIMENT},
                                     params=seg_params(options, Dataset.open(options.data).count))
    last = {"step": 0}

    def report(step: int, metrics: dict) -> None:
        last["step"] = max(last["step"], int(step))
        tracker.log_metrics(run_id, finite(metrics), int(step))
        print(f"{log_prefix} step {step:6d} stage {int(metrics.get('seg_stage', 0))} "
              f"epoch {int(metrics.get('seg_epoch', 0))}: train {metrics.get('seg_train_loss', math.nan):.4f} "
              f"test {metrics.get('seg_test_loss', math.nan):.4f} acc {metrics.get('seg_acc', math.nan):.4f} "
              f"mIoU {metrics.get('seg_miou', math.nan):.4f}", flush=True)

    t0 = time.perf_counter()
    try:
        final = run_segmentation(options, report=report, log=lambda m: print(f"{log_prefix} {m}", flush=True))
    except Exception as exc:  # one failing method must not lose the others
        seconds = time.perf_counter() - t0
        tracker.end_run(run_id, "FAILED")
        print(f"{log_prefix} FAILED after {seconds:.1f}s: {exc!r}", flush=True)
        return {"status": "FAILED", "error": repr(exc), "seconds": seconds, "run_id": run_id}
    seconds = time.perf_counter() - t0
    tracker.log_metrics(run_id, {**finite(final), "wall_seconds": seconds}, last["step"] + 1)
    tracker.end_run(run_id, "FINISHED")
    print(f"{log_prefix} done in {seconds:.1f}s: acc {final.get('seg_acc', math.nan):.4f} "
          f"mIoU {final.get('seg_miou', math.nan):.4f}", flush=True)
    return {"status": "FINISHED", "seconds": seconds, "run_id": run_id, "final": finite(final)}


def read_table(path: Path) -> list[dict]:
    import pandas as pd

    if not path.is_file():
        return []
    frame = pd.read_csv(path)
    return json.loads(frame.to_json(orient="records"))


def main(argv=None) -> int:
    args = parse_args(argv)
    root = args.data_root
    if not (root / "images").is_dir() or not (root / "labels").is_dir() or not (root / "splits").is_dir():
        print(f"hptl_uhcs: the UHCS data set is not at {root} (need images/, labels/ and splits/); "
              f"nothing to benchmark.", file=sys.stderr)
        return 2
    train_list, test_list = root / "splits" / "train16A.txt", root / "splits" / "test4A.txt"
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]

    import torch

    from microtune.seg.run import METHODS as LABELS
    from microtune.seg.run import SegOptions, validate
    from microtune.tracking import schema
    from microtune.tracking.mlflow_io import Tracker

    unknown = [m for m in methods if m not in LABELS]
    if unknown:
        print(f"hptl_uhcs: unknown method(s) {unknown}; choose from {', '.join(LABELS)}.", file=sys.stderr)
        return 2
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)

    total0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="hptl_uhcs_"))
    out = (args.out or tmp / "tables").resolve()
    try:
        t0 = time.perf_counter()
        data = prepare(root, tmp / "uhcs")
        prepare_s = time.perf_counter() - t0
        split = f"lists:{train_list},{test_list}"
        majority, majority_frac, class_frac = majority_rate(data, split)
        print(f"prepared {data} in {prepare_s:.1f}s; test set majority class {majority}: "
              f"{100 * majority_frac:.2f}% of pixels", flush=True)

        uri = f"sqlite:///{(tmp / 'mlflow.db').resolve()}"
        tracker = Tracker(uri, spool_dir=tmp / "spool")
        tracker.ensure_experiment(EXPERIMENT)
        common = dict(data=str(data), epochs=args.epochs, batch=args.batch, crop=args.crop, lr=args.lr,
                      samples_per_epoch=args.samples_per_epoch, width=args.width, batch_norm=not args.no_batch_norm,
                      dropout=args.dropout, split=split, source="textures", source_steps=args.source_steps,
                      cache_dir=str(tmp / "source_cache"), svm_samples=args.svm_samples, seed=args.seed,
                      deeplab_backbone=args.deeplab_backbone)
        settings = {**common, "data": "TMP/uhcs (prepared, 128x128 tiles)",
                    "split": "lists:train16A.txt,test4A.txt", "cache_dir": "TMP/source_cache",
                    "threads": threads, "methods": methods}
        study_id = tracker.start_study_run(EXPERIMENT, name="hptl_uhcs", tags={schema.STUDY: EXPERIMENT},
                                           params={k: v for k, v in settings.items() if k != "methods"})
        results = {}
        for i, method in enumerate(methods, 1):
            options = validate(SegOptions(method=method, **common))
            print(f"=== [{i}/{len(methods)}] {method} ({options.label})", flush=True)
            results[method] = {"label": options.label, **run_method(tracker, study_id, options, f"[{options.label}]")}
        tracker.end_run(study_id, "FINISHED")
        remaining = tracker.flush()
        if remaining:
            print(f"hptl_uhcs: warning: {remaining} MLflow record(s) not delivered.", file=sys.stderr)

        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(REPO / "analysis" / "hptl_tables.py"), "--tracking-uri", uri,
                               "--experiment", EXPERIMENT, "--out", str(out)], cwd=REPO,
                              capture_output=True, text=True)
        tables_s = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, sep="\n", file=sys.stderr)
            print(f"hptl_uhcs: analysis/hptl_tables.py failed (exit {proc.returncode}).", file=sys.stderr)
            return 1
        total_s = time.perf_counter() - total0

        print()
        for name in ("hptl_methods", "hptl_variants"):
            md = out / f"{name}.md"
            if md.is_file():
                print(md.read_text().rstrip() + "\n")
        print(f"Test-set majority class ({majority}) pixel rate: {100 * majority_frac:.2f}%")
        print("Wall time per method (s): " + ", ".join(f"{r['label']} {r['seconds']:.1f}" for r in results.values()))
        print(f"Prepare {prepare_s:.1f}s, tables {tables_s:.1f}s, total {total_s:.1f}s ({threads} torch threads)")

        if args.json:
            payload = {
                "benchmark": "hptl_uhcs",
                "what": "HPTL Tables 2-3 analogue on UHCS train16A/test4A at CPU size (see the script docstring)",
                "settings": settings,
                "platform": {"python": platform.python_version(), "torch": torch.__version__,
                             "machine": platform.machine(), "cpu_count": os.cpu_count()},
                "test_majority_class": majority, "test_majority_rate": majority_frac,
                "test_class_fractions": class_frac,
                "table_methods": read_table(out / "hptl_methods.csv"),
                "table_variants": read_table(out / "hptl_variants.csv"),
                "methods": {m: {k: v for k, v in r.items() if k != "run_id"} for m, r in results.items()},
                "timings_s": {"prepare": prepare_s, **{r["label"]: r["seconds"] for r in results.values()},
                              "tables": tables_s, "total": total_s},
                "tables_dir": str(out),
            }
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(payload, indent=2) + "\n")
            print(f"wrote {args.json}")
        failed = [m for m, r in results.items() if r["status"] != "FINISHED"]
        return 1 if failed else 0
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
