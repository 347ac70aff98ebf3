"""Implicit-feedback ALS kernels (Hu, Koren & Volinsky 2008, "Collaborative Filtering
for Implicit Feedback Datasets", eq. 4 and section 4).

For every row ``u`` of a CSR matrix of interactions ``r_ui`` the user factor solves

    (YᵀY + Yᵀ(Cᵤ − I)Y + λI) xᵤ = YᵀCᵤ p(u)

with confidence ``c_ui = 1 + alpha·|r_ui|`` and preference ``p_ui = 1 if r_ui > 0 else 0``
(a stored zero or negative value is a confident "no", as in implicit). ``YᵀY + λI`` is
computed once per sweep (``A0`` below); the per-row part only touches the row's
non-zeros, so a sweep costs O(nnz·k + n_rows·k²) per CG step.

``λ`` is one number, or one per row (``λᵤ``, e.g. ``λ·nᵤ`` with ``nᵤ`` the row's stored
entries: the ALS-WR weighting of Zhou et al. 2008 that Spark MLlib uses); then ``A0`` is
``YᵀY`` and each row adds its own ``λᵤI``.

Two solvers, both writing ``X`` in place, row by row (each thread owns its rows):

* ``cg``: ``cg_steps`` conjugate-gradient steps warm-started from the current ``X``
  (Takács, Pilászy & Tikk 2011), never forming the k×k matrix. Each step's product
  A·p passes over the row's non-zeros again; the initial residual gathers the row's
  factor rows yᵢ (scattered over ``Y``) once into a contiguous per-thread buffer, and
  the steps read that buffer in order instead of gathering from ``Y`` at random each
  time (rows beyond ``BUFFER_BYTES`` gather the rest on every pass, ``TAIL`` non-zeros
  at a time). Each pass takes the gathered rows four at a time: four dot products
  yⱼ·p share the loads of p, and their four multiply-adds into A·p share one load and
  store of it; ``(A0 + λI)·p`` is summed from A0's rows, four at a time, and for four
  short rows at once (rows of at most ``QUAD_NNZ`` non-zeros run in lockstep, four at a
  time). The operations and their order do not depend on where a row's factor rows were
  gathered nor on its neighbours, so neither the buffer nor the grouping changes ``X``
  (tests compare the bits).
* ``cholesky``: forms the k×k matrix and solves it exactly.

Rows without interactions get a zero factor (the exact solution, since b = 0).

The CG's per-row pieces (the buffer, the passes, four rows at a time) are in
:mod:`recli.kernels.als_cg`.

The ``xp_*`` twins are the same algorithms vectorised over a batch of rows with an
array module ``xp`` (NumPy here, CuPy on a GPU): the GPU-shaped path.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from recli.kernels import FASTMATH
from recli.kernels._chunks import balanced_bounds
from recli.kernels.als_cg import _cg_quad, _cg_row, _conf, _observed_term, _quad_ahead, _row_lambda

# Bytes of the per-chunk buffer the CG copies a row's factor rows into (4 MiB: 16384
# non-zeros at k = 64). A longer row gathers the rest on every pass, TAIL non-zeros at a
# time, so one popular item cannot make every thread allocate a buffer as large as the
# item's column.
BUFFER_BYTES = 4 << 20
TAIL = 256  # non-zeros per segment of a longer row's rest (a multiple of 4)
# Rows of at most this many non-zeros run four at a time (their Gram products as one small
# matrix product, where those products are most of a short row's work); 0: one at a time.
QUAD_NNZ = 256


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _cg_sweep(indptr, indices, data, X, Y, A0, lam, alpha, cg_steps, bounds, buffer_nnz, tail_nnz, quad_nnz, obs_out):
    k = X.shape[1]
    for c in prange(bounds.shape[0] - 1):
        # Scratch per chunk, allocated once and sized to the chunk's longest row (the
        # factor-row buffer capped at buffer_nnz rows, a multiple of 4): each chunk (and so
        # each thread) owns its buffers and rows.
        longest = 1
        for u in range(bounds[c], bounds[c + 1]):
            longest = max(longest, indptr[u + 1] - indptr[u])
        r = np.empty(k, np.float32)
        p = np.empty(k, np.float32)
        Ap = np.empty(k, np.float32)
        s = np.empty(longest, np.float32)
        dp = np.empty(longest, np.float32)
        n_buf = min(longest, buffer_nnz)
        n_tail = tail_nnz if longest > n_buf else 0
        rows = np.empty((n_buf, k), np.float32)
        c1 = np.empty(n_buf, np.float32)
        pc = np.empty(n_buf, np.float32)
        tail = np.empty((n_tail, k), np.float32)
        tc1 = np.empty(n_tail, np.float32)
        tpc = np.empty(n_tail, np.float32)
        zero = np.empty(max(n_buf, n_tail, quad_nnz), np.float32)
        for j in range(zero.shape[0]):  # b = 0 of the CG steps' passes (a loop: np.zeros would be a nested parfor)
            zero[j] = 0.0
        # four rows of up to quad_nnz non-zeros go through _cg_quad, each with a slot here
        m = min(longest, quad_nnz)
        rows4 = np.empty((4, m, k), np.float32)
        c14 = np.empty((4, m), np.float32)
        pc4 = np.empty((4, m), np.float32)
        R, P, AP = np.empty((4, k), np.float32), np.empty((4, k), np.float32), np.empty((4, k), np.float32)
        S, DP, rs = np.empty((4, m), np.float32), np.empty((4, m), np.float32), np.empty(4, np.float32)
        obs = 0.0
        u = bounds[c]
        while u < bounds[c + 1]:
            if _quad_ahead(indptr, u, bounds[c + 1], m):
                obs += _cg_quad(indptr, indices, data, u, X, Y, rows4, c14, pc4, tail[:0], tc1[:0], zero, A0, lam, alpha,
                                cg_steps, R, P, AP, S, DP, rs)
                u += 4
                continue
            start, end = indptr[u], indptr[u + 1]
            if start == end:
                X[u, :] = 0.0
            else:
                obs += _cg_row(indices, data, start, end, X[u], Y, rows, c1, pc, tail, tc1, tpc, zero, A0,
                               _row_lambda(lam, u), alpha, cg_steps, r, p, Ap, s, dp)
            u += 1
        obs_out[c] = obs


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _cholesky_solve(A, b, k):
    """Solve A z = b in place (z in b) for symmetric positive-definite A (lower
    Cholesky factor overwrites A's lower triangle). Float64 for stability."""
    for j in range(k):
        s = A[j, j]
        for m in range(j):
            s -= A[j, m] * A[j, m]
        # λ > 0 keeps A positive definite; the guard only stops a NaN on λ = 0.
        d = np.sqrt(s) if s > 1e-300 else 1e-150
        A[j, j] = d
        for i in range(j + 1, k):
            s = A[i, j]
            for m in range(j):
                s -= A[i, m] * A[j, m]
            A[i, j] = s / d
    for i in range(k):  # forward: L z = b
        s = b[i]
        for m in range(i):
            s -= A[i, m] * b[m]
        b[i] = s / A[i, i]
    for i in range(k - 1, -1, -1):  # backward: Lᵀ z = z
        s = b[i]
        for m in range(i + 1, k):
            s -= A[m, i] * b[m]
        b[i] = s / A[i, i]


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _cholesky_sweep(indptr, indices, data, X, Y, A0, lam, alpha, bounds, obs_out):
    k = X.shape[1]
    for c in prange(bounds.shape[0] - 1):
        A = np.empty((k, k), np.float64)
        b = np.empty(k, np.float64)
        obs = 0.0
        for u in range(bounds[c], bounds[c + 1]):
            start, end = indptr[u], indptr[u + 1]
            if start == end:
                X[u, :] = 0.0
                continue
            for f in range(k):
                b[f] = 0.0
                for g in range(f + 1):
                    A[f, g] = A0[f, g]
                A[f, f] += _row_lambda(lam, u)
            # A += Σ c1·yᵢyᵢᵀ (lower triangle only), b += Σ p·c·yᵢ
            for idx in range(start, end):
                i = indices[idx]
                c1, pc = _conf(data[idx], alpha)
                for f in range(k):
                    yf = np.float64(Y[i, f])
                    b[f] += pc * yf
                    w = c1 * yf
                    for g in range(f + 1):
                        A[f, g] += w * Y[i, g]
            _cholesky_solve(A, b, k)
            for f in range(k):
                X[u, f] = b[f]
            for idx in range(start, end):
                i = indices[idx]
                d = np.float32(0.0)
                for f in range(k):
                    d += Y[i, f] * X[u, f]
                obs += _observed_term(data[idx], alpha, d)
        obs_out[c] = obs


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _observed_rows(indptr, indices, data, X, Y, alpha, bounds, out):
    k = X.shape[1]
    for c in prange(bounds.shape[0] - 1):
        total = 0.0
        for u in range(bounds[c], bounds[c + 1]):
            for idx in range(indptr[u], indptr[u + 1]):
                i = indices[idx]
                d = np.float32(0.0)
                for f in range(k):
                    d += Y[i, f] * X[u, f]
                total += _observed_term(data[idx], alpha, d)
        out[c] = total


def gram(Y: np.ndarray, regularization: float = 0.0) -> np.ndarray:
    """YᵀY + λI in float32 (C-contiguous, the CG kernels' A0)."""
    A0 = Y.T @ Y
    A0[np.diag_indices_from(A0)] += regularization
    return np.ascontiguousarray(A0, dtype=np.float32)


def als_sweep(indptr, indices, data, X, Y, regularization, alpha, solver="cg", cg_steps=3, n_chunks=64,
              quadratic=False):
    """Recompute every row of ``X`` (n_rows × k, float32, in place) against fixed ``Y``.

    Parameters
    ----------
    indptr, indices, data : CSR arrays (int64, int32, float32) of the rows' interactions.
    X, Y : float32 C-contiguous factor matrices; ``X`` is updated in place.
    regularization : λ ≥ 0 (λ > 0 keeps the system positive definite), or one λ per row of
        ``X`` (an array: :func:`row_regularization`).
    alpha : confidence scale, c = 1 + alpha·|r|.
    solver : ``"cg"`` (warm-started, ``cg_steps`` steps) or ``"cholesky"`` (exact).
    n_chunks : work units for the thread pool, balanced by non-zeros. The result does
        not depend on it (rows are independent) nor on the thread count.
    quadratic : also return Σᵤ xᵤᵀ(YᵀY + λᵤI)xᵤ at the new ``X`` (:func:`quadratic_term`).

    Returns
    -------
    The loss's observed term Σ_obs [c·(p − s)² − s²] with s = xᵤ·yᵢ at the new ``X``
    (see :func:`als_loss`), computed on the fly at almost no cost; with ``quadratic``,
    the pair (observed term, quadratic term).
    """
    k = X.shape[1]
    per_row = np.ndim(regularization) > 0
    A0 = gram(Y, 0.0 if per_row else regularization)
    lam = np.ascontiguousarray(regularization if per_row else np.zeros(0), dtype=np.float32)
    bounds = balanced_bounds(indptr, n_chunks, row_cost=k)
    obs = np.zeros(bounds.shape[0] - 1, np.float64)
    if solver == "cg":
        _cg_sweep(indptr, indices, data, X, Y, A0, lam, np.float32(alpha), int(cg_steps), bounds,
                  BUFFER_BYTES // (4 * k) // 4 * 4, max(4, TAIL // 4 * 4), max(0, QUAD_NNZ), obs)
    else:
        _cholesky_sweep(indptr, indices, data, X, Y, A0, lam, np.float32(alpha), bounds, obs)
    if quadratic:
        return float(obs.sum()), quadratic_term(X, A0, lam if per_row else None)
    return float(obs.sum())


def quadratic_term(X, A0, lam=None) -> float:
    """Σᵤ xᵤᵀ(A0 + λᵤI)xᵤ = Σ (XᵀX ⊙ A0) + Σᵤ λᵤ‖xᵤ‖², summed in float64 (``lam``: per-row
    λ, or ``None`` when ``A0`` already holds λI).

    With ``A0 = YᵀY + λI`` of the fixed side, this is the loss's all-pairs term
    Σᵤ Σᵢ (xᵤ·yᵢ)² = tr(XᵀX·YᵀY) plus ``X``'s penalty (see :func:`loss_from_observed`):
    the sweep's own Gram matrix gives them for one more k × k Gram matrix, where the loss
    otherwise builds two in float64. ``XᵀX`` is a float32 product with a k × k result,
    which OpenBLAS runs without leaving worker threads spinning into the next sweep, as a
    tall ``rows × k`` by ``k × k`` product does (docs/architecture.md#threads); the
    float32 Gram matrix moves the term by about 1e-9 on 100k × 20k."""
    G = (X.T @ X).astype(np.float64)
    total = float(np.sum(G * np.asarray(A0, dtype=np.float64)))
    return total + (penalty_of(X, lam) if lam is not None else 0.0)


def row_regularization(regularization: float, indptr) -> np.ndarray:
    """ALS-WR's per-row λ: ``λ·nᵤ`` with ``nᵤ`` the stored entries of each CSR row."""
    return (np.float64(regularization) * np.diff(np.asarray(indptr))).astype(np.float32)


# Rows converted to float64 at a time for the loss's Gram matrices: one reused buffer (4 MiB
# at 64 factors) instead of a float64 copy of each whole factor matrix, whose fresh pages
# cost more than the products (about a fifth of an ALS iteration on 100k × 20k).
GRAM_ROWS = 8192


def gram64(A: np.ndarray, lam: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """``(AᵀA, Σ_r w_r‖a_r‖²)`` in float64 from the rows of ``A``, with ``w_r = lam[r]``
    (per-row λ) or 1 (then the sum is tr(AᵀA)); rows are converted a block at a time."""
    n, k = A.shape
    G = np.zeros((k, k))
    weighted = 0.0
    block = np.empty((min(n, GRAM_ROWS), k))
    for start in range(0, n, GRAM_ROWS):
        b = block[:min(GRAM_ROWS, n - start)]
        np.copyto(b, A[start:start + b.shape[0]])
        G += b.T @ b
        if lam is not None:
            weighted += float(np.dot(np.asarray(lam[start:start + b.shape[0]], np.float64), np.einsum("ij,ij->i", b, b)))
    return G, (weighted if lam is not None else float(np.trace(G)))


def loss_from_observed(observed, X, Y, data, regularization, alpha, quadratic=None) -> float:
    """Assemble :func:`als_loss` from its observed term: the all-pairs term
    Σ_{u,i} (xᵤ·yᵢ)² = ‖XYᵀ‖² = tr(XᵀX · YᵀY) costs two k×k Gram matrices, which also give
    the penalty λ(‖X‖² + ‖Y‖²) as their traces. ``regularization`` is λ, or the pair (λ per
    row of ``X``, λ per row of ``Y``), whose penalty is Σᵤ λᵤ‖xᵤ‖² + Σᵢ λᵢ‖yᵢ‖².

    ``quadratic``: the sweep that solved ``Y`` against ``X`` returned the all-pairs term
    plus ``Y``'s penalty (:func:`quadratic_term`); then only ``X``'s penalty is added
    (λ‖X‖², or Σᵤ λᵤ‖xᵤ‖²), with no Gram matrix."""
    per_row = isinstance(regularization, tuple)
    weight = float(alpha * np.abs(np.asarray(data)).sum(dtype=np.float64)) + X.shape[0] * Y.shape[0]
    if quadratic is not None:
        return (observed + quadratic + penalty_of(X, regularization[0] if per_row else regularization)) / weight
    (Gx, nx), (Gy, ny) = (gram64(A, lam if per_row else None)
                          for A, lam in zip((X, Y), regularization if per_row else (None, None)))
    all_pairs = float(np.sum(Gx * Gy))
    reg = nx + ny if per_row else regularization * (nx + ny)
    return (observed + all_pairs + reg) / weight


def penalty_of(X, regularization, n_chunks=64) -> float:
    """λ‖X‖², or Σᵤ λᵤ‖xᵤ‖² for per-row λ (an array), summed in float64 by
    :func:`_weighted_norms` (one read of ``X``; the result does not depend on the thread
    count)."""
    per_row = np.ndim(regularization) > 0
    lam = np.ascontiguousarray(regularization if per_row else np.zeros(0), dtype=np.float32)
    out = np.zeros(max(1, min(int(n_chunks), X.shape[0])), np.float64)
    _weighted_norms(X, lam, out)
    return float(out.sum()) * (1.0 if per_row else float(regularization))


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _weighted_norms(X, lam, out):
    """``out[c]`` = Σ_r w_r‖x_r‖² in float64 over chunk ``c`` of the rows (``out.shape[0]``
    equal chunks), ``w_r = lam[r]``, or 1 when ``lam`` is empty."""
    n, k = X.shape
    per = (n + out.shape[0] - 1) // out.shape[0]
    for c in prange(out.shape[0]):
        total = 0.0
        for r in range(c * per, min(n, (c + 1) * per)):
            s = 0.0
            for f in range(k):
                v = np.float64(X[r, f])
                s += v * v
            total += (np.float64(lam[r]) if lam.shape[0] else 1.0) * s
        out[c] = total


def als_loss(indptr, indices, data, X, Y, regularization, alpha, n_chunks=64) -> float:
    """Mean weighted squared loss plus regularisation:

    ( Σ_{u,i} c_ui (p_ui − xᵤ·yᵢ)² + λ(‖X‖² + ‖Y‖²) ) / Σ_{u,i} c_ui,

    (with per-row λ, the pair of :func:`loss_from_observed`: Σᵤ λᵤ‖xᵤ‖² + Σᵢ λᵢ‖yᵢ‖²)

    over *all* user-item pairs (unobserved pairs have c = 1, p = 0), normalised as
    implicit does, in O(nnz·k + (n_users + n_items)·k²): the all-pairs term with c = 1,
    p = 0 is tr(XᵀX·YᵀY), and each observed pair adds c·(p − s)² − s².
    """
    bounds = balanced_bounds(indptr, n_chunks, row_cost=X.shape[1])
    out = np.zeros(bounds.shape[0] - 1, np.float64)
    _observed_rows(indptr, indices, data, X, Y, np.float32(alpha), bounds, out)
    return loss_from_observed(float(out.sum()), X, Y, data, regularization, alpha)
