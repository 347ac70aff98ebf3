"""NumPy-only helpers over CSR arrays ``(indptr int64, indices int32)``.

They import neither Polars nor SciPy, so the one-user serving path can use them.
"""

from __future__ import annotations

import numpy as np


def item_counts(indices: np.ndarray, n_items: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Popularity: stored cells per item column (distinct users, cells being unique), or
    the sum of ``weights`` over them; float32, length ``n_items``."""
    return np.bincount(np.asarray(indices), weights=weights, minlength=n_items).astype(np.float32)


def rows_of(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each listed row's items as a CSR ``(indptr int64, indices int32)``: row ``r`` of the
    result holds ``indices`` of row ``rows[r]`` of the CSR ``(indptr, indices)``, empty
    where ``rows[r] < 0`` (e.g. users the model does not know)."""
    rows = np.asarray(rows, dtype=np.int64)
    lengths = np.where(rows >= 0, np.diff(indptr)[np.maximum(rows, 0)], 0) if rows.size else rows
    out_ptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_ptr[1:])
    parts = [np.asarray(indices[indptr[r]:indptr[r + 1]]) for r in rows if r >= 0]
    out_idx = np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, dtype=np.int32)
    return out_ptr, out_idx
