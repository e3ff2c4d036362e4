"""Figures shared by several scripts: a metric against kimg per group, and the best value per group.

These are the study's Figs. 1–3: (a) the metric against kimg per group (median line, min–max band
over seeds) and (b) each group's best value (median dot, min and max caps).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from analysis import common
from analysis.loader import StudyData, best_per_trial, best_summary, curve_bands, group_label, group_order
from microtune.errors import MicrotuneError
from microtune.tracking import schema


def metric_name(key: str) -> str:
    """How a metric is written in titles and labels (FID, KID in capitals)."""
    return key.upper() if key in (schema.FID, schema.KID) else key


def metric_rows(study: StudyData, key: str) -> pd.DataFrame:
    """History of ``key``; refuses a study that never logged it."""
    rows = study.metric(key)
    if rows.empty:
        raise MicrotuneError(f"experiment {study.experiment!r} has no {key!r} metric in any successful trial.")
    return rows


def panels(study: StudyData, axes, key: str, axis: str, axis_name: str) -> pd.DataFrame:
    """Draw (a) ``key`` against kimg per group into ``axes[0]`` and (b) the best values into
    ``axes[1]``; return the best-value summary (``label, tick, group, median, min, max, n,
    median_best_kimg``)."""
    rows = metric_rows(study, key)
    order = group_order(study.trials[axis], axis)
    labels = [group_label(v, axis) for v in order]
    common.band_plot(axes[0], curve_bands(rows, axis), order, labels, ylabel=common.METRIC_LABELS.get(key, key),
                     allow_log=key in schema.LOWER_IS_BETTER)  # recall, precision: linear in [0, 1]
    best = best_per_trial(rows, key)
    summary = best_summary(best, axis)
    word = "lowest" if key in schema.LOWER_IS_BETTER else "highest"
    common.caps_plot(axes[1], summary, ylabel=f"best {metric_name(key)} ({word} of each trial)", xlabel=axis_name)
    at = best.groupby(best[axis].map(lambda v: group_label(v, axis, tex=False)))["best_kimg"].median()
    summary["median_best_kimg"] = summary["label"].map(at)
    axes[0].set_title(f"{metric_name(key)} during training")
    axes[1].set_title(f"best {metric_name(key)}: median (dot), min and max (caps) over seeds")
    return summary


def summary_table(summary: pd.DataFrame, key: str, axis_name: str) -> pd.DataFrame:
    """The best-value summary with reader-facing column names."""
    return summary.drop(columns=["group", "tick"]).rename(columns={
        "label": axis_name, "median": f"median best {key}", "min": f"min best {key}",
        "max": f"max best {key}", "n": "trials", "median_best_kimg": "median kimg at best"})


def table_note(study: StudyData, key: str) -> str:
    """The note under a best-value table (and the random-detector warning)."""
    note = f"Best {key} of each trial over its whole training; median, min and max over its seeds."
    if study.offline_detector:
        note += f" Scored with a {study.offline_detector} ({study.detector}): not comparable with published values."
    return note


def axis_study(study: StudyData, out: Path, *, axis: str, axis_name: str, stem: str, what: str,
               key: str = schema.FID) -> list[Path]:
    """Figure (a)+(b) of ``key`` over one axis, and the table of best values per group."""
    common.style()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), gridspec_kw={"width_ratios": [1.5, 1]})
    summary = panels(study, axes, key, axis, axis_name)
    for ax, letter in zip(axes, "ab"):
        ax.set_title(f"({letter}) {ax.get_title()}")
    fig.suptitle(study.title(what))
    fig.tight_layout()
    common.legend_below(fig, axes[0])
    paths = common.save_figure(fig, out, stem)
    paths += common.write_table(summary_table(summary, key, axis_name), out, f"{stem}_best_{key}",
                                title=study.plain_title(f"{what}: best {metric_name(key)}"), note=table_note(study, key))
    return paths
