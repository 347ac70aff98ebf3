"""``ease``: Embarrassingly Shallow Autoencoder (Steck, WWW 2019), closed form.

    P = (XᵀX + λI)⁻¹,    B = I − P · diag(1 / diag(P))    (so diag(B) = 0)

and ``score(u) = x_u · B``. ``B`` is a dense items × items matrix, so the fit needs about
three items² float64 matrices (Gram, inverse, float32 copy and BLAS workspace): the memory
is estimated first and the fit refused with the estimate when it exceeds the available
memory or ``max_memory``. On a GPU the solve runs on the device
(:mod:`recli.kernels.ease_xp`) and the device memory plan (``gpu_memory``) checks it instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from recli.device_memory import format_bytes, parse_bytes
from recli.errors import ConfigError
from recli.models.base import param
from recli.models.train_matrix import TrainMatrixModel


@dataclass
class EASEConfig:
    lambda_: float = param(500.0, "L2 regularisation λ added to the diagonal of XᵀX", min=0.0, exclusive_min=True)
    max_memory: str = param("", "refuse to fit above this memory estimate, e.g. 2GB (empty = available memory)")


def available_memory() -> int:
    """Available memory in bytes (psutil when installed, else /proc/meminfo)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62  # unknown: do not refuse


def memory_estimate(n_items: int) -> int:
    """Bytes the fit needs: about three dense items × items float64 matrices."""
    return int(n_items) * int(n_items) * 8 * 3


def check_memory(n_items: int, max_memory: str) -> None:
    need = memory_estimate(n_items)
    limit, what = (parse_bytes(max_memory, "max_memory"), f"max_memory={max_memory}") if max_memory else \
        (available_memory(), "the available memory")
    if need > limit:
        raise ConfigError(
            f"EASE on {n_items} items needs about {format_bytes(need)} (3 dense {n_items}×{n_items} float64 "
            f"matrices), more than {what} ({format_bytes(limit)})",
            hint="use itemknn for large catalogues, drop rare items before training, "
                 "or raise --param max_memory")


class EASE(TrainMatrixModel):
    name: ClassVar[str] = "ease"
    summary: ClassVar[str] = "EASE (Steck 2019): closed-form item–item linear model, dense items × items"
    Config: ClassVar[type] = EASEConfig
    devices: ClassVar[tuple[str, ...]] = ("cpu", "gpu")  # the dense solve runs on the backend's kernels
    can_explain: ClassVar[bool] = True
    negative_values: ClassVar[str] = "enter XᵀX and the scores with their sign (a dislike lowers the items like it)"
    test_params: ClassVar[dict] = {"lambda_": 10.0}
    search_space: ClassVar[dict] = {"lambda": {"type": "float", "low": 1.0, "high": 1e4, "log": True}}

    weights: np.ndarray

    def fit(self, user_items: Any, on_epoch: Any = None) -> "EASE":
        from recli.backend import threads_context

        start = time.perf_counter()
        self._keep_train(user_items)
        if self.backend.device == "cpu":  # on a GPU the device memory plan (gpu_memory) checks the solve
            check_memory(self.n_items, self.config.max_memory)
        t = self.train
        with threads_context(self.backend.threads, numba=False):
            try:
                self.weights = self.backend.kernels.ease_weights(t.indptr, t.indices, t.data, self.n_items,
                                                                 float(self.config.lambda_))
            except np.linalg.LinAlgError:
                raise ConfigError("the regularised Gram matrix is not positive definite",
                                  hint="increase lambda_") from None
        self._report(on_epoch, 1, start, None)
        return self

    def score(self, uidx: np.ndarray, history: Any = None) -> np.ndarray:
        rows = self.batch_rows(uidx, history)
        return np.asarray(rows @ self.weights, dtype=np.float32)

    def similar_items(self, iidx: np.ndarray) -> np.ndarray:
        """Row ``i`` of ``B``: how much having item ``i`` adds to every other item's score."""
        return self.weights[np.asarray(iidx, np.int64)].astype(np.float32)

    def explain(self, uidx: int, history_items: np.ndarray, history_values: np.ndarray,
                items: np.ndarray) -> np.ndarray:
        """``C[j, h] = r_h · B[h, items[j]]``: rows sum to the scores of ``items``."""
        sub = self.weights[np.asarray(history_items, np.int64)][:, np.asarray(items, np.int64)]
        return (sub.astype(np.float64) * np.asarray(history_values, np.float64)[:, None]).T.astype(np.float32)

    @classmethod
    def gpu_memory(cls, config: Any, user_items: Any) -> Any:
        """The CSR (float64 values) and the dense ``items²`` solve
        (:data:`recli.kernels.ease_xp.BYTES_PER_CELL` per item pair) on the device."""
        from recli.device_memory import MemoryEstimate
        from recli.kernels.ease_xp import BYTES_PER_CELL

        n_items = user_items.shape[1]
        return MemoryEstimate({"training matrix": 12 * int(user_items.nnz) + 4 * (user_items.shape[0] + 1),
                               "dense solve": BYTES_PER_CELL * n_items * n_items})

    @classmethod
    def stored_bytes(cls, config: Any, n_users: int, n_items: int) -> int:
        return 4 * n_items * n_items  # the dense float32 item-item weight matrix

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}  # train comes from the model file

    @classmethod
    def from_arrays(cls, config: Any, arrays: dict[str, np.ndarray], backend: Any = None) -> "EASE":
        model = cls._with_train(config, arrays, backend)
        model.weights = np.asarray(arrays["weights"], dtype=np.float32)
        return model
