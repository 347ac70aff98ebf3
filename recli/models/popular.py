"""``popular``: recommend the most popular items, optionally over a recent time window.

The score of item ``i`` is the number of distinct users who interacted with it
(``measure=users``) or the sum of the interaction values (``measure=sum``), counted over
all training interactions or, with ``window_days=D``, only over cells whose latest
timestamp is within ``D`` days of the latest timestamp in the training data. Everyone
gets the same ranking (minus their own seen items), so any user — known or new — can be
scored: it is also what ``recli recommend --fallback popular`` serves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from recli.errors import ArtifactError, ConfigError, InputError
from recli.models.base import EpochCallback, Model, param

SECONDS_PER_DAY = 86400.0


@dataclass
class PopularConfig:
    window_days: float = param(0.0, "count only the last N days before the newest interaction (0 = all time; needs timestamps)",
                               min=0.0)
    measure: str = param("users", "users: distinct users per item; sum: sum of interaction values", choices=("users", "sum"))


def popularity(user_items: Any, measure: str = "users", timestamps: np.ndarray | None = None,
               window_days: float = 0.0) -> np.ndarray:
    """Per-item popularity (float32, length ``n_items``) as described in the module doc."""
    import scipy.sparse as sp

    from recli.data.csr import item_counts

    ui = sp.csr_matrix(user_items)
    keep = slice(None)
    if window_days > 0:
        if timestamps is None:
            raise ConfigError("popular with window_days needs timestamps, and the training data has none",
                              hint="add a timestamp column to TRAIN (recli prep keeps it), or set --param window_days=0")
        ts = np.asarray(timestamps, dtype=np.float64)
        keep = ts >= ts.max() - window_days * SECONDS_PER_DAY
    weights = None if measure == "users" else ui.data[keep].astype(np.float64)
    return item_counts(ui.indices[keep], ui.shape[1], weights)


class Popular(Model):
    """Most-popular baseline (the same list for everyone, seen items removed)."""

    name: ClassVar[str] = "popular"
    summary: ClassVar[str] = "most-popular items, optionally over a recent time window"
    Config: ClassVar[type] = PopularConfig
    can_fold_in: ClassVar[bool] = True
    personalized: ClassVar[bool] = False
    trains_in_epochs: ClassVar[bool] = False
    negative_values: ClassVar[str] = "count as interactions with measure=users and lower the sum with measure=sum"
    test_params: ClassVar[dict] = {}
    search_space: ClassVar[dict] = {"measure": {"type": "choice", "values": ["users", "sum"]}}

    def __init__(self, config: Any = None, backend: Any = None):
        super().__init__(config, backend)
        self.popularity = np.zeros(0, dtype=np.float32)

    def fit(self, user_items: Any, on_epoch: EpochCallback | None = None, *,
            timestamps: np.ndarray | None = None) -> "Popular":
        import scipy.sparse as sp

        start = time.perf_counter()
        ui = sp.csr_matrix(user_items)
        if ui.nnz == 0:
            raise InputError("the training matrix has no interactions", hint="check the training file is not empty")
        self.n_users, self.n_items = ui.shape
        self.popularity = popularity(ui, self.config.measure, timestamps, self.config.window_days)
        self._report(on_epoch, 1, start, None)
        return self

    def score(self, uidx: np.ndarray, history: Any = None) -> np.ndarray:
        """The popularity row for every user: history does not change it."""
        n = np.asarray(uidx).shape[0]
        return np.tile(self.popularity, (n, 1))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"popularity": self.popularity}

    @classmethod
    def from_arrays(cls, config: Any, arrays: dict[str, np.ndarray], backend: Any = None) -> "Popular":
        if "popularity" not in arrays:
            raise ArtifactError("the model file has no 'popularity' array", hint="retrain the model with recli train")
        model = cls(config, backend)
        model.popularity = np.asarray(arrays["popularity"], dtype=np.float32)
        model.n_items = model.popularity.shape[0]
        return model
