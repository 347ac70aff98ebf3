"""The array-module kernel namespace: what ``get_backend("gpu"|"xp-numpy").kernels`` offers.

The same functions with the same signatures as :mod:`recli.kernels.cpu`
(``tests/test_backend.py`` compares them), bound to an array module ``xp`` (CuPy on a
GPU, NumPy for the CI-tested GPU-shaped path). Inputs may be host arrays; ``X``/``Y``
of ``als_sweep`` are ``xp`` arrays updated in place; ``topk`` and ``dot_scores`` return
host NumPy arrays (device arrays never leave the seam through a result).

On a real GPU (:func:`recli.kernels.cuda.launchable`, decided once per namespace) the
``topk`` and the CG ``als_sweep`` launch the custom :mod:`recli.kernels.cuda` kernels;
elsewhere (NumPy, the tests' stand-in ``cupy``) the array-module code runs. Both give
the same rankings (the same filters and tie rule) and the same CG steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The kernel names; tests/test_backend.py checks both namespaces offer them alike.
KERNELS = ("topk", "dot_scores", "gram", "als_sweep", "als_loss_from_observed",
           "similarity_topk", "ease_weights",
           "sgd_plan", "bpr_epoch", "warp_epoch", "mf_epoch", "bpr_fold_in", "warp_fold_in", "mf_predict")


# Device bytes the batched kernels may use for one batch's temporaries unless a memory
# plan (recli.device_memory) sets ``batch_bytes``.
DEFAULT_BATCH_BYTES = 1 << 28


class XPKernels:
    """The kernels of :mod:`recli.kernels.cpu`, vectorised over rows with ``xp``."""

    def __init__(self, xp: Any, batch_bytes: int = DEFAULT_BATCH_BYTES, cuda: bool | None = None):
        self.xp = xp
        # device bytes for one batch's temporaries: sizes the row batches and blocks
        self.batch_bytes = int(batch_bytes)
        # whether topk and the CG sweep launch the numba.cuda kernels (None: where they run
        # on a real GPU; tests force True to run them on the CUDA simulator)
        if cuda is None:
            from recli.kernels.cuda import launchable

            cuda = launchable(xp)
        self.cuda = bool(cuda)

    def _host(self, array: Any) -> np.ndarray:
        from recli.kernels.als_xp import to_host

        return to_host(self.xp, array)

    def topk(self, scores: Any, k: int, rows: Any = None, indptr: Any = None, indices: Any = None,
             banned: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` per row: by argpartition (:func:`recli.kernels.topk_xp.topk_xp`), or on
        a real GPU by the one-thread-per-row kernel (:func:`recli.kernels.cuda.topk.topk`),
        which keeps ``k`` candidates per row instead of partitioning a copy of the batch."""
        if self.cuda:
            from recli.kernels.cuda.topk import topk as select
        else:
            from recli.kernels.topk_xp import topk_xp as select

        xp = self.xp
        seen = (None, None) if indptr is None else (xp.asarray(indptr), xp.asarray(indices))
        items, values = select(xp.asarray(scores), k, None if rows is None else xp.asarray(rows),
                               *seen, None if banned is None else xp.asarray(banned), xp=xp)
        return self._host(items), self._host(values)

    def dot_scores(self, user_vectors: Any, item_factors: Any, item_bias: Any = None) -> np.ndarray:
        """``U·Vᵀ (+ b)``: float32 ``(len(U), n_items)`` scores of a factor model, in the
        fixed order of :func:`recli.kernels.dot_xp.dot_scores_xp` (the same bits in any batch)."""
        from recli.kernels.dot_xp import dot_scores_xp

        return np.ascontiguousarray(self._host(dot_scores_xp(user_vectors, item_factors, item_bias, self.xp)))

    def gram(self, Y: Any, regularization: float = 0.0) -> Any:
        """YᵀY + λI in float32, an ``xp`` array."""
        from recli.kernels.als_xp import xp_gram

        return xp_gram(self.xp, self.xp.asarray(Y), regularization)

    def als_sweep(self, indptr: Any, indices: Any, data: Any, X: Any, Y: Any, regularization: float,
                  alpha: float, solver: str = "cg", cg_steps: int = 3, quadratic: bool = False) -> Any:
        """One ALS half-epoch on row batches (:func:`recli.kernels.als_xp.xp_als_sweep`;
        ``X``/``Y`` float32 or in a ``--dtype`` storage form); with ``quadratic``, also
        Σᵤ xᵤᵀ(YᵀY + λᵤI)xᵤ."""
        from recli.kernels.als_xp import batch_limits, xp_als_sweep

        return xp_als_sweep(self.xp, indptr, indices, data, X, Y, regularization, alpha, solver, cg_steps,
                            *batch_limits(self.batch_bytes, X.shape[1], solver), cuda=self.cuda, quadratic=quadratic)

    def als_loss_from_observed(self, observed: float, X: Any, Y: Any, data: Any, regularization: float,
                               alpha: float, quadratic: float | None = None) -> float:
        """The ALS loss from a sweep's observed term, and the quadratic term of the sweep
        that solved ``Y`` when given (:func:`recli.kernels.als_xp.xp_loss_from_observed`)."""
        from recli.kernels.als_xp import xp_loss_from_observed

        return xp_loss_from_observed(self.xp, observed, X, Y, data, regularization, alpha, quadratic)

    def similarity_topk(self, e: Any, f: Any, k: int, measure: str = "cosine", shrink: float = 0.0,
                        alpha: float = 0.5, parts: int = 1) -> Any:
        """Top-``k`` similarity in row blocks of at most ``batch_bytes``
        (:func:`recli.kernels.similarity_xp.similarity_topk_xp`); ``parts`` is the CPU's
        partition count and does not apply here. A host ``Csr`` in rank order."""
        from recli.kernels.similarity_xp import similarity_topk_xp

        return similarity_topk_xp(e, f, k, measure, shrink, alpha, self.xp, self.batch_bytes)

    def ease_weights(self, indptr: Any, indices: Any, data: Any, n_items: int, lam: float) -> np.ndarray:
        """The EASE weights, solved on the device (:func:`recli.kernels.ease_xp.ease_weights_xp`),
        returned as a float32 host array."""
        from recli.kernels.ease_xp import ease_weights_xp

        return self._host(ease_weights_xp(indptr, indices, data, n_items, lam, self.xp))


    def sgd_plan(self, indptr: Any, indices: Any, values: Any = None, threads: int = 1, batch: int = 0) -> Any:
        """The :class:`~recli.kernels._plan.SGDPlan` of a CSR (sorted rows) on this device, for
        mini-batches of ``batch`` samples (0: :func:`recli.kernels.sgd_xp.auto_batch`;
        ``threads`` is unused)."""
        from recli.kernels.sgd_xp import make_plan

        return make_plan(self.xp, indptr, indices, values, batch)

    def bpr_epoch(self, plan: Any, U: Any, V: Any, b: Any, lr: float, reg: float, seed: int, epoch: int,
                  max_tries: int = 32) -> tuple[float, float, int]:
        """One mini-batch BPR epoch on ``xp`` arrays in place (:func:`recli.kernels.sgd_xp.bpr_epoch`)."""
        from recli.kernels.sgd_xp import bpr_epoch

        return bpr_epoch(self.xp, plan, U, V, b, lr, reg, seed, epoch, max_tries)

    def warp_epoch(self, plan: Any, U: Any, V: Any, b: Any, GU: Any, GV: Any, Gb: Any, lr: float, reg: float,
                   adagrad: bool, max_sampled: int, seed: int, epoch: int, kos_k: int = 0,
                   kos_n: int = 10) -> tuple[float, float, int]:
        """One mini-batch WARP epoch on ``xp`` arrays in place (:func:`recli.kernels.sgd_xp.warp_epoch`)."""
        from recli.kernels.sgd_xp import warp_epoch

        return warp_epoch(self.xp, plan, U, V, b, GU, GV, Gb, lr, reg, adagrad, max_sampled, seed, epoch, kos_k,
                          kos_n)

    def mf_epoch(self, plan: Any, mu: float, P: Any, Q: Any, bu: Any, bi: Any, lr: float, reg: float,
                 reg_bias: float, negatives: int, seed: int, epoch: int) -> float:
        """One mini-batch biased-MF epoch on ``xp`` arrays in place (:func:`recli.kernels.sgd_xp.mf_epoch`)."""
        from recli.kernels.sgd_xp import mf_epoch

        return mf_epoch(self.xp, plan, mu, P, Q, bu, bi, lr, reg, reg_bias, negatives, seed, epoch)

    # Folding in a new user is a short sequential SGD on one vector: it runs the host's
    # Numba kernel on every device, so a new user gets the same bits wherever the model
    # was trained or is served (its inputs are the model's host arrays).
    def bpr_fold_in(self, indptr: Any, indices: Any, V: Any, b: Any, epochs: int, lr: float, reg: float, seed: int,
                    max_tries: int) -> np.ndarray:
        """New users' vectors by BPR SGD against fixed items, on the host (:func:`recli.kernels.cpu.bpr_fold_in`)."""
        from recli.kernels import cpu

        return cpu.bpr_fold_in(indptr, indices, self._host(V), self._host(b), epochs, lr, reg, seed, max_tries)

    def warp_fold_in(self, indptr: Any, indices: Any, V: Any, b: Any, epochs: int, lr: float, reg: float,
                     adagrad: bool, max_sampled: int, seed: int) -> np.ndarray:
        """New users' vectors by WARP steps against fixed items, on the host (:func:`recli.kernels.cpu.warp_fold_in`)."""
        from recli.kernels import cpu

        return cpu.warp_fold_in(indptr, indices, self._host(V), self._host(b), epochs, lr, reg, adagrad, max_sampled,
                                seed)

    def mf_predict(self, users: Any, items: Any, mu: float, P: Any, Q: Any, bu: Any, bi: Any) -> np.ndarray:
        """``μ + b_u + b_i + p_u·q_i`` per ``(users[j], items[j])`` pair, float32 (host result)."""
        xp = self.xp
        u, i = xp.asarray(users, dtype=xp.int64), xp.asarray(items, dtype=xp.int64)
        P, Q, bu, bi = (xp.asarray(a) for a in (P, Q, bu, bi))
        dot = xp.einsum("nf,nf->n", P[u], Q[i])
        return self._host((xp.float32(mu) + bu[u] + bi[i] + dot).astype(xp.float32))
