"""Fig. 3 and Supplementary Fig. 2 of the SEM study: FID and recall against training-set size.

``python analysis/dataset_size.py --tracking-uri URI --experiment NAME --out DIR``

Reads trial runs with param ``subset`` (images; None = all, then param ``dataset_size`` gives the
count) and metrics ``fid`` and ``recall`` (step = images shown to D). Writes:

- ``dataset_size.png/.pdf``: (a) FID and (c) recall against kimg per size, median line and
  min–max band over seeds; (b) best FID and (d) best recall per size, median dot, min/max caps.
- ``dataset_size_scaling.png/.pdf``: the scaling laws: best FID against log10(size) and best
  recall against sqrt(size), each with a least-squares line fitted to the per-size medians (the
  black dots), its slope, intercept and R² printed on the plot.
- ``dataset_size_scaling.csv/.md`` (the fits) and ``dataset_size_best_fid/recall.csv/.md``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis import common
from analysis.figures import metric_name, panels, summary_table, table_note
from analysis.loader import StudyData, best_per_trial, linear_fit
from microtune.errors import MicrotuneError
from microtune.tracking import schema

DESCRIPTION = "FID and recall against training-set size, and their scaling laws (Fig. 3, Supp. Fig. 2)."
AXIS = "size"
AXIS_NAME = "training-set size (images)"
# quantity -> (transform name, transform, x-axis label)
TRANSFORMS = {
    schema.FID: ("log10(size)", np.log10, "log$_{10}$(training-set size / images)"),
    schema.RECALL: ("sqrt(size)", np.sqrt, "$\\sqrt{\\mathrm{training\\text{-}set\\ size\\ /\\ images}}$"),
}


def _keys(study: StudyData) -> list[str]:
    keys = [k for k in (schema.FID, schema.RECALL) if not study.metric(k).empty]
    if schema.FID not in keys:
        raise MicrotuneError(f"experiment {study.experiment!r} has no {schema.FID!r} metric in any successful trial.")
    if schema.RECALL not in keys:
        warnings.warn(f"experiment {study.experiment!r} logged no {schema.RECALL!r}: the recall panels are left out.",
                      UserWarning, stacklevel=2)
    return keys


def curves_figure(study: StudyData, out: Path, keys: list[str]) -> list[Path]:
    """Fig. 3: per key, the curves per size and the best value per size; plus the tables."""
    common.style()
    fig, axes = plt.subplots(len(keys), 2, figsize=(11, 4.2 * len(keys)), squeeze=False,
                             gridspec_kw={"width_ratios": [1.5, 1]})
    paths, letters = [], iter("abcd")
    for row, key in zip(axes, keys):
        summary = panels(study, row, key, AXIS, AXIS_NAME)
        for ax in row:
            ax.set_title(f"({next(letters)}) {ax.get_title()}")
        paths += common.write_table(summary_table(summary, key, AXIS_NAME), out, f"dataset_size_best_{key}",
                                    title=study.plain_title(f"Best {metric_name(key)} by training-set size"),
                                    note=table_note(study, key))
    fig.suptitle(study.title("FID and recall by training-set size" if len(keys) > 1 else "FID by training-set size"))
    fig.tight_layout()
    common.legend_below(fig, axes[0][0])
    return common.save_figure(fig, out, "dataset_size") + paths


def fit_points(study: StudyData, key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each trial's best value with a known size, and the per-size medians the line is fitted to."""
    best = best_per_trial(study.metric(key), key)
    unknown = best[AXIS].isna()
    if unknown.any():
        warnings.warn(f"{int(unknown.sum())} trial(s) trained on all images with no 'dataset_size' param are left "
                      "out of the scaling fit.", UserWarning, stacklevel=2)
    best = best[~unknown]
    medians = best.groupby(AXIS)["best"].median().reset_index().sort_values(AXIS)
    return best, medians


def scaling(study: StudyData, out: Path, keys: list[str]) -> list[Path]:
    """Supplementary Fig. 2: the two scaling laws, on the plot and in a table."""
    common.style()
    fig, axes = plt.subplots(1, len(keys), figsize=(5.6 * len(keys), 4.4), squeeze=False)
    rows = []
    for ax, key, letter in zip(axes[0], keys, "ab"):
        name, transform, xlabel = TRANSFORMS[key]
        best, medians = fit_points(study, key)
        fit = linear_fit(transform(medians[AXIS]), medians["best"])
        rows.append({"quantity": f"best {key}", "x": name, **fit, "fit_on": "median over seeds per size"})
        ax.scatter(transform(best[AXIS]), best["best"], s=18, color="0.6", label="each trial", zorder=2)
        ax.scatter(transform(medians[AXIS]), medians["best"], s=36, color="black", zorder=3,
                   label="median per size (labelled: images)")
        grid = np.linspace(transform(medians[AXIS]).min(), transform(medians[AXIS]).max(), 50)
        ax.plot(grid, fit["slope"] * grid + fit["intercept"], color=common.COLORS[3], label="least-squares line")
        for size, y in zip(medians[AXIS], medians["best"]):
            ax.annotate(f"{size:g}", (transform(size), y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        word = "lowest" if key in schema.LOWER_IS_BETTER else "highest"
        # the fit goes in the title: when the law fails, no corner of the axes is free of points
        ax.set(xlabel=xlabel, ylabel=f"best {metric_name(key)} ({word} of each trial)",
               title=f"({letter}) best {metric_name(key)} against {name}\n"
                     f"line: {fit['slope']:.4g} · {name} + {fit['intercept']:.4g}, $R^2$ = {fit['r2']:.3f}")
        ax.grid(True, alpha=0.3)
        ax.legend(frameon=False, loc="best")
    fig.suptitle(study.title("Scaling of the best FID and recall with the training-set size"))
    fig.tight_layout()
    table = pd.DataFrame(rows, columns=["quantity", "x", "slope", "intercept", "r2", "n_points", "fit_on"])
    return common.save_figure(fig, out, "dataset_size_scaling") + common.write_table(
        table, out, "dataset_size_scaling", title=study.plain_title("Scaling laws"),
        note="Least-squares lines y = slope·x + intercept fitted to the per-size medians of the trials' best values.")


def make(study: StudyData, out: Path) -> list[Path]:
    """All figures and tables of this script for a loaded study."""
    keys = _keys(study)
    paths = curves_figure(study, out, keys)
    if study.trials[AXIS].dropna().nunique() < 2:
        warnings.warn("fewer than two training-set sizes: no scaling fit.", UserWarning, stacklevel=2)
        return paths
    return paths + scaling(study, out, keys)


def main(argv=None) -> int:
    return common.run_study(make, DESCRIPTION, argv)


if __name__ == "__main__":
    sys.exit(main())
