"""Beyond-accuracy helpers over item arrays (the per-user kernels live in
:mod:`recli.kernels.metrics`)."""

from __future__ import annotations

import numpy as np


def gini(counts) -> float:
    """Gini index of recommendation counts over the whole catalogue.

    ``G = sum_i (2i - n - 1) c_(i) / (n * sum c)`` with counts sorted ascending
    (``i = 1..n``, zero counts included): 0 when every item is recommended equally often,
    ``1 - 1/n`` when one item takes every slot. NaN when nothing is recommended.
    """
    c = np.sort(np.asarray(counts, dtype=np.float64))
    n = c.shape[0]
    total = c.sum()
    if n == 0 or total == 0:
        return float("nan")
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(np.sum((2 * i - n - 1) * c) / (n * total))


def self_information(item_counts, n_train_users: int) -> np.ndarray:
    """``-log2(pop_i)`` with ``pop_i = max(count_i, 1) / n_train_users``.

    An item never seen in TRAIN counts as seen by one user (finite, maximal novelty).
    """
    n = max(int(n_train_users), 1)
    counts = np.maximum(np.asarray(item_counts, dtype=np.float64), 1.0)
    return -np.log2(np.minimum(counts / n, 1.0))
