"""SciPy front end of the top-K similarity kernel (:mod:`recli.kernels.similarity`): turns
sparse matrices into the kernel's CSR arrays, runs it with the requested thread count and
wraps the result back into a SciPy matrix. The weightings and centring are in
:mod:`recli.models._weighting`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from recli.backend import get_backend, threads_context
from recli.models._weighting import prepare_rows, weighted_pair


def _kernel_inputs(rows: sp.csr_matrix, features: sp.csr_matrix | None) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``rows`` and its transpose as float32 CSR with sorted indices (values travel as
    float32, half the memory traffic; sums are accumulated in float64)."""
    e = sp.csr_matrix(rows, dtype=np.float32)
    e.sort_indices()
    if features is None:
        f = e.T.tocsr()
    else:
        f = sp.csr_matrix(features, dtype=np.float32)
        if f.shape != e.shape[::-1] or f.nnz != e.nnz:
            raise ValueError("features must be rows.T")
    f.sort_indices()
    return e, f


def _arrays(m: sp.csr_matrix):
    from recli.kernels.similarity import Csr

    return Csr(np.asarray(m.indptr, np.int64), np.asarray(m.indices, np.int32), m.data)


def similarity_topk(rows: sp.csr_matrix, k: int, measure: str = "cosine", shrink: float = 0.0,
                    alpha: float = 0.5, threads: int = 0,
                    features: sp.csr_matrix | None = None, backend: Any = None) -> sp.csr_matrix:
    """Top-``k`` similarity between the rows of an already weighted/centred ``rows``.

    Parameters
    ----------
    rows : scipy.sparse.csr_matrix
        entities × features, float values (see :func:`prepare_rows`).
    k : int
        neighbours kept per row (>= 1).
    measure, shrink, alpha
        see :mod:`recli.kernels.similarity`.
    threads : int
        Numba threads (0 = every core, see :func:`recli.backend.threads_context`); the
        result does not depend on it.
    features : scipy.sparse.csr_matrix, optional
        ``rows.T`` in CSR form, when the caller has it (itemknn's user × item training
        matrix is exactly that): saves a transpose.

    Returns
    -------
    scipy.sparse.csr_matrix
        entities × entities, float32 values (scipy picks the index dtypes); each row holds at
        most ``k`` entries in rank order (so column indices are not sorted).
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    e, f = _kernel_inputs(rows, features)
    kernels = (backend if backend is not None else get_backend("cpu")).kernels
    with threads_context(threads) as parts:
        out = kernels.similarity_topk(_arrays(e), _arrays(f), k, measure, shrink, alpha, parts)
    n = e.shape[0]
    return sp.csr_matrix((out.data, out.indices, out.indptr), shape=(n, n))


def build_similarity(rows: sp.csr_matrix, k: int, measure: str = "cosine", weighting: str = "none",
                     shrink: float = 0.0, alpha: float = 0.5, k1: float = 1.2, b: float = 0.75,
                     threads: int = 0, features: sp.csr_matrix | None = None, backend: Any = None) -> sp.csr_matrix:
    """Weight, centre and compute the top-``k`` similarity of the rows of ``rows``
    (``features``, optional: ``rows.T`` as CSR, used when nothing is centred: a tfidf or
    bm25 weighting is applied to both, :func:`weighted_pair`) on ``backend``'s kernels (the
    CPU's when omitted)."""
    if measure not in ("pearson", "adjusted_cosine") and (weighting == "none" or features is not None):
        if weighting != "none":  # weighs both orientations: no float64 copy, no transpose
            rows, features = weighted_pair(rows, features, weighting, k1, b)
        return similarity_topk(rows, k, measure, shrink, alpha, threads, features, backend)
    prepared, _ = prepare_rows(rows, measure, weighting, k1, b)
    return similarity_topk(prepared, k, measure, shrink, alpha, threads, backend=backend)
