"""Losses and regularisers: R1 through geometric augmentation, path length, style mixing."""

from __future__ import annotations

import pytest
import torch

from microtune.gan.augment import AugmentPipe
from microtune.gan.loss import GanLoss
from microtune.gan.networks import Discriminator, Generator

SMALL = dict(channel_base=128, channel_max=16)


def _nets():
    torch.manual_seed(0)
    G = Generator(z_dim=8, w_dim=8, resolution=16, img_channels=1, mapping_layers=2, **SMALL)
    D = Discriminator(resolution=16, img_channels=1, **SMALL)
    return G, D


@pytest.mark.parametrize("preset", ["geom", "bgcfnc"])
def test_r1_through_geometric_augmentation_reaches_discriminator_weights(preset):
    """Needs grid_sample's double backward (DESIGN.md): the R1 term must move D's weights."""
    G, D = _nets()
    loss = GanLoss(G, D, AugmentPipe(preset, num_channels=1), r1_gamma=10.0, r1_interval=16)
    real = torch.rand(4, 1, 16, 16) * 2 - 1
    torch.manual_seed(1)
    total, stats, _ = loss.discriminator_loss(real, torch.randn(4, 8), 1.0, regularize=True)
    assert stats["loss_r1"] > 0
    with_r1 = torch.autograd.grad(total, list(D.parameters()), allow_unused=True)
    torch.manual_seed(1)  # same augmentation draws, no R1
    plain, _, _ = loss.discriminator_loss(real, torch.randn(4, 8), 1.0, regularize=False)
    without = torch.autograd.grad(plain, list(D.parameters()), allow_unused=True)
    diffs = [(a - b).abs().max().item() for a, b in zip(with_r1, without) if a is not None and b is not None]
    assert max(diffs) > 1e-6, "R1 gradient did not reach D's weights"
    assert D.fromrgb.weight in set(D.parameters())


def test_path_length_regulariser_tracks_mean_and_reaches_mapping():
    G, D = _nets()
    loss = GanLoss(G, D, lambda x, p: x, pl_weight=2.0, pl_interval=4)
    total, stats = loss.generator_loss(torch.randn(8, 8), 0.0, regularize=True)
    assert stats["loss_pl"] >= 0
    assert float(loss.pl_mean) > 0  # a <- lerp(a, mean length, 0.01) moved from 0
    total.backward()
    assert G.mapping.layers[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in D.parameters())  # D frozen in the G phase


def test_generator_loss_reports_and_skips_regulariser_when_not_due():
    G, D = _nets()
    loss = GanLoss(G, D, lambda x, p: x, pl_weight=2.0)
    _, stats = loss.generator_loss(torch.randn(4, 8), 0.0, regularize=False)
    assert set(stats) == {"loss_G"} and float(loss.pl_mean) == 0.0


@pytest.mark.parametrize("probability", [0.0, 1.0])
def test_style_mixing_probability(probability):
    G, D = _nets()
    loss = GanLoss(G, D, lambda x, p: x, style_mixing=probability)
    _, ws = loss.generate(torch.randn(16, 8))
    mixed = (ws[:, 0] - ws[:, -1]).abs().amax(dim=1) > 1e-6
    assert mixed.all() if probability == 1.0 else not mixed.any()


def test_discriminator_loss_is_the_logistic_loss():
    G, D = _nets()
    loss = GanLoss(G, D, lambda x, p: x)
    real = torch.rand(4, 1, 16, 16) * 2 - 1
    z = torch.randn(4, 8)
    total, _, real_logits = loss.discriminator_loss(real, z, 0.0, regularize=False)
    with torch.no_grad():
        fake_logits = D(G.synthesis(G.mapping(z)))
    expected = torch.nn.functional.softplus(fake_logits).mean() + torch.nn.functional.softplus(-real_logits).mean()
    torch.testing.assert_close(total, expected, rtol=1e-4, atol=1e-5)
