"""Fréchet distance between Gaussians fitted to detector features (FID).

FID (Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a local Nash
equilibrium", NeurIPS, eq. 6; Fréchet/Dowson & Landau 1982) is

    d² = ||mu1 - mu2||² + tr(S1 + S2 - 2 (S1 S2)^{1/2}),

the squared 2-Wasserstein distance between N(mu1, S1) and N(mu2, S2).  We evaluate the trace of
the matrix square root through the symmetric form tr((S1 S2)^{1/2}) = tr((A S2 A)^{1/2}) with
A = S1^{1/2} (both from symmetric eigendecompositions, eigenvalues clipped at 0), which is real by
construction and needs no complex arithmetic; it is the same quantity as NVlabs' ``sqrtm`` route
and torch-fidelity's ``eigvals`` route (cross-checked in tests/metrics/test_fid.py).

Statistics are accumulated in float64 with :class:`RunningStatistics`, so features can stream
through in batches of any size and give the same mean and covariance.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RunningStatistics", "feature_statistics", "frechet_distance"]


class RunningStatistics:
    """Streaming mean and covariance of feature vectors, in float64.

    Parameters
    ----------
    dim : int
        Feature dimension (2048 for Inception-v3 pool features).

    Notes
    -----
    Keeps ``sum x`` and ``sum x xᵀ`` (a ``dim × dim`` float64 matrix, 32 MiB for 2048-d), so
    memory does not grow with the number of images.  The covariance is the unbiased one
    (divisor ``n - 1``), as in NVlabs' ``FeatureStats.get_mean_cov`` and ``numpy.cov``.
    """

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)
        self.count = 0
        self._sum = np.zeros(self.dim, dtype=np.float64)
        self._outer = np.zeros((self.dim, self.dim), dtype=np.float64)

    def update(self, features: np.ndarray) -> None:
        """Add a batch of features of shape ``(n, dim)``."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected features of shape (n, {self.dim}), got {x.shape}")
        self.count += x.shape[0]
        self._sum += x.sum(axis=0)
        self._outer += x.T @ x

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(mean, covariance)``; needs at least two vectors."""
        if self.count < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, got {self.count}")
        mean = self._sum / self.count
        cov = (self._outer - self.count * np.outer(mean, mean)) / (self.count - 1)
        return mean, (cov + cov.T) / 2.0


def feature_statistics(features: np.ndarray, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (float64) of ``features`` with shape ``(n, dim)``."""
    features = np.asarray(features)
    stats = RunningStatistics(features.shape[1])
    for start in range(0, features.shape[0], batch_size):
        stats.update(features[start : start + batch_size])
    return stats.mean_cov()


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negatives clipped)."""
    eigval, eigvec = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (eigvec * np.sqrt(np.clip(eigval, 0.0, None))) @ eigvec.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    Parameters
    ----------
    mu1, mu2 : ndarray, shape (d,)
        Means.
    sigma1, sigma2 : ndarray, shape (d, d)
        Symmetric positive semi-definite covariances.

    Returns
    -------
    float
        ``||mu1 - mu2||² + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2})``, clipped at 0 (the
        trace of the root is computed from eigenvalues whose round-off can make a distance of a
        set to itself come out at -1e-10).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise ValueError(f"means must be vectors of one shape, got {mu1.shape} and {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"covariances must be {mu1.size}x{mu1.size}, got {sigma1.shape} and {sigma2.shape}")
    root1 = _sqrt_psd(sigma1)
    inner = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    return max(value, 0.0)
