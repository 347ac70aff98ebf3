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
           "similarity_topk", "ease_weights",
           "sgd_plan", "bpr_epoch", "warp_epoch", "mf_epoch", "bpr_fold_in", "warp_fold_in", "mf_predict")


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
              solver: str = "cg", cg_steps: int = 3, quadratic: bool = False) -> Any:
    """One ALS half-epoch: every row of ``X`` re-solved against fixed ``Y``, in place;
    returns the loss's observed term, with ``quadratic`` the pair (observed term,
    Σᵤ xᵤᵀ(YᵀY + λᵤI)xᵤ) (:func:`recli.kernels.als.als_sweep`)."""
    from recli.kernels.als import als_sweep as kernel

    return kernel(indptr, indices, data, X, Y, regularization, alpha, solver, cg_steps, quadratic=quadratic)


def als_loss_from_observed(observed: float, X: Any, Y: Any, data: Any, regularization: float,
                           alpha: float, quadratic: float | None = None) -> float:
    """The ALS loss from a sweep's observed term, and from the quadratic term of the sweep
    that solved ``Y`` when given (:func:`recli.kernels.als.loss_from_observed`)."""
    from recli.kernels.als import loss_from_observed

    return loss_from_observed(observed, X, Y, data, regularization, alpha, quadratic)


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


def sgd_plan(indptr: Any, indices: Any, values: Any = None, threads: int = 1, batch: int = 0) -> Any:
    """The :class:`~recli.kernels._plan.SGDPlan` of a CSR (sorted rows) for the Hogwild
    epochs: users in ``threads`` chunks balanced by interactions (``batch`` is unused)."""
    from recli.kernels._chunks import balanced_bounds
    from recli.kernels._plan import SGDPlan

    indptr = np.asarray(indptr)
    n_rows = indptr.shape[0] - 1
    rows = np.repeat(np.arange(n_rows, dtype=np.int32), np.diff(indptr))
    return SGDPlan(indptr, indices, values, rows, threads=threads, user_order=np.arange(n_rows, dtype=np.int64),
                   bounds=balanced_bounds(indptr, threads))


def bpr_epoch(plan: Any, U: Any, V: Any, b: Any, lr: float, reg: float, seed: int, epoch: int,
              max_tries: int = 32) -> tuple[float, float, int]:
    """One Hogwild BPR epoch in place (:func:`recli.kernels.bpr.bpr_epoch`); returns
    ``(mean loss, share of triples ranked right before their step, triples)``."""
    from recli.kernels.bpr import bpr_epoch as kernel

    return kernel(plan.indptr, plan.indices, plan.user_order, plan.bounds, U, V, b, lr, reg, seed, epoch, max_tries)


def warp_epoch(plan: Any, U: Any, V: Any, b: Any, GU: Any, GV: Any, Gb: Any, lr: float, reg: float, adagrad: bool,
               max_sampled: int, seed: int, epoch: int, kos_k: int = 0, kos_n: int = 10) -> tuple[float, float, int]:
    """One Hogwild WARP epoch in place (:func:`recli.kernels.warp.warp_epoch`); returns
    ``(mean loss, share of positives that found a violating negative, positives)``."""
    from recli.kernels.warp import warp_epoch as kernel

    return kernel(plan.indptr, plan.indices, plan.user_order, plan.bounds, U, V, b, GU, GV, Gb, lr, reg, adagrad,
                  max_sampled, seed, epoch, kos_k, kos_n)


def mf_epoch(plan: Any, mu: float, P: Any, Q: Any, bu: Any, bi: Any, lr: float, reg: float, reg_bias: float,
             negatives: int, seed: int, epoch: int) -> float:
    """One Hogwild biased-MF epoch in place over the plan's ratings
    (:func:`recli.kernels.mf.mf_epoch`, one block per thread); returns their mean
    squared error, each before its step."""
    from recli.kernels.mf import mf_epoch as kernel

    return kernel(plan.indptr, plan.indices, plan.rows, plan.indices, plan.values, mu, P, Q, bu, bi, lr, reg,
                  reg_bias, negatives, seed, epoch, plan.threads)


def bpr_fold_in(indptr: Any, indices: Any, V: Any, b: Any, epochs: int, lr: float, reg: float, seed: int,
                max_tries: int) -> np.ndarray:
    """New users' vectors by BPR SGD against fixed items (:func:`recli.kernels.bpr.bpr_fold_in`)."""
    from recli.kernels.bpr import bpr_fold_in as kernel

    return kernel(indptr, indices, V, b, int(epochs), np.float32(lr), np.float32(reg), np.uint64(seed),
                  int(max_tries))


def warp_fold_in(indptr: Any, indices: Any, V: Any, b: Any, epochs: int, lr: float, reg: float, adagrad: bool,
                 max_sampled: int, seed: int) -> np.ndarray:
    """New users' vectors by WARP steps against fixed items (:func:`recli.kernels.warp.warp_fold_in`)."""
    from recli.kernels.warp import warp_fold_in as kernel

    return kernel(indptr, indices, V, b, int(epochs), np.float32(lr), np.float32(reg), bool(adagrad),
                  int(max_sampled), np.uint64(seed))


def mf_predict(users: Any, items: Any, mu: float, P: Any, Q: Any, bu: Any, bi: Any) -> np.ndarray:
    """``μ + b_u + b_i + p_u·q_i`` per ``(users[j], items[j])`` pair, float32
    (:func:`recli.kernels.mf.predict_pairs`)."""
    from recli.kernels.mf import predict_pairs

    users = np.ascontiguousarray(users, dtype=np.int64)
    items = np.ascontiguousarray(items, dtype=np.int64)
    out = np.empty(users.shape[0], np.float32)
    predict_pairs(users, items, np.float32(mu), P, Q, bu, bi, out)
    return out
