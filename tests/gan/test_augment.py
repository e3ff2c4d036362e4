"""ADA augmentation pipe: identity at p = 0, change at p = 1, shape/dtype, gradients, grayscale rules."""

from __future__ import annotations

import pytest
import torch

from microtune.gan.augment import AUGPIPE_PRESETS, AugmentPipe
from microtune.gan.config import AUGPIPE_NAMES

SINGLE = ["xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast",
          "lumaflip", "hue", "saturation", "imgfilter", "noise", "cutout"]


def _pipe(transforms, channels):
    pipe = AugmentPipe("bgcfnc", num_channels=channels, lumaflip=True)
    pipe.enabled = frozenset(transforms)
    pipe.geometric = bool(pipe.enabled & set(AUGPIPE_PRESETS["bg"]))
    pipe.color = bool(pipe.enabled & set(AUGPIPE_PRESETS["color"]))
    return pipe


def _images(channels, n=8, size=16):
    torch.manual_seed(0)
    return torch.rand(n, channels, size, size) * 2 - 1


def test_presets_match_the_cli_names():
    assert set(AUGPIPE_PRESETS) == set(AUGPIPE_NAMES)
    assert AUGPIPE_PRESETS["bgcfnc"] == AUGPIPE_PRESETS["bgcfn"] + ("cutout",)
    with pytest.raises(ValueError):
        AugmentPipe("bogus")


@pytest.mark.parametrize("name", SINGLE)
def test_each_transform_identity_change_shape_gradient(name):
    channels = 3 if name in ("hue", "saturation") else 1
    pipe = _pipe([name], channels)
    x = _images(channels).requires_grad_(True)
    assert pipe(x, 0.0) is x  # exact identity (shortcut)
    torch.testing.assert_close(pipe(x, torch.tensor(0.0)), x, rtol=0, atol=1e-5)  # draws made, none applied
    y = pipe(x, 1.0)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert (y - x).abs().mean() > 1e-3, f"{name} did not change the images at p = 1"
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", [n for n in AUGPIPE_NAMES if n != "none"])
def test_every_preset_changes_images_at_p1(name):
    pipe = AugmentPipe(name, num_channels=1)
    x = _images(1)
    assert pipe(x, 0.0) is x
    assert (pipe(x, 1.0) - x).abs().mean() > 1e-3


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtype_is_kept(dtype):
    x = _images(1).to(dtype)
    assert AugmentPipe("bgcfnc", num_channels=1)(x, 1.0).dtype == dtype


def test_hue_and_saturation_do_nothing_on_one_channel():
    x = _images(1)
    torch.testing.assert_close(_pipe(["hue", "saturation"], 1)(x, 1.0), x)
    assert not {"hue", "saturation"} & AugmentPipe("color", num_channels=1).enabled


def test_lumaflip_off_by_default_on_grayscale_only():
    assert "lumaflip" not in AugmentPipe("bgc", num_channels=1).enabled
    assert "lumaflip" in AugmentPipe("bgc", num_channels=3).enabled
    assert "lumaflip" in AugmentPipe("bgc", num_channels=1, lumaflip=True).enabled
    x = _images(1)
    y = _pipe(["lumaflip"], 1)(x, 1.0)  # luma flip on one channel is x -> -x or nothing
    flipped = (y + x).flatten(1).abs().amax(1) < 1e-5
    kept = (y - x).flatten(1).abs().amax(1) < 1e-5
    assert torch.all(flipped | kept) and flipped.any() and kept.any()


def test_pixel_blits_are_exact():
    x = _images(1, n=16)
    y = _pipe(["xflip"], 1)(x, 1.0)
    for a, b in zip(x, y):
        assert torch.allclose(a, b, atol=1e-5) or torch.allclose(a.flip(-1), b, atol=1e-5)
    y = _pipe(["rotate90"], 1)(x, 1.0)
    for a, b in zip(x, y):
        assert any(torch.allclose(torch.rot90(a, k, dims=(1, 2)), b, atol=1e-5) for k in range(4))


def test_probability_controls_the_fraction_of_changed_images():
    x = _images(1, n=400, size=8)
    y = _pipe(["xflip"], 1)(x, 0.5)
    changed = ((y - x).flatten(1).abs().amax(1) > 1e-5).float().mean().item()
    assert changed == pytest.approx(0.25, abs=0.07)  # applied with p = 0.5, then a fair coin flips
