"""``bpr``: Bayesian personalised ranking with uniform negative sampling.

Kernel: :mod:`recli.kernels.bpr` (Hogwild parallel SGD, one random stream per thread;
bit-for-bit deterministic with one thread). Score: ``U_u · V_i + b_i``.

New users are folded in by a few BPR SGD passes over their history against the fixed
item factors (``fold_in_epochs``): it is the same objective the items were trained with,
cheap (one user vector each) and deterministic for a given seed and history.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from recli.models._factors import (as_sorted_csr, check_trainable, cosine_similar, dot_scores,
                                   init_factors, numba_threads, split_known)
from recli.models.base import EpochCallback, Model, param


@dataclass
class BPRConfig:
    factors: int = param(64, "number of latent factors", min=1, max=4096)
    iterations: int = param(100, "training epochs; each draws one (user, positive, negative) triple per interaction",
                            min=1, max=100_000)
    learning_rate: float = param(0.05, "SGD step size", min=0.0, exclusive_min=True, max=10.0)
    regularization: float = param(0.01, "L2 penalty on the factors and item biases touched by each step",
                                  min=0.0, max=100.0)
    negative_tries: int = param(32, "negative draws per triple before giving up when each draw is a positive",
                                min=1, max=10_000)
    fold_in_epochs: int = param(20, "SGD passes over a new user's history when folding it in", min=1, max=10_000)
    seed: int = param(0, "random seed for initialisation and sampling", min=0, max=2**63 - 1)


class BPR(Model):
    """Bayesian personalised ranking (Rendle et al. 2009)."""

    name: ClassVar[str] = "bpr"
    summary: ClassVar[str] = "Bayesian personalised ranking, uniform negatives, Hogwild SGD (implicit feedback)"
    Config: ClassVar[type] = BPRConfig
    can_fold_in: ClassVar[bool] = True
    test_params: ClassVar[dict] = {"factors": 8, "iterations": 30, "learning_rate": 0.05, "seed": 1}

    def __init__(self, config: Any = None, backend: Any = None):
        super().__init__(config, backend)
        self.user_factors = np.zeros((0, self.config.factors), dtype=np.float32)
        self.item_factors = np.zeros((0, self.config.factors), dtype=np.float32)
        self.item_bias = np.zeros(0, dtype=np.float32)
        self.threads_used = 0

    def fit(self, user_items: Any, on_epoch: EpochCallback | None = None) -> "BPR":
        """Train on a user x item CSR (any positive value is a positive interaction)."""
        from recli.kernels.bpr import balanced_bounds, bpr_epoch

        cfg = self.config
        m = as_sorted_csr(user_items)
        check_trainable(m, self.name)
        self.n_users, self.n_items = m.shape
        rng = np.random.default_rng(cfg.seed)
        user_counts = np.diff(m.indptr)
        item_counts = np.bincount(m.indices, minlength=self.n_items)
        self.user_factors = init_factors(self.n_users, cfg.factors, rng, user_counts)
        self.item_factors = init_factors(self.n_items, cfg.factors, rng, item_counts)
        self.item_bias = np.zeros(self.n_items, dtype=np.float32)
        self.epoch_losses = []
        self.epoch_auc: list[float] = []
        start = time.perf_counter()
        with numba_threads(self.backend.threads) as threads:
            self.threads_used = threads
            bounds = balanced_bounds(m.indptr, threads)
            order = np.arange(self.n_users, dtype=np.int64)
            for epoch in range(cfg.iterations):
                loss, correct, _ = bpr_epoch(m.indptr, m.indices, order, bounds, self.user_factors,
                                             self.item_factors, self.item_bias, cfg.learning_rate,
                                             cfg.regularization, cfg.seed, epoch, cfg.negative_tries)
                self.epoch_auc.append(correct)
                if self._report(on_epoch, epoch, start, loss):
                    break
        self._check_finite()
        return self

    def _check_finite(self) -> None:
        from recli.errors import ConfigError

        if not (np.isfinite(self.user_factors).all() and np.isfinite(self.item_factors).all()):
            raise ConfigError(f"{self.name} diverged: the factors contain NaN or infinity",
                              hint="lower --learning-rate or raise --regularization")

    def user_vectors(self, uidx: np.ndarray, history: Any) -> np.ndarray:
        """Factor rows for a batch: trained rows, or folded-in rows for ``uidx == -1``."""
        from recli.kernels.bpr import bpr_fold_in

        known, new, hist = split_known(uidx, history, self.n_users, self.name)
        out = np.zeros((len(known) + len(new), self.config.factors), dtype=np.float32)
        out[known] = self.user_factors[np.asarray(uidx, dtype=np.int64)[known]]
        if hist is not None:
            cfg = self.config
            with numba_threads(self.backend.threads):
                out[new] = bpr_fold_in(hist.indptr, hist.indices, self.item_factors, self.item_bias,
                                       cfg.fold_in_epochs, np.float32(cfg.learning_rate),
                                       np.float32(cfg.regularization), np.uint64(cfg.seed), cfg.negative_tries)
        return out

    def score(self, uidx: np.ndarray, history: Any) -> np.ndarray:
        """``U_u · V_i + b_i`` for every item, float32 ``(len(uidx), n_items)``."""
        return dot_scores(self.user_vectors(uidx, history), self.item_factors, self.item_bias)

    def similar_items(self, iidx: np.ndarray) -> np.ndarray:
        """Cosine similarity over item factors (biases left out)."""
        return cosine_similar(self.item_factors, iidx)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors,
                "item_bias": self.item_bias}

    @classmethod
    def from_arrays(cls, config: Any, arrays: dict[str, np.ndarray], backend: Any = None) -> "BPR":
        model = cls(config, backend)
        model.user_factors = np.ascontiguousarray(arrays["user_factors"], dtype=np.float32)
        model.item_factors = np.ascontiguousarray(arrays["item_factors"], dtype=np.float32)
        model.item_bias = np.ascontiguousarray(arrays["item_bias"], dtype=np.float32)
        model.n_users = model.user_factors.shape[0]
        model.n_items = model.item_factors.shape[0]
        return model
