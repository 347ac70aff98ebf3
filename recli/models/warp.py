"""``warp``: WARP ranking loss (Weston et al. 2011) as in LightFM, optional k-OS variant.

Kernels: :mod:`recli.kernels.warp` on the CPU (Hogwild), mini-batch SGD with atomic
updates on the GPU (:mod:`recli.kernels.sgd_xp`). Score: ``U_u · V_i + b_i``. Defaults
follow LightFM where they carry over (adagrad schedule, learning rate 0.05, ``max_sampled`` 10, no
regularisation, k-OS ``n`` 10); ``factors`` is 64 as for the other recli models.

Schedules: ``adagrad`` (per-parameter step ``lr / sqrt(1 + Σ g²)``, LightFM's default),
``constant`` (plain SGD) and ``invscaling`` (plain SGD with ``lr / sqrt(1 + epoch)``).

New users are folded in with WARP steps on their own vector only, against the fixed item
factors (``fold_in_epochs`` passes over their history), deterministic for a given seed
and history; on the host's Numba kernel on every device, as for ``bpr``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from recli.errors import ConfigError
from recli.models._factors import PairwiseFactorModel, dtype_param
from recli.models.base import param

SCHEDULES = ("adagrad", "constant", "invscaling")

if TYPE_CHECKING:  # SciPy loads lazily: serving one user from a factor model never needs it
    import scipy.sparse as sp


@dataclass
class WARPConfig:
    factors: int = param(64, "number of latent factors", min=1, max=4096)
    iterations: int = param(30, "training epochs; each makes one WARP attempt per interaction", min=1, max=100_000)
    learning_rate: float = param(0.05, "initial step size (adagrad: before per-parameter scaling)",
                                 min=0.0, exclusive_min=True, max=10.0)
    regularization: float = param(0.0, "L2 penalty on the parameters each step touches (LightFM's alpha is 0)",
                                  min=0.0, max=100.0)
    schedule: str = param("adagrad", "learning-rate schedule: adagrad, constant or invscaling (lr/sqrt(1+epoch))",
                          choices=SCHEDULES)
    max_sampled: int = param(10, "most negatives sampled per positive while looking for a margin violation",
                             min=1, max=100_000)
    kos_k: int = param(0, "k-OS: train on the k-th highest scored of kos_n sampled positives (0 = plain WARP)",
                       min=0, max=10_000)
    kos_n: int = param(10, "k-OS: positives sampled per step to pick the k-th highest from", min=1, max=10_000)
    fold_in_epochs: int = param(20, "passes over a new user's history when folding it in", min=1, max=10_000)
    seed: int = param(0, "random seed for initialisation and sampling", min=0, max=2**63 - 1)
    dtype: str = dtype_param()


class WARP(PairwiseFactorModel):
    """WARP loss matrix factorisation with item biases."""

    name: ClassVar[str] = "warp"
    summary: ClassVar[str] = "WARP ranking loss as in LightFM (adagrad, optional k-OS), implicit feedback"
    Config: ClassVar[type] = WARPConfig
    devices: ClassVar[tuple[str, ...]] = ("cpu", "gpu")
    test_params: ClassVar[dict] = {"factors": 8, "iterations": 15, "learning_rate": 0.05, "seed": 1}
    search_space: ClassVar[dict] = {
        "factors": {"type": "int", "low": 16, "high": 256, "log": True},
        "learning_rate": {"type": "float", "low": 1e-3, "high": 0.3, "log": True},
        "max_sampled": {"type": "int", "low": 5, "high": 100, "log": True},
    }

    def __init__(self, config: Any = None, backend: Any = None):
        super().__init__(config, backend)
        if self.config.kos_k > self.config.kos_n:
            raise ConfigError(f"kos_k={self.config.kos_k} is larger than kos_n={self.config.kos_n}",
                              hint="pick kos_k <= kos_n (the k-th highest of n sampled positives)")

    def _epoch_lr(self, epoch: int) -> float:
        lr = self.config.learning_rate
        return lr / float(np.sqrt(1.0 + epoch)) if self.config.schedule == "invscaling" else lr

    def _epoch_runner(self, plan: Any, U: Any, V: Any, b: Any):
        """One WARP epoch on the backend's kernels (``warp_epoch``: Hogwild on the CPU,
        mini-batches on the GPU) with this epoch's learning rate; records the share of
        positives that found a violating negative."""
        cfg = self.config
        adagrad = cfg.schedule == "adagrad"
        xp = self.backend.xp
        # adagrad accumulators start at 1 (LightFM); 1x1 placeholders otherwise.
        GU = xp.ones(U.shape if adagrad else (1, 1), xp.float32)
        GV = xp.ones(V.shape if adagrad else (1, 1), xp.float32)
        Gb = xp.ones(b.shape[0] if adagrad else 1, xp.float32)
        self.epoch_update_rate: list[float] = []

        def run(epoch: int) -> float:
            loss, rate, _ = self.backend.kernels.warp_epoch(plan, U, V, b, GU, GV, Gb, self._epoch_lr(epoch),
                                                            cfg.regularization, adagrad, cfg.max_sampled, cfg.seed,
                                                            epoch, cfg.kos_k, cfg.kos_n)
            self.epoch_update_rate.append(rate)
            return loss

        return run

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        cfg = self.config
        return self.backend.kernels.warp_fold_in(history.indptr, history.indices, self.item_factors, self.item_bias,
                                                 cfg.fold_in_epochs, cfg.learning_rate, cfg.regularization,
                                                 cfg.schedule == "adagrad", cfg.max_sampled, cfg.seed)
