"""Improved precision and recall of generative models (k-NN manifolds).

After Kynkäänniemi, Karras, Laine, Lehtinen & Aila 2019, "Improved precision and recall metric for
assessing generative models", NeurIPS, eqs. 1-2: the manifold of a feature set Φ is the union of
balls centred on each φ' ∈ Φ with radius ||φ' - NN_k(φ', Φ)||, the distance to its k-th nearest
neighbour in Φ (the point itself excluded).  Then

    precision = fraction of generated features inside the manifold of the real features,
    recall    = fraction of real features inside the manifold of the generated features,

with k = 3 in the StyleGAN2-ADA SEM study (Methods, eq. 3) and NVlabs' ``pr50k3_full``.

Distances are computed in blocks of ``row_batch × col_batch`` with torch (float32 matmul, as in
NVlabs' implementation), so memory stays bounded for 50k × 50k comparisons and a GPU is used when
the features live on one.  Comparisons use squared distances; no square roots are taken.

The expansion ``|a - b|² = |a|² + |b|² - 2 a·b`` loses precision to cancellation when the vectors
share a large common component: its float32 rounding error grows with ``|a|²`` (about
``2⁻²⁴ |a|²``), not with ``|a - b|²``.  Detector features are far from the origin (VGG-16 fc2
outputs are post-ReLU, all non-negative), so an offset large against the spread of the features
would flip inside/outside decisions.  Euclidean distances are invariant under a common
translation, so every function first subtracts one common centre (the float64 mean of all the
vectors it compares, subtracted in float64, then rounded to float32): the error then scales
with the spread of the features, and a common offset added to every feature leaves the result
unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["kth_neighbour_radii", "manifold_coverage", "precision_recall"]


def _as_tensor(x, device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
    return t.to(device=device)


def _centred(*sets, device, chunk: int = 8192) -> list[torch.Tensor]:
    """The feature sets as float32 tensors on ``device``, less the float64 mean of all their rows.

    Works in chunks of ``chunk`` rows, so the float64 copies stay small (see the module docstring).
    """
    tensors = [_as_tensor(x, device) for x in sets]
    total = sum(t.shape[0] for t in tensors)
    centre = torch.zeros(tensors[0].shape[1], dtype=torch.float64, device=tensors[0].device)
    for t in tensors:
        for r0 in range(0, t.shape[0], chunk):
            centre += t[r0 : r0 + chunk].to(torch.float64).sum(dim=0)
    centre /= max(total, 1)
    out = []
    for t in tensors:
        c = torch.empty(t.shape, dtype=torch.float32, device=t.device)
        for r0 in range(0, t.shape[0], chunk):
            c[r0 : r0 + chunk] = (t[r0 : r0 + chunk].to(torch.float64) - centre).to(torch.float32)
        out.append(c)
    return out


def _squared_distances(a: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between rows of ``a`` and ``b`` (``b_sq`` = row norms² of b)."""
    a_sq = (a * a).sum(dim=1, keepdim=True)
    return (a_sq + b_sq.unsqueeze(0) - 2.0 * (a @ b.T)).clamp_min_(0.0)


def kth_neighbour_radii(
    features, k: int = 3, *, row_batch: int = 1024, col_batch: int = 10000, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Squared distance from each vector to its k-th nearest neighbour in the same set.

    Parameters
    ----------
    features : array-like, shape (n, d)
        Feature vectors.
    k : int
        Neighbourhood size (the vector itself does not count).
    row_batch, col_batch : int
        Block sizes; peak extra memory is about ``row_batch × (col_batch + k + 1)`` floats.

    Returns
    -------
    torch.Tensor, shape (n,)
        Squared radii, float32.
    """
    (x,) = _centred(features, device=device)
    return _radii(x, k, row_batch=row_batch, col_batch=col_batch)


def _radii(x: torch.Tensor, k: int, *, row_batch: int, col_batch: int) -> torch.Tensor:
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} vectors, got {k}")
    x_sq = (x * x).sum(dim=1)
    radii = torch.empty(n, dtype=torch.float32, device=x.device)
    for r0 in range(0, n, row_batch):
        rows = x[r0 : r0 + row_batch]
        best = None  # the k+1 smallest squared distances so far (the row itself is one of them)
        for c0 in range(0, n, col_batch):
            d = _squared_distances(rows, x[c0 : c0 + col_batch], x_sq[c0 : c0 + col_batch])
            cand = d if best is None else torch.cat([best, d], dim=1)
            best = torch.topk(cand, min(k + 1, cand.shape[1]), dim=1, largest=False).values
        radii[r0 : r0 + rows.shape[0]] = best[:, k]
    return radii


def manifold_coverage(
    queries,
    reference,
    reference_radii: torch.Tensor,
    *,
    row_batch: int = 1024,
    col_batch: int = 10000,
    device: str | torch.device = "cpu",
) -> float:
    """Fraction of ``queries`` inside the union of balls (``reference``, ``reference_radii``).

    A query is inside when its squared distance to some reference vector is at most that vector's
    squared radius (ties count as inside, as in the reference implementations).
    """
    q, ref = _centred(queries, reference, device=device)
    return _coverage(q, ref, reference_radii, row_batch=row_batch, col_batch=col_batch)


def _coverage(q: torch.Tensor, ref: torch.Tensor, reference_radii: torch.Tensor, *, row_batch: int,
              col_batch: int) -> float:
    radii = reference_radii.to(device=ref.device, dtype=torch.float32)
    ref_sq = (ref * ref).sum(dim=1)
    inside = 0
    for r0 in range(0, q.shape[0], row_batch):
        rows = q[r0 : r0 + row_batch]
        hit = torch.zeros(rows.shape[0], dtype=torch.bool, device=ref.device)
        for c0 in range(0, ref.shape[0], col_batch):
            d = _squared_distances(rows, ref[c0 : c0 + col_batch], ref_sq[c0 : c0 + col_batch])
            hit |= (d <= radii[c0 : c0 + col_batch].unsqueeze(0)).any(dim=1)
        inside += int(hit.sum())
    return inside / q.shape[0]


def precision_recall(
    real,
    generated,
    *,
    k: int = 3,
    row_batch: int = 1024,
    col_batch: int = 10000,
    device: str | torch.device = "cpu",
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of ``generated`` against ``real``.

    Parameters
    ----------
    real, generated : array-like, shape (n_real, d) and (n_gen, d)
        Detector features (VGG-16 fc2 in the study).
    k : int
        Neighbourhood size for the manifold radii (3 in the study).
    row_batch, col_batch : int
        Distance block sizes (bounded memory).
    device : str or torch.device
        Where distances are computed.

    Returns
    -------
    (float, float)
        ``(precision, recall)``, both in [0, 1].
    """
    real, generated = _centred(real, generated, device=device)  # one centre for both: see the module docstring
    opts = dict(row_batch=row_batch, col_batch=col_batch)
    real_radii = _radii(real, k, **opts)
    gen_radii = _radii(generated, k, **opts)
    precision = _coverage(generated, real, real_radii, **opts)
    recall = _coverage(real, generated, gen_radii, **opts)
    return precision, recall
