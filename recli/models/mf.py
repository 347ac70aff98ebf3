"""``mf``: explicit-rating biased matrix factorisation trained by SGD.

``r̂ᵤᵢ = μ + bᵤ + bᵢ + pᵤ·qᵢ``; epochs of Hogwild SGD (:mod:`recli.kernels.mf`) with a
constant or exponentially decaying learning rate. Good for rating prediction (RMSE);
ranking uses the same predicted ratings. New users are folded in by the exact ridge
solve of their biases and factors against the fixed item side (see :meth:`MF.fold_in`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from recli.errors import ArtifactError, InputError
from recli.models._factors import (
    cosine_rows,
    dtype_param,
    factor_rows,
    held,
    loaded,
    published,
    screened_top_k,
    screens,
    stored,
    training_dtype,
)
from recli.models.base import EpochCallback, Model, param, split_batch


@dataclass
class MFConfig:
    factors: int = param(64, "latent factors per user and item", min=1, max=4096)
    iterations: int = param(30, "SGD epochs (each visits every rating once)", min=1)
    learning_rate: float = param(0.01, "initial SGD step size", min=0.0, exclusive_min=True)
    lr_schedule: str = param("exponential", "constant, or exponential: lr·lr_decay^(epoch−1)",
                             choices=("constant", "exponential"))
    lr_decay: float = param(0.95, "per-epoch learning-rate factor (lr_schedule=exponential)", min=0.0,
                            max=1.0, exclusive_min=True)
    regularization: float = param(0.05, "L2 penalty on the factors (per update)", min=0.0)
    bias_regularization: float = param(0.02, "L2 penalty on the user and item biases (per update)", min=0.0)
    init_std: float = param(0.1, "standard deviation of the normal factor initialisation", min=0.0)
    negatives: int = param(0, "unrated items sampled per rating and pushed toward 0 (implicit data)",
                           min=0, max=100)
    seed: int = param(42, "random seed (initialisation and SGD order)", min=0)
    dtype: str = dtype_param()


class MF(Model):
    """Biased MF by SGD: Hogwild on the CPU (bit-for-bit deterministic with one thread),
    mini-batches of atomic updates on the GPU (:mod:`recli.kernels.sgd_xp`)."""

    name: ClassVar[str] = "mf"
    summary: ClassVar[str] = "explicit biased matrix factorisation (SGD) for ratings"
    Config: ClassVar[type] = MFConfig
    devices: ClassVar[tuple[str, ...]] = ("cpu", "gpu")
    # mini-batch SGD on the GPU, Hogwild on the CPU: the GPU reproduces the NumPy mini-batch
    gpu_reference: ClassVar[str] = "xp-numpy"
    can_fold_in: ClassVar[bool] = True
    predicts_ratings: ClassVar[bool] = True
    diverged_hint: ClassVar[str] = "lower --learning-rate"
    accepts: ClassVar[str] = "ratings"
    accepts_note: ClassVar[str] = "real with negatives > 0"
    negative_values: ClassVar[str] = "are ratings like any other"

    @classmethod
    def accepted_values(cls, config: Any) -> str:
        # with sampled negatives pushed toward 0, all-ones (implicit) data is meaningful
        return "real" if config.negatives > 0 else "ratings"
    test_params: ClassVar[dict] = {"factors": 4, "iterations": 40, "learning_rate": 0.05, "negatives": 3,
                                   "regularization": 0.02}
    search_space: ClassVar[dict] = {
        "factors": {"type": "int", "low": 8, "high": 256, "log": True},
        "learning_rate": {"type": "float", "low": 1e-3, "high": 0.1, "log": True},
        "regularization": {"type": "float", "low": 1e-3, "high": 0.5, "log": True},
        "bias_regularization": {"type": "float", "low": 1e-3, "high": 0.5, "log": True},
    }

    def __init__(self, config: Any = None, backend: Any = None):
        super().__init__(config, backend)
        k = self.config.factors
        self.user_factors = np.zeros((0, k), np.float32)
        self.item_factors = np.zeros((0, k), np.float32)
        self.user_bias = np.zeros(0, np.float32)
        self.item_bias = np.zeros(0, np.float32)
        self.global_mean = 0.0

    def learning_rate(self, epoch: int) -> float:
        """The step size of epoch ``epoch`` (1-based)."""
        c = self.config
        return c.learning_rate * (c.lr_decay ** (epoch - 1) if c.lr_schedule == "exponential" else 1.0)

    def fit(self, user_items: Any, on_epoch: EpochCallback | None = None) -> "MF":
        from recli.backend import threads_context
        from recli.data.matrix import as_csr, csr_arrays

        c = self.config
        ui = as_csr(user_items)
        if ui.nnz == 0:
            raise InputError("the training matrix has no ratings", hint="check the training file is not empty")
        indptr, indices, vals = csr_arrays(ui)
        self.n_users, self.n_items = ui.shape
        self.global_mean = float(vals.mean(dtype=np.float64))
        rng = np.random.default_rng(c.seed)
        P = (rng.standard_normal((self.n_users, c.factors)) * c.init_std).astype(np.float32)
        Q = (rng.standard_normal((self.n_items, c.factors)) * c.init_std).astype(np.float32)
        bu, bi = np.zeros(self.n_users, np.float32), np.zeros(self.n_items, np.float32)
        self.user_factors, self.item_factors, self.user_bias, self.item_bias = P, Q, bu, bi
        dtype = self.training_dtype = training_dtype(self.backend, c.dtype)
        # the same arrays on the CPU; on the GPU P, Q in the storage form of --dtype
        state = [held(self.backend, a, dtype) for a in (P, Q)] + [self.backend.xp.asarray(a) for a in (bu, bi)]
        self.epoch_losses = []
        kernels = self.backend.kernels
        with threads_context(self.backend.threads) as threads:
            plan = kernels.sgd_plan(indptr, indices, vals, threads=threads)
            for epoch in range(1, c.iterations + 1):
                start = time.perf_counter()
                mse = kernels.mf_epoch(plan, self.global_mean, *state, self.learning_rate(epoch), c.regularization,
                                       c.bias_regularization, c.negatives, c.seed, epoch)
                self.check_finite({"the training error": mse}, epoch)
                if on_epoch is not None:
                    self._publish(state)  # an epoch callback sees (and may score with) the current state
                # loss: training RMSE over the epoch's ratings, each taken just before its update
                if self._report(on_epoch, epoch, start, float(np.sqrt(mse))):
                    break
        self._publish(state)
        return self

    def _publish(self, state: list) -> None:
        """Expose the trained ``(P, Q, b_u, b_i)`` as the model's float32 host arrays."""
        self.user_factors, self.item_factors, self.user_bias, self.item_bias = (published(self.backend, a)
                                                                                for a in state)

    # -- inference --------------------------------------------------------
    def fold_in(self, history: Any) -> tuple[np.ndarray, np.ndarray]:
        """Biases and factors of new users from their ratings (CSR over the training
        items), items fixed: the ridge regression

            min Σⱼ (rⱼ − μ − bⱼ − bᵤ − pᵤ·qⱼ)² + n·(λ_b·bᵤ² + λ·‖pᵤ‖²),

        whose minimiser is where SGD on this user's n ratings settles (each update
        applies the penalty once, so it is scaled by n). Users without ratings get 0."""
        from recli.data.matrix import as_csr

        h = as_csr(history, n_cols=self.n_items, what="history")
        k, c = self.config.factors, self.config
        bias = np.zeros(h.shape[0], np.float32)
        P = np.zeros((h.shape[0], k), np.float32)
        for row in range(h.shape[0]):
            items = h.indices[h.indptr[row]:h.indptr[row + 1]]
            if items.size == 0:
                continue
            F = np.hstack([np.ones((items.size, 1)), self.item_factors[items].astype(np.float64)])
            target = h.data[h.indptr[row]:h.indptr[row + 1]] - self.global_mean - self.item_bias[items]
            penalty = items.size * np.r_[c.bias_regularization, np.full(k, c.regularization)]
            # a tiny ridge keeps the system solvable when both penalties are 0
            sol = np.linalg.solve(F.T @ F + np.diag(penalty + 1e-9), F.T @ target)
            bias[row], P[row] = sol[0], sol[1:]
        return bias, P

    def _user_side(self, uidx: np.ndarray, history: Any) -> tuple[np.ndarray, np.ndarray]:
        uidx, new, hist = split_batch(uidx, history, self.n_users, self.n_items)
        known = uidx >= 0
        bias = np.zeros(uidx.shape[0], np.float32)
        P = np.zeros((uidx.shape[0], self.config.factors), np.float32)
        bias[known] = self.user_bias[uidx[known]]
        P[known] = factor_rows(self.user_factors, uidx[known], self.config.dtype)
        if hist is not None:
            bias[new], P[new] = self.fold_in(hist)
        return bias, P

    def score(self, uidx: np.ndarray, history: Any = None) -> np.ndarray:
        """Predicted ratings μ + bᵤ + bᵢ + pᵤ·qᵢ for every item."""
        bias, P = self._user_side(uidx, history)
        scores = self.backend.kernels.dot_scores(P, self.item_factors)  # fixed order: same bits in any batch
        scores += (self.item_bias + np.float32(self.global_mean))[None, :]
        scores += bias[:, None]
        return np.ascontiguousarray(scores, dtype=np.float32)

    def top_k(self, uidx: np.ndarray, history: Any, k: int, rows: Any = None, indptr: Any = None,
              indices: Any = None, banned: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``kernels.topk(self.score(uidx, history), k, rows, indptr, indices, banned)``; a
        large CPU batch by :func:`recli.models._factors.screened_top_k` (the same result, bit
        for bit), with :meth:`score`'s terms in its order: ``bᵢ + μ`` as the item bias, ``bᵤ``
        added last."""
        if not screens(self, uidx):
            return self.backend.kernels.topk(self.score(uidx, history), k, rows, indptr, indices, banned)
        bias, P = self._user_side(uidx, history)
        return screened_top_k(P, self.item_factors, self.item_bias + np.float32(self.global_mean), k, rows, indptr,
                              indices, banned, user_bias=bias)

    def score_pairs(self, uidx: np.ndarray, iidx: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """``μ + bᵤ + bᵢ + pᵤ·qᵢ`` per pair, without scoring every item."""
        return self.predict(uidx, iidx)

    def fallback_pairs(self, uidx: np.ndarray, iidx: np.ndarray) -> np.ndarray:
        """``μ + bᵤ + bᵢ`` with the unknown side's bias (and both factors) left out: an
        unknown user gets ``μ + bᵢ``, an unknown item ``μ + bᵤ``, both unknown ``μ``."""
        uidx = np.asarray(uidx, dtype=np.int64)
        iidx = np.asarray(iidx, dtype=np.int64)
        out = np.full(uidx.shape[0], self.global_mean, dtype=np.float64)
        out[uidx >= 0] += self.user_bias[uidx[uidx >= 0]]
        out[iidx >= 0] += self.item_bias[iidx[iidx >= 0]]
        return out.astype(np.float32)

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings of (user, item) pairs of training indices."""
        if self.config.dtype != "float32":  # upcast only the users asked for
            rows, inverse = np.unique(np.asarray(users, dtype=np.int64), return_inverse=True)
            P = factor_rows(self.user_factors, rows, self.config.dtype)
            return self.backend.kernels.mf_predict(inverse.astype(np.int64), items, self.global_mean, P,
                                                   self.item_factors, self.user_bias[rows], self.item_bias)
        return self.backend.kernels.mf_predict(users, items, self.global_mean, self.user_factors, self.item_factors,
                                               self.user_bias, self.item_bias)

    def similar_items(self, iidx: np.ndarray) -> np.ndarray:
        return cosine_rows(self.item_factors, np.asarray(iidx, dtype=np.int64))

    # -- persistence ------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        dtype = self.config.dtype
        return {"user_factors": stored(self.user_factors, dtype, "user factors"),
                "item_factors": stored(self.item_factors, dtype, "item factors"), "user_bias": self.user_bias,
                "item_bias": self.item_bias, "global_mean": np.array([self.global_mean], np.float64)}

    @classmethod
    def from_arrays(cls, config: Any, arrays: dict[str, np.ndarray], backend: Any = None) -> "MF":
        model = cls(config, backend)
        from recli.kernels.precision import to_float32

        model.user_factors = loaded(arrays, "user_factors", config.dtype, cls.name)  # rows upcast per batch
        model.item_factors = to_float32(loaded(arrays, "item_factors", config.dtype, cls.name), config.dtype)
        try:
            model.user_bias = np.ascontiguousarray(arrays["user_bias"], dtype=np.float32)
            model.item_bias = np.ascontiguousarray(arrays["item_bias"], dtype=np.float32)
            model.global_mean = float(np.asarray(arrays["global_mean"]).ravel()[0])
        except KeyError as exc:
            raise ArtifactError(f"the model file lacks the array {exc}", hint="retrain the model") from None
        n_users, n_items = model.user_factors.shape[0], model.item_factors.shape[0]
        if (model.user_bias.shape != (n_users,) or model.item_bias.shape != (n_items,)
                or model.user_factors.shape[1] != config.factors or model.item_factors.shape[1] != config.factors):
            raise ArtifactError("stored factors and biases have inconsistent shapes", hint="retrain the model")
        model.n_users, model.n_items = n_users, n_items
        return model
