"""Model families as plug-ins (issue 13): a toy family registered here runs a real study through the
real runner (real Ray, the real MLflow server); the segmentation trial imports without the GAN trial.

The toy family's trial measures a closed form of its options, ``toy_loss = (x - 0.3)² + y``, so the
test can recompute every logged value from the run's params: if an override is lost on its way
(spec → Ray config → overrides → resolved options), the numbers disagree.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from microtune.sweep import families, runner, space
from microtune.sweep.commands import format_status
from microtune.sweep.contract import RUN_ID_KEY, open_trial
from microtune.sweep.spec import SpecError, parse_spec
from microtune.tracking import mlflow_io
from tests.conftest import REPO, microtune_cmd

TOY_METRIC = "toy_loss"


def toy_loss(x: float, y: float) -> float:
    return (x - 0.3) ** 2 + y


class ToyFamily(families.Family):
    """Two float options; a trial reports toy_loss at steps 1 and 2 (the second halves y)."""

    name = "toy"
    default_objective = (TOY_METRIC, "min")
    objective_metrics = (TOY_METRIC,)
    no_asha = "toy trials have no budget"
    no_metric_protocols = "toy trials measure toy_loss"
    option_noun = "a toy option"

    def option_keys(self) -> set[str]:
        return {"x", "y"}

    def validate(self, spec, *, check_dataset: bool) -> None:
        for key, value in spec.train.items():
            self._number(spec, f"train.{key}", value)
        for key, values in spec.grid.items():
            for i, value in enumerate(values):
                self._number(spec, f"search.params.{key}[{i}]", value)
        for i, arm in enumerate(spec.arms):
            for key, value in arm.items():
                self._number(spec, f"search.arms[{i}].{key}", value)

    @staticmethod
    def _number(spec, where: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            families.fail(spec, where, f"must be a number, got {value!r}")

    def resolve_options(self, spec, overrides: dict[str, Any], **facts: Any) -> dict[str, Any]:
        return {"x": 0.0, "y": 0.0, **spec.train, **overrides}

    def produced_metrics(self, spec) -> set[str]:
        return {TOY_METRIC}

    def study_view(self, metrics: set[str]):
        from microtune.tracking.dashboard import StudyView

        return StudyView(curves=(TOY_METRIC,), bars=(), x_metric=None, answer=((TOY_METRIC, "min"),))

    def run_trial(self, overrides, ctx, session) -> dict[str, float]:
        options = self.resolve_options(ctx.spec, overrides)
        trial = open_trial(ctx, session, overrides)
        run_id = trial.tracker.start_trial_run(ctx.spec.name, parent_run_id=ctx.parent_run_id, name=trial.name,
                                               tags=trial.tags(ctx, model=self.name), params=options)
        for step in (1, 2):
            metrics = {TOY_METRIC: toy_loss(options["x"], options["y"] / step)}
            trial.tracker.log_metrics(run_id, metrics, step=step)
            session.report({**metrics, RUN_ID_KEY: run_id}, None)
        trial.tracker.end_run(run_id, "FINISHED")
        trial.tracker.flush()
        return metrics


@pytest.fixture
def toy():
    family = families.register(ToyFamily())
    yield family
    families.unregister("toy")


def toy_spec(dataset: Path, name: str = "toy", search: dict | None = None) -> dict:
    """Two grid values of x crossed with train.y = 0.5, and one arm setting both."""
    search = search or {"method": "grid", "seeds": [0], "params": {"x": [0.1, 0.3]}, "arms": [{"x": 0.9, "y": 0.0}]}
    return {"name": name, "model": "toy", "dataset": str(dataset), "train": {"y": 0.5}, "search": search,
            "resources": {"cpu": 1, "gpu": 0}, "max_concurrent": 2}


def test_registry_lists_and_refuses_by_name(toy, tmp_path):
    assert families.names() == ("stylegan2", "dcgan", "hptl", "toy")
    assert families.get("toy") is toy
    from microtune.sweep import spec as spec_module

    assert spec_module.MODELS == families.names() and TOY_METRIC in spec_module.OBJECTIVE_METRICS
    with pytest.raises(SpecError, match=r"^'vae' is not a model family; registered: stylegan2, dcgan, hptl, toy\.$"):
        families.get("vae")
    # the spec asks the toy family: its options, its messages, its default objective, its refusals
    spec = parse_spec(toy_spec(tmp_path, search={"method": "optuna", "params": {"x": [0.1, 0.2]}}), source="t.yaml")
    assert [(o.metric, o.mode) for o in spec.objectives] == [(TOY_METRIC, "min")]
    for mutation, phrase in [
        ({"train": {"z": 1}}, "t.yaml: train.z: is not a toy option."),
        ({"search": {"params": {"x": [0.1, "a"]}}}, "t.yaml: search.params.x[1]: must be a number, got 'a'."),
        ({"search": {"arms": [{"y": "b"}]}}, "t.yaml: search.arms[0].y: must be a number, got 'b'."),
        ({"metrics": {"protocols": ["fid32_full"]}}, "t.yaml: metrics: does not apply to model: toy (toy trials "
                                                     "measure toy_loss)."),
    ]:
        with pytest.raises(SpecError) as info:
            parse_spec({**toy_spec(tmp_path), **mutation}, source="t.yaml")
        assert str(info.value) == phrase
    families.unregister("toy")
    with pytest.raises(SpecError, match="model: must be one of stylegan2, dcgan, hptl, got 'toy'"):
        parse_spec(toy_spec(tmp_path), source="t.yaml")


def test_a_toy_family_runs_a_real_study(toy, sweep_project, sweep_server, tmp_path):
    import ray

    spec = parse_spec(toy_spec(sweep_project / "ds", name="toyfamily"), source="toyfamily.yaml")
    assert spec.grid_trials() == [{"x": 0.1, "seed": 0}, {"x": 0.3, "seed": 0}, {"x": 0.9, "y": 0.0, "seed": 0}]
    assert "metrics    toy_loss" in space.describe(spec)
    storage = tmp_path / "sweeps"
    try:
        rc = runner.launch(spec, project_dir=tmp_path, tracking_uri=sweep_server.uri, storage=str(storage),
                           report=False, force=True)
    finally:
        ray.shutdown()
    assert rc == 0
    # Tune's config of every trial is exactly the trial's overrides (no wrapper), named readably
    trial_dirs = sorted(p for p in (storage / "toyfamily").iterdir() if (p / "params.json").is_file())
    configs = [json.loads((p / "params.json").read_text()) for p in trial_dirs]
    assert sorted(configs, key=lambda c: c["x"]) == spec.grid_trials()
    assert any("config=x_0_9_y_0_0_seed_0" in p.name for p in trial_dirs), [p.name for p in trial_dirs]
    # child runs: params are the resolved options; the metric is the closed form of those params
    runs = mlflow_io.load_runs(sweep_server.uri, "toyfamily", launch="latest")
    assert len(runs) == 3 and set(runs["status"]) == {"FINISHED"}
    resolved = sorted((float(r["params.x"]), float(r["params.y"])) for _, r in runs.iterrows())
    assert resolved == [(0.1, 0.5), (0.3, 0.5), (0.9, 0.0)]  # train.y = 0.5 reached the axis trials, not the arm
    for _, run in runs.iterrows():
        x, y = float(run["params.x"]), float(run["params.y"])
        assert run[f"metrics.{TOY_METRIC}"] == pytest.approx(toy_loss(x, y / 2))  # the last report, step 2
        assert run["tags.model"] == "toy" and run["run_name"].startswith(run["tags.trial_id"] + " ")
    # run names: "<trial id> <the trial's overrides>" (microtune.sweep.contract.trial_run_name)
    assert {name.split(" ", 1)[1] for name in runs["run_name"]} == \
        {"-".join(f"{k}={v}" for k, v in t.items()) for t in spec.grid_trials()}
    # the study's answer on the parent run: the best toy_loss over trials, (0.3 - 0.3)² + 0.5 / 2
    parents = mlflow_io.load_runs(sweep_server.uri, "toyfamily", role="study").sort_values("start_time")
    assert parents[f"metrics.{TOY_METRIC}"].iloc[-1] == pytest.approx(0.25)
    rows = runner.status_rows("toyfamily", project_dir=tmp_path, storage=str(storage))
    assert " ".join(r["config"] for r in rows).count("seed=0") == 3
    # `sweep status` shows the family's columns (here its objective metric), not GAN or segmentation ones
    assert list(rows[0]) == ["trial", "state", TOY_METRIC, "failures", "config"]
    assert sorted(r[TOY_METRIC] for r in rows) == pytest.approx(sorted(runs[f"metrics.{TOY_METRIC}"]))
    assert format_status(rows).splitlines()[0].split() == ["trial", "state", TOY_METRIC, "failures", "config"]


def test_segmentation_trial_imports_without_the_gan_trial():
    code = ("import sys, microtune.sweep.seg_trial; "
            "print('microtune.sweep.gan_trial' in sys.modules, 'torch' in sys.modules, 'ray' in sys.modules)")
    out = subprocess.run([microtune_cmd()[0], "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.stdout.strip() == "False False False", out.stderr
    # and the GAN trial module is the one a GAN family runs (it is importable on its own)
    code = "import sys, microtune.sweep.gan_trial; print('microtune.sweep.seg_trial' in sys.modules)"
    out = subprocess.run([microtune_cmd()[0], "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
