"""``content``: content-based recommendation from item features.

With ``x_i`` item ``i``'s row of the item feature matrix (``train --item-features``), the
cell weights ``w_uh = v_uh · 0.5 ** ((t_max - t_uh) / half_life)`` (``v``: the cell's
value, or 1 for a value > 0 with ``values=binary``; ``t_max``: the newest training
timestamp; no decay with ``half_life_days=0``)::

    item profile   q_i = x_i / ||x_i||
    user profile   p_u = Σ_h w_uh q_h / ||Σ_h w_uh q_h||
    score(u, i)    = p_u · q_i                 (cosine similarity)
    similar(i, j)  = q_i · q_j

An item's profile comes from its features alone, so items nobody interacted with (cold
items: ids of the feature file without interactions) are scored like any other, and so
are new items outside the catalogue (``recommend --item-table``). A user's profile comes
from their history alone, so new users fold in from ``--history`` (without decay: a
history has no timestamps). ``score(u, i) = Σ_h w_uh (q_h · q_i) / ||Σ_h w_uh q_h||``
splits the score over history items, and ``Σ_f p_u[f] q_i[f]`` over features: both are
what ``--explain`` shows. Products are SciPy sparse products; it runs on the CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recli.data.side import SideFeatures
from recli.errors import ArtifactError, ConfigError, InputError
from recli.models.base import EpochCallback, param
from recli.models.train_matrix import TrainMatrixModel

SECONDS_PER_DAY = 86400.0
_PROFILES = "item_profiles"


@dataclass
class ContentConfig:
    values: str = param("rating", "rating: weigh each history item by its value (a negative value subtracts its "
                        "profile); binary: each value > 0 counts 1", choices=("rating", "binary"))
    half_life_days: float = param(0.0, "time decay of the history: an interaction half_life_days older than the "
                                  "newest one counts half (0 = no decay; needs timestamps)", min=0.0)


def unit_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    """``m`` with every row divided by its L2 norm (rows of norm 0 stay empty), float32."""
    m = sp.csr_matrix(m, dtype=np.float64)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    out = sp.csr_matrix(sp.diags(scale) @ m, dtype=np.float32)
    out.eliminate_zeros()
    out.sort_indices()
    return out


def decay_weights(timestamps: np.ndarray, half_life_days: float) -> np.ndarray:
    """``0.5 ** ((t_max - t) / half_life)`` per cell (``t_max``: the newest timestamp)."""
    ts = np.asarray(timestamps, dtype=np.float64)
    return np.power(0.5, (ts.max() - ts) / (half_life_days * SECONDS_PER_DAY)) if ts.size else ts


class Content(TrainMatrixModel):
    """Cosine between user profiles (weighted sums of item profiles) and item profiles."""

    name: ClassVar[str] = "content"
    summary: ClassVar[str] = "content-based: cosine between item feature profiles and the user's weighted profile"
    Config: ClassVar[type] = ContentConfig
    accepts_note: ClassVar[str] = "binary with values=binary"
    negative_values: ClassVar[str] = "subtract the item's profile from the user's (a dislike)"
    uses_features: ClassVar[bool] = True
    feature_sides: ClassVar[tuple[str, ...]] = ("item",)
    required_features: ClassVar[tuple[str, ...]] = ("item",)
    can_explain: ClassVar[bool] = True
    explains_features: ClassVar[bool] = True
    search_space: ClassVar[dict] = {"values": {"type": "choice", "values": ["rating", "binary"]},
                                    "half_life_days": {"type": "float", "low": 0.0, "high": 3650.0}}

    profiles: sp.csr_matrix  # q_i, row-normalised (n_items, n_features)
    names: np.ndarray
    cell_weights: np.ndarray | None = None  # decay weights aligned with the stored training cells

    @classmethod
    def accepted_values(cls, config: Any) -> str:
        return "binary" if config.values == "binary" else "real"

    def fit(self, user_items: Any, on_epoch: EpochCallback | None = None, *, timestamps: np.ndarray | None = None,
            item_features: SideFeatures | None = None, user_features: SideFeatures | None = None) -> "Content":
        start = time.perf_counter()
        if item_features is None:
            raise ConfigError("content scores items by their features, and none were given",
                              hint="pass --item-features FILE (item,feature,value rows, e.g. from recli prep)")
        self._keep_train(user_items)
        self._raw = self.train
        if item_features.matrix.shape[0] != self.n_items:
            raise InputError(f"the item features have {item_features.matrix.shape[0]} rows, the model "
                             f"{self.n_items} items", hint="build the features over the model's item vocabulary")
        self.cell_weights = None
        if self.config.half_life_days > 0:
            if timestamps is None:
                raise ConfigError("content with half_life_days needs timestamps, and the training data has none",
                                  hint="add a timestamp column to TRAIN (recli prep keeps it), or set "
                                       "--param half_life_days=0")
            self.cell_weights = decay_weights(timestamps, self.config.half_life_days).astype(np.float32)
        self.profiles = unit_rows(item_features.matrix)
        self.names = np.asarray(item_features.names, dtype=str)
        self._weigh()
        self.check_finite({"item profiles": self.profiles.data})
        self._report(on_epoch, 1, start, None)
        return self

    def _weigh(self) -> None:
        """``train`` becomes the weights ``w_uh`` of the training cells (zeros dropped)."""
        raw = self._raw
        data = self._values(np.asarray(raw.data, dtype=np.float32))
        if self.cell_weights is not None:
            data = data * self.cell_weights
        weighted = sp.csr_matrix((data, raw.indices, raw.indptr), shape=raw.shape)
        if not data.all():  # copies: the stored arrays may be read-only memory maps
            weighted = sp.csr_matrix((data, np.array(raw.indices), np.array(raw.indptr)), shape=raw.shape)
            weighted.eliminate_zeros()
        self.train = weighted
        self._profiles_t = self.profiles.T.tocsr()

    def _values(self, values: np.ndarray) -> np.ndarray:
        """The value rule: the value itself, or 1 for a value > 0 (``values=binary``)."""
        return (values > 0).astype(np.float32) if self.config.values == "binary" else values.astype(np.float32)

    # -- scoring --------------------------------------------------------------
    def _user_profiles(self, uidx: np.ndarray, history: Any) -> sp.csr_matrix:
        """``p_u`` of each user of the batch (history rows of new users weighted by the value rule)."""
        if history is not None:
            from recli.data.matrix import as_csr

            history = as_csr(history, n_cols=self.n_items, what="history")
            history.data = self._values(history.data)
        return unit_rows(self.batch_rows(uidx, history) @ self.profiles)

    def score(self, uidx: np.ndarray, history: Any = None) -> np.ndarray:
        return np.asarray((self._user_profiles(uidx, history) @ self._profiles_t).toarray(), dtype=np.float32)

    def score_new_items(self, uidx: np.ndarray, history: Any, item_features: Any) -> np.ndarray:
        """Cosine between the users' profiles and the new items' profiles."""
        if item_features.matrix.shape[1] != self.profiles.shape[1]:
            raise InputError(f"the new items have {item_features.matrix.shape[1]} feature columns, the model "
                             f"{self.profiles.shape[1]}", hint="build them over the model's feature vocabulary")
        new = unit_rows(item_features.matrix)
        return np.asarray((self._user_profiles(uidx, history) @ new.T).toarray(), dtype=np.float32)

    def similar_items(self, iidx: np.ndarray) -> np.ndarray:
        return np.asarray((self.profiles[np.asarray(iidx, np.int64)] @ self._profiles_t).toarray(), dtype=np.float32)

    def feature_names(self, side: str) -> np.ndarray | None:
        return self.names if side == "item" else None

    # -- explanations -----------------------------------------------------------
    def _history_weights(self, uidx: int, items: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``w_uh`` of the history items: a known user's stored weights (with decay), else the value rule."""
        if uidx < 0:
            return self._values(np.asarray(values, dtype=np.float32)).astype(np.float64)
        return self.train[int(uidx)][:, np.asarray(items, np.int64)].toarray().ravel().astype(np.float64)

    def _profile(self, uidx: int, history_items: np.ndarray, history_values: np.ndarray) -> tuple[Any, Any, float]:
        items = np.asarray(history_items, np.int64)
        w = self._history_weights(uidx, items, history_values)
        q_h = sp.csr_matrix(self.profiles[items], dtype=np.float64)
        p = np.asarray(q_h.T @ w).ravel()
        return w, q_h, float(np.sqrt(p @ p))

    def explain(self, uidx: int, history_items: np.ndarray, history_values: np.ndarray,
                items: np.ndarray) -> np.ndarray:
        """``C[j, h] = w_uh (q_h · q_j) / ||Σ_h w_uh q_h||``: rows sum to the scores of ``items``."""
        w, q_h, norm = self._profile(uidx, history_items, history_values)
        dots = (q_h @ sp.csr_matrix(self.profiles[np.asarray(items, np.int64)], dtype=np.float64).T).toarray()
        scale = 1.0 / norm if norm > 0 else 0.0
        return (w[:, None] * dots * scale).T.astype(np.float32)

    def explain_features(self, uidx: int, history_items: np.ndarray, history_values: np.ndarray,
                         items: np.ndarray) -> np.ndarray:
        """``F[j, f] = p_u[f] · q_j[f]``: rows sum to the scores of ``items``."""
        w, q_h, norm = self._profile(uidx, history_items, history_values)
        p = np.asarray(q_h.T @ w).ravel() / norm if norm > 0 else np.zeros(self.profiles.shape[1])
        q = sp.csr_matrix(self.profiles[np.asarray(items, np.int64)], dtype=np.float64)
        return np.asarray(q.multiply(p[None, :]).toarray(), dtype=np.float32)

    # -- persistence --------------------------------------------------------------
    @classmethod
    def stored_bytes(cls, config: Any, n_users: int, n_items: int) -> int:
        return 4 * n_items * 32  # about 32 (index, value) pairs per item profile

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = SideFeatures(self.profiles, self.names).to_arrays(_PROFILES)  # train: from the model file
        if self.cell_weights is not None:
            arrays["cell_weights"] = self.cell_weights
        return arrays

    @classmethod
    def from_arrays(cls, config: Any, arrays: dict[str, np.ndarray], backend: Any = None) -> "Content":
        model = cls._with_train(config, arrays, backend)
        stored = SideFeatures.from_arrays(_PROFILES, arrays)
        if stored is None:
            raise ArtifactError("the model file has no item profiles", hint="retrain the model with recli train")
        model.profiles, model.names = stored.matrix, stored.names
        model._raw = model.train
        weights = arrays.get("cell_weights")
        model.cell_weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        model._weigh()
        return model
