"""Top-k of factor-model scores ``U·Vᵀ (+ b)`` at BLAS speed with the results of the
fixed-order sum: a BLAS screen, then an exact rescore of the few items that can matter.

:func:`screened_topk` returns exactly what :func:`recli.kernels.dot.dot_topk` returns
(``topk(dot_scores(U, V, b), k, ...)``: scores summed in the fixed order of
:mod:`recli.kernels.dot_xp`, topk's filters and tie rule), bit for bit, so a user's list
is the same whether asked alone or with every user. Worker threads take blocks of users;
per block, tile of items by tile of items (so a tile of scores stays in cache):

1. ``S = U_b·V_tileᵀ (+ b) (+ c)`` by one single-threaded BLAS product (float32, in BLAS's
   own summation order); the biases ride in it as extra columns, ``[U_b | 1 | c]·[V | b | 1]ᵀ``
   (:func:`with_bias_columns`), so no pass over the scores adds them;
2. per row, items in increasing index, with topk's filters (seen items, ``banned``,
   NaN and -inf): ``t`` = the k-th best BLAS score among the eligible items so far
   (``−∞`` while fewer than ``k``), by topk's heap, kept from tile to tile;
3. every eligible item of the tile with ``S[j] ≥ t − 2δ`` is rescored in the fixed order
   (``s = 0; s = fl(s + fl(u_f·v_jf))`` for each ``f``, then ``s = fl(s + b_j)``: the
   float32 operations of ``_dot_into``, in its order, no fused multiply-add) and offered to
   the row's final heap, sorted after the last tile with topk's tie rule. Every other
   item is skipped unscored: a row rescores a few times ``k`` items, not ``n_items``.

The margin: ``S[j]`` and the fixed-order score ``e_j`` are float32 sums of the same ``f``
products plus ``b_j``; whatever the order, with or without fused multiply-adds, each is
within ``γ·(Σ_f |u_f v_jf| + |b_j|) + (f+1)·2⁻¹⁴⁹`` of the real value, with
``γ = (f+1)u / (1 − (f+1)u)``, ``u = 2⁻²⁴`` (the last term covers products rounded in the
subnormal range). By Cauchy–Schwarz ``Σ_f |u_f v_jf| ≤ ‖u_b‖₂·max_j ‖v_j‖₂``, so for every
item of row ``b``

    |e_j − S[j]| ≤ δ_b = 2·(2·γ·(‖u_b‖₂·max_j ‖v_j‖₂ + max_j |b_j|) + 2·(f+1)·2⁻¹⁴⁹)

(the outer 2 is a safety factor; it also covers the float64 rounding of the norms). An
optional per-user bias ``c_b``, added last (``mf``'s ``bᵤ``), is one more term: ``f+2``
in ``γ`` and ``+ |c_b|`` in the magnitude.

Exactness: let ``t*`` be the final ``t`` (over all items). The ``k`` eligible items with
``S ≥ t*`` have exact scores ``≥ t* − δ``, so the exact k-th best eligible score is
``≥ t* − δ``; every member of the exact top-k (ties at the boundary included) has
``e_j ≥ t* − δ``, hence ``S[j] ≥ t* − 2δ ≥ t − 2δ`` for the ``t`` of its own tile (``t``
only rises): it is rescored. The final heap thus sees every member of the exact top-k
with its exact score (among other eligible items) and keeps the top-k of what it sees
under topk's total order (higher score, then lower index): the exact top-k. ``t − 2δ`` is
rounded down to float32, so the float32 comparison never skips an item the real-number
test keeps.

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

BLOCK_ROWS = 1024  # users per BLAS product: each tile of V is packed once for this many users
MIN_BLOCK_ROWS = 256  # the shortest block, for batches too small to give every worker tall ones
BLOCK_BYTES = 2 << 20  # one tile of BLAS scores per worker (512 items at 1024 rows): BLAS writes, the screen reads
UNIT = 2.0 ** -24  # float32's unit roundoff
TINY = 2.0 ** -149  # float32's smallest subnormal: the absolute error of a product rounded there
SAFETY = 2.0
CHUNK = 64  # items per vectorised pre-check of a row


def screened_topk(user_vectors: np.ndarray, item_factors: np.ndarray, item_bias: np.ndarray | None, k: int,
                  rows: np.ndarray | None = None, indptr: np.ndarray | None = None,
                  indices: np.ndarray | None = None, banned: np.ndarray | None = None,
                  user_bias: np.ndarray | None = None, block_rows: int = 0,
                  workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`recli.kernels.dot.dot_topk` (same arguments and results, bit for bit) by a
    BLAS screen and an exact rescore (module docstring). ``user_bias``: ``c_u`` added last
    to every score of row ``u`` (``s = fl(s + c_u)``, after the item bias), the order of
    ``topk(dot_scores(U, V, b) + c[:, None], ...)``. ``workers`` threads (0: Numba's
    thread count) each run single-threaded BLAS products (the caller limits BLAS to one
    thread) on blocks of ``block_rows`` users (0: ``BLOCK_ROWS``), one tile of items at a
    time. Memory: one tile of scores (``BLOCK_BYTES``) and one block of user rows per worker
    besides the results, and with a bias a copy of ``V`` with its bias columns
    (:func:`with_bias_columns`, ``n_items × (f + 1 or 2)`` floats), made once per call."""
    from recli.kernels.topk_xp import _prepare

    U = np.ascontiguousarray(user_vectors, dtype=np.float32)
    V = np.ascontiguousarray(item_factors, dtype=np.float32)  # row-major: the rescore reads one item's row
    bias = np.ascontiguousarray(item_bias if item_bias is not None else np.zeros(0), dtype=np.float32)
    row_bias = np.ascontiguousarray(user_bias if user_bias is not None else np.zeros(0), dtype=np.float32)
    n_rows, n_items = U.shape[0], V.shape[0]
    no_scores = np.broadcast_to(np.float32(0), (n_rows, n_items))  # their shape, for the checks
    k, rows, indptr, indices, banned = _prepare(no_scores, k, rows, indptr, indices, banned)
    items = np.full((n_rows, k), -1, dtype=np.int32)
    values = np.full((n_rows, k), -np.inf, dtype=np.float32)
    if not (n_rows and k):
        return items, values
    margins = row_margins(U, V, bias, row_bias)
    exact = np.isfinite(margins)
    indptr, indices = np.asarray(indptr), np.asarray(indices)
    if exact.any():
        workers = workers or numba.get_num_threads()
        step = block_rows or block_rows_for(n_rows, workers)
        tile = max(CHUNK, BLOCK_BYTES // (4 * step) // CHUNK * CHUNK)
        starts = iter(range(0, n_rows, step))  # shared by the workers: each takes the next block
        Va = with_bias_columns(V, bias, row_bias.shape[0] > 0)

        def work() -> None:
            buffer = np.empty(min(step, n_rows) * min(tile, n_items), dtype=np.float32)
            Ua = np.empty((min(step, n_rows), Va.shape[1]), dtype=np.float32)
            for start in starts:
                part = slice(start, min(start + step, n_rows))
                Ub = user_columns(Ua[:part.stop - start], U[part], bias.shape[0] > 0, row_bias[part])
                state = _start_state(rows[part], indptr, k)
                for lo in range(0, n_items, tile):
                    hi = min(lo + tile, n_items)
                    S = buffer[:(part.stop - start) * (hi - lo)].reshape(part.stop - start, hi - lo)
                    np.matmul(Ub, Va[lo:hi].T, out=S)  # releases the GIL: the workers' products overlap
                    _screen_tile(S, lo, U[part], V, bias, row_bias[part], margins[part], rows[part], indptr,
                                 indices, banned, *state, items[part], values[part], hi == n_items)

        run_workers(work, workers)
    if not exact.all():
        rest = ~exact
        items[rest], values[rest] = _fixed_order_topk(U[rest], V, item_bias, row_bias[rest] if row_bias.shape[0]
                                                      else None, k, rows[rest], indptr, indices, banned)
    return items, values


def block_rows_for(n_rows: int, workers: int) -> int:
    """Users per BLAS product: ``BLOCK_ROWS``, or fewer (down to ``MIN_BLOCK_ROWS``, a
    multiple of 64) when the batch would leave workers without a block: a taller product
    packs each tile of ``V`` for more users, but every worker needs blocks to take."""
    share = -(-n_rows // max(1, workers))
    return max(MIN_BLOCK_ROWS, min(BLOCK_ROWS, -(-share // 64) * 64))


def with_bias_columns(V: np.ndarray, bias: np.ndarray, user_bias: bool) -> np.ndarray:
    """``V``, or ``[V | b | 1]`` (``b`` when there is an item bias, ``1`` when there is a
    user bias): the biases then come out of the BLAS product itself, as one more term of
    each sum (which the margin already counts), not from a pass over every score."""
    extra = int(bias.shape[0] > 0) + int(user_bias)
    if not extra:
        return V
    f = V.shape[1]
    out = np.empty((V.shape[0], f + extra), dtype=np.float32)
    out[:, :f] = V
    if bias.shape[0]:
        out[:, f] = bias
    if user_bias:
        out[:, -1] = 1.0
    return out


def user_columns(out: np.ndarray, U: np.ndarray, item_bias: bool, user_bias: np.ndarray) -> np.ndarray:
    """``U``'s rows matched to :func:`with_bias_columns`: ``[U | 1 | c]`` in ``out`` (``1``
    for the item bias, ``c`` the user bias), or ``U`` itself when there is neither."""
    if out.shape[1] == U.shape[1]:
        return U
    f = U.shape[1]
    out[:, :f] = U
    if item_bias:
        out[:, f] = 1.0
    if user_bias.shape[0]:
        out[:, -1] = user_bias
    return out


def _fixed_order_topk(U: np.ndarray, V: np.ndarray, item_bias: np.ndarray | None, user_bias: np.ndarray | None,
                      k: int, rows: np.ndarray, indptr: np.ndarray, indices: np.ndarray,
                      banned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows without a bound, by the fixed-order kernels: :func:`recli.kernels.dot.dot_topk`,
    or, with a user bias (which it lacks), ``topk`` of the fixed-order scores plus that bias."""
    from recli.kernels.dot import dot_scores, dot_topk
    from recli.kernels.topk import topk

    if user_bias is None:
        return dot_topk(U, V, item_bias, k, rows, indptr, indices, banned)
    scores = dot_scores(U, V, item_bias)
    scores += user_bias[:, None]
    return topk(scores, k, rows, indptr, indices, banned)


def _start_state(rows: np.ndarray, indptr: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A block's running state: the heaps of BLAS scores (values, items) and per row
    ``[screen heap size, its seen cursor, final heap size, its seen cursor]``."""
    first = np.where(rows >= 0, np.asarray(indptr)[np.maximum(rows, 0)], 0)
    counters = np.zeros((rows.shape[0], 4), dtype=np.int64)
    counters[:, 1] = counters[:, 3] = first
    return np.empty((rows.shape[0], k), np.float32), np.empty((rows.shape[0], k), np.int32), counters


def run_workers(work, workers: int) -> None:
    """Run ``work()`` in ``workers`` threads (in this one when 1); re-raise the first error."""
    if workers <= 1:
        work()
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="recli-screen") as pool:
        for done in [pool.submit(work) for _ in range(workers)]:
            done.result()


def row_margins(U: np.ndarray, V: np.ndarray, bias: np.ndarray, user_bias: np.ndarray) -> np.ndarray:
    """``δ_b`` (module docstring) per row of ``U``, float64; ``inf`` where the bound does not
    hold (a non-finite factor or bias, or scores that could overflow float32). With a user
    bias each sum has one term more, ``|c_b|``."""
    terms = U.shape[1] + 1 + (1 if user_bias.shape[0] else 0)
    gamma = terms * UNIT / (1 - terms * UNIT)
    u64 = U.astype(np.float64)
    magnitude = np.sqrt(np.einsum("ij,ij->i", u64, u64)) * max_row_norm(V)
    if bias.shape[0]:
        magnitude += np.abs(bias.astype(np.float64)).max()
    if user_bias.shape[0]:
        magnitude += np.abs(user_bias.astype(np.float64))
    with np.errstate(invalid="ignore"):
        margins = SAFETY * (2 * gamma * magnitude + 2 * terms * TINY)
        # beyond a quarter of float32's range a partial sum could overflow: no bound
        margins[~(magnitude <= np.finfo(np.float32).max / 4)] = np.inf
    return margins


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def max_row_norm(V):  # pragma: no cover - compiled
    """``max_j ‖V[j]‖₂`` in float64 (exact squares of float32 values; NaN if any is NaN).
    Summed in any order (``reassoc`` lets LLVM vectorise): a float64 rounding of a bound,
    which the margin's safety factor covers; NaN and infinity still propagate."""
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
def _screen_tile(S, lo, U, V, bias, user_bias, margins, rows, indptr, indices, banned, screen_s, screen_x, counters,
                 out_items, out_values, last):  # pragma: no cover - compiled
    """One tile of BLAS scores ``S`` (items ``lo…``) of a block of users: steps 2 and 3 of
    the module docstring with the block's running state; ``last``: sort the final heaps."""
    B, width = S.shape
    n_factors = U.shape[1]
    k = out_items.shape[1]
    whole = width - width % CHUNK
    for b in range(B):
        delta = margins[b]
        if not (delta < np.inf):
            continue  # no bound: the row goes to the fixed-order kernel
        r = rows[b]
        end = indptr[r + 1] if r >= 0 else 0
        row = S[b]
        hs1 = screen_s[b]
        hx1 = screen_x[b]
        # 2. t so far: the k-th best BLAS score among eligible items (topk's offer, by chunks)
        size, c = counters[b, 0], counters[b, 1]
        for j in range(0, whole, CHUNK):
            if size < k or _any_at_least(row, j, hs1[0]):
                size, c = _offer(row[j:], CHUNK, lo + j, hs1, hx1, size, c, end, indices, banned)
        size, c = _offer(row[whole:], width - whole, lo + whole, hs1, hx1, size, c, end, indices, banned)
        counters[b, 0], counters[b, 1] = size, c
        bar = _bar_below(hs1[0], 2 * delta) if size == k else np.float32(-np.inf)
        # 3. eligible items with S ≥ t − 2δ, rescored in the fixed order, to the final heap
        hs = out_values[b]
        hx = out_items[b]
        u = U[b]
        size, c = counters[b, 2], counters[b, 3]
        for j0 in range(0, width, CHUNK):
            if j0 < whole and not _any_at_least(row, j0, bar):
                continue
            for j in range(j0, min(j0 + CHUNK, width)):
                if not (row[j] >= bar):
                    continue
                ok, c = _eligible(lo + j, c, end, indices, banned)
                if not ok:
                    continue
                s = np.float32(0.0)  # the sum of _dot_into, operation for operation: the same bits
                for f in range(n_factors):
                    s += u[f] * V[lo + j, f]
                if bias.shape[0]:
                    s += bias[lo + j]
                if user_bias.shape[0]:
                    s += user_bias[b]
                if _beats(s, hs, size):
                    size = heap_push(hs, hx, size, s, lo + j)
        counters[b, 2], counters[b, 3] = size, c
        if last:
            heap_sort(hs, hx, size)
            for t in range(size, k):
                hs[t] = -np.inf
                hx[t] = -1
