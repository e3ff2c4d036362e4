"""Hyperparameter importance of a finished study: how much of the spread in each trial's best FID
(and best recall) each study axis explains.

``python analysis/importance.py --tracking-uri URI --experiment NAME --out DIR [--evaluator fanova|ped-anova]``

Works on any finished trials, grid or Optuna: the trials (axes from params, best values from the
metric histories, as in the other scripts) become an in-memory Optuna study, and Optuna's
evaluators rank the axes:

- ``fanova`` (default): functional ANOVA on a random forest fitted to the trials, the share of the
  objective's variance each parameter explains (Hutter, Hoos and Leyton-Brown, "An Efficient
  Approach for Assessing Hyperparameter Importance", ICML 2014; ``optuna.importance.
  FanovaImportanceEvaluator``, seed 0 so that a study gives the same numbers every time);
- ``ped-anova``: how differently a parameter is distributed among the top 10 % of trials than among
  all (Watanabe et al., "PED-ANOVA", IJCAI 2023; ``PedAnovaImportanceEvaluator``). It needs tens of
  trials: with a handful, the top 10 % is one trial and every parameter looks alike.

Axes: those that vary (augpipe, ada_target, training-set size, model) and the seed when the study
repeats seeds (its importance is how much of the spread is run-to-run noise). An axis is a float
range when it is numeric with more than two values, categorical otherwise (r_t "fixed p" and the
subset "all" are categories of their own then). Importances of one target sum to 1.

Writes ``importance.png/.pdf`` and ``importance.csv/.md`` (one row per axis, a column per target).
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from analysis import common
from analysis.loader import StudyData, best_per_trial, group_label
from microtune.errors import MicrotuneError
from microtune.tracking import schema

DESCRIPTION = "Hyperparameter importance (fANOVA or PED-ANOVA) of the study's axes for best FID and recall."
EVALUATORS = ("fanova", "ped-anova")
TARGETS = ((schema.FID, schema.BEST_FID), (schema.RECALL, schema.BEST_RECALL))
AXIS_NAMES = {schema.AXIS_AUGPIPE: "augpipe", schema.AXIS_TARGET: "ada_target (r_t)", "size": "training-set size",
              schema.AXIS_MODEL: "model", schema.AXIS_SEED: "seed"}


def axes_of(study: StudyData) -> list[str]:
    """The trial-table columns ranked: varying axes (subset as ``size``) and the seed if repeated."""
    cols = []
    for axis in study.varying_axes():
        col = "size" if axis == schema.AXIS_SUBSET else axis
        if col not in cols:
            cols.append(col)
    if "size" not in cols and study.trials["size"].astype(str).nunique(dropna=False) > 1:
        cols.append("size")
    if study.trials[schema.AXIS_SEED].astype(str).nunique(dropna=False) > 1:
        cols.append(schema.AXIS_SEED)
    return _without_derived(study.trials, cols)


def _without_derived(trials: pd.DataFrame, cols: list[str]) -> list[str]:
    """Drop an axis whose value is fixed by an axis before it (e.g. ``ada_target`` empty exactly
    where ``augpipe`` is ``none`` and one value elsewhere): no evaluator can separate the two, so
    ranking both would split one effect between them."""
    kept: list[str] = []
    as_text = trials[cols].astype(str)
    # ada_target only means something under augmentation: when it and augpipe fix each other, keep augpipe
    for col in sorted(cols, key=lambda c: (c == schema.AXIS_SEED, c == "ada_target")):
        if not any((as_text.groupby(k, dropna=False)[col].nunique(dropna=False) == 1).all() for k in kept):
            kept.append(col)
    return kept


def _distribution(values: pd.Series, axis: str):
    """(Optuna distribution, value per trial) for one axis' column."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    numeric = values.dtype.kind in "fi"
    if numeric and not values.isna().any() and values.nunique() > 2:
        return FloatDistribution(float(values.min()), float(values.max())), [float(v) for v in values]
    labels = [group_label(v, axis, short=True, tex=False) if numeric else str(v) for v in values]
    return CategoricalDistribution(sorted(set(labels))), labels


def importances(study: StudyData, evaluator: str = "fanova") -> pd.DataFrame:
    """One row per axis: ``parameter`` and ``importance <target>`` for each target with data, and
    ``trials <target>`` (the trials it was computed from), sorted by the first target."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator, get_param_importances

    if evaluator not in EVALUATORS:
        raise MicrotuneError(f"--evaluator must be one of {', '.join(EVALUATORS)}, got {evaluator!r}.")
    axes = axes_of(study)
    if not axes:
        raise MicrotuneError(f"no axis of experiment {study.experiment!r} varies; there is no importance to rank.")
    columns: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    for key, target in TARGETS:
        rows = study.metric(key)
        if rows.empty:
            continue
        best = best_per_trial(rows, key)[["run_id", "best"]].merge(study.trials, on="run_id")
        best = best[best["best"].map(lambda v: math.isfinite(float(v)))].reset_index(drop=True)
        if len(best) < 3:
            raise MicrotuneError(f"experiment {study.experiment!r} has {len(best)} trial(s) with a {key!r} value; "
                                 "importance needs at least 3.")
        if best["best"].nunique() < 2:
            warnings.warn(f"every trial of {study.experiment!r} reached the same best {key} "
                          f"({best['best'].iloc[0]:.4g}); no axis explains any of it, so {target} is not ranked.",
                          UserWarning, stacklevel=2)
            continue
        dists, values = {}, {}
        for axis in axes:
            dists[axis], values[axis] = _distribution(best[axis], axis)
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        ot = optuna.create_study(direction="minimize" if key in schema.LOWER_IS_BETTER else "maximize")
        for i, value in enumerate(best["best"]):
            ot.add_trial(optuna.trial.create_trial(params={a: values[a][i] for a in axes}, distributions=dists,
                                                   value=float(value)))
        judge = FanovaImportanceEvaluator(seed=0) if evaluator == "fanova" else PedAnovaImportanceEvaluator()
        ranked = get_param_importances(ot, evaluator=judge, normalize=True)
        columns[target] = {a: float(ranked.get(a, 0.0)) for a in axes}
        counts[target] = len(best)
    if not columns:
        raise MicrotuneError(f"experiment {study.experiment!r} has no fid or recall values that differ between "
                             "successful trials; there is no importance to rank.")
    table = pd.DataFrame({"parameter": axes})
    for target, values in columns.items():
        table[f"importance {target}"] = table["parameter"].map(values)
        table[f"trials {target}"] = counts[target]
    first = next(iter(columns))
    return table.sort_values(f"importance {first}", ascending=False, kind="stable").reset_index(drop=True)


def make(study: StudyData, out: Path, evaluator: str = "fanova") -> list[Path]:
    """The bar chart (a panel per target) and the table."""
    table = importances(study, evaluator)
    targets = [c[len("importance "):] for c in table.columns if c.startswith("importance ")]
    method = "fANOVA" if evaluator == "fanova" else "PED-ANOVA"
    common.style()
    fig, axes = plt.subplots(1, len(targets), figsize=(5.2 * len(targets), 0.55 * len(table) + 1.8), squeeze=False)
    labels = [AXIS_NAMES.get(p, p) for p in table["parameter"]]
    for ax, target in zip(axes[0], targets):
        values = table[f"importance {target}"].to_numpy()
        y = list(range(len(values)))[::-1]
        ax.barh(y, values, color=[common.COLORS[i % 10] for i in range(len(values))])
        for yi, v in zip(y, values):
            ax.annotate(f"{v:.2f}", (v, yi), textcoords="offset points", xytext=(4, -3), fontsize=8)
        ax.set_yticks(y, labels)
        ax.set_xlim(0, 1.1)
        n = int(table[f"trials {target}"].iloc[0])
        ax.set_xlabel(f"importance for {target} ({method}, {n} trials)")
        ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle(study.title(f"Which axis decides the study's answer ({method})"))
    fig.tight_layout()
    paths = common.save_figure(fig, out, "importance")
    note = (f"{method} importance (share of the spread of each trial's best value that the axis explains; a column "
            "sums to 1), computed by Optuna from the finished trials"
            + (", random forest seed 0." if evaluator == "fanova" else ".")
            + (" The seed's share is run-to-run noise." if schema.AXIS_SEED in set(table["parameter"]) else ""))
    return paths + common.write_table(table, out, "importance", title=study.plain_title(f"Hyperparameter importance ({method})"),
                                      note=note)


def main(argv=None) -> int:
    from analysis.loader import load_study

    def body(args):
        study = load_study(args.tracking_uri, args.experiment, detector=args.detector, launch=args.launch)
        return make(study, args.out, args.evaluator)

    return common.run(body, DESCRIPTION, argv,
                      extra=lambda p: p.add_argument("--evaluator", default="fanova", choices=EVALUATORS,
                                                     help="Optuna importance evaluator (default fanova)"))


if __name__ == "__main__":
    sys.exit(main())
