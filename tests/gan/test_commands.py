"""``microtune train|generate|interpolate`` through argparse, on a real (tiny) dataset directory."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from microtune.data.dataset import DatasetWriter
from microtune.errors import MicrotuneError
from microtune.gan import commands

from .conftest import stripes


def _parser():
    parser = argparse.ArgumentParser(prog="microtune")
    commands.register(parser.add_subparsers(dest="command"))
    return parser


def _run(*argv):
    args = _parser().parse_args(list(argv))
    return args.handler(args)


@pytest.fixture
def dataset_dir(tmp_path):
    with DatasetWriter(tmp_path / "ds", resolution=16) as writer:
        for k, image in enumerate(stripes(12, 16)):
            writer.add(image, {"source": f"img{k}.png", "specimen": f"S{k % 3}"})
        writer.commit()
    return tmp_path / "ds"


@pytest.mark.parametrize("command", ["train", "generate", "interpolate"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_dry_run_prints_the_tiny_preset(dataset_dir, tmp_path, capsys):
    assert _run("train", "--data", str(dataset_dir), "--out", str(tmp_path / "run"), "--cfg", "tiny", "--dry-run") == 0
    options = json.loads(capsys.readouterr().out)
    # The tiny preset, exactly (gamma = 0.0002 res² / batch at res 16).
    assert options["channel_base"] == 2048 and options["channel_max"] == 512 and options["mapping_layers"] == 2
    assert options["z_dim"] == options["w_dim"] == 512 and options["batch"] == 16
    assert options["gamma"] == pytest.approx(0.0002 * 16**2 / 16)
    assert options["ema_kimg"] == 5 and options["ema_rampup"] == 0.05 and options["lr_g"] == 0.0025
    assert (options["beta1"], options["beta2"]) == (0.0, 0.99)
    assert options["lumaflip"] is None and options["ada_target"] == 0.6
    assert not (tmp_path / "run").exists()


def test_bad_options_are_refused(dataset_dir, tmp_path):
    base = ("train", "--data", str(dataset_dir), "--out", str(tmp_path / "run"), "--dry-run")
    with pytest.raises(SystemExit) as info:  # argparse: --p fixes p, --target adapts it
        _parser().parse_args([*base, "--target", "0.5", "--p", "0.2"])
    assert info.value.code == 2
    with pytest.raises(MicrotuneError, match="--subset"):
        _run(*base, "--subset", "99")
    with pytest.raises(MicrotuneError, match="--resume"):
        _run(*base, "--resume")
    with pytest.raises(MicrotuneError, match="resolution 16"):
        _run(*base, "--model", "dcgan")


@pytest.mark.parametrize(
    ("flags", "message"),
    [  # a bad option value is a usage error: one sentence naming the flag, exit status 2
        (("--gamma", "-1"), "--gamma: must be >= 0, got -1.0."),
        (("--batch", "0"), "--batch: must be >= 1, got 0."),
        (("--target", "1.5"), "--target: must be in [0, 1], got 1.5."),
        (("--batch", "6"), "--batch: 6 must be divisible by the minibatch-stddev group 4."),  # two options
        (("--augpipe", "none", "--target", "0.5"), "--target: 0.5 is given but augpipe is none"),
    ],
)
def test_bad_option_values_exit_2_with_one_sentence(dataset_dir, tmp_path, capsys, flags, message):
    from microtune.cli import main

    run = tmp_path / "run"
    assert main(["train", "--data", str(dataset_dir), "--out", str(run), "--cfg", "tiny", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"microtune: error: {message}")
    assert not run.exists()


def test_every_option_has_a_flag_checked_as_it_is_parsed(dataset_dir, tmp_path, capsys):
    """Options without a hand-written flag get one generated from their field (--ada-kimg, --lr-g, ...):
    the value reaches the resolved options (`none` where None is allowed), a bad one is refused by
    argparse naming the flag, and an option not given keeps the preset's value."""
    base = ("train", "--data", str(dataset_dir), "--out", str(tmp_path / "run"), "--cfg", "tiny", "--dry-run")
    assert _run(*base, "--ada-kimg", "2", "--lr-g", "1e-3", "--ema-rampup", "none", "--fused-modconv",
                "--r1-interval", "8") == 0
    options = json.loads(capsys.readouterr().out)
    assert (options["ada_kimg"], options["lr_g"], options["ema_rampup"]) == (2.0, 1e-3, None)
    assert options["fused_modconv"] is True and options["r1_interval"] == 8
    assert options["lr_d"] == 0.0025 and options["ema_kimg"] == 5  # not given: the tiny preset's
    for flags, message in [(("--ada-kimg", "0"), "argument --ada-kimg: must be > 0, got 0.0"),
                           (("--r1-interval", "2.5"), "argument --r1-interval: must be a whole number, got '2.5'"),
                           (("--beta1", "none"), "argument --beta1: must be a number, got 'none'")]:
        with pytest.raises(SystemExit) as info:
            _run(*base, *flags)
        assert info.value.code == 2 and capsys.readouterr().err.strip().endswith(message)


def test_a_bad_value_is_refused_before_the_dataset_is_read(tmp_path, capsys):
    from microtune.cli import main

    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run"), "--gamma", "-1"]) == 2
    assert capsys.readouterr().err.strip() == "microtune: error: --gamma: must be >= 0, got -1.0."


def test_train_resume_generate_interpolate(dataset_dir, tmp_path):
    run = tmp_path / "run"
    small = ("--data", str(dataset_dir), "--out", str(run), "--cfg", "demo", "--batch", "4", "--seed", "3",
             "--target", "0.5", "--subset", "8", "--device", "cpu")
    assert _run("train", *small, "--kimg", "0.008") == 0
    assert {"options.json", "log.txt", "checkpoint-latest.pt"} <= {p.name for p in run.iterdir()}
    assert any(p.name.startswith("samples-") for p in run.iterdir())
    assert _run("train", *small, "--kimg", "0.016", "--resume") == 0
    log = (run / "log.txt").read_text()
    assert "from kimg 0.008 to 0.016" in log
    assert _run("generate", "--ckpt", str(run), "--seeds", "0-2", "--out", str(tmp_path / "gen"), "--grid") == 0
    assert len(list((tmp_path / "gen").glob("*.png"))) == 4
    snapshot = sorted(run.glob("network-*.pt"))[-1]  # a G_ema-only snapshot works too
    assert _run("generate", "--ckpt", str(snapshot), "--seeds", "5", "--trunc", "0.5", "--out", str(tmp_path / "g2")) == 0
    assert (tmp_path / "g2" / "seed0005.png").exists()
    with pytest.raises(MicrotuneError, match="full checkpoint"):
        _run("train", *small, "--kimg", "0.024", "--resume", str(snapshot))
    out = tmp_path / "walk.mp4"
    assert _run("interpolate", "--ckpt", str(run), "--seeds", "0,1", "--frames", "6", "--out", str(out)) == 0
    assert out.stat().st_size > 0 and (tmp_path / "walk_figure.png").exists()
    with pytest.raises(MicrotuneError, match="exactly two"):
        _run("interpolate", "--ckpt", str(run), "--seeds", "0-2", "--out", str(out))
    assert np.load(dataset_dir / "images.npy").shape == (12, 16, 16)


@pytest.mark.slow
def test_acceptance_tiny_64_one_kimg_then_resume_to_two(tmp_path):
    """The issue's acceptance run (about 1 + 1 minutes on 2 CPU cores): tiny at 64x64 on a
    synthetic dataset, 1 kimg, then --resume to kimg 2."""
    import subprocess
    import sys

    ds, run = tmp_path / "ds", tmp_path / "run"
    base = [sys.executable, "-m", "microtune"]
    subprocess.run(base + ["data", "synth", str(ds), "--count", "64", "--resolution", "64"], check=True)
    train = base + ["train", "--data", str(ds), "--out", str(run), "--cfg", "tiny", "--device", "cpu"]
    subprocess.run(train + ["--kimg", "1"], check=True)
    assert {"options.json", "checkpoint-latest.pt"} <= {p.name for p in run.iterdir()}
    assert any(p.name.startswith("samples-") for p in run.iterdir())
    subprocess.run(train + ["--kimg", "2", "--resume"], check=True)
    assert "done at kimg 2.000" in (run / "log.txt").read_text()
