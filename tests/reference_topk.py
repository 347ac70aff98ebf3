"""Slow, obviously-correct top-k: sort every eligible (score, item) pair of a row."""

from __future__ import annotations

import math

import numpy as np


def topk_reference(scores, k, rows=None, indptr=None, indices=None, banned=None):
    B, n = scores.shape
    k = min(k, n)
    items = np.full((B, k), -1, dtype=np.int32)
    values = np.full((B, k), -np.inf, dtype=np.float32)
    for b in range(B):
        seen = set()
        if rows is not None and rows[b] >= 0:
            seen = {int(j) for j in indices[indptr[rows[b]]:indptr[rows[b] + 1]]}
        candidates = []
        for j in range(n):
            s = float(scores[b, j])
            if j in seen or (banned is not None and len(banned) and banned[j]) or math.isnan(s) or s == -math.inf:
                continue
            candidates.append((-s, j))
        candidates.sort()
        for t, (neg, j) in enumerate(candidates[:k]):
            items[b, t] = j
            values[b, t] = -neg
    return items, values
