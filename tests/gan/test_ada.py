"""Adaptive p (ADA Sec. 3): r_t over 4 minibatches, steps that take p 0 -> 1 in 500 kimg, clamping."""

from __future__ import annotations

import pytest
import torch

from microtune.gan.ada import AdaController

BATCH = 64


def _feed(ada, kimg: float, value: float = 1.0):
    for _ in range(int(round(kimg * 1000 / BATCH))):
        ada.observe(torch.full((BATCH, 1), value))


def test_constant_overfitting_takes_p_from_0_to_1_in_500_kimg():
    ada = AdaController(target=0.6)
    _feed(ada, 250)
    assert float(ada.p) == pytest.approx(0.5, abs=1e-3)
    _feed(ada, 250)
    assert float(ada.p) == pytest.approx(1.0, abs=1e-3)
    _feed(ada, 1)
    assert float(ada.p) == 1.0  # clamped, reached
    _feed(ada, 10)
    assert float(ada.p) == 1.0


def test_no_overfitting_keeps_p_at_zero_and_decreases_it():
    ada = AdaController(target=0.6, p=0.1)
    _feed(ada, 10.24, value=-1.0)  # r_t = -1 < target; 40 adjustments of 256 images each
    assert float(ada.p) == pytest.approx(0.1 - 10.24 / 500, abs=1e-9)
    _feed(ada, 100, value=-1.0)
    assert float(ada.p) == 0.0


def test_p_moves_only_every_fourth_minibatch_by_the_rule():
    ada = AdaController(target=0.6, interval=4)
    for _ in range(3):
        ada.observe(torch.ones(BATCH))
        assert float(ada.p) == 0.0
    ada.observe(torch.ones(BATCH))
    assert float(ada.p) == pytest.approx(4 * BATCH / 500_000)


def test_rt_is_the_mean_sign_over_four_minibatches():
    ada = AdaController(target=0.5)
    logits = [torch.tensor([3.0, -0.1, 2.0, 5.0]), torch.tensor([1.0, 1.0, 1.0, 1.0]),
              torch.tensor([-2.0, -2.0, 0.5, 0.5]), torch.tensor([7.0, -1.0, -1.0, -1.0])]
    for chunk in logits:
        ada.observe(chunk)
    signs = torch.cat(logits).sign().mean().item()  # (2 + 4 + 0 - 2) / 16 = 0.25 < 0.5
    assert float(ada.rt) == pytest.approx(signs)
    assert float(ada.p) == 0.0  # r_t below target: p would decrease, clamped at 0


def test_fixed_p_is_not_adjusted_but_rt_is_measured():
    ada = AdaController(target=None, p=0.3)
    _feed(ada, 5)
    assert float(ada.p) == pytest.approx(0.3)
    assert float(ada.rt) == 1.0


def test_state_round_trip_is_exact():
    a = AdaController(target=0.6)
    _feed(a, 3)
    a.observe(torch.ones(BATCH))  # mid-interval accumulators
    b = AdaController(target=0.6)
    b.load_state_dict(a.state_dict())
    for ctl in (a, b):
        _feed(ctl, 2)
    assert float(a.p) == float(b.p) and float(a.rt) == float(b.rt)
