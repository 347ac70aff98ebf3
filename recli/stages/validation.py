"""Scoring a fitted model with :class:`recli.metrics.Evaluator`, batch by batch.

One pass serves ``recli train --valid`` (the ``--valid-metric`` after every epoch) and
``recli eval --model`` (every ranking metric, no CSV round trip): scores come from
``model.score`` in batches, the top-k kernel of the model's backend skips each user's training items by reading
the training CSR in place, and the lists go straight into the Evaluator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from recli.backend import device_batch_rows, model_kernels
from recli.data.matrix import csr_arrays


def add_model_lists(ev: Any, model: Any, uidx: np.ndarray, rows: np.ndarray, kmax: int,
                    seen: tuple[np.ndarray, np.ndarray] | None, batch_size: int = 1024, exact: bool = True) -> None:
    """Feed ``ev`` the top-``kmax`` lists of model users ``uidx`` as truth rows ``rows``.

    ``seen = (indptr, indices)`` is the training CSR whose items are excluded (``None``:
    nothing excluded). Memory is bounded by ``batch_size x n_items`` scores. ``exact=False``
    lets a factor model score by BLAS (``model.score_unordered``): the lists ``recommend``
    would serve up to the last bits of the scores, which can reorder near-ties.
    """
    kernels = model_kernels(model)
    topk = kernels.topk
    fused = getattr(model, "top_k", None)  # factor models: scores and top-k in one pass, no score matrix
    unordered = None if exact else getattr(model, "score_unordered", None)
    batch_size = device_batch_rows(kernels, batch_size, model.n_items)
    indptr, indices = seen if seen is not None else (None, None)
    for start in range(0, uidx.shape[0], batch_size):
        batch = np.ascontiguousarray(uidx[start:start + batch_size], dtype=np.int64)
        rows_seen = batch if seen is not None else None
        if unordered is not None:
            scores = unordered(batch)
            if seen is not None:  # the batch's own score matrix: seen items become -inf, which top-k skips
                _mask_seen(scores, batch, indptr, indices)
            items, _ = topk(scores, kmax)
        elif fused is not None:
            items, _ = fused(batch, None, kmax, rows_seen, indptr, indices)
        else:
            items, _ = topk(model.score(batch, None), kmax, rows_seen, indptr, indices)
        ev.add(items, np.ascontiguousarray(rows[start:start + batch_size], dtype=np.int64), validate=False)


def _mask_seen(scores: np.ndarray, users: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> None:
    """``scores[r, i] = -inf`` for every item ``i`` in user ``users[r]``'s row of the CSR."""
    starts, ends = indptr[users], indptr[users + 1]
    lens = (ends - starts).astype(np.int64)
    total = int(lens.sum())
    if total:
        offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens) + np.arange(total)
        scores[np.repeat(np.arange(users.shape[0]), lens), indices[offsets]] = -np.inf


def validation_score(model: Any, valid: sp.csr_matrix, train: sp.csr_matrix, metric: str = "ndcg",
                     k: int | None = 10, batch_size: int = 1024, exact: bool = True) -> float:
    """The validation ``metric`` (at ``k``) of ``model``.

    Ranking and beyond-accuracy metrics (coverage, novelty, …): the mean over users with
    at least one validation item, binary relevance (``recli eval --list-metrics``), items
    seen in ``train`` excluded from the ranking; 0.0 when no user has validation items. Rating metrics (rmse, mae): over every
    validation pair, predictions clipped to the training range as ``recommend --pairs`` does.
    ``exact=False``: see :func:`add_model_lists`.
    """
    from recli.metrics import METRICS, Evaluator, rating_errors
    from recli.metrics.registry import metric_key

    valid = sp.csr_matrix(valid)
    t_indptr, t_indices, t_data = csr_arrays(train)
    if METRICS[metric].kind == "rating":
        coo = valid.tocoo()
        predicted = model.score_pairs(coo.row, coo.col, batch_size)
        if t_data.size:
            predicted = np.clip(predicted, t_data.min(), t_data.max())
        return rating_errors(predicted, coo.data)[metric]
    users = np.flatnonzero(np.diff(valid.indptr) > 0)
    if users.size == 0:
        return 0.0
    # novelty and popularity read TRAIN item popularity (rows are the same users)
    needs_train = "train" in METRICS[metric].needs
    seen = {"train_indptr": t_indptr.astype(np.int64), "train_indices": t_indices} if needs_train else {}
    ev = Evaluator(valid.indptr.astype(np.int64), valid.indices.astype(np.int32), [k], [metric],
                   n_items=valid.shape[1], **seen)
    add_model_lists(ev, model, users, users, k, (t_indptr, t_indices), batch_size, exact)
    return float(ev.result().values[metric_key(metric, k)])
