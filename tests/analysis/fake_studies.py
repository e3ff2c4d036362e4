"""Studies with known curves, logged into a real MLflow SQLite store through the Tracker.

Every FID curve falls as (1 - k/k*)² to its best value at a known evaluation k* and then rises
linearly (over-fitting), so each trial's best FID and the kimg where it happens are known exactly;
recall rises to its best value at k* and then decays. Expected per-group numbers are computed here
from the same definitions so tests compare the scripts' output with independent arithmetic.
"""

from __future__ import annotations

import math
import tempfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from microtune.tracking import schema
from microtune.tracking.mlflow_io import Tracker

KIMG_PER_EVAL = 40      # one evaluation every 40 kimg
EVALS = 16              # 0 .. 600 kimg
SEEDS = (0, 1, 2)
STANDARD = "inception-v3-tf:0123456789ab"
RANDOM = "random-seed:0"

AUG_BEST = {"none": 36.0, "blit": 9.0, "geom": 8.5, "color": 23.0, "filter": 31.0, "noise": 26.0, "cutout": 21.0}
RT_BEST = {0.3: 9.5, 0.4: 8.0, 0.5: 7.0, 0.6: 7.6, 0.7: 9.0, 0.8: 10.5, 0.9: 12.0}
SIZES = (10, 50, 100, 500, 1000, None)   # None = all images
DATASET_SIZE = 3000
SEED_OFFSET = {0: -1.0, 1: 0.0, 2: 1.5}   # best = group value + offset: median = group value


def size_of(subset) -> int:
    return DATASET_SIZE if subset is None else subset


SIZE_WOBBLE = {10: 1.2, 50: -0.9, 100: 0.4, 500: 1.1, 1000: -1.5, None: 0.3}  # off the line: R² < 1


def size_best_fid(subset) -> float:
    return 60.0 - 14.0 * math.log10(size_of(subset)) + SIZE_WOBBLE[subset]


def size_best_recall(subset) -> float:
    return 0.05 + 0.0095 * math.sqrt(size_of(subset)) - 0.01 * SIZE_WOBBLE[subset]


def fid_curve(best: float, best_eval: int, rise: float = 0.05) -> list[tuple[int, float]]:
    points = []
    for e in range(EVALS):
        frac = 1 - e / best_eval if e <= best_eval else 0.0
        value = best + 250.0 * frac**2 + rise * best * max(0, e - best_eval)
        points.append((e * KIMG_PER_EVAL * 1000, value))
    return points


def recall_curve(best: float, best_eval: int) -> list[tuple[int, float]]:
    return [(e * KIMG_PER_EVAL * 1000, best * (e / best_eval if e <= best_eval else 1 - 0.02 * (e - best_eval)))
            for e in range(EVALS)]


def sample_grid(path: Path, seed: int, block: int) -> Path:
    """A 64×64 grayscale image of random blocks of ``block`` pixels (a stand-in for a sample grid)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(64 // block, 64 // block), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.kron(coarse, np.ones((block, block), dtype=np.uint8)), "L").save(path)
    return path


def log_study(uri, experiment, trials, *, detector=STANDARD, failed=(), grids=False):
    """trials: list of (name, params, best_fid, best_recall or None, best_eval, extra_tags, extra_metrics).

    With ``grids``, each trial logs two sample grids (``samples/fakes000200.png``, ``…600.png``)."""
    tracker = Tracker(uri)  # spool in memory: one writer process, nothing to survive
    tmp = Path(tempfile.mkdtemp(prefix="grids-"))
    parent = tracker.start_study_run(experiment, name="launch", tags={schema.STUDY: experiment})
    for name, params, best_fid, best_recall, best_eval, tags, extra in trials:
        run = tracker.start_trial_run(experiment, parent_run_id=parent, name=name, params=params,
                                      tags={schema.DETECTOR: detector, schema.DEVICE: "cpu", **tags})
        fid = fid_curve(best_fid, best_eval)
        recall = recall_curve(best_recall, best_eval) if best_recall is not None else None
        for i, (step, value) in enumerate(fid):
            metrics = {schema.FID: value, schema.KIMG: step / 1000}
            if recall is not None:
                metrics[schema.RECALL] = recall[i][1]
            tracker.log_metrics(run, metrics, step=step)
        if extra:
            tracker.log_metrics(run, extra, step=fid[-1][0])
        if grids:
            for kimg, block in ((200, 2), (600, 8)):
                path = sample_grid(tmp / name / f"fakes{kimg:06d}.png", seed=zlib.crc32(name.encode()), block=block)
                tracker.log_artifact(run, path, artifact_path=schema.ARTIFACT_SAMPLES_DIR)
        tracker.end_run(run, "FAILED" if name in failed else "FINISHED")
    tracker.end_run(parent)
    assert tracker.pending == 0


def fill(uri: str) -> None:
    aug = [(f"{p}_s{s}", {"augpipe": p, "ada_target": 0.6, "subset": None, "seed": s, "dataset_size": DATASET_SIZE},
            AUG_BEST[p] + SEED_OFFSET[s], None, 3 + i % 5, {}, {})
           for i, p in enumerate(AUG_BEST) for s in SEEDS]
    aug.append(("broken", {"augpipe": "bgc", "ada_target": 0.6, "seed": 0}, 99.0, None, 3, {}, {}))
    log_study(uri, "augmentations", aug, failed=("broken",))
    rt = [(f"rt{t}_s{s}", {"augpipe": "bg", "ada_target": t, "seed": s}, RT_BEST[t] + SEED_OFFSET[s], None, 8, {}, {})
          for t in RT_BEST for s in SEEDS]
    log_study(uri, "target_rt", rt, detector=RANDOM)
    size = [(f"n{sub}_s{s}", {"augpipe": "bg", "ada_target": 0.5, "subset": sub, "seed": s, "dataset_size": DATASET_SIZE},
             size_best_fid(sub) + SEED_OFFSET[s], size_best_recall(sub) + 0.01 * SEED_OFFSET[s], 6 + (sub or 0) % 4, {},
             {schema.TRIAL_SECONDS: 1800.0 * (1 + s), **({schema.ENERGY_KWH: 0.5} if s == 0 else {})})
            for sub in SIZES for s in SEEDS]
    log_study(uri, "dataset_size", size, grids=True)
    mixed = [("a", {"augpipe": "bg", "seed": 0}, 10.0, None, 4, {}, {}),
             ("b", {"augpipe": "bg", "seed": 1}, 11.0, None, 4, {schema.DETECTOR: RANDOM}, {})]
    log_study(uri, "mixed", mixed)
    Tracker(uri).ensure_experiment("empty")


HPTL_FINAL = {  # method -> (train loss, test loss, infer ms, accuracy fraction, mIoU) of seed 0; seed 1 adds 10 %
    "HPTL": (0.0141, 0.0166, 1.1, 0.9881, 0.90), "HPTL-2H": (0.5611, 0.6721, 1.3, 0.9832, 0.86),
    "HPTL-R": (0.0130, 0.0154, 0.9, 0.9888, 0.91), "FCN-8s": (0.2102, 0.3233, 1.6, 0.9796, 0.84),
}


def fill_hptl(uri: str) -> None:
    tracker = Tracker(uri)
    parent = tracker.start_study_run("hptl", name="launch")
    for method, values in HPTL_FINAL.items():
        for seed in (0, 1):
            run = tracker.start_trial_run("hptl", parent_run_id=parent, name=f"{method}_s{seed}",
                                          params={schema.PARAM_METHOD: method, "seed": seed, "model": "hptl"})
            scale = 1.0 + 0.1 * seed
            keys = (schema.SEG_TRAIN_LOSS, schema.SEG_TEST_LOSS, schema.SEG_INFER_MS, schema.SEG_ACC, schema.SEG_MIOU)
            tracker.log_metrics(run, {k: 2 * v for k, v in zip(keys, values)}, step=0)  # an early, worse epoch
            tracker.log_metrics(run, {k: v * scale if k != schema.SEG_ACC else v for k, v in zip(keys, values)}, step=1)
            tracker.end_run(run)


def pareto_points() -> list[tuple[str, float, float]]:
    """(name, best fid, best recall) of the multi-objective study; front: p0, p1, p2."""
    return [("p0", 6.0, 0.40), ("p1", 8.0, 0.55), ("p2", 12.0, 0.60), ("p3", 9.0, 0.45),
            ("p4", 13.0, 0.58), ("p5", 7.0, 0.30)]


def fill_pareto(uri: str) -> None:
    trials = [(n, {"augpipe": ("bg", "bgc")[i % 2], "ada_target": 0.4 + 0.1 * i, "seed": 0}, f, r, 7, {}, {})
              for i, (n, f, r) in enumerate(pareto_points())]
    log_study(uri, "pareto", trials)


def expected_best(groups: dict) -> dict:
    """Group -> (median, min, max) of best values with the seed offsets."""
    out = {}
    for g, best in groups.items():
        values = np.array([best + SEED_OFFSET[s] for s in SEEDS])
        out[g] = (float(np.median(values)), float(values.min()), float(values.max()))
    return out
