"""The dashboard review step: the address a launch prints opens the study in MLflow's UI with its
trials listed and FID charted against kimg, and the parent run holds the study's answer.

A real tiny study (augpipe × seed, 4 trials of 0.2 kimg, like ``make demo``'s 2 × 2 quickstart: the
session's ``dash_study`` of tests/sweep/conftest.py, which test_sweep_e2e.py reads too) runs with a real
MLflow server on 127.0.0.1; the page is rendered by headless Chromium (skipped where
there is none: Debian's ``apt-get install chromium``). The screenshot is kept in tests/output/.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from microtune.sweep import families
from microtune.tracking import dashboard, mlflow_io, schema
from tests.sweep.conftest import run_cli, write_spec

OUTPUT = Path(__file__).resolve().parents[1] / "output"
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
UI_BUNDLE = Path(__import__("mlflow").__file__).parent / "server" / "js" / "build" / "static" / "js"


@pytest.fixture(scope="module")
def study(dash_study):
    """The 2 × 2 grid launch (augpipe none/bg × seeds 0, 1) the session shares: its log and record."""
    return dash_study


def _chromium(url: str, *args: str, timeout: float = 120) -> str:
    profile = tempfile.mkdtemp(prefix="microtune-chromium-")
    try:
        result = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                                 "--disable-sync", f"--user-data-dir={profile}", "--window-size=1600,1000",
                                 *args, url], capture_output=True, text=True, timeout=timeout)
        return result.stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _chart(dom: str, title: str) -> str:
    """The markup of the chart card titled ``title`` (up to the next card's title)."""
    start = dom.find(f'title="{title}">{title}</h4>')
    assert start >= 0, f"no chart titled {title!r} on the page"
    end = dom.find("<h4", start + 10)
    return dom[start:end if end > 0 else len(dom)]


def _plotted_points(card: str) -> list[int]:
    """Data points drawn per line of a Plotly chart (its scatter traces' ``path.point`` markers;
    traces without points, the UI's hover overlays, are left out)."""
    counts = [trace.count('class="point"') for trace in card.split('<g class="trace scatter')[1:]]
    return [n for n in counts if n]


def test_view_uses_what_the_installed_mlflow_ui_reads():
    """The names the study view relies on are in MLflow's UI bundle (a newer MLflow that renames
    them breaks this test, not silently the address)."""
    bundle = "".join(p.read_text(errors="replace") for p in UI_BUNDLE.glob("*.js"))
    for name in ('"viewStateShareKey"', '"mlflow.sharedViewState."', '"compareRunsMode"', '"workflowType"',
                 '"machine_learning"', 'e.MACHINE_LEARNING="machine_learning"'):
        assert name in bundle, name
    persisted = re.search(r'\["selectedColumns",[^\]]*\]', bundle).group(0)  # the UI state a saved view restores
    state = dashboard.view_state(families.get("stylegan2").study_view({"fid", "recall", "precision"}))
    search_keys = {"searchFilter", "orderByKey", "orderByAsc", "startTime", "lifecycleFilter", "datasetsFilter"}
    for key in set(state) - search_keys:
        assert f'"{key}"' in persisted, key
    for chart in state["compareRunCharts"]:
        assert chart["type"] in ("LINE", "BAR") and f'e.{chart["type"]}="{chart["type"]}"' in bundle
    curves = [c for c in state["compareRunCharts"] if c["type"] == "LINE"]
    assert [c["metricKey"] for c in curves] == ["fid", "recall", "precision"]
    assert {(c["xAxisKey"], c["selectedXAxisMetricKey"]) for c in curves} == {("metric", "kimg")}
    assert state["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": schema.ROLE}]
    view = families.get("stylegan2").study_view({"fid", "recall"})
    key, tag, value = dashboard.view_tag("7", view, 0)
    assert tag == "mlflow.sharedViewState." + key and len(value) <= dashboard.EXPERIMENT_TAG_LIMIT
    assert json.loads(json.loads(value)["state"]) == dashboard.view_state(view)
    url = dashboard.study_url("http://127.0.0.1:5000/", "7")
    assert url == (f"http://127.0.0.1:5000/#/experiments/7/runs?viewStateShareKey={key}"
                   "&compareRunsMode=CHART&workflowType=machine_learning")
    assert dashboard.study_url("sqlite:////tmp/mlflow.db", "7") is None


@needs_chromium
def test_printed_address_shows_the_trials_and_fid_against_kimg(study):
    printed = re.findall(r"MLflow study view: (\S+)", study["log"])
    assert len(printed) == 2, study["log"]                      # at the start and at the end of the launch
    url = printed[-1]
    record = study["record"]
    assert url == dashboard.study_url(study["uri"], record["experiment_id"])
    trials = mlflow_io.load_runs(study["uri"], "dash", launch="latest")
    assert len(trials) == 4
    for attempt, budget in enumerate((20000, 40000, 80000)):  # the page loads its charts lazily
        dom = _chromium(url, f"--virtual-time-budget={budget}", "--dump-dom")
        missing = [name for name in trials["run_name"] if name not in dom]
        lines = _plotted_points(_chart(dom, "fid")) if 'title="fid"' in dom else []
        if not missing and len(lines) == 4:
            break
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "dashboard.html").write_text(dom)                 # the rendered page, for a failure's reader
    assert not missing, f"trial runs not listed on the page: {missing}"
    fid = _chart(dom, "fid")
    assert _plotted_points(fid) == [2, 2, 2, 2]                 # 4 trials, evaluations at kimg 0.112 and 0.208
    assert ">kimg<" in fid                                      # the x axis is the kimg metric, not the step
    assert "Group: trial" in re.sub(r"<[^>]+>", "", dom)       # children not folded under the parent run
    shot = OUTPUT / "dashboard.png"
    shot.unlink(missing_ok=True)
    _chromium(url, "--virtual-time-budget=40000", f"--screenshot={shot}")
    with Image.open(shot) as image:
        assert image.size == (1600, 1000) and np.asarray(image.convert("L")).std() > 20
    # the second address opens the parent run's summary table, rendered as a table
    answer = re.findall(r"MLflow study answer \(summary table; figures under analysis/\): (\S+)", study["log"])[-1]
    assert answer == dashboard.run_url(study["uri"], record["experiment_id"], record["parent_run_id"],
                                       schema.ARTIFACT_SUMMARY)
    for budget in (20000, 40000):
        page = re.sub(r"<[^>]+>", " ", _chromium(answer, f"--virtual-time-budget={budget}", "--dump-dom"))
        if "View as table" in page and all(t.split()[0] in page for t in trials["run_name"]):
            break
    assert "View as table" in page and "best_fid" in page
    assert all(t.split()[0] in page for t in trials["run_name"])    # one row per trial (its Tune id)


def test_parent_run_holds_the_studys_answer(study, sweep_project, tmp_path, request):
    import mlflow
    from mlflow.tracking import MlflowClient

    uri, record = study["uri"], study["record"]
    client = MlflowClient(uri)
    parent = client.get_run(record["parent_run_id"])
    trials = mlflow_io.load_runs(uri, "dash", launch="latest").set_index("run_name")
    previous = mlflow.get_tracking_uri()  # load_table searches runs with the global URI (MLflow 3.17)
    mlflow.set_tracking_uri(uri)
    request.addfinalizer(lambda: mlflow.set_tracking_uri(previous))
    table = client.load_table(record["experiment_id"], schema.ARTIFACT_SUMMARY,         # with the global URI
                              run_ids=[parent.info.run_id])
    assert len(table) == 4 and set(table["state"]) == {"FINISHED"}
    assert list(table.columns) == ["trial", "augpipe", "seed", "best_fid", "best_recall", "kimg", "state", "run"]
    assert {(a, s) for a, s in zip(table["augpipe"], table["seed"])} == {("none", 0), ("none", 1), ("bg", 0), ("bg", 1)}
    for _, row in table.iterrows():                              # the same numbers as each trial's own run
        run = trials.loc[row["run"]]
        assert row["best_fid"] == pytest.approx(run["metrics.best_fid"])
        assert row["best_recall"] == pytest.approx(run["metrics.best_recall"])
        assert row["kimg"] == pytest.approx(0.208) == run["metrics.kimg"]
    metrics = parent.data.metrics
    assert metrics["best_fid"] == pytest.approx(trials["metrics.best_fid"].min())
    assert metrics["best_recall"] == pytest.approx(trials["metrics.best_recall"].max())
    assert metrics[schema.TRIALS_DONE] == 4 and metrics[schema.TRIALS_FAILED] == 0
    assert parent.data.tags["best_fid_trial"] == trials["metrics.best_fid"].idxmin()
    files = set(mlflow_io.list_artifacts(uri, parent.info.run_id))
    assert {"spec/dash.yaml", "spec/resolved_spec.json", schema.ARTIFACT_SUMMARY} <= files
    for name in ("augmentations", "pareto", "importance"):
        assert {f"analysis/{name}.png", f"analysis/{name}.pdf"} <= files, name
    assert "analysis/index.html" in files and "analysis/importance.csv" in files
    importance = {k: v for k, v in metrics.items() if k.startswith("importance.best_fid.")}
    assert set(importance) == {"importance.best_fid.augpipe", "importance.best_fid.seed"}
    assert math.isclose(sum(importance.values()), 1.0, abs_tol=1e-6)
    png = mlflow_io.download_artifact(uri, parent.info.run_id, "analysis/importance.png", tmp_path)
    with Image.open(png) as image:
        assert image.format == "PNG" and np.asarray(image.convert("L")).std() > 10
    assert json.loads(parent.data.tags[schema.LOGGED_ARTIFACTS]) == [{"path": schema.ARTIFACT_SUMMARY, "type": "table"}]
    status = run_cli(sweep_project, "sweep", "status", "dash", log_name="dash-status.log")[1]
    assert f"MLflow study view: {dashboard.study_url(uri, record['experiment_id'])}" in status


def test_optuna_study_is_kept_in_an_optuna_storage(pareto_study):
    """The session's multi-objective Optuna study (tests/sweep/conftest.py), launched with
    ``--optuna-storage``: Optuna's own storage holds what each trial reported."""
    import optuna

    log, record, storage, uri = pareto_study["log"], pareto_study["record"], pareto_study["storage"], pareto_study["uri"]
    assert record["optuna_storage"] == storage and f"optuna-dashboard {storage}" in log
    ot = optuna.load_study(study_name=record["optuna_study"], storage=storage)
    done = [t for t in ot.trials if t.state == optuna.trial.TrialState.COMPLETE]
    runs = mlflow_io.load_runs(uri, "pareto", launch="latest")
    assert len(done) == 3 and len(runs) == 3
    # what OptunaSearch told Optuna: each trial's last fid and recall (the two objectives), at the
    # r_t and augpipe it sampled, trial by trial
    told = sorted((t.values[0], t.values[1], t.params["ada_target"], t.params["augpipe"]) for t in done)
    logged = sorted(zip(runs["metrics.fid"], runs["metrics.recall"], runs["params.ada_target"].astype(float),
                        runs["params.augpipe"]))
    assert [row[3] for row in told] == [row[3] for row in logged]
    assert [x for row in told for x in row[:3]] == pytest.approx([x for row in logged for x in row[:3]])
    parent = mlflow_io.load_runs(uri, "pareto", role="study").set_index("run_id").loc[record["parent_run_id"]]
    assert parent[f"tags.{schema.OPTUNA_STORAGE}"] == storage and parent[f"tags.{schema.OPTUNA_STUDY}"] == record["optuna_study"]


def test_bad_optuna_storage_is_refused_before_anything_starts(sweep_project):
    spec = write_spec(sweep_project, "dash_bad", search={"method": "optuna", "seeds": [0], "num_samples": 1,
                                                         "params": {"ada_target": {"type": "float", "low": 0.3, "high": 0.9}}})
    rc, log = run_cli(sweep_project, "sweep", "launch", str(spec), "--force", "--optuna-storage", "nosuchdb://x/y",
                      log_name="dash-bad.log", timeout=120)
    assert rc == 1 and "cannot open the Optuna storage 'nosuchdb://x/y'" in log and "Traceback" not in log, log
    assert not (sweep_project / "runs" / "sweeps" / "dash_bad").exists()
    grid = write_spec(sweep_project, "dash_bad_grid")
    rc, log = run_cli(sweep_project, "sweep", "launch", str(grid), "--force", "--optuna-storage", "sqlite:///x.db",
                      log_name="dash-bad-grid.log", timeout=120)
    assert rc == 1 and "--optuna-storage applies to Optuna studies only" in log and "Traceback" not in log, log
