"""Parallel transpose of a CSR matrix (the CSR of ``Mᵀ``), for the models that need both
orientations (ALS's item sweep, item-kNN's feature rows).

Rows are split into ``C`` contiguous chunks of about equal non-zeros. Pass 1 counts, per
chunk, the entries of every column (chunks in parallel); a prefix sum over (column, chunk)
gives each chunk its own write position inside every output row; pass 2 scatters (chunks
in parallel). Chunks cover increasing row ranges and each scans its rows in order, so the
output rows come out sorted, and the result does not depend on ``C``: it is SciPy's
``M.T.tocsr()`` with sorted indices.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from recli.kernels._chunks import balanced_bounds


def transpose_csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_cols: int,
                  n_chunks: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(indptr int64, indices int32, data)`` of the transpose of the ``n_rows × n_cols``
    CSR ``(indptr, indices, data)``; ``n_chunks`` (0: Numba's thread count) only sets the
    parallelism."""
    import numba

    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    indices = np.ascontiguousarray(indices, dtype=np.int32)
    data = np.ascontiguousarray(data)
    bounds = balanced_bounds(indptr, n_chunks or numba.get_num_threads())
    counts = np.zeros((bounds.shape[0] - 1, n_cols), dtype=np.int64)
    _count(indptr, indices, bounds, counts)
    out_ptr = np.zeros(n_cols + 1, dtype=np.int64)
    np.cumsum(counts.sum(axis=0), out=out_ptr[1:])
    # chunk c writes column j's entries after those of the chunks before it
    starts = out_ptr[:-1][None, :] + np.cumsum(counts, axis=0) - counts
    out_idx = np.empty(indices.shape[0], dtype=np.int32)
    out_data = np.empty(indices.shape[0], dtype=data.dtype)
    _scatter(indptr, indices, data, bounds, starts, out_idx, out_data)
    return out_ptr, out_idx, out_data


@njit(cache=True, parallel=True)
def _count(indptr, indices, bounds, counts):  # pragma: no cover - compiled
    for c in prange(bounds.shape[0] - 1):
        for p in range(indptr[bounds[c]], indptr[bounds[c + 1]]):
            counts[c, indices[p]] += 1


@njit(cache=True, parallel=True)
def _scatter(indptr, indices, data, bounds, starts, out_idx, out_data):  # pragma: no cover - compiled
    for c in prange(bounds.shape[0] - 1):
        pos = starts[c]
        for r in range(bounds[c], bounds[c + 1]):
            for p in range(indptr[r], indptr[r + 1]):
                j = indices[p]
                out_idx[pos[j]] = r
                out_data[pos[j]] = data[p]
                pos[j] += 1
