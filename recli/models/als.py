"""``als``: implicit-feedback alternating least squares (Hu, Koren & Volinsky 2008).

Each epoch recomputes every user factor against the fixed item factors, then every item
factor against the fixed user factors, with confidence ``c = 1 + alpha·r``. The epoch
loop is written once against ``backend.xp`` and ``backend.kernels``: Numba row-parallel
kernels (:mod:`recli.kernels.als`) on ``cpu``, the batched array-module twins
(:mod:`recli.kernels.als_xp`) on ``gpu`` (and the internal ``xp-numpy``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from recli.errors import ArtifactError, InputError
from recli.models._factors import FactorModel, cosine_rows, dtype_param, held, loaded, loaded_items, published, stored, training_dtype
from recli.models.base import EpochCallback, param


@dataclass
class ALSConfig:
    factors: int = param(64, "latent factors per user and item", min=1, max=4096)
    iterations: int = param(15, "epochs: one user sweep and one item sweep each", min=1)
    regularization: float = param(0.05, "L2 penalty λ on the factors (unscaled, as in implicit)", min=0.0)
    scale_regularization: bool = param(False, "multiply λ by each row's number of interactions (λ·n_u, λ·n_i: "
                                       "ALS-WR, as Spark MLlib)")
    alpha: float = param(1.0, "confidence scale: c = 1 + alpha·r", min=0.0, exclusive_min=True)
    solver: str = param("cg", "cg (fast, approximate) or cholesky (exact per-row solve)", choices=("cg", "cholesky"))
    cg_steps: int = param(3, "conjugate-gradient steps per row and sweep (solver=cg)", min=1, max=1000)
    seed: int = param(42, "random seed for the factor initialisation", min=0)
    dtype: str = dtype_param()


class ALS(FactorModel):
    """Implicit ALS with a warm-started CG or an exact Cholesky solver."""

    name: ClassVar[str] = "als"
    summary: ClassVar[str] = "implicit-feedback ALS (Hu et al. 2008), CG or Cholesky solver"
    Config: ClassVar[type] = ALSConfig
    devices: ClassVar[tuple[str, ...]] = ("cpu", "gpu")
    negative_values: ClassVar[str] = ("are read as dislikes: preference 0 with confidence 1 + alpha·|r|, as in "
                                      "implicit (a value of 0 is the same as no interaction)")
    diverged_hint: ClassVar[str] = "raise --regularization or lower --alpha"
    can_explain: ClassVar[bool] = True
    test_params: ClassVar[dict] = {"factors": 4, "iterations": 6, "regularization": 2.0, "alpha": 4.0}
    search_space: ClassVar[dict] = {
        "factors": {"type": "int", "low": 16, "high": 256, "log": True},
        "regularization": {"type": "float", "low": 1e-3, "high": 100.0, "log": True},
        "alpha": {"type": "float", "low": 0.1, "high": 50.0, "log": True},
    }

    def __init__(self, config: Any = None, backend: Any = None):
        super().__init__(config, backend)
        self.user_factors = np.zeros((0, self.config.factors), np.float32)
        self.item_factors = np.zeros((0, self.config.factors), np.float32)
        self._gram: np.ndarray | None = None

    @classmethod
    def gpu_memory(cls, config: Any, user_items: Any) -> Any:
        """Factors ``4·(users + items)·k`` and their float64 copies for the loss
        ``8·(users + items)·k`` stay on the device; the CSR stays on the host. With a
        16-bit ``dtype`` the factors take ``2·(users + items)·k``, plus the float32 copy of
        a sweep's fixed side, ``4·max(users, items)·k``. A batch costs
        :func:`recli.kernels.als_xp.nnz_bytes` per non-zero and
        :func:`~recli.kernels.als_xp.row_bytes` per row; the smallest holds the longest
        user or item row."""
        from recli.device_memory import MemoryEstimate
        from recli.kernels.als_xp import nnz_bytes, row_bytes

        n_users, n_items = user_items.shape
        k = int(config.factors)
        longest = max(int(np.diff(user_items.indptr).max(initial=0)),
                      int(np.bincount(user_items.indices, minlength=n_items).max(initial=0)))
        factors = {"factors": 4 * (n_users + n_items) * k}
        if config.dtype != "float32":
            factors = {"factors": 2 * (n_users + n_items) * k, "float32 fixed side": 4 * max(n_users, n_items) * k}
        return MemoryEstimate({**factors, "loss temporaries": 8 * (n_users + n_items) * k, "Gram": 8 * k * k},
                              nnz_bytes(k, config.solver), longest, "non-zero", row_bytes(k, config.solver))

    # -- training ---------------------------------------------------------
    def _penalty(self, indptr: np.ndarray) -> Any:
        """λ for the rows of a CSR: one number, or with ``scale_regularization`` one per row,
        λ·(the row's stored entries) (ALS-WR, Zhou et al. 2008)."""
        if not self.config.scale_regularization:
            return self.config.regularization
        from recli.kernels.als import row_regularization

        return row_regularization(self.config.regularization, indptr)

    def _sweep(self, csr, X, Y, quadratic: bool = False) -> Any:
        """One half-epoch on the backend's kernels; returns the loss's observed term (with
        ``quadratic``, and Σᵤ xᵤᵀ(YᵀY + λᵤI)xᵤ)."""
        c = self.config
        return self.backend.kernels.als_sweep(*csr, X, Y, self._penalty(csr[0]), c.alpha, c.solver, c.cg_steps,
                                              quadratic=quadratic)

    def _loss(self, terms: tuple[float, float], X, Y, Cui, Ciu) -> float:
        """The loss from the item sweep's (observed, quadratic) terms: the quadratic term is
        the all-pairs term plus the items' penalty, so no Gram matrix is computed again."""
        c = self.config
        reg = (self._penalty(Cui[0]), self._penalty(Ciu[0])) if c.scale_regularization else c.regularization
        observed, quadratic = terms
        return self.backend.kernels.als_loss_from_observed(observed, X, Y, Cui[2], reg, c.alpha, quadratic)

    def init_factors(self, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
        """Seeded uniform [0, 0.01) start (as implicit), users drawn before items."""
        rng = np.random.default_rng(self.config.seed)
        k = self.config.factors
        X = rng.random((n_users, k), dtype=np.float32) * np.float32(0.01)
        Y = rng.random((n_items, k), dtype=np.float32) * np.float32(0.01)
        return X, Y

    def fit(self, user_items: Any, on_epoch: EpochCallback | None = None) -> "ALS":
        from recli.backend import threads_context
        from recli.data.matrix import as_csr, csr_arrays

        ui = as_csr(user_items)
        if ui.nnz == 0:
            raise InputError("the training matrix has no interactions", hint="check the training file is not empty")
        self.n_users, self.n_items = ui.shape
        from recli.kernels.transpose import transpose_csr

        Cui = csr_arrays(ui)
        Ciu = transpose_csr(*Cui, self.n_items)  # the item sweep's rows: in parallel, sorted
        self.training_dtype = training_dtype(self.backend, self.config.dtype)
        X, Y = (held(self.backend, a, self.training_dtype) for a in self.init_factors(self.n_users, self.n_items))
        self.epoch_losses = []
        with threads_context(self.backend.threads):
            for epoch in range(1, self.config.iterations + 1):
                start = time.perf_counter()
                self._sweep(Cui, X, Y)
                # the item sweep's observed and quadratic terms give the loss at this epoch's factors
                loss = self._loss(self._sweep(Ciu, Y, X, quadratic=True), X, Y, Cui, Ciu)
                self.check_finite({"the loss": loss}, epoch)
                if on_epoch is not None:
                    self._publish(X, Y)  # the callback may score, fold in or snapshot
                if self._report(on_epoch, epoch, start, loss):
                    break
        self._publish(X, Y)
        return self

    def _publish(self, X, Y) -> None:
        """Expose the current factors as the model's (float32 host) state."""
        self.user_factors = published(self.backend, X)
        self.item_factors = published(self.backend, Y)
        self._gram = None

    # -- inference --------------------------------------------------------
    def fold_in(self, history: Any) -> np.ndarray:
        """Exact least-squares user factors for the rows of ``history`` (CSR over the
        training items) against the fixed item factors: the ALS user step, solved
        exactly (Cholesky) whatever the training solver, on the backend's kernels."""
        from recli.data.matrix import as_csr, csr_arrays

        h = as_csr(history, n_cols=self.n_items, what="history")
        xp = self.backend.xp
        X = xp.zeros((h.shape[0], self.config.factors), dtype=xp.float32)
        csr = csr_arrays(h)
        self.backend.kernels.als_sweep(*csr, X, xp.asarray(self.item_factors), self._penalty(csr[0]),
                                       self.config.alpha, "cholesky")
        return self.backend.to_host(X)

    def similar_items(self, iidx: np.ndarray) -> np.ndarray:
        return cosine_rows(self.item_factors, np.asarray(iidx, dtype=np.int64))

    def explain(self, uidx: int, history_items: np.ndarray, history_values: np.ndarray,
                items: np.ndarray) -> np.ndarray:
        """Hu et al. (2008) section 5: with Wᵤ = (YᵀCᵤY + λᵤI)⁻¹ the folded-in user
        ``xᵤ = Wᵤ YᵀCᵤp(u)``, so ``ŷᵤⱼ = Σₕ c_uh p_uh · yⱼᵀWᵤyₕ``: ``C[j, h]`` is that term.

        Rows sum to the exact-solve score of this history (``score`` with ``uidx = -1``);
        for a training user that equals the trained score up to ALS convergence.
        """
        hist = np.asarray(history_items, dtype=np.int64)
        vals = np.asarray(history_values, dtype=np.float64)
        Yh = self.item_factors[hist].astype(np.float64)
        c1 = self.config.alpha * np.abs(vals)
        pc = np.where(vals > 0, 1.0 + c1, 0.0)
        lam = float(np.ravel(self._penalty(np.array([0, hist.size])))[0])  # λᵤ of this history
        A = self.gram_matrix().astype(np.float64) + (Yh * c1[:, None]).T @ Yh + lam * np.eye(Yh.shape[1])
        W = np.linalg.solve(A, Yh.T)  # k × h: Wᵤ yₕ for each history item
        Yj = self.item_factors[np.asarray(items, dtype=np.int64)].astype(np.float64)
        return ((Yj @ W) * pc[None, :]).astype(np.float32)

    def gram_matrix(self) -> np.ndarray:
        """YᵀY of the trained item factors (cached; each user adds its own λᵤI)."""
        if self._gram is None:
            self._gram = self.backend.to_host(self.backend.kernels.gram(self.item_factors, 0.0))
        return self._gram

    # -- persistence ------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        dtype = self.config.dtype
        return {"user_factors": stored(self.user_factors, dtype, "user factors"),
                "item_factors": stored(self.item_factors, dtype, "item factors")}

    @classmethod
    def from_arrays(cls, config: Any, arrays: dict[str, np.ndarray], backend: Any = None) -> "ALS":

        model = cls(config, backend)
        model.user_factors = loaded(arrays, "user_factors", config.dtype, cls.name)  # rows upcast per batch
        model.item_factors = loaded_items(arrays, config.dtype, cls.name)
        if model.user_factors.shape[1] != config.factors or model.item_factors.shape[1] != config.factors:
            raise ArtifactError("stored factors do not match the model's 'factors' setting",
                              hint="the model file is inconsistent; retrain it")
        model.n_users, model.n_items = model.user_factors.shape[0], model.item_factors.shape[0]
        return model
