"""`microtune metrics`: help, input validation and an --images run with the random detector."""

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from microtune.errors import MicrotuneError
from microtune.metrics import commands


@pytest.fixture
def parser():
    p = argparse.ArgumentParser(prog="microtune")
    commands.register(p.add_subparsers(dest="command"))
    return p


@pytest.fixture
def dataset(tmp_path):
    from microtune.data.dataset import DatasetWriter

    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "ds", resolution=24) as w:
        for i in range(20):
            w.add(rng.integers(0, 256, (24, 24), dtype=np.uint8), {"source": f"f{i}", "specimen": f"S{i % 2}",
                                                                    "tile": [0, 0]})
        return w.commit()


@pytest.fixture
def image_dir(tmp_path):
    folder = tmp_path / "gen"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def test_help_lists_every_option(parser, capsys):
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["metrics", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--data", "--ckpt", "--images", "--metrics", "--num-gen", "--detector", "--detector-weights",
                   "--cache-dir", "--device", "random-seed:N", "6726825d"):
        assert option in text


def test_ckpt_and_images_are_exclusive(parser):
    with pytest.raises(SystemExit):
        parser.parse_args(["metrics", "--data", "d", "--ckpt", "c", "--images", "i"])


def test_images_run_prints_tagged_json(parser, dataset, image_dir, tmp_path, capsys):
    out = tmp_path / "res" / "m.json"
    args = parser.parse_args(["metrics", "--data", str(dataset), "--images", str(image_dir), "--metrics", "fid,kid,pr",
                              "--detector", "random-seed:3", "--cache-dir", str(tmp_path / "cache"),
                              "--device", "cpu", "--batch-size", "5", "--out", str(out)])
    assert args.handler(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["detector"] == "random-seed:3" and "not comparable" in printed["note"]
    assert printed["protocols"] == ["fid12_full", "kid12_full", "pr12_full"]
    assert set(printed["metrics"]) == {"fid", "kid", "precision", "recall"}
    assert list((tmp_path / "cache" / "real-stats").glob("*.npz"))


@pytest.mark.parametrize("extra, message", [
    (["--num-gen", "50"], "exceeds the 12 images"),
    (["--num-gen", "1"], "--num-gen must be at least 2"),
    (["--detector", "random"], "--detector"),
    (["--metrics", "fid,fid"], "twice"),
    (["--metrics", "fid5x_full"], "protocol"),
    (["--detector", "standard", "--no-download"], "--detector-weights"),
])
def test_bad_input_is_one_clear_error(parser, dataset, image_dir, tmp_path, extra, message):
    args = parser.parse_args(["metrics", "--data", str(dataset), "--images", str(image_dir), "--detector",
                              "random-seed:0", "--cache-dir", str(tmp_path / "c"), "--device", "cpu", *extra])
    with pytest.raises(MicrotuneError, match=message):
        args.handler(args)


def test_missing_inputs_are_named(parser, dataset, tmp_path):
    args = parser.parse_args(["metrics", "--data", str(dataset), "--ckpt", str(tmp_path / "none.pt"),
                              "--detector", "random-seed:0"])
    with pytest.raises(MicrotuneError, match="--ckpt .*none.pt does not exist"):
        args.handler(args)
    args = parser.parse_args(["metrics", "--data", str(dataset), "--images", str(tmp_path / "nope"),
                              "--detector", "random-seed:0"])
    with pytest.raises(MicrotuneError, match="--images .*nope is not a folder"):
        args.handler(args)


def test_ckpt_run_samples_the_ema_generator(parser, dataset, tmp_path, capsys):
    # A minimal DCGAN checkpoint in the GAN package's format (only what load_generator reads).
    torch = pytest.importorskip("torch")
    ckpt_mod = pytest.importorskip("microtune.gan.checkpoint")
    from microtune.gan.config import TrainOptions

    options = TrainOptions(model="dcgan", resolution=32, dcgan_ngf=8, dcgan_ndf=8)
    G, _ = ckpt_mod.build_networks(options)
    path = tmp_path / "run" / "checkpoint-latest.pt"
    path.parent.mkdir()
    torch.save({"format": ckpt_mod.FORMAT, "options": options.to_dict(), "G_ema": G.state_dict()}, path)
    args = parser.parse_args(["metrics", "--data", str(dataset), "--ckpt", str(path.parent), "--metrics", "fid,pr",
                              "--num-gen", "10", "--detector", "random-seed:0", "--cache-dir", str(tmp_path / "c"),
                              "--device", "cpu"])
    assert args.handler(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["protocols"] == ["fid10_full", "pr10_full"] and printed["metrics"]["fid"] > 0
