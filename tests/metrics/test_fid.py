"""Fréchet distance: closed forms, self-distance, batch invariance, independent cross-checks."""

import numpy as np
import pytest
import scipy.linalg
import torch

from microtune.metrics.fid import RunningStatistics, feature_statistics, frechet_distance


def _random_spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_diagonal_gaussians_match_closed_form():
    # For diagonal covariances the matrices commute and (S1 S2)^{1/2} = diag(s1 s2), so
    # d² = ||mu1 - mu2||² + Σ (s1 - s2)² with s the standard deviations (Dowson & Landau 1982).
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.standard_normal(16), rng.standard_normal(16)
    s1, s2 = rng.uniform(0.1, 3.0, 16), rng.uniform(0.1, 3.0, 16)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
    got = frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_commuting_full_covariances_match_closed_form():
    # Same eigenvectors Q: S_i = Q diag(l_i) Qᵀ, so tr((S1 S2)^{1/2}) = Σ sqrt(l1 l2).
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    l1, l2 = rng.uniform(0.01, 4.0, 12), rng.uniform(0.01, 4.0, 12)
    mu = rng.standard_normal(12)
    s1, s2 = q @ np.diag(l1) @ q.T, q @ np.diag(l2) @ q.T
    expected = np.sum(l1) + np.sum(l2) - 2 * np.sum(np.sqrt(l1 * l2)) + mu @ mu
    assert frechet_distance(mu, s1, np.zeros(12), s2) == pytest.approx(expected, rel=1e-9)


def test_general_covariances_match_scipy_sqrtm():
    # Independent formula: NVlabs/pytorch-fid style, trace of scipy.linalg.sqrtm(S1 @ S2).
    rng = np.random.default_rng(2)
    s1, s2 = _random_spd(rng, 32), _random_spd(rng, 32)
    mu1, mu2 = rng.standard_normal(32), rng.standard_normal(32)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_fid_of_a_set_with_itself_is_zero_even_when_rank_deficient():
    rng = np.random.default_rng(3)
    feats = rng.standard_normal((50, 128)).astype(np.float32)  # n < d: singular covariance
    mu, cov = feature_statistics(feats)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-6)


def test_running_statistics_are_batch_invariant_and_match_numpy():
    rng = np.random.default_rng(4)
    feats = rng.standard_normal((257, 20)) * 3 + 5
    one = RunningStatistics(20)
    one.update(feats)
    many = RunningStatistics(20)
    for start in range(0, 257, 10):
        many.update(feats[start : start + 10])
    for (m1, c1), (m2, c2) in [(one.mean_cov(), many.mean_cov())]:
        np.testing.assert_allclose(m1, m2, rtol=1e-12)
        np.testing.assert_allclose(c1, c2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(one.mean_cov()[1], np.cov(feats, rowvar=False), rtol=1e-9, atol=1e-12)


def test_matches_torch_fidelity_on_identical_features():
    # Reference: torch-fidelity 0.4 metric_fid (eigvals of S1 S2), an independent implementation.
    metric_fid = pytest.importorskip("torch_fidelity.metric_fid")
    rng = np.random.default_rng(5)
    real = rng.standard_normal((400, 64))
    gen = rng.standard_normal((300, 64)) * 1.3 + 0.2
    s_real = metric_fid.fid_features_to_statistics(torch.from_numpy(real))
    s_gen = metric_fid.fid_features_to_statistics(torch.from_numpy(gen))
    ref = metric_fid.fid_statistics_to_metric(s_real, s_gen, verbose=False)["frechet_inception_distance"]
    mu_r, cov_r = feature_statistics(real)
    mu_g, cov_g = feature_statistics(gen)
    assert frechet_distance(mu_r, cov_r, mu_g, cov_g) == pytest.approx(ref, rel=1e-6)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
