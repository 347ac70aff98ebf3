"""The CPU kernel namespace: what ``get_backend("cpu").kernels`` offers.

:mod:`recli.kernels.xp` offers the same functions with the same signatures for the
array-module (GPU-shaped) path; ``tests/test_backend.py`` compares them. A model that
declares ``"gpu"`` among its ``devices`` reaches its kernels only through this seam.
Numba loads on first call, not on import: serving one user never pays its import time.

Arrays come in and go out as NumPy (host) arrays; ``als_sweep`` updates ``X`` in place.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Below this many scores per batch, top-k runs the NumPy argpartition twin: same result,
# and a small request (one user) does not pay Numba's import time.
SMALL_BATCH_CELLS = 1 << 18

# The kernel names; tests/test_backend.py checks both namespaces offer them alike.
KERNELS = ("topk", "dot_scores", "gram", "als_sweep", "als_loss_from_observed",
           "similarity_topk", "ease_weights")


def topk(scores: Any, k: int, rows: Any = None, indptr: Any = None, indices: Any = None,
         banned: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` per row, seen and banned items skipped (see :mod:`recli.kernels.topk`):
    the Numba heap kernel, or its NumPy twin for batches under ``SMALL_BATCH_CELLS``."""
    if scores.shape[0] * scores.shape[1] > SMALL_BATCH_CELLS:
        from recli.kernels.topk import topk as kernel
    else:
        from recli.kernels import topk_xp

        kernel = topk_xp.topk_xp
    return kernel(scores, k, rows, indptr, indices, banned)


def dot_scores(user_vectors: Any, item_factors: Any, item_bias: Any = None) -> np.ndarray:
    """``U·Vᵀ (+ b)``: float32 ``(len(U), n_items)`` scores of a factor model, summed in one
    fixed order (:mod:`recli.kernels.dot_xp`), so a user's scores are the same bits in any
    batch: the Numba kernel, or its NumPy twin for batches under ``SMALL_BATCH_CELLS``."""
    if np.shape(user_vectors)[0] * np.shape(item_factors)[0] > SMALL_BATCH_CELLS:
        from recli.kernels.dot import dot_scores as kernel

        return kernel(user_vectors, item_factors, item_bias)
    from recli.kernels.dot_xp import dot_scores_xp

    return dot_scores_xp(user_vectors, item_factors, item_bias)


def gram(Y: Any, regularization: float = 0.0) -> Any:
    """YᵀY + λI in float32 (a NumPy array: this backend's array type)."""
    from recli.kernels.als import gram as kernel

    return kernel(Y, regularization)


def als_sweep(indptr: Any, indices: Any, data: Any, X: Any, Y: Any, regularization: float, alpha: float,
              solver: str = "cg", cg_steps: int = 3) -> float:
    """One ALS half-epoch: every row of ``X`` re-solved against fixed ``Y``, in place;
    returns the loss's observed term (:func:`recli.kernels.als.als_sweep`)."""
    from recli.kernels.als import als_sweep as kernel

    return kernel(indptr, indices, data, X, Y, regularization, alpha, solver, cg_steps)


def als_loss_from_observed(observed: float, X: Any, Y: Any, data: Any, regularization: float,
                           alpha: float) -> float:
    """The ALS loss from a sweep's observed term (:func:`recli.kernels.als.loss_from_observed`)."""
    from recli.kernels.als import loss_from_observed

    return loss_from_observed(observed, X, Y, data, regularization, alpha)


def similarity_topk(e: Any, f: Any, k: int, measure: str = "cosine", shrink: float = 0.0, alpha: float = 0.5,
                    parts: int = 1) -> Any:
    """Top-``k`` similarity between the rows of the CSR ``e`` (``f`` = ``e.T``), a host
    :class:`~recli.kernels.similarity.Csr` in rank order; ``parts``: candidate partitions,
    the Numba thread count (:func:`recli.kernels.similarity.similarity_topk_arrays`)."""
    from recli.kernels.similarity import similarity_topk_arrays

    return similarity_topk_arrays(e, f, k, measure, shrink, alpha, parts)


def ease_weights(indptr: Any, indices: Any, data: Any, n_items: int, lam: float) -> np.ndarray:
    """The EASE weights ``B = I − P·diag(1/diag(P))``, ``P = (XᵀX + λI)⁻¹``, float32 host
    array (:func:`recli.kernels.ease.ease_weights`)."""
    from recli.kernels.ease import ease_weights as kernel

    return kernel(indptr, indices, data, n_items, lam)
