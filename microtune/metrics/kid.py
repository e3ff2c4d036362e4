"""Kernel Inception Distance (KID).

KID (Bińkowski, Sutherland, Arbel & Gretton 2018, "Demystifying MMD GANs", ICLR, sec. 4 and
appendix) is the squared maximum mean discrepancy between detector features of real and generated
images under the cubic polynomial kernel

    k(x, y) = (xᵀy / d + 1)³,

estimated without bias on ``num_subsets`` random subsets of ``m`` vectors from each set
(their eq. 4, the U-statistic):

    MMD²_u = [Σ_{i≠j} k(x_i, x_j) + Σ_{i≠j} k(y_i, y_j)] / (m (m - 1)) - 2 Σ_{i,j} k(x_i, y_j) / m².

The reported KID is the mean over subsets (NVlabs' ``kid50k_full``: 100 subsets of at most 1000).
Being unbiased, it is centred on 0 for two samples of one distribution and can be negative.
"""

from __future__ import annotations

import numpy as np

__all__ = ["polynomial_kernel", "mmd2_unbiased", "kernel_inception_distance"]


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """Kernel matrix ``(x yᵀ / d + coef0) ** degree`` in float64."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² between samples ``x`` and ``y`` of equal size ``m`` (cubic polynomial kernel)."""
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise ValueError(f"need two samples of one size >= 2, got {x.shape[0]} and {y.shape[0]}")
    k_xx = polynomial_kernel(x, x)
    k_yy = polynomial_kernel(y, y)
    k_xy = polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    real: np.ndarray,
    generated: np.ndarray,
    *,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID between two feature sets, as mean and standard deviation over subsets.

    Parameters
    ----------
    real, generated : ndarray, shape (n_real, d) and (n_gen, d)
        Detector features.
    num_subsets : int
        Number of random subset pairs (100 in Bińkowski et al. and NVlabs' protocol).
    max_subset_size : int
        Subset size ``m = min(n_real, n_gen, max_subset_size)``; subsets are drawn without
        replacement.
    seed : int
        Seed of the subset sampler (numpy ``default_rng``), so a value is reproducible.

    Returns
    -------
    (float, float)
        Mean and standard deviation of MMD² over the subsets.
    """
    real = np.asarray(real)
    generated = np.asarray(generated)
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
        raise ValueError(f"feature sets must be (n, d) with one d, got {real.shape} and {generated.shape}")
    m = min(real.shape[0], generated.shape[0], max_subset_size)
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets, dtype=np.float64)
    for i in range(num_subsets):
        x = generated[rng.choice(generated.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        values[i] = mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std())
