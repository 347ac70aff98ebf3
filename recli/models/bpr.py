"""``bpr``: Bayesian personalised ranking with uniform negative sampling.

Kernels: :mod:`recli.kernels.bpr` on the CPU (Hogwild parallel SGD, one random stream
per thread; bit-for-bit deterministic with one thread), mini-batch SGD with atomic
updates on the GPU (:mod:`recli.kernels.sgd_xp`). Score: ``U_u · V_i + b_i``.

New users are folded in by a few BPR SGD passes over their history against the fixed
item factors (``fold_in_epochs``): the objective the items were trained with, cheap (one
user vector each) and deterministic for a given seed and history, whatever the batch.
It runs on the host's Numba kernel on every device, so a new user gets the same vector
from a model trained or served on the GPU or the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from recli.models._factors import PairwiseFactorModel, dtype_param
from recli.models.base import param

if TYPE_CHECKING:  # SciPy loads lazily: serving one user from a factor model never needs it
    import scipy.sparse as sp


@dataclass
class BPRConfig:
    factors: int = param(64, "number of latent factors", min=1, max=4096)
    iterations: int = param(100, "training epochs; each draws one (user, positive, negative) triple per interaction",
                            min=1, max=100_000)
    learning_rate: float = param(0.05, "SGD step size", min=0.0, exclusive_min=True, max=10.0)
    regularization: float = param(0.01, "L2 penalty on the factors and item biases each step touches",
                                  min=0.0, max=100.0)
    negative_tries: int = param(32, "negative draws per triple before skipping it when every draw is a positive",
                                min=1, max=10_000)
    fold_in_epochs: int = param(20, "SGD passes over a new user's history when folding it in", min=1, max=10_000)
    seed: int = param(0, "random seed for initialisation and sampling", min=0, max=2**63 - 1)
    dtype: str = dtype_param()


class BPR(PairwiseFactorModel):
    """Bayesian personalised ranking (Rendle et al. 2009)."""

    name: ClassVar[str] = "bpr"
    summary: ClassVar[str] = "Bayesian personalised ranking, uniform negatives, Hogwild SGD (implicit feedback)"
    Config: ClassVar[type] = BPRConfig
    devices: ClassVar[tuple[str, ...]] = ("cpu", "gpu")
    test_params: ClassVar[dict] = {"factors": 8, "iterations": 30, "learning_rate": 0.05, "seed": 1}
    search_space: ClassVar[dict] = {
        "factors": {"type": "int", "low": 16, "high": 256, "log": True},
        "learning_rate": {"type": "float", "low": 1e-3, "high": 0.3, "log": True},
        "regularization": {"type": "float", "low": 1e-5, "high": 0.1, "log": True},
    }

    def _epoch_runner(self, plan: Any, U: Any, V: Any, b: Any):
        """One BPR epoch on the backend's kernels (``bpr_epoch``: Hogwild on the CPU,
        mini-batches on the GPU); records the share of sampled pairs ranked correctly."""
        cfg = self.config
        self.epoch_auc: list[float] = []

        def run(epoch: int) -> float:
            loss, correct, _ = self.backend.kernels.bpr_epoch(plan, U, V, b, cfg.learning_rate, cfg.regularization,
                                                              cfg.seed, epoch, cfg.negative_tries)
            self.epoch_auc.append(correct)
            return loss

        return run

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        cfg = self.config
        return self.backend.kernels.bpr_fold_in(history.indptr, history.indices, self.item_factors, self.item_bias,
                                                cfg.fold_in_epochs, cfg.learning_rate, cfg.regularization, cfg.seed,
                                                cfg.negative_tries)
