"""Top-k items per row of a dense score batch, with seen-item and allow/deny filtering.

For each row ``b`` of ``scores`` (``B x n_items``, float32) return the ``k`` items with
the highest score, best first, skipping

* items seen by that row's user: the sorted column indices
  ``indices[indptr[rows[b]]:indptr[rows[b] + 1]]`` of a CSR matrix (``rows[b] == -1``:
  nothing seen). The CSR is read in place, never densified;
* items with ``banned[j] != 0`` (deny list, or outside an allow list); an empty
  ``banned`` bans nothing;
* scores that are NaN or -inf (they are never "recommended").

Ties are broken by the lower item index, so results are deterministic. ``k`` larger than
the catalogue is clipped to ``n_items``; rows with fewer eligible items are padded with
item ``-1`` and score ``-inf``.

Two implementations with one signature: :func:`topk` here (Numba, one fixed-size heap
per row, rows in parallel) for the CPU, and :func:`recli.kernels.topk_xp.topk_xp`
(argpartition, written against an array module ``xp`` so CuPy can run it) for the
GPU-shaped path and for tiny batches (it needs no Numba import).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from recli.kernels._heap import heap_push, heap_sort
from recli.kernels._search import slice_contains
from recli.kernels.topk_xp import _prepare


def topk(scores: np.ndarray, k: int, rows: np.ndarray | None = None, indptr: np.ndarray | None = None,
         indices: np.ndarray | None = None, banned: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` per row (Numba).

    Parameters
    ----------
    scores : (B, n_items) float32 scores; not modified.
    k : list length (>= 1); clipped to ``n_items``.
    rows : (B,) row of the seen CSR for each score row, ``-1`` for none; ``None``: none.
    indptr, indices : the seen CSR (int64 indptr, int32 sorted indices); may be memory-mapped.
    banned : (n_items,) uint8, non-zero = never return this item; ``None``/empty: no ban.

    Returns
    -------
    items : (B, min(k, n_items)) int32, best first, ``-1`` padding.
    values : (B, min(k, n_items)) float32, the matching scores, ``-inf`` padding.
    """
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    k, rows, indptr, indices, banned = _prepare(scores, k, rows, indptr, indices, banned)
    B = scores.shape[0]
    items = np.full((B, k), -1, dtype=np.int32)
    values = np.full((B, k), -np.inf, dtype=np.float32)
    if B and k:
        _topk_rows(scores, rows, np.asarray(indptr), np.asarray(indices), banned, items, values)
    return items, values


@njit(cache=True, parallel=True)
def _topk_rows(scores, rows, indptr, indices, banned, out_items, out_values):
    B, n = scores.shape
    k = out_items.shape[1]
    has_ban = banned.shape[0] > 0
    for b in prange(B):
        hs = out_values[b]  # each thread owns its output row: the row is the heap storage
        hi = out_items[b]
        r = rows[b]
        lo = indptr[r] if r >= 0 else 0
        end = indptr[r + 1] if r >= 0 else 0
        size = 0
        row = scores[b]
        # the bar a score must beat: -inf until the heap is full, then its root. Held in a
        # local (not re-read from the heap) so that the common reject is one compare.
        bar = -np.inf
        for j in range(n):
            s = row[j]
            # fast reject (also NaN and -inf); items are scanned in increasing index, so an
            # equal score never beats the root (which has the lower index).
            if not (s > bar):
                continue
            if has_ban and banned[j] != 0:
                continue
            if end > lo and slice_contains(indices, lo, end, j):
                continue
            size = heap_push(hs, hi, size, s, j)
            if size == k:
                bar = hs[0]
        heap_sort(hs, hi, size)
        for t in range(size, k):
            hs[t] = -np.inf
            hi[t] = -1

