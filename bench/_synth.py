"""Generated implicit-feedback data for the speed benchmarks (no download needed)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def zipf_interactions(n_users: int = 100_000, n_items: int = 20_000, nnz: int = 5_000_000,
                      item_exponent: float = 1.0, user_exponent: float = 0.5,
                      seed: int = 0) -> sp.csr_matrix:
    """A binary user x item CSR with exactly ``nnz`` distinct interactions.

    Item popularity follows a Zipf law ``p(rank r) ∝ r**-item_exponent`` and user
    activity a milder one (``user_exponent``); item and user ids are shuffled so that
    popularity is not correlated with the index. Duplicated pairs are dropped and more
    pairs are drawn until ``nnz`` distinct ones exist.
    """
    rng = np.random.default_rng(seed)
    p_items = 1.0 / np.arange(1, n_items + 1) ** item_exponent
    p_items /= p_items.sum()
    p_users = 1.0 / np.arange(1, n_users + 1) ** user_exponent
    p_users /= p_users.sum()
    item_perm = rng.permutation(n_items)
    user_perm = rng.permutation(n_users)
    keys = np.empty(0, dtype=np.int64)
    while len(keys) < nnz:
        draw = int((nnz - len(keys)) * 1.3) + 1000
        users = user_perm[rng.choice(n_users, size=draw, p=p_users)].astype(np.int64)
        items = item_perm[rng.choice(n_items, size=draw, p=p_items)].astype(np.int64)
        keys = np.unique(np.concatenate([keys, users * n_items + items]))
    keys = rng.choice(keys, size=nnz, replace=False)
    rows, cols = np.divmod(keys, n_items)
    m = sp.csr_matrix((np.ones(nnz, dtype=np.float32), (rows, cols)), shape=(n_users, n_items))
    m.sort_indices()
    return m
