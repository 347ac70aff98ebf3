"""The per-row pieces of the ALS conjugate-gradient sweep (:func:`recli.kernels.als.als_sweep`),
inlined into its parallel loop: the row's factor rows gathered into a buffer, the passes
over them four rows at a time, the Gram product ``(YᵀY + λI)·p`` for one row or four at
once, and the CG updates; also the confidence and loss terms the Cholesky sweep shares.

The larger pieces are separate compiled functions, not inlined into the sweep: inlining
them all made the sweep's first compilation take about a minute instead of about ten
seconds, for no measurable speed. Every sum sits in a loop that stores nothing (see :func:`_sumsq`), and a row's operations
do not depend on where its factor rows were gathered nor on whether it ran alone or with
three others, so a sweep gives the same bits run after run, at any buffer size and thread
count (tests compare them).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from recli.kernels import CG_EPS, FASTMATH
from recli.kernels._prefetch import prefetch_row

# How many non-zeros ahead to prefetch factor rows (latency hiding for random reads).
PREFETCH = 16


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


@njit(cache=True, fastmath=FASTMATH)
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


@njit(cache=True, fastmath=FASTMATH)
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


@njit(cache=True, fastmath=FASTMATH)
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


@njit(cache=True, fastmath=FASTMATH)
def _pass(indices, data, start, end, alpha, Y, rows, c1, pc, tail, tc1, tpc, zero, v, residual, out, dots):
    """One pass over a row's non-zeros: ``out += Σⱼ (b_j + sign·c1ⱼ·(yⱼ·v))·yⱼ`` and
    ``dots[j] = yⱼ·v``. The residual pass (``b = p·c``, sign −1) first gathers the row's
    factor rows into the buffer (``rows``, ``c1``, ``pc``); the CG steps
    (``b = 0``, sign +1) read them from there. Non-zeros beyond the buffer are gathered
    into ``tail``, a segment at a time, on every pass (the buffer's length and the
    segments' are multiples of four, so the blocks of :func:`_gemv2` fall alike)."""
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


@njit(cache=True, fastmath=FASTMATH)
def _symv4(A0, V, out, k, l0, l1, l2, l3):
    """``out[q] = (A0 + l_q·I)·V[q]`` for four rows at once: :func:`_symv_rows`'s sums, in
    its order, for each row (the same bits), with every load of A0 serving all four rows
    (a small matrix product instead of four matrix-vector ones)."""
    for f in range(k):
        out[0, f] = l0 * V[0, f]
        out[1, f] = l1 * V[1, f]
        out[2, f] = l2 * V[2, f]
        out[3, f] = l3 * V[3, f]
    g = 0
    while g + 4 <= k:
        a0, a1, a2, a3 = V[0, g], V[0, g + 1], V[0, g + 2], V[0, g + 3]
        b0, b1, b2, b3 = V[1, g], V[1, g + 1], V[1, g + 2], V[1, g + 3]
        c0, c1, c2, c3 = V[2, g], V[2, g + 1], V[2, g + 2], V[2, g + 3]
        d0, d1, d2, d3 = V[3, g], V[3, g + 1], V[3, g + 2], V[3, g + 3]
        for f in range(k):
            A, B, C, D = A0[g, f], A0[g + 1, f], A0[g + 2, f], A0[g + 3, f]
            out[0, f] += (a0 * A + a1 * B) + (a2 * C + a3 * D)
            out[1, f] += (b0 * A + b1 * B) + (b2 * C + b3 * D)
            out[2, f] += (c0 * A + c1 * B) + (c2 * C + c3 * D)
            out[3, f] += (d0 * A + d1 * B) + (d2 * C + d3 * D)
        g += 4
    while g < k:
        a, b, c, d = V[0, g], V[1, g], V[2, g], V[3, g]
        for f in range(k):
            A = A0[g, f]
            out[0, f] += a * A
            out[1, f] += b * A
            out[2, f] += c * A
            out[3, f] += d * A
        g += 1


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _sumsq(v, k):
    """v·v. Sums stay in loops that store nothing: a loop that also stores gets LLVM's
    runtime aliasing check, which picks a vector or a scalar version by the arrays'
    addresses, and the two versions sum in different orders (results would vary from
    run to run with where the scratch arrays were allocated)."""
    acc = np.float32(0.0)
    for f in range(k):
        acc += v[f] * v[f]
    return acc


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _start(r, p, k):
    """r·r of the negated residual (``r ← −r`` first: the caller put (A0 + λI)x there,
    :func:`_pass` then adds b − Σ c1·(y·x)·y), and p = r."""
    for f in range(k):
        p[f] = r[f]
    return _sumsq(r, k)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _step(x, r, p, Ap, s, dp, n, rsold):
    """One CG update once A·p is known: a = r·r / p·Ap, x += a·p, r −= a·Ap, s += a·dp
    (s[j] tracks yⱼ·x). Returns the new r·r."""
    k = x.shape[0]
    pAp = np.float32(0.0)
    for f in range(k):
        pAp += p[f] * Ap[f]
    a = rsold / pAp
    for f in range(k):
        x[f] += a * p[f]
        r[f] -= a * Ap[f]
    for j in range(n):
        s[j] += a * dp[j]
    return _sumsq(r, k)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _direction(p, r, beta):
    """p = r + beta·p."""
    for f in range(p.shape[0]):
        p[f] = r[f] + beta * p[f]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _observed(data, start, end, alpha, s):
    """The row's observed loss term Σⱼ [c·(p − sⱼ)² − sⱼ²] from the tracked sⱼ = yⱼ·x."""
    obs = 0.0
    for idx in range(start, end):
        obs += _observed_term(data[idx], alpha, s[idx - start])
    return obs


@njit(cache=True, fastmath=FASTMATH)
def _cg_row(indices, data, start, end, x, Y, rows, c1, pc, tail, tc1, tpc, zero, A0, lam, alpha, cg_steps, r, p, Ap, s,
            dp):
    """Warm-started CG on one row; returns its observed loss term at the new x.

    r = b − A x = −(A0 + λI)x + Σⱼ (p·cⱼ − c1ⱼ·(yⱼ·x))·yⱼ, then each step's
    A·p = (A0 + λI)p + Σⱼ c1ⱼ·(yⱼ·p)·yⱼ, never forming the k×k matrix. s[j] tracks yⱼ·x
    as x moves (x ← x + a·p ⇒ s ← s + a·(yⱼ·p)), so the loss needs no extra pass."""
    k = x.shape[0]
    _symv_rows(A0, x, r, k, lam)
    for f in range(k):
        r[f] = -r[f]
    _pass(indices, data, start, end, alpha, Y, rows, c1, pc, tail, tc1, tpc, zero, x, True, r, s)
    rsold = _start(r, p, k)
    for _ in range(cg_steps if rsold >= CG_EPS else 0):
        _symv_rows(A0, p, Ap, k, lam)
        _pass(indices, data, start, end, alpha, Y, rows, c1, pc, tail, tc1, tpc, zero, p, False, Ap, dp)
        rsnew = _step(x, r, p, Ap, s, dp, end - start, rsold)
        if rsnew < CG_EPS:
            break
        _direction(p, r, rsnew / rsold)
        rsold = rsnew
    return _observed(data, start, end, alpha, s)


@njit(cache=True, fastmath=FASTMATH)
def _cg_quad(indptr, indices, data, u0, X, Y, rows, c1, pc, no_rows, no_vals, zero, A0, lam, alpha, cg_steps, R, P, AP, S, DP,
             rs):
    """:func:`_cg_row` on rows ``u0…u0+3`` in lockstep, each with the same operations in the
    same order as alone (the same bits), but their (A0 + λI)·p products four at a time
    (:func:`_symv4`). Each row's factor rows go to its own slot of ``rows`` (with ``c1``,
    ``pc``); a quad's rows fit their slots, so the tail arrays are empty (``no_rows``,
    ``no_vals``)."""
    k = X.shape[1]
    _symv4(A0, X[u0:u0 + 4], R, k, _row_lambda(lam, u0), _row_lambda(lam, u0 + 1), _row_lambda(lam, u0 + 2),
           _row_lambda(lam, u0 + 3))
    for q in range(4):
        for f in range(k):
            R[q, f] = -R[q, f]
        _pass(indices, data, indptr[u0 + q], indptr[u0 + q + 1], alpha, Y, rows[q], c1[q], pc[q], no_rows, no_vals, no_vals,
              zero, X[u0 + q], True, R[q], S[q])
        rs[q] = _start(R[q], P[q], k)
    left = 0
    for q in range(4):
        left += rs[q] >= CG_EPS
    for _ in range(cg_steps if left else 0):
        _symv4(A0, P, AP, k, _row_lambda(lam, u0), _row_lambda(lam, u0 + 1), _row_lambda(lam, u0 + 2),
               _row_lambda(lam, u0 + 3))
        for q in range(4):
            if not (rs[q] >= CG_EPS):  # converged (or never started): as _cg_row's break
                continue
            start, end = indptr[u0 + q], indptr[u0 + q + 1]
            _pass(indices, data, start, end, alpha, Y, rows[q], c1[q], pc[q], no_rows, no_vals, no_vals, zero, P[q], False,
                  AP[q], DP[q])
            rsnew = _step(X[u0 + q], R[q], P[q], AP[q], S[q], DP[q], end - start, rs[q])
            if rsnew < CG_EPS:
                rs[q] = rsnew
                continue
            _direction(P[q], R[q], rsnew / rs[q])
            rs[q] = rsnew
    obs = 0.0
    for q in range(4):
        obs += _observed(data, indptr[u0 + q], indptr[u0 + q + 1], alpha, S[q])
    return obs


@njit(cache=True, inline="always")
def _quad_ahead(indptr, u, stop, quad_nnz):
    """Whether rows u…u+3 (below ``stop``) all have between 1 and ``quad_nnz`` non-zeros."""
    if u + 4 > stop:
        return False
    for q in range(4):
        n = indptr[u + q + 1] - indptr[u + q]
        if n < 1 or n > quad_nnz:
            return False
    return True
