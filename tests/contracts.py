"""The contract every registered model passes, and the synthetic data it is checked on.

The data is block-structured (implicit's checker board, in blocks): users of block ``b``
interacted with every item of block ``b`` except one, and with nothing else. A
personalised model must rank that one held-out item first; a non-personalised one
(``personalized = False``) must follow item popularity. Models are fitted with their
class's ``test_params`` (small and fast), one thread and a fixed seed; a model that learns
from side features (``uses_features``) is also given :func:`block_features`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from recli.artifacts import ModelFile
from recli.backend import get_backend, threads_context
from recli.data.matrix import csr_arrays
from recli.data.side import SideFeatures
from recli.data.vocab import Vocab
from recli.models.base import Model, build_config

N_BLOCKS, USERS_PER_BLOCK, ITEMS_PER_BLOCK = 3, 8, 5
SEED = 7


def block_matrix() -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """``(user_items, block of each user, held-out item of each user)``; the last block's
    items get one extra interaction each from a few users (so popularity has an order)."""
    rows, cols, held = [], [], []
    for b in range(N_BLOCKS):
        items = np.arange(b * ITEMS_PER_BLOCK, (b + 1) * ITEMS_PER_BLOCK)
        for j in range(USERS_PER_BLOCK):
            u = b * USERS_PER_BLOCK + j
            out = items[j % ITEMS_PER_BLOCK]
            held.append(out)
            for i in items:
                if i != out:
                    rows.append(u)
                    cols.append(i)
    n_users, n_items = N_BLOCKS * USERS_PER_BLOCK, N_BLOCKS * ITEMS_PER_BLOCK
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    m.sort_indices()
    blocks = np.repeat(np.arange(N_BLOCKS), USERS_PER_BLOCK)
    return m, blocks, np.array(held)


def item_block(items: np.ndarray) -> np.ndarray:
    return np.where(items >= 0, items // ITEMS_PER_BLOCK, -1)


def config_for(cls: type[Model], **overrides: Any) -> Any:
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    params = dict(getattr(cls, "test_params", {}) or {})
    if "seed" in fields:
        params.setdefault("seed", SEED)
    params.update(overrides)
    return build_config(cls.Config, params, cls.name)


def block_features(side: str, n: int) -> SideFeatures:
    """Synthetic side features of ``n`` items (users): a feature naming the id's block and
    an identity feature per id (LightFM's convention), value 1 each."""
    per_block = ITEMS_PER_BLOCK if side == "item" else USERS_PER_BLOCK
    names = np.array(sorted({f"block={b}" for b in range(N_BLOCKS)} | {f"{side}={i:03d}" for i in range(n)}))
    rows = np.repeat(np.arange(n), 2)
    cols = np.searchsorted(names, [name for i in range(n) for name in (f"block={i // per_block}", f"{side}={i:03d}")])
    m = sp.csr_matrix((np.ones(rows.shape[0], np.float32), (rows, cols)), shape=(n, names.shape[0]))
    m.sort_indices()
    return SideFeatures(m, names)


def features_frame(side: str, n: int) -> pl.DataFrame:
    """:func:`block_features` in the long form ``side, feature, value`` of a feature file,
    with the ids of :func:`model_file` (``u000``…, ``i000``…)."""
    feats = block_features(side, n)
    coo = feats.matrix.tocoo()
    return pl.DataFrame({side: [f"{side[0]}{i:03d}" for i in coo.row], "feature": feats.names[coo.col].tolist(),
                         "value": coo.data})


def fit_kwargs(cls: type[Model], matrix: sp.csr_matrix) -> dict[str, Any]:
    """What ``fit`` is given besides the matrix: the block features of each side a model
    with ``uses_features`` reads (nothing for other models)."""
    if not cls.uses_features:
        return {}
    sizes = {"item": matrix.shape[1], "user": matrix.shape[0]}
    return {f"{side}_features": block_features(side, sizes[side]) for side in cls.feature_sides}


def fit(cls: type[Model], matrix: sp.csr_matrix, threads: int = 1, **overrides: Any) -> Model:
    backend = get_backend("cpu", threads)
    model = cls(config_for(cls, **overrides), backend)
    with threads_context(threads):
        model.fit(matrix, **fit_kwargs(cls, matrix))
    return model


def model_file(model: Model, matrix: sp.csr_matrix) -> ModelFile:
    """An in-memory ModelFile (ids ``u000``…, ``i000``…, sorting like their indices)."""
    users = Vocab(pl.Series([f"u{i:03d}" for i in range(matrix.shape[0])]))
    items = Vocab(pl.Series([f"i{i:03d}" for i in range(matrix.shape[1])]))
    return ModelFile(model, users, items, csr_arrays(matrix), {"model": model.name})


def recommend_all(mf: ModelFile, k: int, batch_size: int = 1024, include_seen: bool = False,
                  users: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(items, scores) arrays of shape (n_users, min(k, n_items)) through the recommend stage."""
    from recli.stages.recommend import UserPlan, recommend_batches

    uidx = np.arange(len(mf.users), dtype=np.int64) if users is None else users.astype(np.int64)
    plan = UserPlan([mf.users.ids[int(u)] for u in uidx], uidx, None)
    items, scores = [], []
    with threads_context(1):
        for _, it, sc in recommend_batches(mf, plan, k, include_seen=include_seen, batch_size=batch_size):
            items.append(it)
            scores.append(sc)
    return np.vstack(items), np.vstack(scores)


def popularity_order(matrix: sp.csr_matrix, row: int) -> np.ndarray:
    """Items by decreasing count (ties: lower index), minus the user's seen items."""
    counts = np.bincount(matrix.indices, minlength=matrix.shape[1])
    order = np.lexsort((np.arange(matrix.shape[1]), -counts))
    seen = set(matrix.indices[matrix.indptr[row]:matrix.indptr[row + 1]].tolist())
    return np.array([i for i in order if i not in seen])
