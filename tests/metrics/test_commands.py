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


def make_dataset(path, resolution=24, count=20):
    from microtune.data.dataset import DatasetWriter

    rng = np.random.default_rng(0)
    with DatasetWriter(path, resolution=resolution) as w:
        for i in range(count):
            w.add(rng.integers(0, 256, (resolution, resolution), dtype=np.uint8),
                  {"source": f"f{i}", "specimen": f"S{i % 2}", "tile": [0, 0]})
        return w.commit()


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "ds")


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


def _dcgan_checkpoint(tmp_path, resolution):
    # A minimal DCGAN checkpoint in the GAN package's format (only what load_generator reads).
    torch = pytest.importorskip("torch")
    ckpt_mod = pytest.importorskip("microtune.gan.checkpoint")
    from microtune.gan.config import TrainOptions

    options = TrainOptions(model="dcgan", resolution=resolution, dcgan_ngf=8, dcgan_ndf=8)
    G, _ = ckpt_mod.build_networks(options)
    path = tmp_path / "run" / "checkpoint-latest.pt"
    path.parent.mkdir()
    torch.save({"format": ckpt_mod.FORMAT, "options": options.to_dict(), "G_ema": G.state_dict()}, path)
    return path


def test_ckpt_run_samples_the_ema_generator(parser, tmp_path, capsys):
    dataset = make_dataset(tmp_path / "ds32", resolution=32)
    path = _dcgan_checkpoint(tmp_path, 32)
    args = parser.parse_args(["metrics", "--data", str(dataset), "--ckpt", str(path.parent), "--metrics", "fid,pr",
                              "--num-gen", "10", "--detector", "random-seed:0", "--cache-dir", str(tmp_path / "c"),
                              "--device", "cpu"])
    assert args.handler(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["protocols"] == ["fid10_full", "pr10_full"] and printed["metrics"]["fid"] > 0
    assert printed["warnings"] == [] and "manifest_sha256" not in printed


def test_ckpt_of_another_resolution_is_refused(parser, dataset, tmp_path, capsys):
    # The detectors resize whatever they get, so 32×32 fakes against 24×24 reals gave a number.
    path = _dcgan_checkpoint(tmp_path, 32)
    args = parser.parse_args(["metrics", "--data", str(dataset), "--ckpt", str(path.parent), "--num-gen", "10",
                              "--detector", "random-seed:0", "--cache-dir", str(tmp_path / "c"), "--device", "cpu"])
    with pytest.raises(MicrotuneError, match=r"--ckpt .*run generates 32x32 images but --data .*ds holds 24x24"):
        args.handler(args)
    assert capsys.readouterr().out == "" and not (tmp_path / "c").exists()  # refused before any work


def test_images_of_another_resolution_are_refused(parser, dataset, tmp_path):
    folder = tmp_path / "gen32"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(folder / f"{i}.png")
    args = parser.parse_args(["metrics", "--data", str(dataset), "--images", str(folder), "--detector",
                              "random-seed:0", "--cache-dir", str(tmp_path / "c"), "--device", "cpu"])
    with pytest.raises(MicrotuneError, match=r"--images .*gen32 holds 32x32 images but --data .*ds holds 24x24"):
        args.handler(args)


def test_a_mixed_size_folder_names_the_odd_file(parser, dataset, image_dir, tmp_path):
    # The odd file sorts first: the message must name it, not the first of the eleven good ones.
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(image_dir / "0-odd.png")
    args = parser.parse_args(["metrics", "--data", str(dataset), "--images", str(image_dir), "--detector",
                              "random-seed:0", "--cache-dir", str(tmp_path / "c"), "--device", "cpu"])
    with pytest.raises(MicrotuneError, match=r"1 of 13 images is not 24x24 like the other 12, e\.g\. .*0-odd\.png "
                                             r"\(64x48\)"):
        args.handler(args)


def test_generate_grid_and_hidden_files_are_skipped(parser, dataset, image_dir, tmp_path, capsys):
    from microtune.gan.generate import GRID_FILE

    assert GRID_FILE == commands.GENERATE_GRID
    Image.fromarray(np.zeros((48, 72), np.uint8)).save(image_dir / GRID_FILE)  # a 2x3 grid of 24x24 samples
    (image_dir / "._000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS resource fork
    args = parser.parse_args(["metrics", "--data", str(dataset), "--images", str(image_dir), "--metrics", "fid",
                              "--detector", "random-seed:0", "--cache-dir", str(tmp_path / "c"), "--device", "cpu"])
    assert args.handler(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["protocols"] == ["fid12_full"]
    assert len(printed["skipped"]) == 1 and "grid.png" in printed["skipped"][0]


def test_a_dataset_edited_in_place_is_measured_as_it_is_now_with_a_warning(parser, dataset, image_dir, tmp_path,
                                                                           capsys):
    import os

    st = (dataset / "images.npy").stat()
    os.utime(dataset / "images.npy", ns=(st.st_atime_ns, st.st_mtime_ns - 3600 * 10**9))  # in use for an hour
    def run(cache):
        args = parser.parse_args(["metrics", "--data", str(dataset), "--images", str(image_dir), "--metrics", "fid",
                                  "--detector", "random-seed:0", "--cache-dir", str(tmp_path / cache),
                                  "--device", "cpu"])
        assert args.handler(args) == 0
        return json.loads(capsys.readouterr().out)

    first = run("c")
    arr = np.load(dataset / "images.npy", mmap_mode="r+")
    arr[:10] = 255 - arr[:10]
    arr.flush()
    del arr
    edited, fresh = run("c"), run("fresh")
    assert edited["metrics"] == fresh["metrics"] != first["metrics"]
    assert edited["dataset_sha256"] != edited["manifest_sha256"] == first["dataset_sha256"]
    assert len(edited["warnings"]) == 1 and "changed after the dataset was written" in edited["warnings"][0]
