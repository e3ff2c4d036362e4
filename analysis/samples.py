"""Fig. 4 of the SEM study: uncurated generated samples per group, captioned with best FID and recall.

``python analysis/samples.py --tracking-uri URI --experiment NAME --out DIR [--axis AXIS]``

Works on logged artifacts, no GPU or checkpoint needed: trials log their sample grids as PNG or
JPEG files under the artifact directory ``samples/`` (schema.ARTIFACT_SAMPLES_DIR), with the
training progress in the file name (e.g. ``samples/fakes000400.png``; the largest number is the
latest grid). Per group of ``--axis`` (default: training-set size when it varies, else the first
varying axis) the trial with the median best FID is shown, its latest grid captioned with the
group's median best FID and recall (as the study's Fig. 4). Writes ``samples.png/.pdf`` and
``samples.csv/.md`` (which trial and file each panel shows).
"""

from __future__ import annotations

import re
import sys
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from analysis import common
from analysis.figures import metric_rows
from analysis.loader import StudyData, _key_of, best_per_trial, group_label, group_order, load_study
from microtune.errors import MicrotuneError
from microtune.tracking import mlflow_io, schema

DESCRIPTION = "Latest generated sample grid per group, captioned with the group's best FID and recall."
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def latest_grid(files: list[str]) -> str | None:
    """The image file with the largest number in its name (ties: the last by name)."""
    images = [f for f in files if f.lower().endswith(IMAGE_SUFFIXES)]

    def progress(name: str) -> tuple[int, str]:
        numbers = re.findall(r"\d+", Path(name).name)
        return (int(numbers[-1]) if numbers else -1, name)

    return max(images, key=progress) if images else None


def pick_trials(study: StudyData, axis: str) -> pd.DataFrame:
    """Per group: the trial with the median best FID, and the group's median best FID and recall."""
    fid = best_per_trial(metric_rows(study, schema.FID), schema.FID)
    recall_rows = study.metric(schema.RECALL)
    recall = best_per_trial(recall_rows, schema.RECALL)[["run_id", "best"]] if not recall_rows.empty else None
    rows = []
    for value in group_order(study.trials[axis], axis):
        group = fid[fid[axis].map(_key_of) == _key_of(value)].sort_values("best").reset_index(drop=True)
        if group.empty:
            continue
        chosen = group.iloc[(len(group) - 1) // 2]
        median_recall = float("nan")
        if recall is not None:
            median_recall = float(recall[recall["run_id"].isin(group["run_id"])]["best"].median())
        rows.append({"group": value, "label": group_label(value, axis, tex=False), "run_id": chosen["run_id"],
                     "median_best_fid": float(group["best"].median()), "median_best_recall": median_recall})
    return pd.DataFrame(rows)


def make(study: StudyData, out: Path, axis: str | None = None) -> list[Path]:
    """Download each chosen trial's latest grid and lay the grids out side by side."""
    varying = study.varying_axes()
    if axis is None:
        axis = "size" if study.trials["size"].nunique(dropna=False) > 1 else (varying[0] if varying else schema.AXIS_SEED)
    picks = pick_trials(study, axis)
    names = dict(zip(study.trials["run_id"], study.trials["run_name"]))
    panels, missing = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _, pick in picks.iterrows():
            grid = latest_grid(mlflow_io.list_artifacts(study.tracking_uri, pick["run_id"], schema.ARTIFACT_SAMPLES_DIR))
            if grid is None:
                missing.append(f"{pick['label']} (trial {names[pick['run_id']]})")
                continue
            local = mlflow_io.download_artifact(study.tracking_uri, pick["run_id"], grid, Path(tmp) / pick["run_id"])
            with Image.open(local) as image:
                panels.append((pick, grid, np.asarray(image.convert("L") if image.mode in ("L", "I", "I;16") else image.convert("RGB"))))
    if not panels:
        raise MicrotuneError(f"no trial of {study.experiment!r} logged sample grids under {schema.ARTIFACT_SAMPLES_DIR}/.")
    if missing:
        warnings.warn(f"no sample grid logged under {schema.ARTIFACT_SAMPLES_DIR}/ for {', '.join(missing)}: "
                      "left out of the figure.", UserWarning, stacklevel=2)
    common.style()
    columns = min(3, len(panels))
    rows = int(np.ceil(len(panels) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 4.9 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, (pick, grid, pixels) in zip(axes.flat, panels):
        ax.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        caption = f"best FID {common.fmt(pick['median_best_fid'], 3)}"
        if not np.isnan(pick["median_best_recall"]):
            caption += f", recall {common.fmt(pick['median_best_recall'], 2)}"
        ax.set_title(f"{pick['label']}\n{caption} (medians)", fontsize=9)
    fig.suptitle(study.title("Uncurated samples of the median trial per group"))
    paths = common.save_figure(fig, out, "samples")
    table = pd.DataFrame([{"group": p["label"], "trial": names[p["run_id"]], "run_id": p["run_id"], "grid": g,
                           "median best fid": p["median_best_fid"], "median best recall": p["median_best_recall"]}
                          for p, g, _ in panels])
    return paths + common.write_table(table, out, "samples", title=study.plain_title("Sample grids shown"))


def main(argv=None) -> int:
    def extra(p):
        p.add_argument("--axis", default=None, choices=[*schema.AXES, "size"],
                       help="group trials by this axis (default: training-set size when it varies)")

    def body(args):
        return make(load_study(args.tracking_uri, args.experiment, detector=args.detector, launch=args.launch), args.out, args.axis)

    return common.run(body, DESCRIPTION, argv, extra)


if __name__ == "__main__":
    sys.exit(main())
