"""Side features of users or items: the long ``id, feature, value`` form ``recli prep``
writes (``item_features.parquet`` with columns ``item, feature, value``), as a sparse
matrix over a model's id vocabulary.

:class:`SideFeatures` is what a model that learns from features (``uses_features`` in
:mod:`recli.models.base`) receives in ``fit(..., item_features=, user_features=)``: row
``i`` is the feature vector of id ``i`` of the model's vocabulary (all rows present, an id
without features has an empty row), column ``j`` is the feature named ``names[j]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp


@dataclass
class SideFeatures:
    """``matrix``: CSR ``(n_ids, n_features)``, float32 values, int32 indices, sorted rows;
    ``names``: the feature vocabulary, a NumPy unicode array of ``n_features`` names."""

    matrix: sp.csr_matrix
    names: np.ndarray

    @property
    def n_features(self) -> int:
        return int(self.matrix.shape[1])
