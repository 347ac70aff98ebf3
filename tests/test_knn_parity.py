"""itemknn against implicit 0.7.3's item–item models on MovieLens 100K.

implicit ranks each item among its own candidates (the diagonal is stored and counts
towards K), so where the item is among its own K best, implicit's ``K`` neighbourhood is
recli's ``K - 1`` neighbours. For cosine that is every item (its self-similarity is the
maximum, 1); for BM25's dot product an item can have neighbours that outscore itself, and
implicit then keeps K of them. The check: recli's ``K - 1`` scores of every row equal the
best ``K - 1`` of implicit's row without the item itself, and the neighbours are the same
wherever the boundary score is not tied (the two break ties their own way).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recli.models import get_model_class
from recli.models.base import build_config
from tests.reference_similarity import ml100k_matrix

implicit_nn = pytest.importorskip("implicit.nearest_neighbours")
pytestmark = pytest.mark.filterwarnings("ignore:Method expects CSR input")


def without_diagonal(s: sp.csr_matrix) -> sp.csr_matrix:
    s = sp.csr_matrix(s, dtype=np.float32, copy=True)
    s.setdiag(0)
    s.eliminate_zeros()
    s.sort_indices()
    return s


@pytest.mark.parametrize("similarity, weighting, peer", [
    ("cosine", "none", "CosineRecommender"),
    ("dot", "bm25", "BM25Recommender"),
])
def test_itemknn_equals_implicit_with_k_minus_one(ml100k, similarity, weighting, peer):
    x = ml100k_matrix(ml100k)
    k = 20
    theirs = getattr(implicit_nn, peer)(K=k, num_threads=1)
    theirs.fit(x, show_progress=False)
    cls = get_model_class("itemknn")

    def ours(neighbours):
        params = {"neighbours": neighbours, "similarity": similarity, "weighting": weighting}
        return cls(build_config(cls.Config, params, "itemknn")).fit(x).similarity

    mine, wide, want = ours(k - 1), ours(k), without_diagonal(theirs.similarity)
    untied_rows = 0
    for r in range(x.shape[1]):
        got, got_v = row(mine, r)
        exp, exp_v = row(want, r)
        exp, exp_v = exp[:k - 1], exp_v[:k - 1]
        np.testing.assert_allclose(got_v, exp_v, rtol=1e-4, atol=1e-6, err_msg=f"item {r}")
        kth = row(wide, r)[1]  # is the (K-1)-th best score tied with the next one?
        if len(kth) < k or not np.isclose(kth[k - 2], kth[k - 1], rtol=1e-5):
            untied_rows += 1
            assert set(got.tolist()) == set(exp.tolist()), f"item {r}"
    assert untied_rows > x.shape[1] // 2  # the index check ran on most items


def row(s: sp.csr_matrix, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Row ``r``'s (indices, scores), best first, ties by lower index."""
    idx, val = s.indices[s.indptr[r]:s.indptr[r + 1]], s.data[s.indptr[r]:s.indptr[r + 1]]
    order = np.lexsort((idx, -val))
    return idx[order], val[order]
