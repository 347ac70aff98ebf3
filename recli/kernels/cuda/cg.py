"""Warm-started conjugate-gradient ALS sweep on the GPU (``numba.cuda``): the twin of the
``cg`` solver of :func:`recli.kernels.als.als_sweep` (see :mod:`recli.kernels.als` for
the equations). For every row ``u`` with interactions, ``cg_steps`` CG steps on

    A xᵤ = b,   A = A0 + Σᵢ c1ᵢ yᵢyᵢᵀ,   b = Σᵢ pᵢcᵢ yᵢ,   A0 = YᵀY + λI,

starting from the current ``xᵤ`` and never forming ``A``: ``A·v = A0·v + Σᵢ c1ᵢ(yᵢ·v)yᵢ``
over the row's non-zeros (c1 = alpha·|r|, c = 1 + c1, p = [r > 0]). A row stops early
once its squared residual is below ``CG_EPS``; rows without interactions get 0.

One thread per row; its residual, direction and product vectors live in its own rows of
``scratch`` (``(3, n_rows, k)`` float32, preallocated by the caller).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda

from recli.kernels import CG_EPS
from recli.kernels.cuda.device import launch


@cuda.jit(device=True)
def _times_a(indices, data, start, end, Y, A0, alpha, v, out, u):
    """out[u] = A·v[u] for row ``u``; returns v[u]·out[u]."""
    k = A0.shape[0]
    for f in range(k):
        acc = np.float32(0.0)
        for g in range(k):
            acc += A0[f, g] * v[u, g]
        out[u, f] = acc
    for idx in range(start, end):
        i = indices[idx]
        d = np.float32(0.0)
        for f in range(k):
            d += Y[i, f] * v[u, f]
        t = alpha * abs(data[idx]) * d
        for f in range(k):
            out[u, f] += t * Y[i, f]
    vav = np.float32(0.0)
    for f in range(k):
        vav += v[u, f] * out[u, f]
    return vav


@cuda.jit
def _cg_kernel(indptr, indices, data, X, Y, A0, alpha, cg_steps, eps, R, P, AP):
    u = cuda.grid(1)
    if u >= X.shape[0]:
        return
    k = X.shape[1]
    start = indptr[u]
    end = indptr[u + 1]
    if start == end:
        for f in range(k):
            X[u, f] = 0.0
        return
    _times_a(indices, data, start, end, Y, A0, alpha, X, AP, u)
    for f in range(k):
        R[u, f] = -AP[u, f]
    for idx in range(start, end):  # r = b - A x
        i = indices[idx]
        if data[idx] > 0:
            pc = np.float32(1.0) + alpha * abs(data[idx])
            for f in range(k):
                R[u, f] += pc * Y[i, f]
    rsold = np.float32(0.0)
    for f in range(k):
        P[u, f] = R[u, f]
        rsold += R[u, f] * R[u, f]
    if rsold < eps:
        return
    for _ in range(cg_steps):
        a = rsold / _times_a(indices, data, start, end, Y, A0, alpha, P, AP, u)
        rsnew = np.float32(0.0)
        for f in range(k):
            X[u, f] += a * P[u, f]
            R[u, f] -= a * AP[u, f]
            rsnew += R[u, f] * R[u, f]
        if rsnew < eps:
            return
        beta = rsnew / rsold
        for f in range(k):
            P[u, f] = R[u, f] + beta * P[u, f]
        rsold = rsnew


def cg_sweep(indptr: Any, indices: Any, data: Any, X: Any, Y: Any, A0: Any, alpha: float, cg_steps: int,
             scratch: Any) -> None:
    """``cg_steps`` warm-started CG steps on every row of ``X`` (in place) against fixed
    ``Y``, with ``A0 = YᵀY + λI`` given (float32 ``(k, k)``)."""
    n = X.shape[0]
    if n:
        launch(_cg_kernel, n)(indptr, indices, data, X, Y, A0, np.float32(alpha), np.int64(cg_steps),
                              np.float32(CG_EPS), scratch[0], scratch[1], scratch[2])
