"""Validation metric used by ``recli train --valid`` (one function, swappable for
``recli.metrics`` once the evaluation issue lands)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from recli.data.matrix import csr_arrays


def validation_score(model: Any, valid: sp.csr_matrix, train: sp.csr_matrix, k: int = 10,
                     batch_size: int = 1024) -> float:
    """Mean NDCG@k over users with at least one validation item.

    Items seen in ``train`` are excluded from the ranking (as ``recommend`` does). With
    binary relevance ``rel`` (the user's validation items),
    ``DCG = Σ_{r ≤ k, item_r ∈ rel} 1 / log2(r + 1)`` and
    ``IDCG = Σ_{r ≤ min(k, |rel|)} 1 / log2(r + 1)``; a user's NDCG is ``DCG / IDCG``.
    Returns 0.0 when no user has validation items.
    """
    from recli.kernels.topk import topk

    valid = sp.csr_matrix(valid)
    users = np.flatnonzero(np.diff(valid.indptr) > 0)
    if users.size == 0:
        return 0.0
    indptr, indices, _ = csr_arrays(train)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    total = 0.0
    for start in range(0, users.size, batch_size):
        batch = users[start:start + batch_size]
        items, _ = topk(model.score(batch.astype(np.int64), None), k, batch, indptr, indices)
        for row, u in enumerate(batch):
            rel = valid.indices[valid.indptr[u]:valid.indptr[u + 1]]
            hits = np.isin(items[row], rel) & (items[row] >= 0)
            dcg = float(discounts[: hits.shape[0]][hits].sum())
            idcg = float(discounts[: min(k, rel.shape[0])].sum())
            total += dcg / idcg
    return total / users.size
