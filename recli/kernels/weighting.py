"""The tfidf / bm25 input weightings of the similarity models, applied to the values of a
CSR matrix in parallel (the formulas are those of :mod:`recli.kernels.similarity`,
entities as documents, features as terms):

- ``tfidf``: ``x' = sqrt(x) · idf_f``
- ``bm25``:  ``x' = x · (k1 + 1) / (k1 · L_e + x) · idf_f`` (0 where the denominator is 0)

computed in float64 with the same operations, in the same order, as the NumPy expressions of
:func:`recli.models._weighting.apply_weighting`, and stored as float32, so both give the same
bits. ``by_row`` says whether the matrix's rows are the entities (``entities × features``) or
its columns (the transpose): the same weights in the other orientation, with no transpose.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def weighted_values(indptr, indices, data, length_norm, idf, k1, bm25, by_row):  # pragma: no cover - compiled
    """float32 weighted copy of ``data`` (see the module docstring); ``length_norm`` (``L_e``,
    unused for tfidf) is indexed by entity, ``idf`` by feature."""
    out = np.empty(data.shape[0], np.float32)
    n = indptr.shape[0] - 1
    scale = k1 + 1.0
    for row in prange(n):
        r = np.int64(row)
        for p in range(indptr[r], indptr[r + 1]):
            c = np.int64(indices[p])
            e = r if by_row else c
            f = c if by_row else r
            x = np.float64(data[p])
            if bm25:
                den = k1 * length_norm[e] + x
                w = (x * scale) / den if den != 0.0 else 0.0
            else:
                w = np.sqrt(x)
            out[p] = np.float32(w * idf[f])
    return out
