"""StyleGAN2 generator/discriminator: shapes, channels, mapping, truncation, minibatch stddev."""

from __future__ import annotations

import math

import pytest
import torch

from microtune.gan.networks import Discriminator, Generator, minibatch_stddev

SMALL = dict(channel_base=256, channel_max=16)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("resolution", [16, 32])
def test_generator_and_discriminator_shapes(resolution, channels):
    torch.manual_seed(0)
    G = Generator(z_dim=8, w_dim=12, resolution=resolution, img_channels=channels, mapping_layers=2, **SMALL)
    D = Discriminator(resolution=resolution, img_channels=channels, **SMALL)
    assert G.num_ws == 2 * int(math.log2(resolution)) - 2  # one w per conv + the last toRGB
    img = G(torch.randn(4, 8))
    assert img.shape == (4, channels, resolution, resolution)
    assert torch.isfinite(img).all()
    assert D(img).shape == (4, 1)
    with pytest.raises(AssertionError):
        D(torch.zeros(4, channels, resolution * 2, resolution * 2))


def test_mapping_uses_lr_multiplier_and_tracks_w_avg():
    torch.manual_seed(0)
    G = Generator(z_dim=8, w_dim=8, resolution=16, img_channels=1, mapping_layers=3, **SMALL)
    assert len(G.mapping.layers) == 3
    assert all(layer.weight_gain == pytest.approx(0.01 / math.sqrt(8)) for layer in G.mapping.layers)
    assert torch.count_nonzero(G.mapping.w_avg) == 0
    ws = G.mapping(torch.randn(64, 8), update_w_avg=True)
    expected = ws[:, 0].mean(0) * (1 - G.mapping.w_avg_beta)
    torch.testing.assert_close(G.mapping.w_avg, expected)


def test_truncation_zero_collapses_to_the_average_image():
    torch.manual_seed(0)
    G = Generator(z_dim=8, w_dim=8, resolution=16, img_channels=1, mapping_layers=2, **SMALL).eval()
    G.mapping.w_avg.normal_()
    a = G(torch.randn(2, 8), truncation_psi=0.0, noise_mode="const")
    torch.testing.assert_close(a[0], a[1])
    b = G(torch.randn(2, 8), truncation_psi=1.0, noise_mode="const")
    assert not torch.allclose(b[0], b[1])


def test_fused_modconv_generator_matches_unfused():
    torch.manual_seed(0)
    kw = dict(z_dim=8, w_dim=8, resolution=16, img_channels=1, mapping_layers=2, **SMALL)
    G1, G2 = Generator(**kw), Generator(fused_modconv=True, **kw)
    G2.load_state_dict(G1.state_dict())
    z = torch.randn(3, 8)
    torch.testing.assert_close(G1(z, noise_mode="const"), G2(z, noise_mode="const"), rtol=1e-4, atol=1e-4)


def test_every_parameter_receives_gradient():
    torch.manual_seed(0)
    G = Generator(z_dim=8, w_dim=8, resolution=16, img_channels=1, mapping_layers=2, **SMALL)
    D = Discriminator(resolution=16, img_channels=1, **SMALL)
    for block in G.synthesis.blocks:  # noise strengths start at 0: give them a gradient path
        for layer in (getattr(block, "conv0", None), block.conv1):
            if layer is not None:
                layer.noise_strength.data.fill_(0.1)
    D(G(torch.randn(4, 8))).sum().backward()
    for name, p in list(G.named_parameters()) + list(D.named_parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_minibatch_stddev_appends_group_std():
    torch.manual_seed(0)
    x = torch.randn(8, 6, 4, 4)
    y = minibatch_stddev(x, group_size=4)
    assert y.shape == (8, 7, 4, 4)
    torch.testing.assert_close(y[:, :6], x)
    group = x[[1, 3, 5, 7]]  # sample i is grouped with i + k·N/G
    expected = (group.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
    torch.testing.assert_close(y[1, 6], expected.expand(4, 4))
    with pytest.raises(AssertionError):
        minibatch_stddev(torch.randn(6, 6, 4, 4), group_size=4)
