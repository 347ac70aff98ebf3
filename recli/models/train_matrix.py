"""``TrainMatrixModel``: the base of models that score from the training matrix itself
(``itemknn``, ``userknn``, ``ease``)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recli.models.base import Model, csr_from_prefix, split_batch


class TrainMatrixModel(Model):
    """Keeps the training matrix as ``train`` and, when loaded, takes it from the model
    file (see ``from_arrays`` in :mod:`recli.models.base`) instead of storing a copy
    among its own arrays. A user's row is all it needs, so new users are scored from
    their history row directly."""

    can_fold_in: ClassVar[bool] = True
    trains_in_epochs: ClassVar[bool] = False  # similarities / a closed form, in one pass
    train: sp.csr_matrix

    def _keep_train(self, user_items: Any) -> None:
        from recli.data.matrix import as_csr

        self.train = as_csr(user_items)
        self.n_users, self.n_items = self.train.shape

    @classmethod
    def _with_train(cls, config: Any, arrays: dict[str, np.ndarray], backend: Any = None):
        model = cls(config, backend)
        model.train = csr_from_prefix("train", arrays)
        model.n_users, model.n_items = model.train.shape
        return model

    def batch_rows(self, uidx: np.ndarray, history: Any) -> sp.csr_matrix:
        """Row ``i`` = the training row of user ``uidx[i]``, or ``history[i]`` when
        ``uidx[i] == -1`` (see :func:`recli.models.base.split_batch`)."""
        uidx, new, hist = split_batch(uidx, history, self.n_users, self.n_items)
        rows = self.train[np.where(uidx >= 0, uidx, 0)]
        if hist is None:
            return rows
        keep = sp.diags((uidx >= 0).astype(np.float32))
        # scatter the history rows to their batch positions
        place = sp.csr_matrix((np.ones(new.size, np.float32), (new, np.arange(new.size))),
                              shape=(uidx.shape[0], new.size))
        out = (keep @ rows + place @ hist).tocsr()
        out.eliminate_zeros()
        out.sort_indices()
        return out
