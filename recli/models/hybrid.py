"""``hybrid``: a LightFM-style model (Kula 2015) that learns from item and user features.

Kernel: :mod:`recli.kernels.hybrid`. A user's (an item's) representation is the weighted
sum of the embeddings and biases of its features; the score is
``r_u · r_i + b_i`` (the user's bias does not change a ranking). Without a feature file
the features are the identity (one feature per id), so the model is a plain WARP / BPR
factorisation. Ids without interactions (cold items and users, the rows of a feature
file with no training rows) are scored from their features alone.

Losses ``warp`` (optionally k-OS), ``bpr`` and ``logistic`` (each positive against one
uniform negative); schedules ``adagrad`` and ``adadelta`` with LightFM's defaults
(learning rate 0.05, ρ 0.95, ε 1e-6, ``max_sampled`` 10, no regularisation).

Negatives are drawn among the items with training interactions only: a cold item is
never pushed down for being unseen, so its score comes from what its features learned
on warm items. Features that occur only in rows without interactions start at zero and
stay there (a cold item's identity feature adds nothing).

New users with a history (``recommend --history``) are folded in like ``warp`` / ``bpr``:
a free user vector trained against the fixed item representations by WARP steps
(adagrad) for ``warp`` and BPR SGD steps for ``bpr`` and ``logistic``; any user features
are not used for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from recli.errors import ArtifactError, ConfigError, InputError
from recli.kernels.hybrid import LOSSES
from recli.models._factors import PairwiseFactorModel, dtype_param, init_factors, trainable_csr
from recli.models.base import param

if TYPE_CHECKING:  # SciPy loads lazily: serving one user from a factor model never needs it
    import scipy.sparse as sp

    from recli.data.side import SideFeatures

SCHEDULES = ("adagrad", "adadelta")
SAMPLINGS = ("uniform", "popular")


@dataclass
class HybridConfig:
    factors: int = param(64, "number of latent factors of every feature embedding", min=1, max=4096)
    iterations: int = param(30, "training epochs; each makes one attempt per interaction", min=1, max=100_000)
    loss: str = param("warp", "loss: warp (optionally k-OS), bpr or logistic (one sampled negative per positive)",
                      choices=LOSSES)
    schedule: str = param("adagrad", "learning-rate schedule: adagrad or adadelta", choices=SCHEDULES)
    learning_rate: float = param(0.05, "adagrad step size before per-parameter scaling (adadelta ignores it)",
                                 min=0.0, exclusive_min=True, max=10.0)
    rho: float = param(0.95, "adadelta decay of the running averages", min=0.0, exclusive_min=True, max=1.0)
    epsilon: float = param(1e-6, "adadelta conditioning constant", min=0.0, exclusive_min=True, max=1.0)
    item_alpha: float = param(0.0, "L2 penalty on the item feature parameters each step touches", min=0.0, max=100.0)
    user_alpha: float = param(0.0, "L2 penalty on the user feature parameters each step touches", min=0.0, max=100.0)
    sampling: str = param("uniform", "how negatives are drawn: uniform over the items, or popular (in proportion to "
                          "their interaction counts, as LightFM's bpr)", choices=SAMPLINGS)
    max_sampled: int = param(10, "most negatives sampled per positive while looking for a WARP margin violation",
                             min=1, max=100_000)
    kos_k: int = param(0, "k-OS (warp): train on the k-th highest scored of kos_n sampled positives (0 = plain)",
                       min=0, max=10_000)
    kos_n: int = param(10, "k-OS: positives sampled per step to pick the k-th highest from", min=1, max=10_000)
    fold_in_epochs: int = param(20, "passes over a new user's history when folding it in", min=1, max=10_000)
    seed: int = param(0, "random seed for initialisation and sampling", min=0, max=2**63 - 1)
    dtype: str = dtype_param()  # the stored user/item representations; feature embeddings stay float32


def feature_csr(side: SideFeatures | None, n_ids: int, what: str) -> sp.csr_matrix:
    """The ``(n_ids, n_features)`` feature CSR of ``side`` (canonical, float32), or the
    identity when there is none."""
    import scipy.sparse as sp

    from recli.data.matrix import as_csr

    if side is None:
        return as_csr(sp.identity(n_ids, dtype=np.float32, format="csr"))
    m = as_csr(side.matrix)
    if m.shape[0] != n_ids:
        raise InputError(f"the {what} features have {m.shape[0]} rows but the model has {n_ids} {what}s",
                         hint=f"give one feature row per {what} of the training vocabulary")
    if m.shape[1] == 0 or not np.isfinite(m.data).all():
        raise InputError(f"the {what} features are empty or hold NaN or infinite values",
                         hint="check the feature file (recli prep writes a valid one)")
    return m


def _embeddings(features: sp.csr_matrix, trained_rows: np.ndarray, factors: int,
                rng: np.random.Generator) -> np.ndarray:
    """``(n_features, factors + 1)`` float32: :func:`init_factors` for the embeddings (zero
    for features of no trained row), bias column 0."""
    used = np.diff(features[trained_rows].tocsc().indptr)
    out = np.zeros((features.shape[1], factors + 1), dtype=np.float32)
    out[:, :factors] = init_factors(features.shape[1], factors, rng, used)
    return out


class Hybrid(PairwiseFactorModel):
    """LightFM-style hybrid factorisation: representations are sums of feature embeddings."""

    name: ClassVar[str] = "hybrid"
    summary: ClassVar[str] = ("LightFM-style hybrid: user/item = sum of feature embeddings (warp, bpr, logistic), "
                              "cold start from features")
    Config: ClassVar[type] = HybridConfig
    uses_features: ClassVar[bool] = True
    devices: ClassVar[tuple[str, ...]] = ("cpu",)  # Numba kernels only, for now
    diverged_hint: ClassVar[str] = "lower --learning-rate, or raise item_alpha / user_alpha"
    test_params: ClassVar[dict] = {"factors": 8, "iterations": 15, "seed": 1}
    search_space: ClassVar[dict] = {
        "factors": {"type": "int", "low": 16, "high": 256, "log": True},
        "learning_rate": {"type": "float", "low": 1e-3, "high": 0.3, "log": True},
        "loss": {"type": "choice", "values": ["warp", "bpr"]},
        "item_alpha": {"type": "float", "low": 1e-8, "high": 1e-3, "log": True},
    }

    def __init__(self, config: Any = None, backend: Any = None):
        super().__init__(config, backend)
        if self.config.kos_k > self.config.kos_n:
            raise ConfigError(f"kos_k={self.config.kos_k} is larger than kos_n={self.config.kos_n}",
                              hint="pick kos_k <= kos_n (the k-th highest of n sampled positives)")
        k = self.config.factors
        self.user_embeddings = np.zeros((0, k + 1), dtype=np.float32)
        self.item_embeddings = np.zeros((0, k + 1), dtype=np.float32)
        # During a fit only: the user and item feature CSRs, and the warm items' rows.
        self._features: tuple[Any, Any] = (None, None)
        self._train_items: Any = None
        # The feature vocabularies (None for the identity), by side.
        self._names: dict[str, np.ndarray | None] = {"user": None, "item": None}

    @classmethod
    def stored_bytes(cls, config: Any, n_users: int, n_items: int) -> int:
        """Representations plus embeddings (identity features: twice the factor models)."""
        return 2 * super().stored_bytes(config, n_users, n_items)

    def fit(self, user_items: Any, on_epoch: Any = None, *, item_features: SideFeatures | None = None,
            user_features: SideFeatures | None = None) -> Hybrid:
        """Train on a user x item CSR (cells > 0 are interactions) with optional features:
        ``iterations`` Hogwild epochs over users, one chunk of users per thread."""
        from recli.data.matrix import as_csr

        m = trainable_csr(user_items, self.name)
        if self.config.sampling == "popular" and m.nnz >= 2**32:
            raise ConfigError(f"sampling=popular draws among the interactions, at most 2^32 of them (got {m.nnz})",
                              hint="use sampling=uniform on data this large")
        self._names = {side: None if f is None else np.asarray(f.names, dtype=str)
                       for side, f in (("user", user_features), ("item", item_features))}
        self._features = (feature_csr(user_features, m.shape[0], "user"),
                          feature_csr(item_features, m.shape[1], "item"))
        self._init_state(m)
        warm = np.flatnonzero(np.diff(m.tocsc().indptr))
        if warm.shape[0] < m.shape[1]:
            # Train on the warm items only (a column subset: rows stay sorted): negatives are
            # then drawn among them, so a cold item never takes a step.
            # as_csr: slicing may narrow indptr to int32, which would compile the kernel again
            m = as_csr(m[:, warm])
            self._train_items = as_csr(self._features[1][warm])
        self._train(m, on_epoch)
        self._features = (None, None)
        self._train_items = None
        return self

    def _train(self, m: sp.csr_matrix, on_epoch: Any) -> None:
        """``iterations`` Hogwild epochs on ``m``, users in row chunks balanced by
        non-zeros, one chunk per thread (its own loop: the factor models' loop moves
        ``(U, V, b)``, this model its feature embeddings)."""
        import time

        from recli.backend import threads_context
        from recli.kernels._chunks import balanced_bounds

        with threads_context(self.backend.threads) as threads:
            self.threads_used = threads
            run = self._runner(m, np.arange(m.shape[0], dtype=np.int64), balanced_bounds(m.indptr, threads))
            for epoch in range(self.config.iterations):  # 0-based: the kernel's random streams
                start = time.perf_counter()
                if self._report(on_epoch, epoch + 1, start, run(epoch)):
                    break
        self.check_finite(self.to_arrays())

    def _init_state(self, m: sp.csr_matrix) -> None:
        """Deterministic initialisation from ``config.seed`` (user features, then items)."""
        self.n_users, self.n_items = m.shape
        self.epoch_losses = []
        rng = np.random.default_rng(self.config.seed)
        UF, IF = self._features
        k = self.config.factors
        self.user_embeddings = _embeddings(UF, np.flatnonzero(np.diff(m.indptr)), k, rng)
        self.item_embeddings = _embeddings(IF, np.flatnonzero(np.diff(m.tocsc().indptr)), k, rng)
        self._represent()

    def _represent(self) -> None:
        """User and item representations from the embeddings (what ``score`` uses)."""
        UF, IF = self._features
        k = self.config.factors
        self.user_factors = np.ascontiguousarray((UF @ self.user_embeddings)[:, :k], dtype=np.float32)
        items = np.asarray(IF @ self.item_embeddings, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(items[:, :k])
        self.item_bias = np.ascontiguousarray(items[:, k])

    def _runner(self, m: sp.csr_matrix, order: np.ndarray, bounds: np.ndarray):
        """One Hogwild epoch (:func:`recli.kernels.hybrid.hybrid_epoch`) on ``m`` (warm
        items only), then the representations; records the share of positives that made
        a step."""
        from recli.kernels.hybrid import hybrid_epoch, make_hyper

        cfg = self.config
        UF, IF = self._features
        IF = IF if self._train_items is None else self._train_items
        adadelta = cfg.schedule == "adadelta"

        def params(E: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            # adagrad accumulators start at 1 (LightFM); adadelta's averages at 0
            G = np.zeros_like(E) if adadelta else np.ones_like(E)
            return E, G, np.zeros_like(E) if adadelta else np.zeros((1, 1), np.float32)

        UP, IP = params(self.user_embeddings), params(self.item_embeddings)
        uf = (UF.indptr, UF.indices, UF.data)
        itf = (IF.indptr, IF.indices, IF.data)
        hyper = make_hyper(cfg.learning_rate, cfg.rho, cfg.epsilon, adadelta, cfg.user_alpha, cfg.item_alpha)
        self.epoch_update_rate: list[float] = []

        def run(epoch: int) -> float:
            loss, rate, _ = hybrid_epoch(m.indptr, m.indices, order, bounds, uf, itf, UP, IP, cfg.loss, hyper,
                                         cfg.max_sampled, cfg.seed, epoch, cfg.kos_k, cfg.kos_n,
                                         cfg.sampling == "popular")
            self.epoch_update_rate.append(rate)
            self._represent()
            return loss

        return run

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """New users' vectors against the fixed item representations: adagrad WARP steps
        (:func:`recli.kernels.warp.warp_fold_in`) for ``warp``, BPR SGD steps
        (:func:`recli.kernels.bpr.bpr_fold_in`) otherwise."""
        from recli.kernels.bpr import bpr_fold_in
        from recli.kernels.warp import warp_fold_in

        cfg = self.config
        lr, reg, seed = np.float32(cfg.learning_rate), np.float32(cfg.user_alpha), np.uint64(cfg.seed)
        if cfg.loss == "warp":
            return warp_fold_in(history.indptr, history.indices, self.item_factors, self.item_bias,
                                cfg.fold_in_epochs, lr, reg, True, cfg.max_sampled, seed)
        return bpr_fold_in(history.indptr, history.indices, self.item_factors, self.item_bias,
                           cfg.fold_in_epochs, lr, reg, seed, 10 * cfg.max_sampled)

    def feature_names(self, side: str) -> np.ndarray | None:
        """The feature vocabulary of ``side`` the model was fitted with (``None``: identity)."""
        return self._names[side]

    def score_new_items(self, uidx: np.ndarray, history: Any, item_features: Any) -> np.ndarray:
        """Scores ``r_u · r_new + b_new`` of items outside the catalogue, whose
        representations are their features' embeddings summed (``item_features`` over the
        columns ``feature_names("item")``)."""
        from recli.data.matrix import as_csr

        if self._names["item"] is None:
            raise ConfigError("this hybrid model was trained without item features, so it cannot score new items",
                              hint="train it with --item-features FILE")
        F = as_csr(item_features.matrix)
        if F.shape[1] != self.item_embeddings.shape[0]:
            raise InputError(f"the new items have {F.shape[1]} feature columns but the model knows "
                             f"{self.item_embeddings.shape[0]}", hint="map them onto feature_names('item')")
        reps = np.asarray(F @ self.item_embeddings, dtype=np.float32)
        k = self.config.factors
        return self.backend.kernels.dot_scores(self.user_vectors(uidx, history), np.ascontiguousarray(reps[:, :k]),
                                               np.ascontiguousarray(reps[:, k]))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The representations (what scoring reads), the feature embeddings with their bias
        as the last column and the feature names (what scores new items from features)."""
        names = {f"{side}_feature_names": v for side, v in self._names.items() if v is not None}
        return {**super().to_arrays(), "user_embeddings": self.user_embeddings,
                "item_embeddings": self.item_embeddings, **names}

    @classmethod
    def from_arrays(cls, config: Any, arrays: dict[str, np.ndarray], backend: Any = None) -> Hybrid:
        model = super().from_arrays(config, arrays, backend)
        try:
            EU = np.ascontiguousarray(arrays["user_embeddings"], dtype=np.float32)
            EI = np.ascontiguousarray(arrays["item_embeddings"], dtype=np.float32)
        except KeyError as exc:
            raise ArtifactError(f"{cls.name} model file lacks the array {exc.args[0]!r}",
                                hint="the file is corrupt or from another model; retrain it") from None
        k = model.config.factors
        if EU.ndim != 2 or EI.ndim != 2 or EU.shape[1] != k + 1 or EI.shape[1] != k + 1:
            raise ArtifactError(f"{cls.name} embeddings have inconsistent shapes (user {EU.shape}, "
                                f"item {EI.shape}, factors={k})", hint="the file is corrupt; retrain the model")
        model.user_embeddings, model.item_embeddings = EU, EI
        model._names = {side: (np.asarray(arrays[f"{side}_feature_names"], dtype=str)
                               if f"{side}_feature_names" in arrays else None) for side in ("user", "item")}
        return model
