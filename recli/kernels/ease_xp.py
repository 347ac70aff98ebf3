"""The array-module (NumPy/CuPy) twin of :func:`recli.kernels.ease.ease_weights`: the same
closed form ``B = I − P · diag(1 / diag(P))``, ``P = (XᵀX + λI)⁻¹``, with ``XᵀX`` a sparse
product on the device (``cupyx.scipy.sparse`` on a GPU) and ``P`` from the Cholesky factor
``G = L Lᵀ`` as ``P = L⁻ᵀ L⁻¹`` (cuSOLVER on a GPU), all in float64.

Device memory: about three dense ``n_items²`` float64 matrices (``G``/``L``, ``L⁻¹``, ``P``)
plus the float32 result: :data:`BYTES_PER_CELL` per item pair.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BYTES_PER_CELL = 3 * 8 + 4


def ease_weights_xp(indptr, indices, data, n_items: int, lam: float, xp: Any = np) -> Any:
    """``B`` (float32 ``xp`` array, zero diagonal); raises ``np.linalg.LinAlgError`` when
    ``XᵀX + λI`` is not positive definite (CuPy reports that as a non-finite factor)."""
    from recli.kernels.als_xp import sparse_module

    sparse = sparse_module(xp)
    n_users = len(indptr) - 1
    x = sparse.csr_matrix((xp.asarray(np.asarray(data, np.float64)), xp.asarray(np.asarray(indices, np.int32)),
                           xp.asarray(np.asarray(indptr, np.int32))), shape=(n_users, n_items))
    g = (x.T @ x).toarray()
    g[xp.arange(n_items), xp.arange(n_items)] += lam
    try:
        L = xp.linalg.cholesky(g)
    except np.linalg.LinAlgError:
        L = None
    if L is None or not bool(xp.isfinite(L).all()):
        raise np.linalg.LinAlgError("the regularised Gram matrix is not positive definite")
    del g
    L_inv = xp.linalg.inv(L)  # triangular, so its inverse is too
    del L
    p = L_inv.T @ L_inv
    del L_inv
    b = p / (-xp.diag(p))[None, :]
    b[xp.arange(n_items), xp.arange(n_items)] = 0.0
    return b.astype(xp.float32)
