"""A tiny item-item model used only by the CLI tests of ``--explain`` and
``--similar-items`` (registered by monkeypatching the registry in those tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from recli.models.base import Model, param


@dataclass
class CooccurConfig:
    shrink: float = param(1.0, "added to the co-occurrence norm", min=0.0)


class Cooccur(Model):
    """S = XᵀX / (norms + shrink), diagonal removed; score(u) = x_u S."""

    name: ClassVar[str] = "cooccur"
    summary: ClassVar[str] = "test-only item co-occurrence model"
    Config: ClassVar[type] = CooccurConfig
    can_fold_in: ClassVar[bool] = True
    can_explain: ClassVar[bool] = True

    def fit(self, user_items, on_epoch=None):
        X = sp.csr_matrix(user_items, dtype=np.float32)
        self.n_users, self.n_items = X.shape
        C = (X.T @ X).toarray()
        np.fill_diagonal(C, 0.0)
        self.S = (C / (C.sum(axis=1, keepdims=True) + self.config.shrink)).astype(np.float32)
        self.X = X
        self._report(on_epoch, 1, 0.0, None)
        return self

    def score(self, uidx, history=None):
        rows = np.zeros((len(uidx), self.n_items), np.float32)
        known = np.asarray(uidx) >= 0
        rows[known] = self.X[np.asarray(uidx)[known]].toarray()
        if history is not None:
            rows[~known] = sp.csr_matrix(history)[np.flatnonzero(~known)].toarray()
        return rows @ self.S

    def similar_items(self, iidx):
        return self.S[np.asarray(iidx)]

    def explain(self, uidx, history_items, history_values, items):
        return (np.asarray(history_values)[None, :] * self.S[np.ix_(history_items, items)].T).astype(np.float32)

    def to_arrays(self):
        X = self.X
        return {"S": self.S, "indptr": X.indptr.astype(np.int64), "indices": X.indices.astype(np.int32),
                "data": X.data.astype(np.float32)}

    @classmethod
    def from_arrays(cls, config, arrays, backend=None):
        m = cls(config, backend)
        m.S = np.asarray(arrays["S"])
        m.n_items = m.S.shape[0]
        n_users = arrays["indptr"].shape[0] - 1
        m.X = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=(n_users, m.n_items))
        return m
