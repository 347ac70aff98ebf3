"""Top-k of factor-model scores ``U·Vᵀ (+ b)`` at BLAS speed with the results of the
fixed-order sum: a BLAS screen, then an exact rescore of the few items that can matter.

:func:`screened_topk` returns exactly what :func:`recli.kernels.dot.dot_topk` returns
(``topk(dot_scores(U, V, b), k, ...)``: scores summed in the fixed order of
:mod:`recli.kernels.dot_xp`, topk's filters and tie rule), bit for bit, so a user's list
is the same whether asked alone or with every user. Worker threads take blocks of users;
per block:

1. ``S = U_b·Vᵀ (+ b)`` by one single-threaded BLAS product (float32, in BLAS's own
   summation order);
2. per row, items in increasing index, with topk's filters (seen items, ``banned``,
   NaN and -inf): ``t`` = the k-th best BLAS score among eligible items (``−∞`` if fewer
   than ``k``), by topk's heap;
3. every eligible item with ``S[j] ≥ t − 2δ`` is rescored in the fixed order
   (``s = 0; s = fl(s + fl(u_f·v_jf))`` for each ``f``, then ``s = fl(s + b_j)``: the
   float32 operations of ``_dot_into``, in its order, no fused multiply-add) and offered to
   the row's final heap, which is sorted with topk's tie rule. Every other item is skipped
   unscored: after the screen, a row rescores about ``k`` items, not ``n_items``.

The margin: ``S[j]`` and the fixed-order score ``e_j`` are float32 sums of the same ``f``
products plus ``b_j``; whatever the order, with or without fused multiply-adds, each is
within ``γ·(Σ_f |u_f v_jf| + |b_j|) + (f+1)·2⁻¹⁴⁹`` of the real value, with
``γ = (f+1)u / (1 − (f+1)u)``, ``u = 2⁻²⁴`` (the last term covers products rounded in the
subnormal range). By Cauchy–Schwarz ``Σ_f |u_f v_jf| ≤ ‖u_b‖₂·max_j ‖v_j‖₂``, so for every
item of row ``b``

    |e_j − S[j]| ≤ δ_b = 2·(2·γ·(‖u_b‖₂·max_j ‖v_j‖₂ + max_j |b_j|) + 2·(f+1)·2⁻¹⁴⁹)

(the outer 2 is a safety factor; it also covers the float64 rounding of the norms).

Exactness: the ``k`` eligible items with ``S ≥ t`` have exact scores ``≥ t − δ``, so the
exact k-th best eligible score is ``≥ t − δ``; every member of the exact top-k (ties at
the boundary included) has ``e_j ≥ t − δ``, hence ``S[j] ≥ t − 2δ``: it is rescored.
The final heap thus sees every member of the exact top-k with its exact score (among
other eligible items) and keeps the top-k of what it sees under topk's total order
(higher score, then lower index): the exact top-k. ``t − 2δ`` is rounded down to float32,
so the float32 comparison never skips an item the real-number test keeps.

The bound needs finite sums: a row whose ``‖u_b‖·max‖v‖ + max|b|`` is not finite (NaN or
infinite factors) or could overflow float32 goes to ``dot_topk`` instead (the same
result, at the fixed-order kernel's speed).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from recli.kernels._heap import heap_push, heap_sort
from recli.kernels.dot import _beats, _eligible, _offer

BLOCK_BYTES = 8 << 20  # one block of BLAS scores: written by BLAS, read back from the cache
MIN_ROWS, MAX_ROWS = 16, 512
UNIT = 2.0 ** -24  # float32's unit roundoff
TINY = 2.0 ** -149  # float32's smallest subnormal: the absolute error of a product rounded there
SAFETY = 2.0
CHUNK = 64  # items per vectorised pre-check of a row


def screened_topk(user_vectors: np.ndarray, item_factors: np.ndarray, item_bias: np.ndarray | None, k: int,
                  rows: np.ndarray | None = None, indptr: np.ndarray | None = None,
                  indices: np.ndarray | None = None, banned: np.ndarray | None = None,
                  block_rows: int = 0, workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`recli.kernels.dot.dot_topk` (same arguments and results, bit for bit) by a
    BLAS screen and an exact rescore (module docstring). ``workers`` threads (0: Numba's
    thread count) each run single-threaded BLAS products (the caller limits BLAS to one
    thread) on blocks of ``block_rows`` users (0: as many as keep a block near
    ``BLOCK_BYTES``). Memory: one ``block_rows x n_items`` float32 block per worker
    besides the ``B x k`` results."""
    from recli.kernels.dot import dot_topk
    from recli.kernels.topk_xp import _prepare

    U = np.ascontiguousarray(user_vectors, dtype=np.float32)
    V = np.ascontiguousarray(item_factors, dtype=np.float32)  # row-major: the rescore reads one item's row
    bias = np.ascontiguousarray(item_bias if item_bias is not None else np.zeros(0), dtype=np.float32)
    n_rows, n_items = U.shape[0], V.shape[0]
    no_scores = np.broadcast_to(np.float32(0), (n_rows, n_items))  # their shape, for the checks
    k, rows, indptr, indices, banned = _prepare(no_scores, k, rows, indptr, indices, banned)
    items = np.full((n_rows, k), -1, dtype=np.int32)
    values = np.full((n_rows, k), -np.inf, dtype=np.float32)
    if not (n_rows and k):
        return items, values
    margins = row_margins(U, V, bias)
    exact = np.isfinite(margins)
    indptr, indices = np.asarray(indptr), np.asarray(indices)
    if exact.any():
        step = block_rows or min(MAX_ROWS, max(MIN_ROWS, BLOCK_BYTES // (4 * n_items)))
        starts = iter(range(0, n_rows, step))  # shared by the workers: each takes the next block

        def work() -> None:
            block = np.empty((min(step, n_rows), n_items), dtype=np.float32)
            for start in starts:
                part = slice(start, min(start + step, n_rows))
                S = block[:part.stop - start]
                np.matmul(U[part], V.T, out=S)  # releases the GIL: the workers' products overlap
                if bias.shape[0]:
                    S += bias
                _screen_block(S, U[part], V, bias, margins[part], rows[part], indptr, indices, banned,
                              items[part], values[part])

        run_workers(work, workers or numba.get_num_threads())
    if not exact.all():
        rest = ~exact
        items[rest], values[rest] = dot_topk(U[rest], V, item_bias, k, rows[rest], indptr, indices, banned)
    return items, values


def run_workers(work, workers: int) -> None:
    """Run ``work()`` in ``workers`` threads (in this one when 1); re-raise the first error."""
    if workers <= 1:
        work()
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="recli-screen") as pool:
        for done in [pool.submit(work) for _ in range(workers)]:
            done.result()


def row_margins(U: np.ndarray, V: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``δ_b`` (module docstring) per row of ``U``, float64; ``inf`` where the bound does not
    hold (a non-finite factor or bias, or scores that could overflow float32)."""
    f = U.shape[1]
    gamma = (f + 1) * UNIT / (1 - (f + 1) * UNIT)
    u64 = U.astype(np.float64)
    magnitude = np.sqrt(np.einsum("ij,ij->i", u64, u64)) * max_row_norm(V)
    if bias.shape[0]:
        magnitude += np.abs(bias.astype(np.float64)).max()
    with np.errstate(invalid="ignore"):
        margins = SAFETY * (2 * gamma * magnitude + 2 * (f + 1) * TINY)
        # beyond a quarter of float32's range a partial sum could overflow: no bound
        margins[~(magnitude <= np.finfo(np.float32).max / 4)] = np.inf
    return margins


@njit(cache=True, nogil=True)
def max_row_norm(V):  # pragma: no cover - compiled
    """``max_j ‖V[j]‖₂`` in float64 (exact squares of float32 values; NaN if any is NaN)."""
    best = 0.0
    for j in range(V.shape[0]):
        s = 0.0
        for f in range(V.shape[1]):
            x = np.float64(V[j, f])
            s += x * x
        if s > best:
            best = s
        elif not (s <= best):  # NaN
            return np.nan
    return np.sqrt(best)


@njit(cache=True, inline="always")
def _bar_below(root, delta):
    """The largest float32 not above the real ``root − delta`` (so ``S ≥ bar`` keeps every
    item the real-number test keeps)."""
    t = np.float64(root) - delta
    bar = np.float32(t)
    if np.float64(bar) > t:
        bar = np.nextafter(bar, np.float32(-np.inf))
    return bar


@njit(cache=True, inline="always")
def _any_at_least(row, lo, bar):
    """Whether some score of ``row[lo:lo + CHUNK]`` is ``≥ bar`` (a count, which LLVM
    vectorises: most chunks hold none)."""
    chunk = row[lo:lo + CHUNK]  # indices from 0 up: no negative-index wraparound to check
    hits = 0
    for t in range(CHUNK):
        hits += np.int32(chunk[t] >= bar)
    return hits > 0


@njit(cache=True, nogil=True)
def _screen_block(S, U, V, bias, margins, rows, indptr, indices, banned, out_items, out_values):  # pragma: no cover
    B, n_items = S.shape
    n_factors = U.shape[1]
    k = out_items.shape[1]
    screen_s = np.empty(k, np.float32)  # the heap of BLAS scores
    screen_x = np.empty(k, np.int32)
    whole = n_items - n_items % CHUNK
    for b in range(B):
        delta = margins[b]
        if not (delta < np.inf):
            continue  # no bound: the row goes to the fixed-order kernel
        r = rows[b]
        first = indptr[r] if r >= 0 else 0
        end = indptr[r + 1] if r >= 0 else 0
        row = S[b]
        # 1. t: the k-th best BLAS score among eligible items (topk's offer, chunk by chunk)
        size, c = 0, first
        for lo in range(0, whole, CHUNK):
            if size < k or _any_at_least(row, lo, screen_s[0]):
                size, c = _offer(row[lo:], CHUNK, lo, screen_s, screen_x, size, c, end, indices, banned)
        size, c = _offer(row[whole:], n_items - whole, whole, screen_s, screen_x, size, c, end, indices, banned)
        bar = _bar_below(screen_s[0], 2 * delta) if size == k else np.float32(-np.inf)
        # 2. every eligible item with S ≥ t − 2δ, rescored in the fixed order, to the final heap
        hs = out_values[b]
        hx = out_items[b]
        u = U[b]
        size, c = 0, first
        for lo in range(0, n_items, CHUNK):
            hi = min(lo + CHUNK, n_items)
            if hi - lo == CHUNK and not _any_at_least(row, lo, bar):
                continue
            for j in range(lo, hi):
                if not (row[j] >= bar):
                    continue
                ok, c = _eligible(j, c, end, indices, banned)
                if not ok:
                    continue
                s = np.float32(0.0)  # the sum of _dot_into, operation for operation: the same bits
                for f in range(n_factors):
                    s += u[f] * V[j, f]
                if bias.shape[0]:
                    s += bias[j]
                if _beats(s, hs, size):
                    size = heap_push(hs, hx, size, s, j)
        heap_sort(hs, hx, size)
        for t in range(size, k):
            hs[t] = -np.inf
            hx[t] = -1
