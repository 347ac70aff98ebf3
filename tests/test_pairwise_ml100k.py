"""Quality floors for ``bpr`` and ``warp`` on MovieLens 100K (slow: real data).

Split: leave-random 20% per user, seed 42; relevant = every held-out row. The floors sit
well above implicit 0.7.3's BPR on the same split (NDCG@10 about 0.29 at its defaults, see
docs/benchmarks.md, recli bench --against implicit) and a little below what these short runs reach (~0.38 / ~0.335).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recli.backend import get_backend
from recli.models.base import build_config
from recli.models.bpr import BPR
from recli.models.warp import WARP


def split(path):
    raw = np.loadtxt(path, dtype=np.int64, usecols=(0, 1))
    users = np.unique(raw[:, 0], return_inverse=True)[1]
    items = np.unique(raw[:, 1], return_inverse=True)[1]
    rng = np.random.default_rng(42)
    test = np.zeros(len(users), dtype=bool)
    order = np.argsort(users, kind="stable")
    for rows in np.split(order, np.flatnonzero(np.diff(users[order])) + 1):
        test[rng.choice(rows, size=int(round(0.2 * len(rows))), replace=False)] = True
    shape = (int(users.max()) + 1, int(items.max()) + 1)

    def csr(mask):
        return sp.csr_matrix((np.ones(mask.sum(), np.float32), (users[mask], items[mask])), shape=shape)

    return csr(~test), csr(test)


def ndcg_precision_at_10(scores, train, test):
    scores = scores.copy()
    scores[train.toarray() > 0] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    disc = 1.0 / np.log2(np.arange(2, 12))
    ndcg, prec = [], []
    for u in range(test.shape[0]):
        truth = test.indices[test.indptr[u]:test.indptr[u + 1]]
        hits = np.isin(top[u], truth)
        ndcg.append((hits * disc).sum() / disc[:min(len(truth), 10)].sum())
        prec.append(hits.mean())
    return float(np.mean(ndcg)), float(np.mean(prec))


@pytest.mark.slow
@pytest.mark.parametrize("cls, params, floor_ndcg, floor_prec", [
    (BPR, {"factors": 32, "iterations": 40}, 0.34, 0.29),
    (WARP, {"factors": 32, "iterations": 10}, 0.35, 0.30),
])
def test_ml100k_quality_floor(ml100k, cls, params, floor_ndcg, floor_prec):
    train, test = split(ml100k)
    model = cls(build_config(cls.Config, params, cls.name), get_backend("cpu", 1)).fit(train)
    ndcg, prec = ndcg_precision_at_10(model.score(np.arange(train.shape[0]), None), train, test)
    assert ndcg >= floor_ndcg and prec >= floor_prec, (ndcg, prec)
