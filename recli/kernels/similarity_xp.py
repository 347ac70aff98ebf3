"""The array-module (NumPy/CuPy) twin of :func:`recli.kernels.similarity.similarity_topk_arrays`.

Same input, measures and result (see :mod:`recli.kernels.similarity`): for every row ``i`` of
the entities × features matrix ``E``, its ``k`` most similar other rows in rank order
(score descending, ties by lower index); pairs with ``d == 0`` are never neighbours.

Blocked: the rows are taken ``rows`` at a time; a block's dot products
``D = E[lo:hi] · Eᵀ`` are one sparse × sparse product (``cupyx.scipy.sparse`` on a GPU,
SciPy with NumPy), densified to ``rows × n`` float64, turned into scores by the measure's
denominator and cut to the block's top-``k`` (:func:`recli.kernels.topk_xp.topk_xp`) before
the next block starts. Device memory is therefore the matrix plus one block of
:data:`BYTES_PER_CELL` × ``rows × n`` bytes, never ``n²``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Device bytes per (row, entity) cell of a block: the sparse product (float64 value and
# int32 index per stored pair, at most one per cell), D and the denominator in float64, the
# float32 scores, and the top-k's float32 copy and int64 partition indices.
BYTES_PER_CELL = 44


def block_rows(n: int, batch_bytes: int) -> int:
    """Rows per block so that a block's ``rows × n`` cells fit ``batch_bytes`` (at least 1)."""
    return max(1, int(batch_bytes) // (BYTES_PER_CELL * max(int(n), 1)))


def similarity_topk_xp(e: Any, f: Any, k: int, measure: str = "cosine", shrink: float = 0.0,
                       alpha: float = 0.5, xp: Any = np, batch_bytes: int = 1 << 28) -> Any:
    """Top-``k`` similarity of the rows of ``e`` (a :class:`~recli.kernels.similarity.Csr`
    of host arrays; ``f`` = ``e.T``, used for its shape), in row blocks sized by
    ``batch_bytes``; returns a host :class:`~recli.kernels.similarity.Csr` (rank order)."""
    from recli.kernels.als_xp import sparse_module, to_host
    from recli.kernels.similarity import Csr, measure_factors
    from recli.kernels.topk_xp import topk_xp

    if k < 1:
        raise ValueError("k must be >= 1")
    n, n_features = e.indptr.shape[0] - 1, f.indptr.shape[0] - 1
    data64 = np.asarray(e.data, np.float64)  # float32 values, summed in float64 as on the CPU
    sq = np.bincount(np.repeat(np.arange(n), np.diff(e.indptr)), weights=data64 * data64, minlength=n)
    p_row, p_nbr, shrink, jaccard = (xp.asarray(v) if isinstance(v, np.ndarray) else v
                                     for v in measure_factors(sq, measure, alpha, n_features, shrink))
    k = int(min(k, max(n - 1, 1)))
    sparse = sparse_module(xp)
    # CuPy's sparse matrices take int32 offsets: an E with 2³¹ non-zeros would not fit a GPU anyway.
    E = sparse.csr_matrix((xp.asarray(data64), xp.asarray(np.asarray(e.indices, np.int32)),
                           xp.asarray(np.asarray(e.indptr, np.int32))), shape=(n, n_features))
    Et = E.T.tocsr()
    a = xp.asarray(sq)
    step = block_rows(n, batch_bytes)
    items, values = [], []
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        d = (E[lo:hi] @ Et).toarray()
        if jaccard:
            den = a[lo:hi, None] + a[None, :] - d + shrink
        else:
            den = p_row[lo:hi, None] * p_nbr[None, :] + shrink
        s = (d / xp.where(den != 0, den, 1.0)).astype(xp.float32)  # a zero denominator scores 0
        s[d == 0] = -xp.inf
        s[xp.arange(hi - lo), xp.arange(lo, hi)] = -xp.inf  # never its own neighbour
        del d, den
        blk_items, blk_values = topk_xp(s, k, xp=xp)
        items.append(to_host(xp, blk_items))  # the block's top-k leaves the device before the next block
        values.append(to_host(xp, blk_values))
    idx = np.concatenate(items) if items else np.zeros((0, k), np.int32)
    val = np.concatenate(values) if values else np.zeros((0, k), np.float32)
    keep = idx >= 0  # rank order: the valid entries of a row come first
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(keep.sum(axis=1), out=indptr[1:])
    return Csr(indptr, idx[keep].astype(np.int32), val[keep].astype(np.float32))
