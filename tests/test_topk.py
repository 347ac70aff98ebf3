"""Both top-k kernels against the reference: seen filtering, bans, ties, k > n_items."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recli.kernels.topk import topk
from recli.kernels.topk_xp import topk_xp
from tests.reference_topk import topk_reference

KERNELS = {"numba": topk, "xp-numpy": topk_xp}


def _case(seed, B=13, n=40, ties=False, nan=False):
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((B, n)).astype(np.float32)
    if ties:  # few distinct values: many ties, also at the k-th place
        scores = rng.integers(0, 4, (B, n)).astype(np.float32)
    if nan:
        scores[rng.random((B, n)) < 0.1] = np.nan
        scores[rng.random((B, n)) < 0.05] = -np.inf
    seen = sp.random(B + 5, n, density=0.3, random_state=seed, format="csr")
    seen.sort_indices()
    rows = rng.integers(-1, B + 5, B)
    banned = (rng.random(n) < 0.2).astype(np.uint8)
    return scores, rows, seen.indptr.astype(np.int64), seen.indices.astype(np.int32), banned


@pytest.mark.parametrize("name", list(KERNELS))
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 5, 17, 40, 100])
def test_matches_reference(name, seed, k):
    scores, rows, indptr, indices, banned = _case(seed, ties=seed % 2 == 0, nan=seed % 3 == 0)
    want = topk_reference(scores, k, rows, indptr, indices, banned)
    got = KERNELS[name](scores, k, rows, indptr, indices, banned)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("name", list(KERNELS))
def test_no_filters_and_padding(name):
    scores = np.array([[1.0, 3.0, 3.0, 2.0], [np.nan, -np.inf, 5.0, 5.0]], dtype=np.float32)
    items, values = KERNELS[name](scores, 10)
    assert items.shape == (2, 4)  # k clipped to the catalogue
    np.testing.assert_array_equal(items, [[1, 2, 3, 0], [2, 3, -1, -1]])
    np.testing.assert_array_equal(values[1, 2:], [-np.inf, -np.inf])


@pytest.mark.parametrize("name", list(KERNELS))
def test_all_seen_gives_empty_row(name):
    scores = np.ones((1, 3), dtype=np.float32)
    items, _ = KERNELS[name](scores, 2, np.array([0]), np.array([0, 3], np.int64), np.array([0, 1, 2], np.int32))
    assert (items == -1).all()


def test_scores_not_modified_and_empty_batch():
    scores = np.random.default_rng(0).random((3, 9)).astype(np.float32)
    before = scores.copy()
    topk(scores, 3, banned=np.ones(9, np.uint8))
    topk_xp(scores, 3, banned=np.ones(9, np.uint8))
    np.testing.assert_array_equal(scores, before)
    items, values = topk(np.zeros((0, 9), np.float32), 3)
    assert items.shape == (0, 3)


def test_bad_arguments():
    with pytest.raises(ValueError):
        topk(np.zeros((2, 3), np.float32), 0)
    with pytest.raises(ValueError):
        topk(np.zeros((2, 3), np.float32), 1, banned=np.zeros(5, np.uint8))
