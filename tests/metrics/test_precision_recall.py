"""Improved precision/recall on constructed point sets, batch invariance and a cross-check."""

import numpy as np
import pytest
import torch

from microtune.metrics.precision_recall import kth_neighbour_radii, precision_recall


def test_identical_sets_give_one():
    feats = np.random.default_rng(0).standard_normal((60, 10))
    assert precision_recall(feats, feats.copy(), k=3) == (1.0, 1.0)


def test_disjoint_far_sets_give_zero():
    rng = np.random.default_rng(1)
    real = rng.standard_normal((50, 10))
    gen = rng.standard_normal((40, 10)) + 1000.0
    assert precision_recall(real, gen, k=3) == (0.0, 0.0)


def test_half_of_generated_off_manifold():
    # Generated = the real points plus an equally large far cluster: precision 1/2 (only the copies
    # lie in real balls), recall 1 (every real point has a generated copy at distance 0).
    rng = np.random.default_rng(2)
    real = rng.standard_normal((30, 5))
    gen = np.concatenate([real, rng.standard_normal((30, 5)) * 0.1 + 500.0])
    precision, recall = precision_recall(real, gen, k=3)
    assert precision == pytest.approx(0.5)
    assert recall == 1.0


def test_kth_radius_on_a_line():
    # Points 0, 1, 3, 6, 10 on a line: 3rd neighbour of 0 is 6 (d² = 36), of 10 is 1 (d² = 81).
    x = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]])
    np.testing.assert_allclose(kth_neighbour_radii(x, 3).numpy(), [36, 25, 9, 25, 81])


def test_same_result_in_one_block_or_many():
    rng = np.random.default_rng(3)
    real = rng.standard_normal((97, 12))
    gen = rng.standard_normal((83, 12)) * 1.4
    whole = precision_recall(real, gen, k=3, row_batch=10_000, col_batch=10_000)
    blocks = precision_recall(real, gen, k=3, row_batch=7, col_batch=5)
    assert whole == blocks
    assert 0.0 < whole[0] < 1.0 and 0.0 < whole[1] < 1.0


def test_matches_torch_fidelity_on_identical_features():
    # Reference: torch-fidelity 0.4 metric_prc.calculate_precision_recall_part (torch.cdist +
    # kthvalue; its first argument is the generated set).
    metric_prc = pytest.importorskip("torch_fidelity.metric_prc")
    rng = np.random.default_rng(4)
    real = torch.from_numpy(rng.standard_normal((300, 24)).astype(np.float32))
    gen = torch.from_numpy((rng.standard_normal((250, 24)) * 1.3 + 0.3).astype(np.float32))
    ref = metric_prc.calculate_precision_recall_part(gen, real, neighborhood=3, batch_size=64)
    ours = precision_recall(real, gen, k=3, row_batch=64, col_batch=100)
    assert ours == pytest.approx(ref, abs=1.0 / 250)  # at most one borderline vector may differ


def _offset_sets():
    # Two overlapping clouds of spread ~1 on a dyadic grid (multiples of 1/64), so that adding the
    # offset below is exact in float32 and both calls see exactly the same geometry.
    rng = np.random.default_rng(5)
    real = np.round(rng.standard_normal((120, 32)) * 64) / 64
    gen = np.round((rng.standard_normal((100, 32)) * 1.2 + 0.4) * 64) / 64
    offset = 4096.0 * rng.integers(1, 4, 32)  # a large common component, as post-ReLU features have
    return real.astype(np.float32), gen.astype(np.float32), offset.astype(np.float32)


def test_a_common_offset_changes_nothing():
    # Reference: Euclidean distances are invariant under a common translation, so precision and
    # recall of (real + c, gen + c) must equal those of (real, gen) exactly.  Without centring, the
    # float32 expansion |a|² + |b|² - 2a·b has rounding errors of order 2⁻²⁴·|c|² ≈ 2e3 here, far
    # above the squared radii (≈ 20), and the values collapse.
    real, gen, offset = _offset_sets()
    assert np.array_equal((real + offset) - offset, real) and np.array_equal((gen + offset) - offset, gen)
    plain = precision_recall(real, gen, k=3)
    assert 0.05 < plain[0] < 0.95 and 0.05 < plain[1] < 0.95  # a case where decisions matter (0.16, 0.89)
    assert precision_recall(real + offset, gen + offset, k=3) == plain
    assert precision_recall(real + offset, gen + offset, k=3, row_batch=17, col_batch=13) == plain


def test_radii_and_coverage_are_translation_invariant_on_their_own():
    from microtune.metrics.precision_recall import manifold_coverage

    real, gen, offset = _offset_sets()
    radii = kth_neighbour_radii(real, 3)
    shifted = kth_neighbour_radii(real + offset, 3)
    np.testing.assert_allclose(shifted.numpy(), radii.numpy(), rtol=1e-5)
    assert manifold_coverage(gen + offset, real + offset, shifted) == manifold_coverage(gen, real, radii)
