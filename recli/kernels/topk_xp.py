"""The array-module (NumPy/CuPy) twin of :func:`recli.kernels.topk.topk`.

Same arguments and results; see that module for the filtering and tie rules. It imports
no Numba, so serving a handful of users does not pay Numba's import time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Device bytes per score cell of a batch: the float32 copy and its negation, the int64
# partition indices and running count of ties, the boolean masks.
BYTES_PER_CELL = 28


def rows_within(batch_bytes: int, n_items: int) -> int:
    """Rows of ``n_items`` scores whose top-k temporaries fit ``batch_bytes`` (at least 1)."""
    return max(1, int(batch_bytes) // (BYTES_PER_CELL * max(int(n_items), 1)))


def _prepare(scores, k, rows, indptr, indices, banned, xp=np):
    """Shared argument checks: returns ``(min(k, n_items), rows, indptr, indices, banned)``."""
    B, n = scores.shape
    if k < 1:
        raise ValueError("k must be >= 1")
    rows = xp.asarray(rows, dtype=xp.int64).ravel() if rows is not None else xp.full(B, -1, dtype=xp.int64)
    if rows.shape[0] != B:
        raise ValueError("rows must have one entry per score row")
    if indptr is None:
        indptr, indices = xp.zeros(1, dtype=xp.int64), xp.zeros(0, dtype=xp.int32)
    banned = xp.zeros(0, dtype=xp.uint8) if banned is None else xp.asarray(banned, dtype=xp.uint8)
    if banned.shape[0] not in (0, n):
        raise ValueError("banned must be empty or have one entry per item")
    return min(int(k), n), rows, indptr, indices, banned


def topk_xp(scores: Any, k: int, rows: Any = None, indptr: Any = None, indices: Any = None,
            banned: Any = None, xp: Any = np) -> tuple[Any, Any]:
    """The array-module twin of :func:`topk` (same arguments and results, plus ``xp``).

    Seen items and banned items are set to -inf in a copy of the batch (a scatter of the
    CSR slices, no dense seen matrix), then ``argpartition`` finds the k-th best value;
    everything strictly above it is taken, plus the lowest-index items equal to it, so
    ties at the cut are resolved by index exactly like the heap kernel.
    """
    scores = xp.array(scores, dtype=xp.float32, copy=True)
    k, rows, indptr, indices, banned = _prepare(scores, k, rows, indptr, indices, banned, xp)
    B, n = scores.shape
    scores[xp.isnan(scores)] = -xp.inf
    if banned.shape[0]:
        scores[:, banned.astype(bool)] = -xp.inf
    has = xp.flatnonzero(rows >= 0)
    if has.shape[0]:
        starts, stops = xp.asarray(indptr)[rows[has]], xp.asarray(indptr)[rows[has] + 1]
        lengths = stops - starts
        owner = xp.repeat(has, lengths)
        offsets = xp.arange(int(lengths.sum())) - xp.repeat(xp.cumsum(lengths) - lengths, lengths)
        cols = xp.asarray(indices)[xp.repeat(starts, lengths) + offsets]
        scores[owner, cols] = -xp.inf
    part = xp.argpartition(-scores, k - 1, axis=1)[:, :k]
    kth = xp.take_along_axis(scores, part, axis=1).min(axis=1, keepdims=True)
    above = scores > kth
    need = k - above.sum(axis=1, keepdims=True)
    equal = scores == kth
    chosen = above | (equal & (xp.cumsum(equal, axis=1) <= need))
    cols = xp.nonzero(chosen)[1].reshape(B, k)  # ascending index within each row
    vals = xp.take_along_axis(scores, cols, axis=1)
    order = xp.argsort(-vals, axis=1, kind="stable")  # stable: equal scores keep index order
    items = xp.take_along_axis(cols, order, axis=1).astype(xp.int32)
    values = xp.take_along_axis(vals, order, axis=1)
    invalid = ~(values > -xp.inf)
    items[invalid] = -1
    values[invalid] = -xp.inf
    return items, values
