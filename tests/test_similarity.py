"""The similarity engine against the dense references, for every measure × weighting."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recli.kernels import similarity
from recli.kernels.similarity import topk_rows
from recli.models._similarity import build_similarity
from recli.models._weighting import MEASURES, WEIGHTINGS, apply_weighting, fit_weighting, weighted_pair
from tests.reference_similarity import ml100k_matrix, similarity_dense, topk_dense


def random_matrix(seed: int, n_rows: int = 14, n_cols: int = 11, density: float = 0.35,
                  integer: bool = False) -> sp.csr_matrix:
    """Random sparse entities × features matrix with an empty row and an empty column."""
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n_rows, n_cols)) < density,
                     rng.integers(1, 4, (n_rows, n_cols)) if integer else rng.uniform(0.2, 5.0, (n_rows, n_cols)), 0.0)
    dense[2, :] = 0.0  # an empty entity: no neighbours, neighbour of none
    dense[:, 3] = 0.0  # an empty feature
    return sp.csr_matrix(dense.astype(np.float32))


def as_rows(s: sp.csr_matrix) -> list[list[tuple[int, float]]]:
    return [list(zip(s.indices[s.indptr[r]:s.indptr[r + 1]].tolist(),
                     s.data[s.indptr[r]:s.indptr[r + 1]].tolist())) for r in range(s.shape[0])]


def assert_same_topk(got, want, rtol=2e-5):
    assert len(got) == len(want)
    for r, (g, w) in enumerate(zip(got, want)):
        assert [j for j, _ in g] == [j for j, _ in w], f"row {r}: {g} != {w}"
        np.testing.assert_allclose([v for _, v in g], [v for _, v in w], rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("weighting", WEIGHTINGS)
@pytest.mark.parametrize("measure", MEASURES)
def test_every_measure_and_weighting_matches_reference(measure, weighting):
    x = random_matrix(seed=len(measure) * 7 + len(weighting))
    shrink = 0.0 if measure == "dot" else 0.5
    dense = x.toarray()
    # no pruning (k >= n): every neighbour and its score must match
    want = topk_dense(similarity_dense(dense, measure, weighting, shrink=shrink, alpha=0.3), k=x.shape[0])
    got = as_rows(build_similarity(x, k=x.shape[0], measure=measure, weighting=weighting, shrink=shrink,
                                   alpha=0.3, threads=2))
    assert_same_topk(got, want)
    assert got[2] == [] and all(j != 2 for row in got for j, _ in row)  # the empty entity


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("seed", [0, 1])
def test_pruned_topk_matches_reference(measure, seed):
    x = random_matrix(seed=100 + seed, n_rows=30, n_cols=20, density=0.3)
    want = topk_dense(similarity_dense(x.toarray(), measure, "bm25", alpha=0.7, k1=1.5, b=0.6), k=4)
    got = as_rows(build_similarity(x, k=4, measure=measure, weighting="bm25", alpha=0.7, k1=1.5, b=0.6, threads=2))
    assert_same_topk(got, want)


def test_ties_are_broken_by_lower_index():
    # binary data: many exactly equal cosines; pruning must keep the lowest indices
    x = random_matrix(seed=5, n_rows=40, n_cols=6, density=0.5, integer=True)
    x.data[:] = 1.0
    for k in (1, 3, 7):
        want = topk_dense(similarity_dense(x.toarray(), "cosine"), k)
        got = as_rows(build_similarity(x, k=k, measure="cosine", threads=2))
        assert_same_topk(got, want, rtol=0)
        assert any(len({v for _, v in row}) < len(row) for row in got if row) or k == 1


def test_pruning_keeps_exactly_the_k_largest_of_the_full_output():
    x = random_matrix(seed=9, n_rows=50, n_cols=8, density=0.4, integer=True)
    full = as_rows(build_similarity(x, k=49, measure="jaccard", threads=1))
    for k in (1, 2, 5, 10):
        got = as_rows(build_similarity(x, k=k, measure="jaccard", threads=2))
        for g, f in zip(got, full):
            assert g == sorted(f, key=lambda t: (-t[1], t[0]))[:k]


def test_result_does_not_depend_on_threads():
    x = random_matrix(seed=3, n_rows=200, n_cols=50, density=0.1)
    a = build_similarity(x, k=5, measure="asymmetric_cosine", alpha=0.8, threads=1)
    b = build_similarity(x, k=5, measure="asymmetric_cosine", alpha=0.8, threads=2)
    assert (a != b).nnz == 0 and np.array_equal(a.indices, b.indices)


def test_output_is_bounded_csr():
    x = random_matrix(seed=4, n_rows=60, n_cols=30)
    s = build_similarity(x, k=3, threads=2)
    assert s.shape == (60, 60) and s.dtype == np.float32
    assert s.indices.dtype == np.int32
    assert np.diff(s.indptr).max() <= 3
    assert np.all(s.indices != np.repeat(np.arange(60), np.diff(s.indptr)))  # never itself


def test_topk_rows_heap_keeps_k_largest_ties_by_index():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, (20, 15)).astype(np.float32)  # many ties
    idx, val, counts = topk_rows(scores, 5)
    for r in range(20):
        order = np.lexsort((np.arange(15), -scores[r]))[:5]
        assert idx[r].tolist() == order.tolist()
        assert val[r].tolist() == scores[r, order].tolist()
    assert counts.tolist() == [5] * 20


def test_k_must_be_positive():
    with pytest.raises(ValueError):
        build_similarity(random_matrix(0), k=0)


def sparse_long_matrix(seed: int, n_rows: int = 600, n_cols: int = 1500) -> sp.csr_matrix:
    """Many entities with few features each (1–60, skewed), so most rows take the kernel's
    touched-list path and long rows reach the prefetch look-ahead."""
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.lognormal(1.5, 0.9, n_rows).astype(int) + 1, 60)
    rows = np.repeat(np.arange(n_rows), lengths)
    cols = np.concatenate([rng.choice(n_cols, m, replace=False, p=None) for m in lengths])
    vals = rng.integers(1, 6, rows.size).astype(np.float32)
    return sp.csr_matrix((vals, (rows, cols)), shape=(n_rows, n_cols))


@pytest.mark.parametrize("measure, explicit_zero", [("cosine", False), ("cosine", True), ("pearson", False)])
def test_sparse_rows_match_reference(measure, explicit_zero):
    # explicit_zero: a stored 0.0 (and pearson's negative values) switch the kernel from its
    # "acc == 0 means untouched" shortcut to the stamp array; both must agree with the reference
    x = sparse_long_matrix(seed=11)
    if explicit_zero:
        x.data[::97] = 0.0
    want = topk_dense(similarity_dense(x.toarray(), measure), k=6)
    for threads in (1, 2):
        got = as_rows(build_similarity(x, k=6, measure=measure, threads=threads))
        assert_same_topk(got, want)


def two_per_row(seed: int, n_rows: int = 300, n_cols: int = 40) -> sp.csr_matrix:
    """Binary, exactly two features per entity: cosines take a handful of values, so almost
    every cut-off falls inside a tie, and rows are sparse enough (each touches ~30 of 300
    others) that the kernel lists touched entities instead of scanning them."""
    rng = np.random.default_rng(seed)
    cols = np.stack([rng.choice(n_cols, 2, replace=False) for _ in range(n_rows)]).ravel()
    rows = np.repeat(np.arange(n_rows), 2)
    return sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n_rows, n_cols))


@pytest.mark.parametrize("k", [1, 4, 15, 40])
def test_ties_on_the_sparse_path_are_broken_by_lower_index(k):
    x = two_per_row(seed=k)
    want = topk_dense(similarity_dense(x.toarray(), "cosine"), k)
    for threads in (1, 2):
        got = as_rows(build_similarity(x, k=k, measure="cosine", threads=threads))
        assert_same_topk(got, want, rtol=0)


@pytest.mark.parametrize("measure", ["pearson", "adjusted_cosine"])
def test_trailing_empty_rows_are_centred_safely(measure):
    # the row means once came from np.add.reduceat, which fails on a trailing empty row
    x = random_matrix(seed=21, n_rows=12, n_cols=9, density=0.5)
    x = sp.vstack([x, sp.csr_matrix((2, 9), dtype=np.float32)]).tocsr()
    want = topk_dense(similarity_dense(x.toarray(), measure), k=3)
    got = as_rows(build_similarity(x, k=3, measure=measure, threads=2))
    assert_same_topk(got, want)
    assert got[-1] == [] and got[-2] == []


@pytest.mark.parametrize("weighting", ["tfidf", "bm25"])
def test_weighted_pair_gives_the_bits_of_apply_weighting_in_both_orientations(weighting):
    x = random_matrix(seed=7, n_rows=40, n_cols=25, density=0.3)
    rows_w, feats_w = weighted_pair(x, x.T.tocsr(), weighting, k1=1.5, b=0.6)
    want = apply_weighting(x, weighting, fit_weighting(x, weighting), k1=1.5, b=0.6).astype(np.float32)
    assert rows_w.dtype == np.float32 and feats_w.dtype == np.float32
    np.testing.assert_array_equal(rows_w.toarray(), want.toarray())
    np.testing.assert_array_equal(feats_w.toarray(), want.T.toarray())


@pytest.mark.parametrize("weighting", ["tfidf", "bm25"])
@pytest.mark.parametrize("measure", ["cosine", "dot", "jaccard"])
def test_weighted_build_with_features_matches_the_transposing_path(measure, weighting):
    x = random_matrix(seed=11, n_rows=30, n_cols=20, density=0.3)
    args = dict(k=5, measure=measure, weighting=weighting, shrink=0.5, k1=1.5, b=0.6, threads=2)
    got = build_similarity(x, features=x.T.tocsr(), **args)
    want = build_similarity(x, **args)  # prepare_rows (float64), then the kernel's own transpose
    assert as_rows(got) == as_rows(want)
    assert_same_topk(as_rows(got), topk_dense(similarity_dense(x.toarray(), measure, weighting, shrink=0.5,
                                                               k1=1.5, b=0.6), k=5))


def test_the_accumulator_is_float32_only_where_its_sums_are_exact():
    def dtype(values, n_rows=3):
        data = np.asarray(values, np.float32)
        return similarity._accumulator_dtype(np.linspace(0, data.size, n_rows + 1).astype(np.int64), data)

    assert dtype([1, 1, 1, 1, 1, 1]) is np.float32  # binary
    assert dtype([5, -3, 2, 4, 1, 1]) is np.float32  # small integers, either sign
    assert dtype([1, 1, 1.5, 1, 1, 1]) is np.float64  # a fraction
    assert dtype([4096, 1, 1, 1, 1, 1]) is np.float64  # 4096² · 2 features > 2^24
    assert dtype([4096, 1, 1], n_rows=3) is np.float32  # one feature each: 4096² = 2^24


@pytest.mark.parametrize("measure, binary", [("cosine", False), ("cosine", True), ("dot", False),
                                             ("jaccard", True)])
def test_the_float32_accumulator_gives_the_float64_bits_on_movielens(ml100k, monkeypatch, measure, binary):
    x = ml100k_matrix(ml100k)
    if binary:
        x.data[:] = 1.0
    items = x.T.tocsr()
    assert similarity._accumulator_dtype(items.indptr, items.data) is np.float32
    got = build_similarity(items, k=100, measure=measure, threads=2, features=x)
    monkeypatch.setattr(similarity, "_accumulator_dtype", lambda indptr, data: np.float64)
    want = build_similarity(items, k=100, measure=measure, threads=2, features=x)
    assert np.array_equal(got.indptr, want.indptr) and np.array_equal(got.indices, want.indices)
    assert np.array_equal(got.data.view(np.uint32), want.data.view(np.uint32))
