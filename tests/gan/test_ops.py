"""Resampling, equalised learning rate and (de)modulated convolution (StyleGAN2 Sec. 2.2)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from microtune.gan.ops import (
    Conv2dLayer,
    bias_act,
    FullyConnected,
    downsample2d,
    fir_filter,
    modulated_conv2d,
    upsample2d,
)


def test_equalised_lr_dense_scales_weights_at_run_time():
    torch.manual_seed(0)
    layer = FullyConnected(256, 64, lr_multiplier=0.01, bias_init=1.0)
    # Stored weights ~ N(0, 1/lr²) so that lr_mult · w / sqrt(fan_in) has std 1/sqrt(fan_in).
    assert layer.weight.std().item() == pytest.approx(100.0, rel=0.05)
    assert layer.weight_gain == pytest.approx(0.01 / math.sqrt(256))
    x = torch.randn(8, 256)
    expected = F.linear(x, layer.weight * 0.01 / 16.0, layer.bias * 0.01)
    torch.testing.assert_close(layer(x), expected)
    assert (layer.bias * layer.bias_gain).allclose(torch.ones(64))  # effective bias = bias_init


def test_equalised_lr_keeps_unit_variance():
    torch.manual_seed(0)
    dense = FullyConnected(512, 512)
    conv = Conv2dLayer(64, 64, 3, activation="linear")
    assert dense(torch.randn(2048, 512)).std().item() == pytest.approx(1.0, rel=0.05)
    y = conv(torch.randn(16, 64, 16, 16))[:, :, 1:-1, 1:-1]
    assert conv.weight_gain == pytest.approx(1 / math.sqrt(64 * 9))
    assert y.std().item() == pytest.approx(1.0, rel=0.05)


def test_fir_resampling_shapes_and_constant_preservation():
    f = fir_filter()
    assert f.sum().item() == pytest.approx(1.0)
    x = torch.full((2, 3, 8, 8), 0.7)
    up, down = upsample2d(x, f), downsample2d(x, f)
    assert up.shape == (2, 3, 16, 16) and down.shape == (2, 3, 4, 4)
    torch.testing.assert_close(up[:, :, 2:-2, 2:-2], torch.full_like(up[:, :, 2:-2, 2:-2], 0.7))
    torch.testing.assert_close(down[:, :, 1:-1, 1:-1], torch.full_like(down[:, :, 1:-1, 1:-1], 0.7))


def test_demodulation_gives_unit_output_variance():
    torch.manual_seed(0)
    x = torch.randn(4, 32, 24, 24)
    weight = torch.randn(48, 32, 3, 3)
    styles = torch.rand(4, 32) * 3 + 0.1  # arbitrary positive per-sample styles
    y = modulated_conv2d(x, weight, styles)[:, :, 1:-1, 1:-1]  # interior: no zero padding
    per_channel_std = y.std(dim=[2, 3])
    assert per_channel_std.mean().item() == pytest.approx(1.0, abs=0.03)
    assert per_channel_std.min().item() > 0.85
    undemod = modulated_conv2d(x, weight, styles, demodulate=False)
    assert undemod.std().item() > 3.0  # without demodulation the styles change the scale


@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("demodulate", [False, True])
def test_fused_and_unfused_modulation_agree(up, demodulate):
    torch.manual_seed(0)
    x, weight, styles = torch.randn(3, 5, 8, 8), torch.randn(6, 5, 3, 3), torch.randn(3, 5)
    kw = dict(demodulate=demodulate, up=up, kernel=fir_filter())
    torch.testing.assert_close(
        modulated_conv2d(x, weight, styles, fused=True, **kw), modulated_conv2d(x, weight, styles, fused=False, **kw),
        rtol=1e-4, atol=1e-4,
    )


def test_up_convolution_is_upsample_then_convolution():
    """Transposed conv + FIR equals FIR upsampling followed by a 3x3 convolution (away from borders)."""
    torch.manual_seed(0)
    x, weight = torch.randn(2, 4, 8, 8), torch.randn(5, 4, 3, 3)
    f = fir_filter()
    fast = modulated_conv2d(x, weight, torch.ones(2, 4), demodulate=False, up=True, kernel=f)
    slow = F.conv2d(upsample2d(x, f), weight.flip([2, 3]), padding=1)
    torch.testing.assert_close(fast[:, :, 3:-3, 3:-3], slow[:, :, 3:-3, 3:-3], rtol=1e-4, atol=1e-4)


def test_down_convolution_halves_and_keeps_constants():
    layer = Conv2dLayer(3, 2, 3, down=True, activation="linear", bias=False)
    x = torch.ones(1, 3, 16, 16)
    y = layer(x)
    assert y.shape == (1, 2, 8, 8)
    interior = y[:, :, 1:-1, 1:-1]
    torch.testing.assert_close(interior, interior[:, :, :1, :1].expand_as(interior))


def test_fused_bias_lrelu_matches_reference_with_double_backward():
    """The memory-saving bias + leaky ReLU keeps first and second derivatives (R1, path length)."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    reference = F.leaky_relu(x + b.reshape(1, 3, 1, 1), 0.2) * (0.7 * math.sqrt(2))
    torch.testing.assert_close(bias_act(x, b, "lrelu", gain=0.7), reference)
    assert torch.autograd.gradcheck(lambda x, b: bias_act(x, b, "lrelu", gain=0.7), (x, b))
    assert torch.autograd.gradgradcheck(lambda x, b: bias_act(x, b, "lrelu", gain=0.7) ** 2, (x, b))
