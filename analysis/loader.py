"""MLflow runs of one study → tidy pandas frames grouped by the study's axes.

Everything analysis/ knows about a study comes from :func:`load_study`, which reads MLflow only
(through :mod:`microtune.tracking.mlflow_io`), never Ray's result directories:

- ``trials``: one row per kept trial run: ``run_id, run_name, status, detector`` and the axes of
  :data:`microtune.tracking.schema.AXES` parsed from params (``augpipe`` str, ``ada_target`` float
  or NaN for a fixed p, ``subset`` float or NaN for "all images", ``seed`` int, ``model`` str), plus
  ``size``: the training-set size in images (``subset``, or param ``dataset_size`` when ``subset``
  is None).
- ``history``: one row per trial, metric and step: ``run_id, key, step`` (images shown to D),
  ``kimg`` (= step / 1000), ``value``, and the trial's axis columns.

Failed or killed trials are dropped with a warning. A study whose trials were scored with
different detectors (tag ``detector``) is refused unless one detector is chosen; a random-weight
detector (``random-seed:N``) is flagged so that every figure title says so.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from microtune.errors import MicrotuneError
from microtune.tracking import mlflow_io, schema

FAILED_STATUSES = ("FAILED", "KILLED")
AUGPIPE_ORDER = ("none", "blit", "geom", "color", "filter", "noise", "cutout")  # the study's Fig. 1
NOT_COMPARABLE = "not comparable with published FID/recall"
UNKNOWN_DETECTOR = "unknown"


@dataclass
class StudyData:
    """A study's trials and metric histories, ready to group and plot."""

    tracking_uri: str
    experiment: str
    trials: pd.DataFrame
    history: pd.DataFrame
    detector: str
    dropped: list[str] = field(default_factory=list)

    @property
    def offline_detector(self) -> str | None:
        """What the detector is when its numbers are not comparable with published ones: "random-weight
        detector" (``random-seed:N``) or "detector trained here on textures" (``texture-vgg19-seed:N``);
        None for the standard Inception/VGG pair (or a study that did not record its detector)."""
        return schema.offline_detector_kind(self.detector)

    def title(self, text: str) -> str:
        """A figure title: ``text``, the experiment, and the offline-detector warning if it applies."""
        title = f"{text} ({self.experiment})"
        return f"{title}\n[{self.offline_detector}: {NOT_COMPARABLE}: {self.detector}]" if self.offline_detector else title

    def plain_title(self, text: str) -> str:
        """:meth:`title` on one line (for Markdown headings)."""
        return self.title(text).replace("\n", " ")

    def metric(self, key: str) -> pd.DataFrame:
        """History rows of one metric key."""
        return self.history[self.history["key"] == key]

    def varying_axes(self) -> list[str]:
        """Axes (except seed) that take more than one value among the trials."""
        return [a for a in schema.AXES if a != schema.AXIS_SEED
                and self.trials[a].astype(str).nunique(dropna=False) > 1]


def _param(runs: pd.DataFrame, name: str) -> pd.Series:
    """Param ``name`` as strings (also found as a dotted suffix, e.g. ``train.augpipe``)."""
    column = f"params.{name}"
    if column not in runs:
        matches = [c for c in runs.columns if c.startswith("params.") and c.endswith("." + name)]
        column = matches[0] if matches else None
    if column is None:
        return pd.Series([None] * len(runs), index=runs.index, dtype=object)
    return runs[column].astype(object).where(runs[column].notna(), None)


def _number(text) -> float:
    if text is None or str(text).strip().lower() in ("", "none", "null", "nan", "all"):
        return math.nan
    try:
        return float(text)
    except ValueError as exc:
        raise MicrotuneError(f"param value {text!r} is not a number.") from exc


def trial_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Trial rows with parsed axis columns and the training-set ``size`` (see module doc)."""
    out = runs[["run_id", "run_name", "status"]].copy()
    tag = f"tags.{schema.DETECTOR}"
    out["detector"] = runs[tag].fillna(UNKNOWN_DETECTOR) if tag in runs else UNKNOWN_DETECTOR
    out[schema.AXIS_AUGPIPE] = _param(runs, schema.AXIS_AUGPIPE).fillna("n/a").astype(str)
    out[schema.AXIS_TARGET] = _param(runs, schema.AXIS_TARGET).map(_number).astype(float)
    out[schema.AXIS_SUBSET] = _param(runs, schema.AXIS_SUBSET).map(_number).astype(float)
    out[schema.AXIS_SEED] = _param(runs, schema.AXIS_SEED).map(_number).astype(float)
    model = _param(runs, schema.AXIS_MODEL)
    model_tag = f"tags.{schema.MODEL}"
    if model_tag in runs:
        model = model.fillna(runs[model_tag])
    out[schema.AXIS_MODEL] = model.fillna("n/a").astype(str)
    whole = _param(runs, schema.PARAM_DATASET_SIZE).map(_number).astype(float)
    out["size"] = out[schema.AXIS_SUBSET].fillna(whole)
    if "duration_s" in runs:
        out["duration_s"] = runs["duration_s"]
    return out.reset_index(drop=True)


def load_study(tracking_uri: str, experiment: str, *, keys=(schema.FID, schema.RECALL),
               detector: str | None = None, launch: str = "latest") -> StudyData:
    """Read a study from MLflow (see the module docstring for the frames).

    Parameters
    ----------
    tracking_uri, experiment : str
        Where the study was logged and its experiment name (the spec's ``name``).
    keys : sequence of str
        Metric keys whose full histories are read.
    detector : str, optional
        Keep only trials scored with this detector tag (needed when the study mixes detectors).
    launch : str
        ``"latest"`` (default: the trials of the most recent launch), ``"all"``, or a study run id.

    Raises
    ------
    MicrotuneError
        Unknown experiment, no trial runs, no successful trial, mixed detectors.
    """
    runs = mlflow_io.load_runs(tracking_uri, experiment, launch=launch)
    if runs.empty:
        raise MicrotuneError(f"MLflow experiment {experiment!r} has no trial runs at {tracking_uri}.")
    trials = trial_table(runs)
    status_tag = f"tags.{schema.TRIAL_STATUS}"
    failed = trials["status"].isin(FAILED_STATUSES)
    if status_tag in runs:
        failed |= runs[status_tag].fillna("").eq("FAILED").to_numpy()
    dropped = list(trials.loc[failed, "run_name"].fillna(trials.loc[failed, "run_id"]))
    if dropped:
        warnings.warn(f"ignoring {len(dropped)} failed trial(s) of {experiment!r}: {', '.join(map(str, dropped))}.",
                      UserWarning, stacklevel=2)
    trials = trials[~failed]
    if trials.empty:
        raise MicrotuneError(f"every trial of MLflow experiment {experiment!r} failed; there is nothing to analyse.")
    if detector is not None:
        trials = trials[trials["detector"] == detector]
        if trials.empty:
            raise MicrotuneError(f"no trial of {experiment!r} was scored with detector {detector!r}.")
    detectors = sorted(trials["detector"].unique())
    if len(detectors) > 1:
        raise MicrotuneError(f"experiment {experiment!r} mixes results of detectors {', '.join(detectors)}; "
                             "choose one with --detector.")
    trials = trials.reset_index(drop=True)
    history = mlflow_io.load_histories(tracking_uri, experiment, list(keys), run_ids=list(trials["run_id"]))
    history["kimg"] = history["step"] / 1000.0
    axis_cols = ["run_id", *schema.AXES, "size"]
    history = history.merge(trials[axis_cols], on="run_id", how="left")
    return StudyData(tracking_uri, experiment, trials, history, detectors[0], dropped)


# -- grouping ----------------------------------------------------------------------------------------
def group_order(values: pd.Series, axis: str) -> list:
    """The plotting order of an axis' values: the study's order for augpipe, ascending numbers with
    NaN (all images / fixed p) last, alphabetical otherwise."""
    unique = list(dict.fromkeys(values.tolist()))
    if axis == schema.AXIS_AUGPIPE:
        known = [v for v in AUGPIPE_ORDER if v in unique]
        return known + sorted(v for v in unique if v not in known)
    if values.dtype.kind == "f":
        numbers = sorted(v for v in unique if not (isinstance(v, float) and math.isnan(v)))
        return numbers + ([math.nan] if len(numbers) < len(unique) else [])
    return sorted(unique, key=str)


def group_label(value, axis: str, *, short: bool = False, tex: bool = True) -> str:
    """Legend text for one value of an axis (units where it has them); ``short``: tick text."""
    nan = isinstance(value, float) and math.isnan(value)
    if axis == schema.AXIS_TARGET:
        if nan:
            return "fixed p"
        return f"{value:g}" if short else (f"$r_t$ = {value:g}" if tex else f"r_t = {value:g}")
    if axis in (schema.AXIS_SUBSET, "size"):
        if nan:
            return "all"
        return f"{value:g}" if short else f"{value:g} images"
    if axis == schema.AXIS_SEED:
        return f"{value:g}" if short else f"seed {value:g}"
    return str(value)


def _key_of(value) -> object:
    """A hashable group key that treats NaN as one value."""
    return "__nan__" if isinstance(value, float) and math.isnan(value) else value


def curve_bands(history: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Per group value and step: min, median and max over the group's trials (seeds), and n.

    Returns
    -------
    pandas.DataFrame
        Columns ``group, step, kimg, min, median, max, n`` (``group`` holds the axis value).
    """
    frame = history.assign(_g=history[axis].map(_key_of))
    stats = frame.groupby(["_g", "step"], sort=True)["value"].agg(["min", "median", "max", "count"])
    stats = stats.rename(columns={"count": "n"}).reset_index()
    back = {_key_of(v): v for v in history[axis]}
    stats["group"] = stats["_g"].map(back)
    stats["kimg"] = stats["step"] / 1000.0
    return stats[["group", "step", "kimg", "min", "median", "max", "n"]]


def best_per_trial(history: pd.DataFrame, key: str) -> pd.DataFrame:
    """Each trial's best value of ``key`` (min if lower is better) and the kimg where it happened."""
    rows = history[(history["key"] == key) & history["value"].notna()]
    lower = key in schema.LOWER_IS_BETTER
    index = rows.groupby("run_id")["value"].idxmin() if lower else rows.groupby("run_id")["value"].idxmax()
    best = rows.loc[index.to_numpy()].rename(columns={"value": "best", "kimg": "best_kimg"})
    return best.drop(columns=["key", "step"]).reset_index(drop=True)


def best_summary(best: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Per group: median, min and max of the trials' best values, and n (Fig. 1b/2b/3b caps)."""
    frame = best.assign(_g=best[axis].map(_key_of))
    stats = frame.groupby("_g", sort=False)["best"].agg(["median", "min", "max", "count"])
    stats = stats.rename(columns={"count": "n"}).reset_index()
    back = {_key_of(v): v for v in best[axis]}
    stats["group"] = stats["_g"].map(back)
    order = [_key_of(v) for v in group_order(best[axis], axis)]
    stats["_rank"] = stats["_g"].map({k: i for i, k in enumerate(order)})
    stats = stats.sort_values("_rank").reset_index(drop=True)
    stats.insert(0, "label", [group_label(v, axis, tex=False) for v in stats["group"]])
    stats["tick"] = [group_label(v, axis, short=True) for v in stats["group"]]
    return stats[["label", "tick", "group", "median", "min", "max", "n"]]


def linear_fit(x, y) -> dict:
    """Least-squares line y = slope·x + intercept with R² = 1 − SS_res/SS_tot."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or np.unique(x).size < 2:
        raise MicrotuneError("a linear fit needs at least two distinct training-set sizes.")
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = ((y - y.mean()) ** 2).sum()
    r2 = 1.0 - (residual**2).sum() / total if total > 0 else 1.0
    return {"slope": float(slope), "intercept": float(intercept), "r2": float(r2), "n_points": int(len(x))}
