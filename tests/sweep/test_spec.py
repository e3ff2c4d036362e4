"""Study specs: every shipped spec validates and dry-runs; every bad spec is refused by field."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from microtune.data.dataset import DatasetWriter
from microtune.sweep import space
from microtune.sweep.spec import SpecError, load_spec, parse_spec
from tests.conftest import REPO, microtune_cmd

SHIPPED = sorted((REPO / "sweeps").glob("*.yaml"))


@pytest.fixture(scope="module")
def big_dataset(tmp_path_factory) -> Path:
    """3000 tiny images from 30 specimens: enough for the study's largest subset (3000)."""
    out = tmp_path_factory.mktemp("ds") / "ds3000"
    rng = np.random.default_rng(0)
    with DatasetWriter(out, resolution=32) as writer:
        for i in range(3000):
            writer.add(rng.integers(0, 256, (32, 32), dtype=np.uint8), {"specimen": f"S{i % 30}"})
        writer.commit()
    return out


@pytest.fixture(scope="module")
def mask_dataset(tmp_path_factory) -> Path:
    """8 tiny images with 3-class masks from 4 specimens: what a model: hptl spec needs."""
    out = tmp_path_factory.mktemp("ds") / "masks"
    rng = np.random.default_rng(0)
    with DatasetWriter(out, resolution=32, with_masks=True) as writer:
        for i in range(8):
            writer.add(rng.integers(0, 256, (32, 32), dtype=np.uint8), {"specimen": f"S{i % 4}", "source": f"im{i}.png"},
                       rng.integers(0, 3, (32, 32), dtype=np.uint8))
        writer.commit(class_names=["a", "b", "c"])
    return out


def base(dataset: Path) -> dict:
    return {"name": "t", "dataset": str(dataset), "train": {"cfg": "tiny", "kimg": 1},
            "search": {"method": "grid", "seeds": [0, 1], "params": {"augpipe": ["bg"], "ada_target": [0.5, 0.6]}},
            "metrics": {"protocols": ["fid100_full", "pr100_full"], "detector": "random-seed:0", "eval_every_kimg": 0.5}}


def test_shipped_specs_exist():
    names = {p.stem for p in SHIPPED}
    assert {"quickstart", "augmentations", "target_rt", "dataset_size", "rt_asha", "fid_recall_pareto",
            "dcgan_baseline", "hptl_depths"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_spec_validates_and_dry_runs(path, big_dataset, mask_dataset):
    raw = yaml.safe_load(path.read_text())
    split = raw.get("train", {}).get("split", "")
    if split.startswith("lists:") and not all((REPO / f).is_file() for f in split[6:].split(",")):
        pytest.skip(f"{path.name} uses the UHCS split lists of ../shared (absent here)")
    dataset = mask_dataset if raw.get("model") == "hptl" else big_dataset
    result = subprocess.run(microtune_cmd("sweep", "launch", str(path), "--dataset", str(dataset), "--dry-run"),
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    spec = load_spec(path, check_dataset=False)
    assert f"study      {spec.name}" in result.stdout
    if spec.method == "grid":
        assert f"grid: {spec.trial_count()} trials" in result.stdout


def test_study_axes_of_the_paper_specs():
    figs = {p.stem: load_spec(p, check_dataset=False) for p in SHIPPED}
    assert figs["augmentations"].grid["augpipe"] == ("none", "blit", "geom", "color", "filter", "noise", "cutout")
    assert figs["augmentations"].train["lumaflip"] is False and figs["augmentations"].seeds == (0, 1, 2)
    assert figs["target_rt"].grid["ada_target"] == (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    assert figs["dataset_size"].grid["subset"] == (10, 50, 100, 500, 1000, 3000)
    assert figs["dataset_size"].train["ada_target"] == 0.5
    assert all(figs[n].train["kimg"] == 25000 for n in ("augmentations", "target_rt", "dataset_size"))
    assert [o.metric for o in figs["fid_recall_pareto"].objectives] == ["fid", "recall"]
    assert figs["rt_asha"].scheduler == "asha"
    gpu_specs = [s for s in figs.values() if s.train.get("device") == "cuda"]
    assert gpu_specs and all(s.gpu == 1 for s in gpu_specs)


def test_proxy_specs_keep_the_study_protocol_at_laptop_scale():
    """sweeps/proxy_*.yaml (issue 14, run by benchmarks/proxy_study.py): the SEM study's axes at
    proxy scale, with FID/KID/recall (k = 3, the study's) against all real images on an offline
    detector, CPU-only, one torch thread per trial, and ASHA rungs on evaluations."""
    figs = {p.stem: load_spec(p, check_dataset=False) for p in SHIPPED if p.stem.startswith("proxy_")}
    assert set(figs) == {"proxy_dataset_size", "proxy_target_rt", "proxy_augmentations", "proxy_rt_asha"}
    size = figs["proxy_dataset_size"]
    assert size.grid["subset"] == (10, 30, 100, 300, 1000) and len(size.seeds) >= 2
    assert size.train["augpipe"] == "bg" and size.train["ada_target"] == 0.5
    assert figs["proxy_target_rt"].grid["ada_target"] == (0.3, 0.5, 0.7, 0.9)
    assert {"bg", "blit", "geom", "color", "filter", "noise"} == set(figs["proxy_augmentations"].grid["augpipe"])
    asha = figs["proxy_rt_asha"]
    assert asha.scheduler == "asha" and asha.grid == figs["proxy_target_rt"].grid
    assert asha.train == figs["proxy_target_rt"].train  # the same decision, made two ways
    for spec in figs.values():
        assert spec.detector.startswith("random-seed:") and "pr1k3_full" in spec.protocols
        assert spec.train["device"] == "cpu" and spec.train["num_threads"] == 1 and spec.gpu == 0
        assert all(r % spec.eval_every_kimg == 0 for r in spec.rungs_kimg)
        # p must be able to move within the budget (ADA's default ada_kimg 500 let it reach 0.04 in
        # 24 kimg: benchmarks/results/proxy_target_rt_ada500.json), else r_t and augpipe cannot matter
        assert spec.train["ada_kimg"] <= spec.train["kimg"] / 4


def test_grid_expands_configurations_times_seeds(big_dataset):
    spec = parse_spec(base(big_dataset))
    trials = spec.grid_trials()
    assert trials == [{"augpipe": "bg", "ada_target": 0.5, "seed": 0}, {"augpipe": "bg", "ada_target": 0.5, "seed": 1},
                      {"augpipe": "bg", "ada_target": 0.6, "seed": 0}, {"augpipe": "bg", "ada_target": 0.6, "seed": 1}]
    assert space.trial_overrides(spec, trials[3]) == trials[3]  # a grid trial's Ray config is its overrides


def test_optuna_space_and_seed_repeats(big_dataset):
    data = base(big_dataset)
    data["search"] = {"method": "optuna", "seeds": [3, 4], "num_samples": 5,
                      "params": {"ada_target": {"type": "float", "low": 0.3, "high": 0.9, "step": 0.1},
                                 "augpipe": ["bg", "bgc"], "subset": {"type": "int", "low": 10, "high": 3000, "log": True}}}
    spec = parse_spec(data)
    assert spec.trial_count() == 10
    dists = space.optuna_distributions(spec)
    assert dists["ada_target"].step == 0.1 and dists["subset"].log and dists["augpipe"].choices == ("bg", "bgc")
    assert space.trial_overrides(spec, {"ada_target": 0.4, "augpipe": "bg", "subset": 20, "__trial_index__": 1}) == \
        {"ada_target": 0.4, "augpipe": "bg", "subset": 20, "seed": 4}


def _mutate(data: dict, path: str, value) -> dict:
    keys = path.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "phrase"),
    [
        ("colour", "red", "colour: unknown key"),
        ("search.grid", {}, "search.grid: unknown key"),
        ("search.params.ada_target", [0.5, 1.2], r"search.params.ada_target\[1\]: must be in \[0, 1\], got 1.2"),
        ("search.params.ada_target", [-0.5], r"search.params.ada_target\[0\]: must be in \[0, 1\], got -0.5"),
        ("search.params.augpipe", ["bg", "sparkle"], r"search.params.augpipe\[1\]: must be one of none, blit.*, got 'sparkle'"),
        ("search.params.subset", [10, 3001], r"search.params.subset\[1\]: a subset of 3001 images is larger than the dataset's 3000"),
        ("search.params.lr_x", [1], "search.params.lr_x: is not a training option"),
        ("search.seeds", "0", "search.seeds: must be a list"),
        ("search.seeds", [0, 0], "search.seeds: lists a seed twice"),
        ("search.method", "random", "search.method: must be one of grid, optuna"),
        ("train.kimg", "long", "train.kimg: must be a number"),
        ("train.kimg", 0, "train.kimg: must be > 0"),
        ("train.warp", 9, "train.warp: is not a training option"),
        # issue 13: strings and lists where numbers belong, typed through the trainer's own model
        ("train.gamma", "x", "train.gamma: must be a number, got 'x'"),
        ("train.lr_g", "fast", "train.lr_g: must be a number, got 'fast'"),
        ("train.ema_kimg", [1, 2], r"train.ema_kimg: must be a number, got \[1, 2\]"),
        ("train.batch", 16.5, "train.batch: must be a whole number, got 16.5"),
        ("train.ada_target", 1.5, r"train.ada_target: must be in \[0, 1\], got 1.5"),
        ("train.batch", 6, "train.batch: 6 must be divisible by the minibatch-stddev group"),  # resolved trials
        ("search.arms", [{"augpipe": "none", "ada_target": 0.6}],
         r"search.arms\[0\].ada_target: 0.6 is given but augpipe is none"),
        ("search.params", {"augpipe": ["none"], "gamma": [-1.0]}, r"search.params.gamma\[0\]: must be >= 0, got -1.0"),
        ("train.cfg", "huge", "train.cfg: must be one of paper256, .*, got 'huge'"),
        ("resources.gpu", -1, "resources.gpu: must be >= 0"),
        ("resources.cpu", 0, "resources.cpu: must be > 0"),
        ("max_concurrent", 1.5, "max_concurrent: must be a whole number"),
        ("metrics.protocols", ["fid10_half"], r"metrics.protocols\[0\]: metric protocol 'fid10_half' is not understood"),
        ("metrics.detector", "inception", "metrics.detector: must be standard, random-seed:N or texture-vgg19-seed:N"),
        ("scheduler", {"type": "asha", "rungs_kimg": [1]}, "scheduler.rungs_kimg: needs at least two increasing rungs"),
        ("scheduler", {"type": "asha", "rungs_kimg": [1, 2, 3]}, "scheduler.rungs_kimg: must grow geometrically"),
        ("scheduler", {"type": "fifo", "rungs_kimg": [1, 2]}, "scheduler.rungs_kimg: applies only to type: asha"),
        ("name", "my study!", r"name: must be letters, digits, .*, got 'my study!'"),
        ("name", _DELETE, "name: is required"),
        ("dataset", "/nonexistent/dataset", "dataset: /nonexistent/dataset is not a prepared dataset"),
        ("model", "vae", "model: must be one of stylegan2, dcgan, hptl"),
    ],
)
def test_bad_specs_name_the_field(big_dataset, path, value, phrase):
    data = _mutate(base(big_dataset), path, value)
    with pytest.raises(SpecError, match=phrase) as info:
        parse_spec(data, source="bad.yaml")
    assert str(info.value).startswith("bad.yaml: ") and str(info.value).endswith(".")


def test_ada_target_without_augmentation_is_refused_or_resolved_to_none(big_dataset):
    from microtune.sweep.families.gan import resolve_options

    data = base(big_dataset)
    data["train"]["augpipe"] = "none"
    data["search"]["params"] = {"ada_target": [0.5, 0.6]}  # a target more specific than "no augmentation"
    with pytest.raises(SpecError, match=r"search.params.ada_target: 0.5 is given but augpipe is none"):
        parse_spec(data, source="bad.yaml")
    data["search"]["params"] = {"gamma": [1.0]}
    data["train"]["ada_target"] = 0.6  # written together in train
    with pytest.raises(SpecError, match=r"train.ada_target: 0.6 is given but augpipe is none"):
        parse_spec(data, source="bad.yaml")
    # crossed grid axes (augpipe x ada_target): the none trials have no target, so two targets crossed
    # with none would train one configuration twice (refused, see test_options_flow); one target is fine
    crossed = _mutate(base(big_dataset), "search.params.augpipe", ["none", "bg"])
    with pytest.raises(SpecError, match=r"search.params: the configurations .* train the same options"):
        parse_spec(crossed, source="bad.yaml")
    spec = parse_spec(_mutate(crossed, "search.params.ada_target", [0.5]), source="ok.yaml")
    targets = {(t["augpipe"], t["ada_target"]): resolve_options(spec, t, 32).ada_target for t in spec.grid_trials()}
    assert targets == {("none", 0.5): None, ("bg", 0.5): 0.5}


@pytest.mark.parametrize(
    ("mutation", "phrase"),
    [
        ({"scheduler": {"type": "asha", "metric": "recall", "mode": "max", "rungs_kimg": [1, 2]},
          "metrics": {"protocols": ["fid100_full"], "eval_every_kimg": 0.5}}, "scheduler.metric: recall is not measured"),
        ({"scheduler": {"type": "asha", "rungs_kimg": [0.75, 1.5]}}, "rung 0.75 kimg is not a multiple"),
        ({"search": {"method": "optuna", "seeds": [0, 1], "params": {"ada_target": [0.5, 0.6]},
                     "objectives": [{"metric": "fid", "mode": "min"}, {"metric": "recall", "mode": "max"}]}},
         "multi-objective Optuna search runs with one seed"),
    ],
)
def test_unsupported_combinations_are_refused(big_dataset, mutation, phrase):
    spec = parse_spec({**base(big_dataset), **mutation}, source="bad.yaml")
    with pytest.raises(SpecError, match=phrase):
        space.check_supported(spec)


def test_asha_metric_direction_and_the_best_so_far_metrics(big_dataset):
    """ASHA's mode follows its metric unless given (recall is maximised although the family minimises
    fid); best_fid / best_recall (the best so far, reported with every evaluation) may be pruned on
    when their metric is measured."""
    asha = {"type": "asha", "rungs_kimg": [1, 2]}
    pr = {"metrics": {"protocols": ["fid100_full", "pr100_full"], "eval_every_kimg": 1}}
    cases = [({}, ("fid", "min")), ({"metric": "recall"}, ("recall", "max")), ({"metric": "best_fid"}, ("best_fid", "min")),
             ({"metric": "best_recall"}, ("best_recall", "max")), ({"metric": "fid", "mode": "max"}, ("fid", "max"))]
    for extra, expected in cases:
        spec = parse_spec({**base(big_dataset), **pr, "scheduler": {**asha, **extra}}, source="ok.yaml")
        space.check_supported(spec)
        assert (spec.scheduler_metric, spec.scheduler_mode) == expected, extra
    only_fid = {"metrics": {"protocols": ["fid100_full"], "eval_every_kimg": 1}}
    spec = parse_spec({**base(big_dataset), **only_fid, "scheduler": {**asha, "metric": "best_recall"}}, source="bad.yaml")
    with pytest.raises(SpecError, match="scheduler.metric: best_recall is not measured"):
        space.check_supported(spec)


OPTUNA = {"method": "optuna", "params": {"ada_target": {"type": "float", "low": 0.3, "high": 0.9}}}


@pytest.mark.parametrize(
    ("path", "value", "sentence"),
    [  # the whole spec is typed models (issue 13): one sentence, the YAML path, no coercion
        ("search.seeds", [0, "a"], "search.seeds[1]: must be a whole number, got 'a'."),
        ("search.seeds", [0, 1.0], "search.seeds[1]: must be a whole number, got 1.0."),
        ("search.seeds", [], "search.seeds: must not be empty."),
        ("search.foo", 1, "search.foo: unknown key (allowed: method, seeds, params, arms, num_samples, sampler, "
                          "objectives)."),
        ("search", {**OPTUNA, "sampler": "cmaes"}, "search.sampler: must be one of tpe, nsga2, got 'cmaes'."),
        ("search", {**OPTUNA, "num_samples": "8"}, "search.num_samples: must be a whole number, got '8'."),
        ("search", {**OPTUNA, "arms": [{"gamma": 1.0}]}, "search.arms: applies only to method: grid."),
        ("search", {**OPTUNA, "params": {"x": {"type": "beta"}}},
         "search.params.x.type: must be one of float, int, categorical, got 'beta'."),
        ("search", {**OPTUNA, "params": {"subset": {"type": "int", "low": 10.5, "high": 20}}},
         "search.params.subset.low: must be a whole number, got 10.5."),
        ("search", {**OPTUNA, "params": {"gamma": {"type": "float", "low": 1.0, "high": 0.5}}},
         "search.params.gamma.high: 0.5 must be greater than low (1.0)."),
        ("search", {**OPTUNA, "params": {"gamma": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}},
         "search.params.gamma.log: needs low > 0 and no step."),
        ("search", {**OPTUNA, "params": {"gamma": {"type": "float", "low": 0.1}}}, "search.params.gamma.high: is required."),
        ("search", {**OPTUNA, "objectives": [{"metric": "fid", "mode": "lowest"}]},
         "search.objectives[0].mode: must be one of min, max, got 'lowest'."),
        ("search.num_samples", 4, "search.num_samples: applies only to method: optuna."),
        ("search.params.gamma", [], "search.params.gamma: must not be empty."),
        ("search.params.gamma", {"type": "float", "low": 0.1, "high": 1.0},
         "search.params.gamma: a grid axis is a list of values (float distributions apply to method: optuna)."),
        ("scheduler", {"type": "asha"}, "scheduler.rungs_kimg: needs at least two increasing rungs."),
        ("scheduler", {"type": "asha", "rungs_kimg": [1, "2"]}, "scheduler.rungs_kimg[1]: must be a number, got '2'."),
        ("resources.cpu", "1e-4", "resources.cpu: must be a number, got '1e-4' (YAML reads 1e-4 as text; write it "
                                  "with a dot, e.g. 0.0001)."),
        ("resources.gpu", float("nan"), "resources.gpu: must be a finite number, got nan."),
        ("max_concurrent", True, "max_concurrent: must be a whole number, got True."),
        ("failure.max_retries", -1, "failure.max_retries: must be >= 0, got -1."),
        ("tracking.uri", "", "tracking.uri: must not be empty."),
        ("metrics.eval_every_kimg", "0.5", "metrics.eval_every_kimg: must be a number, got '0.5'."),
        ("dataset", 7, "dataset: must be a dataset directory or {path: DIR}, got 7."),
        ("dataset", {"path": "x", "kind": "png"}, "dataset.kind: unknown key (allowed: path)."),
        ("train", ["cfg", "tiny"], "train: must be a mapping, got list."),
        ("name", 5, "name: must be a string, got 5."),
    ],
)
def test_typed_spec_sentences(big_dataset, path, value, sentence):
    with pytest.raises(SpecError) as info:
        parse_spec(_mutate(base(big_dataset), path, value), source="s.yaml")
    assert str(info.value) == f"s.yaml: {sentence}"


def test_empty_sections_mean_defaults_and_a_non_mapping_spec_is_refused(big_dataset):
    data = {**base(big_dataset), "resources": None, "failure": None}
    spec = parse_spec(data, source="s.yaml")
    assert (spec.cpu, spec.gpu, spec.max_retries) == (1.0, 0.0, 3)
    with pytest.raises(SpecError, match=r"^s.yaml: must be a mapping, got list\.$"):
        parse_spec([data], source="s.yaml")


def test_yaml_errors_and_missing_file(tmp_path):
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=r"broken.yaml: not valid YAML at line"):
        load_spec(tmp_path / "broken.yaml")
    with pytest.raises(SpecError, match="spec file does not exist"):
        load_spec(tmp_path / "none.yaml")


def test_cli_refuses_bad_spec_with_one_sentence(tmp_path, big_dataset):
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump(_mutate(base(big_dataset), "search.params.ada_target", [1.5])))
    result = subprocess.run(microtune_cmd("sweep", "launch", str(spec)), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"microtune: error: {spec}: search.params.ada_target[0]: must be in [0, 1], got 1.5."]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("gamma", "x", "must be a number, got 'x'"),
    ("lr_g", "fast", "must be a number, got 'fast'"),
    ("ema_kimg", [1, 2], "must be a number, got [1, 2]"),
])
def test_dry_run_refuses_the_issue_13_train_values(tmp_path, big_dataset, key, value, problem):
    """The acceptance of issue 13: `sweep launch --dry-run` accepted these (exit 0, trials listed)."""
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump(_mutate(base(big_dataset), f"train.{key}", value)))
    result = subprocess.run(microtune_cmd("sweep", "launch", str(spec), "--dry-run"), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"microtune: error: {spec}: train.{key}: {problem}."]


def test_importing_spec_does_not_import_torch_or_ray():
    code = "import sys, microtune.sweep.spec as s, microtune.sweep.space; print('torch' in sys.modules, 'ray' in sys.modules)"
    out = subprocess.run([microtune_cmd()[0], "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "False False"


def seg_base(dataset: Path) -> dict:
    return {"name": "seg", "model": "hptl", "dataset": str(dataset), "train": {"width": 0.0625, "epochs": 1},
            "search": {"method": "grid", "seeds": [0, 1], "params": {"depths": ["2,8,9", "0,8,9"]},
                       "arms": [{"method": "otsu"}, {"method": "hptl-r", "depths": "2,8,9"}]}}


def test_hptl_spec_grid_with_arms(mask_dataset):
    spec = parse_spec(seg_base(mask_dataset), source="seg.yaml")
    space.check_supported(spec)
    assert spec.trial_count() == 8  # (2 depth settings + 2 arms) x 2 seeds
    assert spec.grid_trials()[:3] == [{"depths": "2,8,9", "seed": 0}, {"depths": "2,8,9", "seed": 1},
                                      {"depths": "0,8,9", "seed": 0}]
    assert spec.grid_trials()[-1] == {"method": "hptl-r", "depths": "2,8,9", "seed": 1}
    assert space.produced_metrics(spec) == {"seg_acc", "seg_miou"}
    lines = space.describe(spec)
    assert "search     grid: 8 trials (4 configurations, 2 of them fixed arms × 2 seeds)" in lines
    assert lines[-9].split() == ["#", "depths", "method", "seed"]
    assert lines[-4].split() == ["4", "otsu", "0"]  # an arm: no depths, method otsu
    only_arms = parse_spec({**seg_base(mask_dataset), "search": {"arms": [{"method": "svm"}]}}, source="seg.yaml")
    assert only_arms.grid_trials() == [{"method": "svm", "seed": 0}]


def test_hptl_spec_paths_are_made_absolute(mask_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tr.txt").write_text("im0\n")
    (tmp_path / "te.txt").write_text("im1\n")
    data = seg_base(mask_dataset)
    data["train"].update(split="lists:tr.txt,te.txt", cache_dir="cache")
    spec = parse_spec(data, source="seg.yaml")
    assert spec.train["split"] == f"lists:{tmp_path / 'tr.txt'},{tmp_path / 'te.txt'}"
    assert spec.train["cache_dir"] == str(tmp_path / "cache")


@pytest.mark.parametrize(
    ("path", "value", "phrase"),
    [
        ("train.depths", "2,9,9", r"^seg.yaml: train.depths: t2 must be between 0 and 8 \(conv1, .*\), got 9\.$"),
        ("train.depths", [2, 8, 9], r"train.depths: must be a string, got \[2, 8, 9\] \(write depths as '2,8,9'\)"),
        ("train.epochs", "ten", "train.epochs: must be a whole number"),
        ("train.freeze", "yes", "train.freeze: must be true or false"),
        ("train.cfg", "tiny", "train.cfg: is not a segmentation option"),
        ("train.split", "lists:/nonexistent/a.txt,/nonexistent/b.txt", "train.split: the split list /nonexistent/a.txt does not exist"),
        ("search.params.method", ["hptl", "unet"], r"^seg.yaml: search.params.method\[1\]: must be one of hptl, .*, got 'unet'\.$"),
        ("search.params.lr", [1e-3, 0], r"^seg.yaml: search.params.lr\[1\]: must be > 0, got 0\.$"),
        ("search.arms", [{"method": "otsu", "epochs": 0}], r"^seg.yaml: search.arms\[0\].epochs: must be >= 1, got 0\.$"),
        ("train.source", "imagenet", r"^seg.yaml: train.source: imagenet needs train.width 1 and train.batch_norm off"),
        ("search.params.kimg", [1], "search.params.kimg: is not a segmentation option"),
        ("search.arms", [{"method": "otsu", "augpipe": "bg"}], r"search.arms\[0\].augpipe: is not a segmentation option"),
        ("search.arms", [{}], "search.arms: lists an empty configuration"),
        ("search.arms", {"method": "otsu"}, "search.arms: must be a list"),
        ("metrics", {"protocols": ["fid100_full"]}, "metrics: does not apply to model: hptl"),
        ("scheduler", {"type": "asha", "metric": "seg_acc", "mode": "max", "rungs_kimg": [1, 2]},
         "scheduler.type: asha does not apply to model: hptl"),
    ],
)
def test_bad_hptl_specs_name_the_field(mask_dataset, path, value, phrase):
    with pytest.raises(SpecError, match=phrase):
        parse_spec(_mutate(seg_base(mask_dataset), path, value), source="seg.yaml")


def test_hptl_spec_needs_masks_and_segmentation_objectives(big_dataset, mask_dataset):
    with pytest.raises(SpecError, match="dataset: .* has no masks; model: hptl needs a dataset prepared with --masks"):
        parse_spec(seg_base(big_dataset), source="seg.yaml")
    optuna = {**seg_base(mask_dataset), "search": {"method": "optuna", "seeds": [0], "num_samples": 2,
                                                    "params": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}}}
    spec = parse_spec(optuna, source="seg.yaml")
    assert [(o.metric, o.mode) for o in spec.objectives] == [("seg_acc", "max")]
    space.check_supported(spec)
    optuna["search"]["objectives"] = [{"metric": "fid", "mode": "min"}]
    with pytest.raises(SpecError, match="search.objectives: fid is not measured by segmentation trials"):
        space.check_supported(parse_spec(optuna, source="seg.yaml"))
    optuna["search"]["params"]["lr"]["low"] = -1.0
    optuna["search"]["params"]["lr"]["log"] = False
    with pytest.raises(SpecError, match=r"^seg.yaml: search.params.lr.low: must be > 0, got -1.0\.$"):
        parse_spec(optuna, source="seg.yaml")
