"""FID against recall for a multi-objective study, with the Pareto front marked.

``python analysis/pareto.py --tracking-uri URI --experiment NAME --out DIR``

Each trial is one point: its best (lowest) ``fid`` and its best (highest) ``recall`` over its
whole training. A trial is on the front when no other trial has a lower-or-equal FID and a
higher-or-equal recall with at least one strictly better. Points are coloured by the study axis
that varies (augpipe, r_t, subset). Writes ``pareto.png/.pdf`` and ``pareto.csv/.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis import common
from analysis.figures import metric_rows
from analysis.loader import StudyData, _key_of, best_per_trial, group_label, group_order
from microtune.tracking import schema

DESCRIPTION = "Best FID against best recall per trial, with the Pareto front marked."
BEST_FID, BEST_RECALL = schema.BEST_FID, schema.BEST_RECALL  # columns of the table of points


def pareto_front(fid: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """Boolean mask of non-dominated points (minimise ``fid``, maximise ``recall``)."""
    fid, recall = np.asarray(fid, float), np.asarray(recall, float)
    front = np.ones(len(fid), dtype=bool)
    for i in range(len(fid)):
        better_or_equal = (fid <= fid[i]) & (recall >= recall[i])
        strictly = (fid < fid[i]) | (recall > recall[i])
        front[i] = not np.any(better_or_equal & strictly)
    return front


def points(study: StudyData) -> pd.DataFrame:
    """One row per trial: name, axes, best fid, best recall, and whether it is on the front."""
    fid = best_per_trial(metric_rows(study, schema.FID), schema.FID)[["run_id", "best"]]
    recall = best_per_trial(metric_rows(study, schema.RECALL), schema.RECALL)[["run_id", "best"]]
    merged = fid.rename(columns={"best": BEST_FID}).merge(recall.rename(columns={"best": BEST_RECALL}), on="run_id")
    table = study.trials.merge(merged, on="run_id")
    table["pareto"] = pareto_front(table[BEST_FID], table[BEST_RECALL])
    return table.sort_values(["pareto", BEST_FID], ascending=[False, True]).reset_index(drop=True)


def make(study: StudyData, out: Path) -> list[Path]:
    """The scatter with its front, and the table of points."""
    table = points(study)
    varying = study.varying_axes()
    axis = varying[0] if varying else None
    common.style()
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    groups = group_order(table[axis], axis) if axis else [None]
    for i, value in enumerate(groups):
        rows = table if axis is None else table[table[axis].map(_key_of) == _key_of(value)]
        label = "trials" if axis is None else group_label(value, axis)
        ax.scatter(rows[BEST_FID], rows[BEST_RECALL], s=36, color=common.COLORS[i % 10], label=label, zorder=3)
    front = table[table["pareto"]].sort_values(BEST_FID)
    ax.step(front[BEST_FID], front[BEST_RECALL], where="post", color="black", linewidth=1.2, zorder=2,
            label=f"Pareto front ({len(front)} trials)")
    ax.scatter(front[BEST_FID], front[BEST_RECALL], s=110, facecolors="none", edgecolors="black", zorder=4)
    for _, row in front.iterrows():
        ax.annotate(str(row["run_name"]), (row[BEST_FID], row[BEST_RECALL]), textcoords="offset points",
                    xytext=(6, -10), fontsize=7)
    ax.set_xlabel("best FID of the trial (lower is better)")
    ax.set_ylabel("best recall of the trial (higher is better)")
    ax.set_title(study.title("FID against recall per trial"))
    ax.grid(True, alpha=0.3)
    ax.annotate("better", xy=(0.06, 0.94), xytext=(0.2, 0.8), xycoords="axes fraction",
                arrowprops={"arrowstyle": "->", "color": "0.4"}, color="0.4", fontsize=8)
    ax.legend(frameon=False, fontsize=8, loc="lower right", title=axis, title_fontsize=8)
    fig.tight_layout()
    paths = common.save_figure(fig, out, "pareto")
    columns = ["run_name", *[a for a in varying], schema.AXIS_SEED, BEST_FID, BEST_RECALL, "pareto"]
    return paths + common.write_table(table[columns], out, "pareto", title=study.plain_title("Pareto front of FID and recall"),
                                      note="Best FID and best recall of each trial over its whole training; "
                                           "pareto = no other trial is at least as good in both and better in one.")


def main(argv=None) -> int:
    return common.run_study(make, DESCRIPTION, argv)


if __name__ == "__main__":
    sys.exit(main())
