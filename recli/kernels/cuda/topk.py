"""Top-k per row of a score batch on the GPU (``numba.cuda``): the twin of
:func:`recli.kernels.topk.topk` and :func:`recli.kernels.topk_xp.topk_xp`, with the same
arguments, results, filters (seen items of the row's CSR slice, banned items, NaN and
-inf) and tie rule (equal scores: the lower item index first).

One thread per row keeps the row's best ``k`` so far, sorted, in the row's own output
arrays: items are scanned in increasing index, a candidate no better than the current
``k``-th is rejected by one compare (an equal score never displaces the lower index
already kept), and an accepted one is inserted by shifting the worse ones down. The seen
slice is sorted, so one pointer walks it alongside the scan. Suited to the small ``k``
of recommendation lists; the cost per row is ``O(n_items + accepted · k)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda

from recli.kernels.cuda.device import launch
from recli.kernels.topk_xp import _prepare


@cuda.jit
def _topk_kernel(scores, rows, indptr, indices, banned, items, values):
    b = cuda.grid(1)
    if b >= scores.shape[0]:
        return
    n = scores.shape[1]
    k = items.shape[1]
    r = rows[b]
    seen = indptr[r] if r >= 0 else 0
    end = indptr[r + 1] if r >= 0 else 0
    size = 0
    for j in range(n):
        while seen < end and indices[seen] < j:
            seen += 1
        if seen < end and indices[seen] == j:
            continue
        s = scores[b, j]
        if not (s > -math.inf):  # NaN or -inf
            continue
        if banned.shape[0] > 0 and banned[j] != 0:
            continue
        if size == k and not (s > values[b, k - 1]):
            continue
        p = size if size < k else k - 1
        while p > 0 and values[b, p - 1] < s:
            values[b, p] = values[b, p - 1]
            items[b, p] = items[b, p - 1]
            p -= 1
        values[b, p] = s
        items[b, p] = j
        if size < k:
            size += 1
    for t in range(size, k):
        values[b, t] = -math.inf
        items[b, t] = -1


def topk(scores: Any, k: int, rows: Any = None, indptr: Any = None, indices: Any = None, banned: Any = None,
         xp: Any = np) -> tuple[Any, Any]:
    """Top-``k`` per row (see the module docstring), as ``xp`` arrays: ``items`` int32 and
    ``values`` float32, ``(B, min(k, n_items))``, best first, padded with -1 / -inf."""
    scores = xp.ascontiguousarray(scores, dtype=xp.float32)
    k, rows, indptr, indices, banned = _prepare(scores, k, rows, indptr, indices, banned, xp)
    B = scores.shape[0]
    items = xp.full((B, k), -1, dtype=xp.int32)
    values = xp.full((B, k), -np.inf, dtype=xp.float32)
    if B and k:
        launch(_topk_kernel, B)(scores, rows, xp.asarray(indptr), xp.asarray(indices), banned, items, values)
    return items, values
