"""Networks and the hierarchical transfer (HPTL paper sec. 3.3.2-3.3.3)."""

from __future__ import annotations

import pytest
import torch

from microtune.errors import MicrotuneError
from microtune.seg.hptl import PAPER_DEPTHS, freeze, parse_depths, transfer
from microtune.seg.loop import SegData, StageOptions, train_stage
from microtune.seg.networks import FCN, UNITS, VARIANTS, VGG19, unit_parameters

W = 1 / 16  # CPU-sized width multiplier


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(64, 64), (50, 70)])
def test_fcn_output_matches_input_size(variant, channels, size):
    model = FCN(5, variant, in_channels=channels, width=W).eval()
    out = model(torch.randn(2, channels, *size))
    assert out.shape == (2, 5, *size)


def test_vgg_classifier_shape_and_units():
    model = VGG19(7, in_channels=3, width=W)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert {n.split(".")[0] for n, _ in model.named_parameters()} == {*UNITS[:7], "fc8"}


def _differs(a, b, unit):
    pa, pb = unit_parameters(a, unit), unit_parameters(b, unit)
    return all(not torch.equal(pa[n], pb[n].reshape(pa[n].shape)) for n in pa if pa[n].numel() > 1)


def _equal(a, b, unit):
    pa, pb = unit_parameters(a, unit), unit_parameters(b, unit)
    return bool(pa) and all(torch.equal(pa[n], pb[n].reshape(pa[n].shape)) for n in pa)


@pytest.mark.parametrize("depth", [0, 2, 7])
def test_transfer_vgg_to_fcn32s_copies_exactly_the_first_units(depth):
    torch.manual_seed(0)
    vgg, fcn = VGG19(6, width=W), FCN(3, "32s", width=W)
    for p in vgg.parameters():  # make biases non-zero so that "not equal" is meaningful for them too
        torch.nn.init.normal_(p)
    copied = transfer(vgg, fcn, depth)
    assert {n.split(".")[0] for n in copied} == set(UNITS[:depth])
    for unit in UNITS[:depth]:
        assert _equal(fcn, vgg, unit)          # fc6 compared through the Linear → 7x7 conv reshape
    for unit in UNITS[depth:7]:
        assert _differs(fcn, vgg, unit)


def test_paper_depth_chain_copies_named_units():
    torch.manual_seed(0)
    t1, t2, t3 = parse_depths("conv2,score_fr,upscore2")
    assert (t1, t2, t3) == PAPER_DEPTHS
    f32, f16, f8 = (FCN(3, v, width=W) for v in VARIANTS)
    assert len(transfer(f32, f16, t2)) > 0
    for p in f16.parameters():
        torch.nn.init.normal_(p)
    names = transfer(f16, f8, t3)
    assert {n.split(".")[0] for n in names} == set(UNITS[:9])
    assert _equal(f8, f16, "upscore2") and _differs(f8, f16, "score_pool4")


@pytest.mark.parametrize("bad", ["1,2", "8,8,9", "2,9,9", "2,8,11", "2,8,pool9", "-1,8,9"])
def test_depths_are_validated(bad):
    with pytest.raises(MicrotuneError, match="--depths"):
        parse_depths(bad)


def test_transfer_rejects_mismatched_width():
    with pytest.raises(MicrotuneError, match="differs in size"):
        transfer(VGG19(6, width=W), FCN(3, "32s", width=W * 2), 1)


def test_freezing_freezes_only_transferred_units():
    torch.manual_seed(0)
    vgg, fcn = VGG19(6, width=W), FCN(3, "32s", width=W)
    copied = transfer(vgg, fcn, 2)
    freeze(fcn, copied)
    before = {n: p.detach().clone() for n, p in fcn.named_parameters()}
    images = torch.rand(4, 64, 64).mul(255).numpy()
    data = SegData.from_arrays(images, (images > 128).astype("int64") * 2, ["a", "b", "c"])
    train_stage(fcn, data, data, StageOptions(epochs=1, batch=2, crop=32, lr=1e-2, samples_per_epoch=4))
    for name, p in fcn.named_parameters():
        if name in copied:
            assert not p.requires_grad and torch.equal(p, before[name]), name
    assert not torch.equal(fcn.score_fr.weight, before["score_fr.weight"])
    assert not torch.equal(fcn.conv3[0].weight, before["conv3.0.weight"])
