"""Seeds, truncation, grids, slerp and the interpolation video."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from microtune.errors import MicrotuneError
from microtune.gan.generate import (
    interpolation_frames,
    latents_for_seeds,
    make_grid,
    parse_seeds,
    slerp,
    write_images,
    write_interpolation,
)
from microtune.gan.networks import Generator


def _png(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def _generator():
    torch.manual_seed(0)
    return Generator(z_dim=8, w_dim=8, resolution=16, img_channels=1, mapping_layers=2, channel_base=128, channel_max=16).eval()


def test_slerp_returns_endpoints_and_keeps_equal_norms():
    torch.manual_seed(0)
    a, b = torch.randn(512, dtype=torch.float64), torch.randn(512, dtype=torch.float64)
    b = b / b.norm() * a.norm()
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    path = slerp(a, b, torch.linspace(0, 1, 11, dtype=torch.float64))
    assert path.shape == (11, 512)
    torch.testing.assert_close(path.norm(dim=1), a.norm().expand(11))
    lerp_mid = (a + b) / 2
    assert lerp_mid.norm() < 0.9 * a.norm()  # linear interpolation would shrink it


def test_slerp_is_spherical_with_constant_angle_steps():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    torch.testing.assert_close(slerp(a, b, 1 / 3), torch.tensor([math.cos(math.pi / 6), math.sin(math.pi / 6)]))


def test_slerp_falls_back_to_linear_for_parallel_vectors():
    a = torch.tensor([1.0, 2.0, 3.0])
    out = slerp(a, 2 * a, 0.5)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, 1.5 * a)


def test_seeds_parse_and_give_reproducible_latents():
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    for bad in ("a-b", "", "-3"):
        with pytest.raises(MicrotuneError, match="--seeds"):
            parse_seeds(bad)
    torch.testing.assert_close(latents_for_seeds([5, 6], 8)[1], latents_for_seeds([6], 8)[0])


def test_grid_layout():
    images = np.arange(5 * 2 * 3, dtype=np.uint8).reshape(5, 2, 3, 1)
    grid = make_grid(images, columns=3)
    assert grid.shape == (4, 9, 1)
    assert (grid[2:4, 3:6] == images[4]).all() and (grid[2:4, 6:9] == 0).all()


def test_write_images_with_truncation_and_grid(tmp_path):
    G = _generator()
    G.mapping.w_avg.normal_()
    paths = write_images(G, [0, 1, 2], tmp_path, truncation_psi=0.0, grid=True)
    assert [p.name for p in paths] == ["seed0000.png", "seed0001.png", "seed0002.png", "grid.png"]
    first, second = (_png(p) for p in paths[:2])
    assert first.shape == (16, 16) and (first == second).all()  # psi = 0: every seed gives the mean image
    assert _png(paths[-1]).shape == (32, 32)


@pytest.mark.parametrize("space", ["z", "w"])
def test_interpolation_video_frames_and_figure(tmp_path, space):
    G = _generator()
    frames = interpolation_frames(G, 0, 1, 8, space=space)
    assert frames.shape == (8, 16, 16, 1) and frames.dtype == np.uint8
    ends = interpolation_frames(G, 0, 1, 2, space=space)
    assert (frames[0] == ends[0]).all() and (frames[-1] == ends[1]).all()
    written = write_interpolation(frames, tmp_path / "walk.mp4", fps=4)
    assert written["video"].stat().st_size > 0
    assert len(list(written["frames"].glob("frame*.png"))) == 8
    assert _png(written["figure"]).shape == (16, 6 * 16)  # start, 4 intermediates, end
    import imageio_ffmpeg

    assert imageio_ffmpeg.count_frames_and_secs(str(written["video"]))[0] == 8


def test_a_generate_folder_with_its_grid_is_accepted_by_metrics(tmp_path, capsys):
    # `generate --grid` then `metrics --images` on the same folder: the grid (another size) is
    # skipped by name instead of aborting the run with a message about the wrong file.
    import argparse
    import json

    from microtune.data.dataset import DatasetWriter
    from microtune.gan.generate import GRID_FILE
    from microtune.metrics import commands

    paths = write_images(_generator(), range(6), tmp_path / "gen", grid=True)
    assert paths[-1].name == GRID_FILE and _png(paths[-1]).shape == (32, 48)  # 2 rows of 3
    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "ds", resolution=16) as w:
        for i in range(8):
            w.add(rng.integers(0, 256, (16, 16), dtype=np.uint8), {"source": f"f{i}", "specimen": "S", "tile": [0, 0]})
        w.commit()
    parser = argparse.ArgumentParser(prog="microtune")
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["metrics", "--data", str(tmp_path / "ds"), "--images", str(tmp_path / "gen"),
                              "--metrics", "fid", "--detector", "random-seed:0", "--cache-dir", str(tmp_path / "c"),
                              "--device", "cpu"])
    assert args.handler(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["protocols"] == ["fid6_full"] and GRID_FILE in printed["skipped"][0]
