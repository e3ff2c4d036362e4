"""Issue 13: a training option set in a spec reaches the trainer through one resolve function.

The ADA target goes YAML -> spec -> Ray config -> trial overrides -> resolved options -> the loop's
:class:`~microtune.gan.ada.AdaController`; these tests read the controller the training loop builds
(``loop.build_state``, the constructor ``loop.train`` calls), so they fail if a hop drops the value.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from microtune.data.dataset import Dataset, DatasetWriter
from microtune.sweep import families, space
from microtune.sweep.spec import load_spec
from tests.conftest import microtune_cmd


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "ds"
    rng = np.random.default_rng(0)
    with DatasetWriter(out, resolution=32) as writer:
        for i in range(16):
            writer.add(rng.integers(0, 256, (32, 32), dtype=np.uint8), {"specimen": f"S{i % 4}"})
        writer.commit()
    return out


def _spec(tmp_path: Path, dataset: Path, train: dict, params: dict) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"name": "flow", "dataset": str(dataset), "train": {"cfg": "tiny", "kimg": 1, **train},
                                    "search": {"method": "grid", "seeds": [0], "params": params}}))
    return path


def _controllers(spec_path: Path):
    """(augpipe, target, p) of the AdaController the training loop builds for every trial of the spec."""
    import torch

    from microtune.gan.loop import build_state

    spec = load_spec(spec_path)
    resolution = Dataset.open(spec.dataset).resolution
    out = []
    for config in spec.grid_trials():  # what the runner hands to Ray, one per trial
        options = families.get(spec.model).resolve_options(spec, space.trial_overrides(spec, config), resolution=resolution)
        ada = build_state(options, torch.device("cpu")).ada
        out.append((options.augpipe, ada.target, float(ada.p)))
    return out


def test_ada_target_from_a_spec_reaches_the_controller(tmp_path, dataset):
    # 0.35 / 0.45 / 0.75: none is a default anywhere (ADA: 0.6); the study's axis values come from spec.grid
    axis = _spec(tmp_path, dataset, {}, {"ada_target": [0.35, 0.75]})
    assert _controllers(axis) == [("bg", 0.35, 0.0), ("bg", 0.75, 0.0)]
    fixed = _spec(tmp_path, dataset, {"ada_target": 0.45, "augpipe": "geom"}, {"gamma": [0.5]})
    assert _controllers(fixed) == [("geom", 0.45, 0.0)]
    # augpipe none crossed with a target axis: no augmentation, so no target and p stays 0
    crossed = _spec(tmp_path, dataset, {}, {"augpipe": ["none", "bg"], "ada_target": [0.35]})
    assert _controllers(crossed) == [("none", None, 0.0), ("bg", 0.35, 0.0)]


@pytest.mark.parametrize(("train", "message"), [
    ({"gamma": "x"}, "train.gamma: must be a number, got 'x'."),
    ({"augpipe": "none", "ada_target": 0.5}, "train.ada_target: 0.5 is given but augpipe is none"),
])
def test_dry_run_refuses_bad_train_options(tmp_path, dataset, train, message):
    path = _spec(tmp_path, dataset, train, {"kimg": [1]})
    result = subprocess.run(microtune_cmd("sweep", "launch", str(path), "--dry-run"), capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"microtune: error: {path}: {message}"), lines


def test_a_target_axis_crossed_with_none_is_refused_as_duplicate_trials(tmp_path, dataset):
    """augpipe none × two targets would train one configuration twice (the none trials have no
    target): refused at --dry-run, pointing at search.arms; one target crossed with none is fine."""
    from microtune.sweep.spec import SpecError

    path = _spec(tmp_path, dataset, {}, {"augpipe": ["none", "bg"], "ada_target": [0.35, 0.75]})
    with pytest.raises(SpecError, match=r"search.params: the configurations \{'ada_target': 0.35, 'augpipe': 'none'\} "
                                        r"and \{'ada_target': 0.75, 'augpipe': 'none'\} train the same options "
                                        r"\(augpipe none has no ADA target; list a no-augmentation baseline once, in search.arms\)"):
        load_spec(path)
    arms = yaml.safe_load(path.read_text())
    arms["search"] = {"method": "grid", "seeds": [0], "params": {"ada_target": [0.35, 0.75]}, "arms": [{"augpipe": "none"}]}
    path.write_text(yaml.safe_dump(arms))
    assert _controllers(path) == [("bg", 0.35, 0.0), ("bg", 0.75, 0.0), ("none", None, 0.0)]


def test_grid_configs_of_earlier_versions_still_resolve(tmp_path, dataset):
    """Studies launched before the wrapper went held {"trial": overrides} as a grid trial's Ray config;
    `sweep resume` restores those configs, so they must still give the same overrides."""
    spec = load_spec(_spec(tmp_path, dataset, {}, {"ada_target": [0.35, 0.75]}))
    for trial in spec.grid_trials():
        assert space.trial_overrides(spec, {"trial": dict(trial)}) == trial == space.trial_overrides(spec, dict(trial))


@pytest.mark.parametrize(("train", "params", "message"), [
    ({"snapshot_every_kimg": 2}, {"gamma": [1.0]}, "train.snapshot_every_kimg: is set by the study"),
    ({}, {"eval_every_kimg": [1, 2]}, "search.params.eval_every_kimg: cannot vary between trials"),
])
def test_options_the_study_sets_are_refused_not_replaced(tmp_path, dataset, train, params, message):
    from microtune.sweep.spec import SpecError

    with pytest.raises(SpecError, match=message):
        load_spec(_spec(tmp_path, dataset, train, params))
