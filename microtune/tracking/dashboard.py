"""The MLflow UI address of a study: it opens on the study's trials with their curves charted.

MLflow 3.17's UI opens an experiment on its GenAI "Overview" unless told otherwise, shows the runs
table with child runs folded under their parent, and charts only the runs the table shows. Three
things it supports (read from its UI bundle, ``mlflow/server/js/build``) put a study's reader where
they want to be, with no click:

- the URL parameter ``workflowType=machine_learning``: the sidebar's "Model training" side (the
  same switch the user would flip; it is also remembered in the browser);
- a *saved view* of the runs page: an experiment tag ``mlflow.sharedViewState.<key>`` holding
  ``{"name", "createdAt", "updatedAt", "state"}``, ``state`` being the JSON of the page's search
  settings and UI state (what the page's "Save view" menu writes), opened by the URL parameter
  ``viewStateShareKey=<key>`` (the "Share" link). The state groups the runs by the tag
  ``microtune.role`` (group "trial": every trial visible; group "study": the launches' parent
  runs), shows all runs, charts each run on its own, and defines the study's charts: ``fid`` and
  ``recall`` against ``kimg`` (x axis = the metric ``kimg``), best values as bars;
- ``compareRunsMode=CHART``: the page's chart view.

The UI keeps what it loaded from a saved view until the user leaves it ("Exit shared view"); the
address needs no browser state and works for every user of the server. The key is derived from
the experiment id, so a study keeps one saved view, rewritten by each launch.

This module builds plain data; :meth:`microtune.tracking.mlflow_io.Tracker.set_experiment_tag`
writes the tag.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlencode

from microtune.tracking import schema

VIEW_TAG_PREFIX = "mlflow.sharedViewState."   # MLflow UI: saved/shared views of the runs page
VIEW_NAME = "microtune study"
EXPERIMENT_TAG_LIMIT = 5000                   # MLflow's limit on an experiment tag's value
# Runs a chart draws (MLflow's default is 10): the trials of a study plus its parent runs.
CHART_RUNS = 100


@dataclass(frozen=True)
class StudyView:
    """What a study's view charts and its summary table shows. The study's model family supplies it
    (``study_view(metrics)`` in :mod:`microtune.sweep.families`); this module names no family."""

    curves: tuple[str, ...]                     # metrics charted per run against ``x_metric``
    bars: tuple[str, ...]                       # best values, one bar per run
    x_metric: str | None                        # the x axis metric (e.g. kimg); None: the step
    answer: tuple[tuple[str, str], ...]         # (metric, "min"|"max") summarising a trial and the study
    progress: str | None = None                 # a result column showing how far a trial got (e.g. kimg)


def view_key(experiment_id: str) -> str:
    """The saved view's key for an experiment (stable: each launch rewrites the same view)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"microtune:study-view:{experiment_id}").hex


def _line(uuid_: str, section: str, metric: str, x_metric: str | None, runs: int) -> dict:
    chart = {"uuid": uuid_, "type": "LINE", "metricSectionId": section, "deleted": False, "isGenerated": False,
             "runsCountToCompare": runs, "metricKey": metric, "selectedMetricKeys": [metric],
             "displayName": metric, "lineSmoothness": 0, "scaleType": "linear", "xAxisScaleType": "linear",
             "range": {}, "yAxisKey": "metric", "yAxisExpressions": [], "ignoreOutliers": False,
             "useGlobalXaxisKey": False, "useGlobalLineSmoothing": False}
    chart.update({"xAxisKey": "metric", "selectedXAxisMetricKey": x_metric} if x_metric else
                 {"xAxisKey": "step", "selectedXAxisMetricKey": ""})
    return chart


def _bar(uuid_: str, section: str, metric: str, runs: int) -> dict:
    return {"uuid": uuid_, "type": "BAR", "metricSectionId": section, "deleted": False, "isGenerated": False,
            "runsCountToCompare": runs, "metricKey": metric, "displayName": metric}


def view_state(view: StudyView) -> dict:
    """The runs page's state (search settings + UI state) of a study's saved view."""
    curves, bars, x_metric = view.curves, view.bars, view.x_metric
    section, rest, system = (uuid.uuid5(uuid.NAMESPACE_URL, f"microtune:section:{n}").hex
                             for n in ("study", "model", "system"))
    charts = [_line(uuid.uuid5(uuid.NAMESPACE_URL, f"microtune:line:{m}").hex, section, m, x_metric, CHART_RUNS)
              for m in curves]
    charts += [_bar(uuid.uuid5(uuid.NAMESPACE_URL, f"microtune:bar:{m}").hex, section, m, CHART_RUNS) for m in bars]
    sections = [
        {"uuid": section, "name": "Study: trials against " + (x_metric or "step"), "display": True,
         "isReordered": True, "deleted": False, "isGenerated": False},
        # every other metric gets a chart here ("Model metrics" is where the UI files them)
        {"uuid": rest, "name": "Model metrics", "display": True, "isReordered": False, "deleted": False,
         "isGenerated": True},
        {"uuid": system, "name": "System metrics", "display": False, "isReordered": False, "deleted": False,
         "isGenerated": True},
    ]
    return {
        # search settings (the UI fills in the rest with its defaults)
        "searchFilter": "", "orderByKey": "attributes.start_time", "orderByAsc": False, "startTime": "ALL",
        "lifecycleFilter": "Active", "datasetsFilter": [],
        # UI state
        "groupBy": {"aggregateFunction": "min",
                    "groupByKeys": [{"mode": "tag", "groupByData": schema.ROLE}]},
        "groupsExpanded": {}, "useGroupedValuesInCharts": False, "runsHiddenMode": "SHOW_ALL",
        "hideEmptyCharts": True, "compareRunCharts": charts, "compareRunSections": sections,
        "isAccordionReordered": True, "viewMaximized": False, "runListHidden": False,
        "globalLineChartConfig": {"xAxisKey": "metric" if x_metric else "step", "lineSmoothness": 0,
                                  "selectedXAxisMetricKey": x_metric or ""},
    }


def view_tag(experiment_id: str, view: StudyView, now_ms: int) -> tuple[str, str, str]:
    """(share key, tag key, tag value) of the study's saved view."""
    key = view_key(experiment_id)
    value = json.dumps({"name": VIEW_NAME, "createdAt": now_ms, "updatedAt": now_ms,
                        "state": json.dumps(view_state(view), separators=(",", ":"))},
                       separators=(",", ":"))
    if len(value) > EXPERIMENT_TAG_LIMIT:  # a programming error: the state is a fixed, small structure
        raise ValueError(f"the saved view is {len(value)} characters; MLflow keeps at most {EXPERIMENT_TAG_LIMIT}")
    return key, VIEW_TAG_PREFIX + key, value


def ui_base(tracking_uri: str) -> str | None:
    """The UI's base address for an http(s) tracking URI; None for a database URI."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    return tracking_uri.rstrip("/")


def study_url(tracking_uri: str, experiment_id: str) -> str | None:
    """The address that opens a study: its runs grouped by role, trials charted against kimg."""
    base = ui_base(tracking_uri)
    if base is None:
        return None
    query = urlencode({"viewStateShareKey": view_key(experiment_id), "compareRunsMode": "CHART",
                       "workflowType": "machine_learning"})
    return f"{base}/#/experiments/{experiment_id}/runs?{query}"


def run_url(tracking_uri: str, experiment_id: str, run_id: str, artifact: str | None = None) -> str | None:
    """The address of one run's artifacts, with ``artifact`` (a run-relative path) open: a table
    artifact shows as a table, an image as the image."""
    base = ui_base(tracking_uri)
    if base is None or run_id.startswith("local-"):
        return None
    path = f"/{artifact}" if artifact else ""
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}/artifacts{path}?workflowType=machine_learning"


# -- the study's answer on its parent run -------------------------------------------------------------
def summary_frame(records: Iterable[dict], view: StudyView, axes: Iterable[str]):
    """The study's summary table: one row per trial.

    ``records``: dicts with ``trial`` (id), ``name`` (the trial run's name), ``axes`` (the trial's
    overrides incl. ``seed``), ``result`` (Tune's last result: best-so-far values, ``kimg``), and
    ``state`` (FINISHED, STOPPED, FAILED, RUNNING, PENDING). Columns: ``trial``, the axes, the
    best values (``view.answer``), the progress column (``view.progress``, e.g. ``kimg``), ``state``, ``run``.
    """
    import pandas as pd

    axes = list(axes)
    metrics = [m for m, _ in view.answer]
    progress = [view.progress] if view.progress else []
    rows = []
    for rec in records:
        result, row = rec.get("result") or {}, {"trial": rec["trial"]}
        for axis in axes:
            value = rec.get("axes", {}).get(axis)
            row[axis] = value if value is None or isinstance(value, (int, float, str, bool)) else str(value)
        for metric in metrics:
            value = result.get(metric)
            row[metric] = float(value) if value is not None else None
        for column in progress:
            row[column] = result.get(column)
        row["state"] = rec.get("state", "")
        row["run"] = rec.get("name") or ""
        rows.append(row)
    columns = ["trial", *axes, *metrics, *progress, "state", "run"]
    return pd.DataFrame(rows, columns=columns).sort_values("trial", kind="stable").reset_index(drop=True)


def study_best(frame, view: StudyView) -> dict[str, tuple[float, str]]:
    """metric -> (the study's best value, the trial that reached it), over trials that did not fail."""
    ok = frame[frame["state"] != "FAILED"]
    best = {}
    for metric, mode in view.answer:
        values = ok[metric].dropna() if metric in ok else []
        if len(values):
            index = values.idxmin() if mode == "min" else values.idxmax()
            best[metric] = (float(values[index]), str(ok.loc[index, "trial"]))
    return best
