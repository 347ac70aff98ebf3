"""The EASE closed form (Steck 2019) on the host: with ``G = XᵀX + λI``,

    P = G⁻¹,    B = I − P · diag(1 / diag(P))    (so diag(B) = 0),

``P`` from LAPACK's Cholesky factor and inverse (``dpotrf`` / ``dpotri``) in float64.
:mod:`recli.kernels.ease_xp` is the array-module twin.
"""

from __future__ import annotations

import numpy as np


def gram_dense(indptr, indices, data, n_items: int) -> np.ndarray:
    """``XᵀX`` of the user × item CSR as a dense float64 ``n_items × n_items`` array."""
    import scipy.sparse as sp

    x = sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, n_items))
    return np.asarray((x.T @ x).toarray(), dtype=np.float64)


def ease_weights(indptr, indices, data, n_items: int, lam: float) -> np.ndarray:
    """The weight matrix ``B`` (float32, zero diagonal); raises ``np.linalg.LinAlgError``
    when ``XᵀX + λI`` is not positive definite."""
    from scipy.linalg import lapack

    g = gram_dense(indptr, indices, data, n_items)
    g[np.diag_indices_from(g)] += lam
    chol, info = lapack.dpotrf(g, lower=0, overwrite_a=1, clean=0)
    if info != 0:
        raise np.linalg.LinAlgError("the regularised Gram matrix is not positive definite")
    p, info = lapack.dpotri(chol, lower=0, overwrite_c=1)
    del chol, g
    p = np.triu(p) + np.triu(p, 1).T  # dpotri fills the upper triangle only
    b = p / (-np.diag(p))[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)
