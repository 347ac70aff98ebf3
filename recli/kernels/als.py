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
  store of it; ``(A0 + λI)·p`` is summed from A0's rows, four at a time. The operations
  and their order do not depend on where a row's factor rows were gathered, so the
  buffer does not change ``X`` (tests compare the bits).
* ``cholesky``: forms the k×k matrix and solves it exactly.

Rows without interactions get a zero factor (the exact solution, since b = 0).

The ``xp_*`` twins are the same algorithms vectorised over a batch of rows with an
array module ``xp`` (NumPy here, CuPy on a GPU): the GPU-shaped path.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from recli.kernels import CG_EPS, FASTMATH
from recli.kernels._chunks import balanced_bounds
from recli.kernels._prefetch import prefetch_row

# How many non-zeros ahead to prefetch factor rows (latency hiding for random reads).
PREFETCH = 16
# Bytes of the per-chunk buffer the CG copies a row's factor rows into (4 MiB: 16384
# non-zeros at k = 64). A longer row gathers the rest on every pass, TAIL non-zeros at a
# time, so one popular item cannot make every thread allocate a buffer as large as the
# item's column.
BUFFER_BYTES = 4 << 20
TAIL = 256  # non-zeros per segment of a longer row's rest (a multiple of 4)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _conf(value, alpha):
    """(c − 1, p·c) for one stored value: c = 1 + alpha·|r|, p = [r > 0]."""
    c1 = alpha * abs(value)
    return c1, (1.0 + c1) if value > 0 else 0.0


@njit(cache=True, inline="always")
def _row_lambda(lam, u):
    """Row ``u``'s own λ (per-row λ), or 0 when ``A0`` carries one λ for all rows."""
    return lam[u] if lam.shape[0] else np.float32(0.0)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _observed_term(value, alpha, s):
    """c·(p − s)² − s²: the observed pair's loss minus what the all-pairs term counts."""
    c1, pc = _conf(value, alpha)
    pref = 1.0 if pc > 0 else 0.0
    sd = np.float64(s)
    return (1.0 + c1) * (pref - sd) ** 2 - sd * sd


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _symv_rows(A0, v, out, k, lam):
    """out = (A0 + lam·I) v as Σ_g v_g·A0[g] (A0 symmetric), four rows of A0 per pass over
    ``out``: four multiply-adds per load and store of ``out``, and no horizontal sums."""
    for f in range(k):
        out[f] = lam * v[f]
    g = 0
    while g + 4 <= k:
        v0, v1, v2, v3 = v[g], v[g + 1], v[g + 2], v[g + 3]
        for f in range(k):
            out[f] += (v0 * A0[g, f] + v1 * A0[g + 1, f]) + (v2 * A0[g + 2, f] + v3 * A0[g + 3, f])
        g += 4
    while g < k:
        vg = v[g]
        for f in range(k):
            out[f] += vg * A0[g, f]
        g += 1


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _gemv2(rows, n, v, sign, a, b, out, dots, k):
    """Over the first ``n`` gathered factor rows yⱼ: ``dots[j] = yⱼ·v`` and
    ``out += Σⱼ (b[j] + sign·a[j]·dots[j])·yⱼ``, four rows per block: four independent dot
    products share each load of ``v``, and ``out`` is loaded and stored once per four rows.
    Blocks start at multiples of four in every caller, so a row's sums do not depend on
    where its factor rows were gathered."""
    j = 0
    while j + 4 <= n:
        d0 = np.float32(0.0)
        d1 = np.float32(0.0)
        d2 = np.float32(0.0)
        d3 = np.float32(0.0)
        for f in range(k):
            vf = v[f]
            d0 += rows[j, f] * vf
            d1 += rows[j + 1, f] * vf
            d2 += rows[j + 2, f] * vf
            d3 += rows[j + 3, f] * vf
        dots[j], dots[j + 1], dots[j + 2], dots[j + 3] = d0, d1, d2, d3
        w0 = b[j] + sign * a[j] * d0
        w1 = b[j + 1] + sign * a[j + 1] * d1
        w2 = b[j + 2] + sign * a[j + 2] * d2
        w3 = b[j + 3] + sign * a[j + 3] * d3
        for f in range(k):
            out[f] += (w0 * rows[j, f] + w1 * rows[j + 1, f]) + (w2 * rows[j + 2, f] + w3 * rows[j + 3, f])
        j += 4
    while j < n:
        d = np.float32(0.0)
        for f in range(k):
            d += rows[j, f] * v[f]
        dots[j] = d
        w = b[j] + sign * a[j] * d
        for f in range(k):
            out[f] += w * rows[j, f]
        j += 1


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _gather(indices, data, alpha, Y, lo, hi, end, rows, c1s, pcs):
    """Copy the factor rows of non-zeros ``lo…hi`` into ``rows`` (in order; prefetching
    ahead, up to ``end``) and their ``c − 1`` and ``p·c`` into ``c1s`` and ``pcs``."""
    k = Y.shape[1]
    for idx in range(lo, hi):
        if idx + PREFETCH < end:
            prefetch_row(Y, indices[idx + PREFETCH])
        i = indices[idx]
        j = idx - lo
        for f in range(k):
            rows[j, f] = Y[i, f]
        c1s[j], pcs[j] = _conf(data[idx], alpha)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _pass(indices, data, start, end, alpha, Y, buf, zero, v, residual, out, dots):
    """One pass over a row's non-zeros: ``out += Σⱼ (b_j + sign·c1ⱼ·(yⱼ·v))·yⱼ`` and
    ``dots[j] = yⱼ·v``. The residual pass (``b = p·c``, sign −1) first gathers the row's
    factor rows into the buffer ``buf = (rows, c1, pc, tail, tc1, tpc)``; the CG steps
    (``b = 0``, sign +1) read them from there. Non-zeros beyond the buffer are gathered
    into ``tail``, a segment at a time, on every pass (the buffer's length and the
    segments' are multiples of four, so the blocks of :func:`_gemv2` fall alike)."""
    rows, c1, pc, tail, tc1, tpc = buf
    k = v.shape[0]
    n_buf = min(end - start, rows.shape[0])
    sign = np.float32(-1.0) if residual else np.float32(1.0)
    if residual:
        _gather(indices, data, alpha, Y, start, start + n_buf, end, rows, c1, pc)
    _gemv2(rows, n_buf, v, sign, c1, pc if residual else zero, out, dots, k)
    lo = start + n_buf
    while lo < end:
        hi = min(lo + tail.shape[0], end)
        _gather(indices, data, alpha, Y, lo, hi, end, tail, tc1, tpc)
        _gemv2(tail, hi - lo, v, sign, tc1, tpc if residual else zero, out, dots[lo - start:], k)
        lo = hi


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _cg_row(indices, data, start, end, x, Y, buf, zero, A0, lam, alpha, cg_steps, r, p, Ap, s, dp):
    """Warm-started CG on one row; returns its observed loss term at the new x.

    r = b − A x = −(A0 + λI)x + Σⱼ (p·cⱼ − c1ⱼ·(yⱼ·x))·yⱼ, then each step's
    A·p = (A0 + λI)p + Σⱼ c1ⱼ·(yⱼ·p)·yⱼ, never forming the k×k matrix. s[j] tracks yⱼ·x
    as x moves (x ← x + a·p ⇒ s ← s + a·(yⱼ·p)), so the loss needs no extra pass."""
    k = x.shape[0]
    _symv_rows(A0, x, r, k, lam)
    for f in range(k):
        r[f] = -r[f]
    _pass(indices, data, start, end, alpha, Y, buf, zero, x, True, r, s)
    rsold = np.float32(0.0)
    for f in range(k):
        rsold += r[f] * r[f]
        p[f] = r[f]
    for _ in range(cg_steps if rsold >= CG_EPS else 0):
        _symv_rows(A0, p, Ap, k, lam)
        _pass(indices, data, start, end, alpha, Y, buf, zero, p, False, Ap, dp)
        pAp = np.float32(0.0)
        for f in range(k):
            pAp += p[f] * Ap[f]
        a = rsold / pAp
        rsnew = np.float32(0.0)
        for f in range(k):
            x[f] += a * p[f]
            r[f] -= a * Ap[f]
            rsnew += r[f] * r[f]
        for j in range(end - start):
            s[j] += a * dp[j]
        if rsnew < CG_EPS:
            break
        beta = rsnew / rsold
        for f in range(k):
            p[f] = r[f] + beta * p[f]
        rsold = rsnew
    obs = 0.0
    for idx in range(start, end):
        obs += _observed_term(data[idx], alpha, s[idx - start])
    return obs


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _cg_sweep(indptr, indices, data, X, Y, A0, lam, alpha, cg_steps, bounds, buffer_nnz, tail_nnz, obs_out):
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
        buf = (np.empty((n_buf, k), np.float32), np.empty(n_buf, np.float32), np.empty(n_buf, np.float32),
               np.empty((n_tail, k), np.float32), np.empty(n_tail, np.float32), np.empty(n_tail, np.float32))
        zero = np.zeros(max(n_buf, n_tail), np.float32)
        obs = 0.0
        for u in range(bounds[c], bounds[c + 1]):
            start, end = indptr[u], indptr[u + 1]
            if start == end:
                X[u, :] = 0.0
            else:
                obs += _cg_row(indices, data, start, end, X[u], Y, buf, zero, A0, _row_lambda(lam, u), alpha, cg_steps,
                               r, p, Ap, s, dp)
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


def als_sweep(indptr, indices, data, X, Y, regularization, alpha, solver="cg", cg_steps=3, n_chunks=64) -> float:
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

    Returns
    -------
    The loss's observed term Σ_obs [c·(p − s)² − s²] with s = xᵤ·yᵢ at the new ``X``
    (see :func:`als_loss`), computed on the fly at almost no cost.
    """
    k = X.shape[1]
    per_row = np.ndim(regularization) > 0
    A0 = gram(Y, 0.0 if per_row else regularization)
    lam = np.ascontiguousarray(regularization if per_row else np.zeros(0), dtype=np.float32)
    bounds = balanced_bounds(indptr, n_chunks, row_cost=k)
    obs = np.zeros(bounds.shape[0] - 1, np.float64)
    if solver == "cg":
        _cg_sweep(indptr, indices, data, X, Y, A0, lam, np.float32(alpha), int(cg_steps), bounds,
                  BUFFER_BYTES // (4 * k) // 4 * 4, max(4, TAIL // 4 * 4), obs)
    else:
        _cholesky_sweep(indptr, indices, data, X, Y, A0, lam, np.float32(alpha), bounds, obs)
    return float(obs.sum())


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


def loss_from_observed(observed, X, Y, data, regularization, alpha) -> float:
    """Assemble :func:`als_loss` from its observed term: the all-pairs term
    Σ_{u,i} (xᵤ·yᵢ)² = ‖XYᵀ‖² = tr(XᵀX · YᵀY) costs two k×k Gram matrices, which also give
    the penalty λ(‖X‖² + ‖Y‖²) as their traces. ``regularization`` is λ, or the pair (λ per
    row of ``X``, λ per row of ``Y``), whose penalty is Σᵤ λᵤ‖xᵤ‖² + Σᵢ λᵢ‖yᵢ‖²."""
    per_row = isinstance(regularization, tuple)
    (Gx, nx), (Gy, ny) = (gram64(A, lam if per_row else None)
                          for A, lam in zip((X, Y), regularization if per_row else (None, None)))
    all_pairs = float(np.sum(Gx * Gy))
    reg = nx + ny if per_row else regularization * (nx + ny)
    weight = float(alpha * np.abs(np.asarray(data)).sum(dtype=np.float64)) + X.shape[0] * Y.shape[0]
    return (observed + all_pairs + reg) / weight


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
