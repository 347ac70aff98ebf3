"""Numba twin of :func:`recli.kernels.dot_xp.dot_scores_xp`: the same fixed-order float32
sum (see there), for large CPU batches. Item tiles run in parallel; within a tile each
user's row accumulates factor by factor, so ``V``'s tile stays in cache across users.
Numba emits separate multiply and add instructions (no ``fastmath``, so no fused
multiply-add and no reordering): the bits equal the NumPy twin's.

:func:`dot_topk` fuses the same sum with the top-k selection of
:func:`recli.kernels.topk.topk`: each item tile's scores go straight into the users'
heaps, so a batch's ``(B, n_items)`` score matrix is never written (one tile per thread
lives in L1), and the result equals ``topk(dot_scores(U, V, b), ...)`` exactly. Users go
four at a time through a tile, so each load of ``V`` serves four sums (the sums
themselves, and so the bits, are those of ``_dot_into``). Factor models reach the same
result faster through :mod:`recli.kernels.dot_screen`, which falls back to it for users
whose factors admit no error bound; it shares ``_beats`` and ``_eligible``."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from recli.kernels._heap import heap_push, heap_sort

ROWS, TILE = 64, 1024  # users x items per parallel block (a tile of V: 4 KiB per factor)


def dot_scores(user_vectors: np.ndarray, item_factors: np.ndarray, item_bias: np.ndarray | None = None) -> np.ndarray:
    """``U·Vᵀ (+ b)``: float32 ``(len(U), n_items)``, summed as :mod:`recli.kernels.dot_xp` sums."""
    U = np.ascontiguousarray(user_vectors, dtype=np.float32)
    Vt = np.ascontiguousarray(np.asarray(item_factors, dtype=np.float32).T)
    bias = np.ascontiguousarray(item_bias if item_bias is not None else np.zeros(0), dtype=np.float32)
    out = np.empty((U.shape[0], Vt.shape[1]), dtype=np.float32)
    _dot_into(U, Vt, bias, out)
    return out


@njit(parallel=True, cache=True, nogil=True)
def _dot_into(U, Vt, bias, out):  # pragma: no cover - compiled
    n_rows, k = U.shape
    n_items = Vt.shape[1]
    row_blocks = (n_rows + ROWS - 1) // ROWS
    tiles = (n_items + TILE - 1) // TILE
    for block in prange(row_blocks * tiles):
        # a local accumulator (not a row of ``out``) lets LLVM vectorise the inner loop
        acc = np.empty(TILE, np.float32)
        r0 = (block // tiles) * ROWS
        lo = (block % tiles) * TILE
        hi = min(lo + TILE, n_items)
        width = hi - lo
        for i in range(r0, min(r0 + ROWS, n_rows)):
            acc[:] = 0.0
            for f in range(k):
                uf = U[i, f]
                vf = Vt[f, lo:hi]
                for j in range(width):
                    acc[j] += uf * vf[j]
            if bias.shape[0]:
                for j in range(width):
                    acc[j] += bias[lo + j]
            out[i, lo:hi] = acc[:width]


def dot_topk(user_vectors: np.ndarray, item_factors: np.ndarray, item_bias: np.ndarray | None, k: int,
             rows: np.ndarray | None = None, indptr: np.ndarray | None = None, indices: np.ndarray | None = None,
             banned: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``topk(dot_scores(U, V, b), k, rows, indptr, indices, banned)`` (same arguments,
    filters, tie rule and results as :func:`recli.kernels.topk.topk`) without the score
    matrix: memory is ``B·k``, not ``B·n_items``."""
    from recli.kernels.topk_xp import _prepare

    U = np.ascontiguousarray(user_vectors, dtype=np.float32)
    Vt = np.ascontiguousarray(np.asarray(item_factors, dtype=np.float32).T)
    bias = np.ascontiguousarray(item_bias if item_bias is not None else np.zeros(0), dtype=np.float32)
    no_scores = np.broadcast_to(np.float32(0), (U.shape[0], Vt.shape[1]))  # their shape, for the checks
    k, rows, indptr, indices, banned = _prepare(no_scores, k, rows, indptr, indices, banned)
    items = np.full((U.shape[0], k), -1, dtype=np.int32)
    values = np.full((U.shape[0], k), -np.inf, dtype=np.float32)
    if U.shape[0] and k:
        _dot_topk_rows(U, Vt, bias, rows, np.asarray(indptr), np.asarray(indices), banned, items, values)
    return items, values


@njit(cache=True, inline="always")
def _beats(s, hs, size):
    """Whether score ``s`` of the next item (items come in increasing index) can enter the
    heap ``hs`` holding ``size``: topk's fast reject (also NaN and -inf); an equal score
    never beats the root (lower index)."""
    if size == hs.shape[0]:
        return s > hs[0]
    return s > -np.inf


@njit(cache=True, inline="always")
def _eligible(item, c, end, indices, banned):
    """topk's item filters: ``(item is neither banned nor seen, new cursor)``; ``c`` is the
    cursor into the user's sorted seen items ``indices[c:end]``. Items come in increasing
    order, so the cursor walks the seen row once."""
    if banned.shape[0] and banned[item] != 0:
        return False, c
    while c < end and indices[c] < item:
        c += 1
    return not (c < end and indices[c] == item), c


@njit(cache=True, inline="always")
def _offer(acc, width, lo, hs, hx, size, c, end, indices, banned):
    """Offer scores ``acc[:width]`` of items ``lo…`` to one user's heap (``hs``/``hx``
    holding ``size``), with topk's filters; ``c`` is the cursor into the user's sorted seen
    items ``indices[c:end]``. Returns the new ``(size, c)``."""
    for j in range(width):
        s = acc[j]
        if not _beats(s, hs, size):
            continue
        ok, c = _eligible(lo + j, c, end, indices, banned)
        if ok:
            size = heap_push(hs, hx, size, s, lo + j)
    return size, c


@njit(parallel=True, cache=True, nogil=True)
def _dot_topk_rows(U, Vt, bias, rows, indptr, indices, banned, out_items, out_values):  # pragma: no cover - compiled
    n_rows, n_factors = U.shape
    n_items = Vt.shape[1]
    k = out_items.shape[1]
    for block in prange((n_rows + ROWS - 1) // ROWS):
        r0 = block * ROWS
        r1 = min(r0 + ROWS, n_rows)
        acc4 = np.empty((4, TILE), np.float32)
        sizes = np.zeros(r1 - r0, np.int64)
        cursor = np.zeros(r1 - r0, np.int64)
        ends = np.zeros(r1 - r0, np.int64)
        for i in range(r0, r1):
            if rows[i] >= 0:
                cursor[i - r0], ends[i - r0] = indptr[rows[i]], indptr[rows[i] + 1]
        for lo in range(0, n_items, TILE):  # V's tile stays in cache across the block's users
            width = min(lo + TILE, n_items) - lo
            for q in range(r0, r1, 4):
                acc4[:, :] = 0.0  # the sum of _dot_into, element for element: the same bits
                if q + 4 <= r1:  # four users share each load of V's tile: a quarter of the loads
                    for f in range(n_factors):
                        u0 = U[q, f]
                        u1 = U[q + 1, f]
                        u2 = U[q + 2, f]
                        u3 = U[q + 3, f]
                        vf = Vt[f, lo:lo + width]
                        a0 = acc4[0]
                        a1 = acc4[1]
                        a2 = acc4[2]
                        a3 = acc4[3]
                        for j in range(width):
                            v = vf[j]
                            a0[j] += u0 * v
                            a1[j] += u1 * v
                            a2[j] += u2 * v
                            a3[j] += u3 * v
                else:
                    for i in range(q, r1):
                        a = acc4[i - q]
                        for f in range(n_factors):
                            uf = U[i, f]
                            vf = Vt[f, lo:lo + width]
                            for j in range(width):
                                a[j] += uf * vf[j]
                for i in range(q, min(q + 4, r1)):
                    a = acc4[i - q]
                    if bias.shape[0]:
                        for j in range(width):
                            a[j] += bias[lo + j]
                    b = i - r0
                    sizes[b], cursor[b] = _offer(a, width, lo, out_values[i], out_items[i], sizes[b], cursor[b],
                                                 ends[b], indices, banned)
        for i in range(r0, r1):
            size = sizes[i - r0]
            heap_sort(out_values[i], out_items[i], size)
            for t in range(size, k):
                out_values[i, t] = -np.inf
                out_items[i, t] = -1
