"""Input weightings and mean-centring of the similarity models' input (vectorised NumPy
over SciPy matrices, O(nnz)), applied before :func:`recli.models._similarity.similarity_topk`.
Entities are the rows (documents), features the columns (terms); see the formulas in the
docstring of :mod:`recli.kernels.similarity`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

WEIGHTINGS = ("none", "tfidf", "bm25")
# the similarity measures live here too so the model registry can list the choices
# without importing Numba
MEASURES = ("cosine", "dot", "jaccard", "asymmetric_cosine", "pearson", "adjusted_cosine",
            "conditional", "lift")


def idf_weights(rows: sp.csr_matrix) -> np.ndarray:
    """``idf_f = log(N) − log(1 + df_f)`` over the columns (features) of ``rows``."""
    df = np.bincount(rows.indices, minlength=rows.shape[1]).astype(np.float64)
    n = float(max(rows.shape[0], 1))
    return np.log(n) - np.log1p(df)


def fit_weighting(rows: sp.csr_matrix, weighting: str) -> dict[str, np.ndarray]:
    """The corpus statistics a weighting needs (kept so new rows get the same weights)."""
    if weighting == "none":
        return {}
    state = {"idf": idf_weights(rows)}
    if weighting == "bm25":
        lengths = np.asarray(rows.sum(axis=1), dtype=np.float64).ravel()
        state["avg_len"] = np.array([lengths.mean() if lengths.size else 0.0])
    return state


def apply_weighting(rows: sp.csr_matrix, weighting: str, state: dict[str, np.ndarray],
                    k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """Return a float64 copy of ``rows`` with the weighting applied (formulas above)."""
    if weighting == "none":
        return sp.csr_matrix(rows, dtype=np.float64, copy=True)
    out = sp.csr_matrix(rows, dtype=np.float64, copy=True)
    cols = out.indices
    if weighting == "tfidf":
        out.data = np.sqrt(out.data) * state["idf"][cols]
        return out
    length_norm = _length_norm(out, state, b)
    row_of = np.repeat(np.arange(out.shape[0]), np.diff(out.indptr))
    x = out.data
    den = k1 * length_norm[row_of] + x
    # 0/0 (a stored 0 with k1 = 0, or in an all-zero row with b = 1) weighs 0, like the 0 it is
    out.data = np.divide(x * (k1 + 1.0), den, out=np.zeros_like(x), where=den != 0) * state["idf"][cols]
    return out


def _length_norm(rows: sp.csr_matrix, state: dict[str, np.ndarray], b: float) -> np.ndarray:
    """BM25's ``L_e = (1 − b) + b · len_e / mean(len)`` of every row (1 when the mean is 0)."""
    lengths = np.asarray(sp.csr_matrix(rows, dtype=np.float64).sum(axis=1), dtype=np.float64).ravel()
    avg = float(state["avg_len"][0])
    return (1.0 - b) + b * lengths / avg if avg > 0 else np.ones_like(lengths)


def weighted_pair(rows: sp.csr_matrix, features: sp.csr_matrix, weighting: str, k1: float = 1.2,
                  b: float = 0.75) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``apply_weighting(rows, …)`` after :func:`fit_weighting`, and the same values in the
    orientation of ``features`` (``rows.T`` as CSR), both float32 and sharing the index
    arrays of their input: the kernel weighs every stored value of either matrix in
    parallel, so no float64 copy and no transpose is made. ``weighting``: tfidf or bm25."""
    from recli.kernels.weighting import weighted_values

    state = fit_weighting(rows, weighting)
    bm25 = weighting == "bm25"
    norm = _length_norm(rows, state, b) if bm25 else np.ones(0)
    out = []
    for m, by_row in ((rows, True), (features, False)):
        values = weighted_values(m.indptr, m.indices, m.data, norm, state["idf"], float(k1), bm25, by_row)
        out.append(sp.csr_matrix((values, m.indices, m.indptr), shape=m.shape))
    return out[0], out[1]


def observed_means(rows: sp.csr_matrix, axis: int) -> np.ndarray:
    """Mean of the stored entries of each row (axis=1) or column (axis=0); 0 when empty."""
    if axis == 1:
        counts = np.diff(rows.indptr)
        # bincount, not add.reduceat: reduceat fails on a trailing empty row (its start
        # index == nnz) and returns a neighbour's value for empty rows
        sums = np.bincount(np.repeat(np.arange(rows.shape[0]), counts), weights=rows.data,
                           minlength=rows.shape[0])
    else:
        counts = np.bincount(rows.indices, minlength=rows.shape[1])
        sums = np.bincount(rows.indices, weights=rows.data, minlength=rows.shape[1])
    return np.divide(sums, counts, out=np.zeros(len(counts)), where=counts > 0)


def centre(rows: sp.csr_matrix, measure: str, means: np.ndarray) -> sp.csr_matrix:
    """Subtract entity means (pearson) or feature means (adjusted_cosine) in place."""
    if measure == "pearson":
        rows.data -= np.repeat(means, np.diff(rows.indptr))
    elif measure == "adjusted_cosine":
        rows.data -= means[rows.indices]
    return rows


def prepare_rows(rows: sp.csr_matrix, measure: str, weighting: str, k1: float = 1.2,
                 b: float = 0.75) -> tuple[sp.csr_matrix, dict[str, np.ndarray]]:
    """Weight then centre ``rows``; return the transformed matrix and the state needed to
    transform new rows the same way (``idf``, ``avg_len``, ``feature_mean``)."""
    state = fit_weighting(rows, weighting)
    out = apply_weighting(rows, weighting, state, k1, b)
    if measure == "adjusted_cosine":
        state["feature_mean"] = observed_means(out, axis=0)
        centre(out, measure, state["feature_mean"])
    elif measure == "pearson":
        centre(out, measure, observed_means(out, axis=1))
    return out, state


def transform_rows(rows: sp.csr_matrix, measure: str, weighting: str, state: dict[str, np.ndarray],
                   k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """Apply a fitted :func:`prepare_rows` transformation to new rows (e.g. new users)."""
    out = apply_weighting(rows, weighting, state, k1, b)
    if measure == "adjusted_cosine":
        centre(out, measure, state["feature_mean"])
    elif measure == "pearson":
        centre(out, measure, observed_means(out, axis=1))
    return out
