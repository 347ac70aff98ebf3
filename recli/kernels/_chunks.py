"""Contiguous row ranges of about equal work, one per parallel chunk (plain NumPy)."""

from __future__ import annotations

import numpy as np


def balanced_bounds(indptr: np.ndarray, n_chunks: int, row_cost: float = 0.0) -> np.ndarray:
    """Split rows ``0..n_rows`` into ``n_chunks`` contiguous ranges of about equal cost,
    where row ``r`` costs ``nnz_r + row_cost`` (its non-zeros plus a fixed per-row part,
    e.g. ALS's dense k×k product, so Zipf-popular rows do not all land on one thread).

    Returns ``min(n_chunks, n_rows) + 1`` (at least 2) non-decreasing int64 boundaries
    from 0 to ``n_rows``.
    """
    n_rows = indptr.shape[0] - 1
    n_chunks = max(1, min(int(n_chunks), n_rows))
    cum = np.asarray(indptr, dtype=np.float64) + row_cost * np.arange(n_rows + 1, dtype=np.float64)
    targets = np.linspace(0.0, cum[-1], n_chunks + 1)
    bounds = np.searchsorted(cum, targets, side="left").astype(np.int64)
    bounds[0], bounds[-1] = 0, n_rows
    return np.maximum.accumulate(bounds)
