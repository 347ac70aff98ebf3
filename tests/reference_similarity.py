"""Slow, obviously-correct dense references for :mod:`recli.kernels.similarity`.

Plain NumPy on dense arrays and explicit loops over pairs; the formulas are written out
exactly as in the kernel's docstring, evaluated in float64 on float32-rounded inputs (the
kernel stores values as float32), so exact ties stay exact.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def weight_dense(x: np.ndarray, weighting: str, k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """Entities are rows (documents), features are columns (terms); zeros stay zeros."""
    x = np.asarray(x, dtype=np.float64)
    present = x != 0
    n = x.shape[0]
    idf = np.log(max(n, 1)) - np.log1p(present.sum(axis=0))
    out = np.zeros_like(x)
    if weighting == "none":
        return x.copy()
    if weighting == "tfidf":
        for e in range(x.shape[0]):
            for f in range(x.shape[1]):
                if present[e, f]:
                    out[e, f] = np.sqrt(x[e, f]) * idf[f]
        return out
    assert weighting == "bm25"
    length = x.sum(axis=1)
    avg = length.mean()
    for e in range(x.shape[0]):
        norm = (1 - b) + b * length[e] / avg
        for f in range(x.shape[1]):
            if present[e, f]:
                out[e, f] = x[e, f] * (k1 + 1) / (k1 * norm + x[e, f]) * idf[f]
    return out


def centre_dense(w: np.ndarray, present: np.ndarray, measure: str) -> np.ndarray:
    """pearson: minus each row's mean over its stored entries; adjusted_cosine: each column's."""
    w = w.copy()
    if measure == "pearson":
        for e in range(w.shape[0]):
            if present[e].any():
                w[e, present[e]] -= w[e, present[e]].mean()
    elif measure == "adjusted_cosine":
        for f in range(w.shape[1]):
            if present[:, f].any():
                w[present[:, f], f] -= w[present[:, f], f].mean()
    return w


def similarity_dense(x: np.ndarray, measure: str, weighting: str = "none", shrink: float = 0.0,
                     alpha: float = 0.5, k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """Full entities × entities similarity; NaN marks non-neighbours (i == j or d == 0)."""
    x = np.asarray(x, dtype=np.float64)
    present = x != 0
    w = centre_dense(weight_dense(x, weighting, k1, b), present, measure)
    w = w.astype(np.float32).astype(np.float64)
    n, n_features = w.shape
    a = (w * w).sum(axis=1)
    s = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(n):
            d = float(np.dot(w[i], w[j]))
            if i == j or d == 0.0:
                continue
            if measure == "dot":
                den = 1.0 * 1.0 + 0.0
            elif measure in ("cosine", "pearson", "adjusted_cosine"):
                den = np.sqrt(a[i]) * np.sqrt(a[j]) + shrink
            elif measure == "asymmetric_cosine":
                den = a[i] ** alpha * a[j] ** (1 - alpha) + shrink
            elif measure == "jaccard":
                den = a[i] + a[j] - d + shrink
            elif measure == "conditional":
                den = a[i] * 1.0 + shrink
            elif measure == "lift":
                den = a[i] / n_features * a[j] + shrink
            else:
                raise ValueError(measure)
            s[i, j] = np.float32(d / den) if den != 0 else 0.0
    return s


def topk_dense(s: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """Per row: the k best (index, score) by score descending, ties by lower index; NaN skipped."""
    out = []
    for row in s:
        cand = [(j, float(v)) for j, v in enumerate(row) if not np.isnan(v)]
        cand.sort(key=lambda t: (-t[1], t[0]))
        out.append(cand[:k])
    return out


def ml100k_matrix(path) -> sp.csr_matrix:
    """MovieLens 100K's ``u.data`` as a users × items float32 CSR of the ratings."""
    raw = np.loadtxt(path, dtype=np.int64)
    users, items = raw[:, 0] - 1, raw[:, 1] - 1
    return sp.csr_matrix((raw[:, 2].astype(np.float32), (users, items)), dtype=np.float32)
