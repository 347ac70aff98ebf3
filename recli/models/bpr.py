"""``bpr``: Bayesian personalised ranking with uniform negative sampling.

Kernel: :mod:`recli.kernels.bpr` (Hogwild parallel SGD, one random stream per thread;
bit-for-bit deterministic with one thread). Score: ``U_u · V_i + b_i``.

New users are folded in by a few BPR SGD passes over their history against the fixed
item factors (``fold_in_epochs``): the objective the items were trained with, cheap (one
user vector each) and deterministic for a given seed and history, whatever the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

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
    test_params: ClassVar[dict] = {"factors": 8, "iterations": 30, "learning_rate": 0.05, "seed": 1}
    search_space: ClassVar[dict] = {
        "factors": {"type": "int", "low": 16, "high": 256, "log": True},
        "learning_rate": {"type": "float", "low": 1e-3, "high": 0.3, "log": True},
        "regularization": {"type": "float", "low": 1e-5, "high": 0.1, "log": True},
    }

    def _epoch_runner(self, m: sp.csr_matrix, order: np.ndarray, bounds: np.ndarray):
        """One Hogwild BPR epoch (:func:`recli.kernels.bpr.bpr_epoch`); records the share
        of sampled pairs ranked correctly."""
        from recli.kernels.bpr import bpr_epoch

        cfg = self.config
        self.epoch_auc: list[float] = []

        def run(epoch: int) -> float:
            loss, correct, _ = bpr_epoch(m.indptr, m.indices, order, bounds, self.user_factors, self.item_factors,
                                         self.item_bias, cfg.learning_rate, cfg.regularization, cfg.seed, epoch,
                                         cfg.negative_tries)
            self.epoch_auc.append(correct)
            return loss

        return run

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        from recli.kernels.bpr import bpr_fold_in

        cfg = self.config
        return bpr_fold_in(history.indptr, history.indices, self.item_factors, self.item_bias,
                           cfg.fold_in_epochs, np.float32(cfg.learning_rate), np.float32(cfg.regularization),
                           np.uint64(cfg.seed), cfg.negative_tries)
