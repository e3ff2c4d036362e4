"""SegOptions, one typed model for `microtune segment` and HPTL study specs (issue 13).

Each option's type and range are written once (its annotation); messages name the CLI flag by
default and the YAML path when a study spec passes a ``label`` function; the `segment` flags are
generated from the fields, which the last tests check against the parser and the real CLI.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from microtune.errors import MicrotuneError
from microtune.seg.commands import CLI_ONLY, register
from microtune.seg.options import (
    SegOptions,
    SegOptionsError,
    check_value,
    make_seg_options,
    option_choices,
    option_label,
    options_from_dict,
    range_text,
    validate,
)

ROOT = Path(__file__).resolve().parents[2]
T2_UNITS = "conv1, conv2, conv3, conv4, conv5, fc6, fc7, score_fr"  # the units t2 may transfer (t2 <= 8)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (dict(epochs=0), "--epochs: must be >= 1, got 0."),
        (dict(epochs="x"), "--epochs: must be a whole number, got 'x'."),
        (dict(epochs=True), "--epochs: must be a whole number, got True."),      # strict: no bool as int
        (dict(batch=16.0), "--batch: must be a whole number, got 16.0."),
        (dict(crop=16), "--crop: must be >= 32, got 16."),
        (dict(lr=0), "--lr: must be > 0, got 0."),
        (dict(lr="fast"), "--lr: must be a number, got 'fast'."),
        (dict(l2=-0.5), "--l2: must be >= 0, got -0.5."),
        (dict(lr=float("inf")), "--lr: must be a finite number, got inf."),
        (dict(dropout=float("nan")), "--dropout: must be a finite number, got nan."),
        (dict(width=1.5), "--width: must be in (0, 1], got 1.5."),
        (dict(dropout=1.0), "--dropout: must be in [0, 1), got 1.0."),
        (dict(subset=-1), "--subset: must be >= 0, got -1."),
        (dict(svm_samples=0), "--svm-samples: must be >= 1, got 0."),
        (dict(seed=-1), "--seed: must be >= 0, got -1."),
        (dict(freeze="yes"), "--freeze: must be true or false, got 'yes'."),
        (dict(channels=2), "--channels: must be one of 1, 3, got 2."),
        (dict(channels="3"), "--channels: must be one of 1, 3, got '3'."),
        (dict(l2_mode="sp"), "--l2-mode: must be one of decay, transfer, got 'sp'."),
        (dict(method="unet"), "--method: must be one of hptl, hptl-r, hptl-2h, fcn32s-scratch, fcn16s-scratch, "
                              "fcn8s-scratch, otsu, svm, deeplab, got 'unet'."),
        (dict(deeplab_backbone="xception"), "--deeplab-backbone: must be one of resnet50, resnet18, "
                                            "mobilenet_v3_large, got 'xception'."),
        (dict(depths="2,9,9"), f"--depths: t2 must be between 0 and 8 ({T2_UNITS}), got 9."),
        (dict(depths="2,8"), "--depths: needs three values t1,t2,t3, got '2,8'."),
        (dict(depths="conv2,fc9,upscore2"), "--depths: t2='fc9' is neither a number nor a unit name"),
        (dict(depths=[2, 8, 9]), "--depths: must be a string, got [2, 8, 9] (write depths as '2,8,9')."),
        (dict(split="random"), "--split: must be 'specimens' or 'lists:TRAIN.txt,TEST.txt' (two files), got 'random'."),
        (dict(split="lists:train.txt"), "--split: must be 'specimens' or 'lists:TRAIN.txt,TEST.txt' (two files)"),
        (dict(device="gpu0"), "--device: must be auto, cpu, cuda or cuda:N, got 'gpu0'."),
        (dict(epoch=3), "--epoch: is not a segmentation option (did you mean epochs?)."),
    ],
)
def test_each_rule_names_the_flag(bad, message):
    with pytest.raises(SegOptionsError) as info:
        make_seg_options({"data": "ds", **bad})
    assert str(info.value).startswith(message)
    assert isinstance(info.value, MicrotuneError) and info.value.field == next(iter(bad))
    assert not info.value.problem.endswith(".")  # the sentence is label + ": " + problem + "."


def test_the_constructor_and_one_value_use_the_same_rules():
    with pytest.raises(SegOptionsError, match=r"^--epochs: must be >= 1, got 0\.$"):
        SegOptions(data="ds", epochs=0)  # not pydantic's multi-line report
    with pytest.raises(SegOptionsError, match=r"^--lr: must be > 0, got 0\.$"):
        check_value("lr", 0)
    with pytest.raises(SegOptionsError, match=r"^--kimg: is not a segmentation option\.$"):
        check_value("kimg", 1)
    check_value("depths", "conv2,score_fr,upscore2")  # unit names are depths too (2,8,9)
    assert options_from_dict({"data": "ds", "out": "x", "epochs": 3}).epochs == 3  # namespaces: extra keys ignored
    with pytest.raises(SegOptionsError, match="^--epochs: must be a whole number"):
        options_from_dict({"data": "ds", "epochs": "3"})  # strict: no string-to-number coercion


def test_the_model_keeps_the_dataclass_interface():
    options = SegOptions(data="ds", method="deeplab")
    assert options.label == "DeepLabV3+"
    fields = dataclasses.fields(SegOptions)
    assert fields[0].name == "data" and {f.name: f.type for f in fields}["width"] == "float"
    assert {f.type for f in fields} == {"str", "int", "float", "bool"}  # plain names, as before pydantic
    assert dataclasses.asdict(options)["method"] == "deeplab"
    assert dataclasses.replace(options, epochs=3).epochs == 3
    with pytest.raises(SegOptionsError, match="^--epochs: must be >= 1"):
        dataclasses.replace(options, epochs=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.epochs = 3
    assert pickle.loads(pickle.dumps(options)) == options  # trials may ship options between processes
    import numpy as np  # values drawn by a sampler arrive as numpy scalars

    assert make_seg_options({"data": "ds", "lr": np.float64(0.01), "epochs": np.int64(2)}).epochs == 2


def test_importing_the_options_does_not_import_torch():
    code = "import sys, microtune.seg.options; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_two_options_together_and_the_files(tmp_path):
    with pytest.raises(SegOptionsError, match=r"^--source: imagenet needs --width 1 and --batch-norm off .*got --width 0.5\.$"):
        make_seg_options({"data": "ds", "source": "imagenet", "width": 0.5})
    with pytest.raises(SegOptionsError, match="got --batch-norm true"):
        validate(SegOptions(data="ds", source="imagenet", batch_norm=True))
    # no transfer from VGG-19 (t1 = 0, or not HPTL): the source does not matter
    make_seg_options({"data": "ds", "source": "imagenet", "width": 0.5, "depths": "0,8,9"})
    make_seg_options({"data": "ds", "source": "imagenet", "width": 0.5, "method": "fcn8s-scratch"})

    weights = tmp_path / "resnet18.pth"
    weights.write_bytes(b"not read here")
    assert make_seg_options({"data": "ds", "deeplab_weights": str(weights)}).deeplab_weights == str(weights)
    with pytest.raises(SegOptionsError, match=r"^--deeplab-weights: must be empty .*got '.*missing.pth'\.$"):
        make_seg_options({"data": "ds", "deeplab_weights": str(tmp_path / "missing.pth")})
    with pytest.raises(SegOptionsError, match=r"^--source-weights: .*vgg.pth: no such file\.$"):
        make_seg_options({"data": "ds", "source_weights": str(tmp_path / "vgg.pth")})
    make_seg_options({"data": "ds", "method": "otsu", "source_weights": str(tmp_path / "vgg.pth")})  # unused
    split = f"lists:{weights},{tmp_path / 'test.txt'}"
    with pytest.raises(SegOptionsError, match=r"^--split: the split list .*test.txt does not exist\.$"):
        make_seg_options({"data": "ds", "split": split})
    assert make_seg_options({"data": "ds", "split": split}, files=False).split == split  # files elsewhere


# A study spec as users write it. PyYAML (YAML 1.1) reads 1e-4 without a dot as a string: that quirk
# is in here on purpose.
SPEC = """
train:
  epochs: "x"
  lr: 1e-4
  epoch: 3
  source: imagenet
search:
  params:
    lr: [0.001, 0]
    depths: ["2,8,9", "2,9,9"]
    width: [1.0, 0.0625]
"""


def _yaml_label(where: str, overrides: dict):
    """How a spec validator names a merged option: the axis/arm that set it, else ``train.KEY``."""
    return lambda key: f"{where}.{key}" if key in overrides else f"train.{key}"


def test_messages_name_the_yaml_path():
    spec = yaml.safe_load(SPEC)
    train, params = spec["train"], spec["search"]["params"]
    assert train["lr"] == "1e-4"  # the quirk the message explains

    def refuse(values, label, message):
        with pytest.raises(SegOptionsError) as info:
            make_seg_options({**values, "data": "ds"}, label=label, files=False)
        assert str(info.value) == message
        return info.value

    train_label = _yaml_label("train", train)
    error = refuse({"epochs": train["epochs"]}, train_label, "train.epochs: must be a whole number, got 'x'.")
    assert (error.field, error.problem) == ("epochs", "must be a whole number, got 'x'")  # for v.fail(label(field), problem)
    refuse({"lr": train["lr"]}, train_label,
           "train.lr: must be a number, got '1e-4' (YAML reads 1e-4 as text; write it with a dot, e.g. 0.0001).")
    refuse({"epoch": train["epoch"]}, train_label, "train.epoch: is not a segmentation option (did you mean epochs?).")

    # one axis value on its own
    with pytest.raises(SegOptionsError, match=r"^search\.params\.lr\[1\]: must be > 0, got 0\.$"):
        for i, value in enumerate(params["lr"]):
            check_value("lr", value, label=lambda key, i=i: f"search.params.{key}[{i}]")
    with pytest.raises(SegOptionsError) as info:
        for i, value in enumerate(params["depths"]):
            check_value("depths", value, label=lambda key, i=i: f"search.params.{key}[{i}]")
    assert str(info.value) == f"search.params.depths[1]: t2 must be between 0 and 8 ({T2_UNITS}), got 9."

    # one grid configuration: train + overrides, the two-option rule names where each value came from
    config = {"width": params["width"][1]}
    refuse({"source": train["source"], **config}, _yaml_label("search.params", config),
           "train.source: imagenet needs search.params.width 1 and train.batch_norm off (the ImageNet VGG-19 "
           "weights are full width, without batch norm), got search.params.width 0.0625.")
    assert make_seg_options({"source": "imagenet", "width": params["width"][0], "data": "ds"}).width == 1.0


# -- the `microtune segment` flags are the model's fields ------------------------------------------------

def _segment_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["segment"]


def test_every_flag_is_a_field_and_every_field_a_flag():
    parser = _segment_parser()
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}
    fields = [f.name for f in dataclasses.fields(SegOptions)]
    flags = {s for a in actions.values() for s in a.option_strings}
    assert flags == {option_label(name) for name in fields} | set(CLI_ONLY)
    defaults = SegOptions(data="")
    for name in fields:
        action = actions[name]
        assert action.option_strings == [option_label(name)]
        assert action.help.startswith(SegOptions.__pydantic_fields__[name].description), name
        if name == "data":
            assert action.required
            continue
        assert action.default == getattr(defaults, name), name
        assert tuple(action.choices or ()) == option_choices(name), name
        rule = range_text(name)
        assert rule in action.help, (name, rule, action.help)  # e.g. "--width ... in (0, 1] (default 1)"
    assert "in (0, 1]" in actions["width"].help and ">= 32" in actions["crop"].help
    # parsed with no option flags, the namespace holds exactly the model's defaults
    args = parser.parse_args(["--data", "ds", "--out", "o"])
    assert {name: getattr(args, name) for name in fields} == dataclasses.asdict(SegOptions(data="ds"))


def test_bad_cli_values_are_usage_errors(tmp_path, capsys):
    from microtune.cli import main

    data = tmp_path / "ds"
    data.mkdir()
    base = ["segment", "--data", str(data), "--out", str(tmp_path / "run"), "--dry-run"]
    for flags, message in [
        (["--epochs", "0"], "microtune segment: error: argument --epochs: must be >= 1, got 0."),
        (["--lr", "fast"], "microtune segment: error: argument --lr: must be a number, got 'fast'."),
        (["--width", "2"], "microtune segment: error: argument --width: must be in (0, 1], got 2.0."),
        (["--depths", "2,9"], "microtune segment: error: argument --depths: needs three values t1,t2,t3, got '2,9'."),
        (["--method", "unet"], "microtune segment: error: argument --method: must be one of hptl, hptl-r, "),
    ]:
        with pytest.raises(SystemExit) as info:
            main(base + flags)
        assert info.value.code == 2
        err = capsys.readouterr().err.splitlines()
        assert err[-1].startswith(message), err
    # the rule between two options: checked after parsing, also a usage error
    assert main(base + ["--source", "imagenet", "--width", "0.5"]) == 2
    assert capsys.readouterr().err.startswith("microtune: error: --source: imagenet needs --width 1")
    assert main(base + ["--lr", "0.002", "--depths", "conv2,fc7,upscore2"]) == 0
    out = capsys.readouterr().out
    assert '"lr": 0.002' in out and '"depths": "conv2,fc7,upscore2"' in out
    assert not (tmp_path / "run").exists()


def test_the_real_cli_refuses_a_bad_value_in_one_sentence(tmp_path):
    result = subprocess.run([sys.executable, "-m", "microtune", "segment", "--data", str(tmp_path), "--out",
                             str(tmp_path / "run"), "--dry-run", "--epochs", "0"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == "microtune segment: error: argument --epochs: must be >= 1, got 0."
    assert "Traceback" not in result.stderr
