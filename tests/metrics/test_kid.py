"""KID: unbiasedness, the estimator formula, and a cross-check with torch-fidelity."""

import numpy as np
import pytest
import torch

from microtune.metrics.kid import kernel_inception_distance, mmd2_unbiased


def test_mmd2_matches_explicit_double_sum():
    # Bińkowski et al. 2018 eq. 4 written out with Python loops on a tiny example.
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 4)) + 0.5
    k = lambda a, b: (a @ b / 4 + 1) ** 3  # noqa: E731
    m = 6
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    expected = (xx + yy) / (m * (m - 1)) - 2 * xy / m**2
    assert mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-12)


def test_kid_is_centred_on_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(1)
    same = [kernel_inception_distance(rng.standard_normal((200, 16)), rng.standard_normal((200, 16)),
                                      num_subsets=10, max_subset_size=100, seed=s)[0] for s in range(20)]
    mean, sem = np.mean(same), np.std(same) / np.sqrt(len(same))
    assert abs(mean) < 3 * sem + 1e-4  # unbiased: no systematic offset
    assert min(same) < 0 < max(same)   # the unbiased estimate goes negative as well
    shifted = kernel_inception_distance(rng.standard_normal((200, 16)), rng.standard_normal((200, 16)) + 1.0,
                                        num_subsets=10, max_subset_size=100)[0]
    assert shifted > 10 * max(abs(v) for v in same)


def test_kid_is_reproducible_with_a_seed():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((120, 8)), rng.standard_normal((90, 8))
    assert kernel_inception_distance(a, b, num_subsets=5, max_subset_size=50, seed=3) == \
        kernel_inception_distance(a, b, num_subsets=5, max_subset_size=50, seed=3)


def test_matches_torch_fidelity_on_identical_features():
    # Reference: torch-fidelity 0.4 metric_kid (its own kernel and mmd2 code). With one subset of
    # the whole set, both sides compute the MMD² of the full sets (order does not matter), so the
    # two implementations' different subset samplers do not enter.
    metric_kid = pytest.importorskip("torch_fidelity.metric_kid")
    rng = np.random.default_rng(4)
    real = rng.standard_normal((150, 32)).astype(np.float64)
    gen = (rng.standard_normal((150, 32)) * 1.2 + 0.1).astype(np.float64)
    ref = metric_kid.kid_features_to_metric(torch.from_numpy(gen), torch.from_numpy(real), kid_subsets=1,
                                            kid_subset_size=150, verbose=False)["kernel_inception_distance_mean"]
    ours, std = kernel_inception_distance(real, gen, num_subsets=1, max_subset_size=150)
    assert ours == pytest.approx(ref, rel=1e-9)
    assert std == 0.0
