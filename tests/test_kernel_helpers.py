"""The helpers the kernels share: atomic work claiming, prefetching, the fixed-size heap,
binary search, chunk bounds and the BPR/WARP sampling pieces, against plain references."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from numba import njit, prange

from recli.kernels._atomics import fetch_add
from recli.kernels._chunks import balanced_bounds
from recli.kernels._heap import heap_push, heap_sort
from recli.kernels._prefetch import prefetch_at
from recli.kernels._search import slice_contains, slice_find
from recli.kernels.random_streams import draw_negative, next_below, shuffle_slice, stream_state


@njit(parallel=True)
def _claim_all(counter, claims, parts):
    for _t in prange(parts):
        while True:
            c = fetch_add(counter, 0, 1)
            if c >= claims.shape[0]:
                break
            claims[c] += 1


def test_fetch_add_hands_out_every_index_exactly_once():
    old = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        claims = np.zeros(200_000, np.int64)
        counter = np.zeros(1, np.int64)
        _claim_all(counter, claims, 2)
    finally:
        numba.set_num_threads(old)
    assert claims.min() == 1 and claims.max() == 1
    assert counter[0] == claims.size + 2  # each thread's last, failed claim counts too


@njit
def _prefetch_then_sum(a):
    s = 0.0
    for i in range(a.shape[0]):
        prefetch_at(a, i + 64)  # past the end: a prefetch never faults
        s += a[i]
    return s


def test_prefetch_at_never_changes_results():
    a = np.arange(1000, dtype=np.float64)
    assert _prefetch_then_sum(a) == a.sum()


# -- the fixed-size heap, binary search, chunk bounds and sampling helpers -------------
def heap_topk_reference(scores, k):
    """The k best ``(score, index)`` pairs, best first: higher score, then lower index."""
    pairs = [(float(s), j) for j, s in enumerate(scores)]
    return sorted(pairs, key=lambda t: (-t[0], t[1]))[:k]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 3, 8, 40])
def test_heap_keeps_the_k_best_with_ties_by_lower_index(seed, k):
    rng = np.random.default_rng(seed)
    scores = rng.integers(-3, 4, 30).astype(np.float32)  # many ties
    scores[rng.random(30) < 0.1] = -np.inf
    if seed % 2:  # offer in a random order, not by increasing index
        order = rng.permutation(30)
    else:
        order = np.arange(30)
    vals = np.zeros(k, np.float32)
    idx = np.full(k, -1, np.int32)
    n = 0
    for j in order:
        n = heap_push(vals, idx, n, scores[j], j)
    heap_sort(vals, idx, n)
    want = heap_topk_reference(scores, k)
    assert list(zip(vals[:n].tolist(), idx[:n].tolist())) == want


@pytest.mark.parametrize("seed", range(4))
def test_slice_search_matches_a_linear_scan(seed):
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(50, 20, replace=False)).astype(np.int32)
    for lo, hi in [(0, 20), (3, 11), (7, 7), (19, 20)]:
        for value in range(-1, 52):
            where = [p for p in range(lo, hi) if indices[p] == value]
            assert slice_find(indices, lo, hi, value) == (where[0] if where else -1)
            assert slice_contains(indices, lo, hi, value) == bool(where)


@pytest.mark.parametrize("row_cost", [0, 8])
@pytest.mark.parametrize("n_chunks", [1, 3, 7, 50])
def test_balanced_bounds_minimise_the_largest_chunk_within_one_row(row_cost, n_chunks):
    rng = np.random.default_rng(n_chunks)
    counts = rng.zipf(1.6, 40).clip(max=200)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    bounds = balanced_bounds(indptr, n_chunks, row_cost)
    assert bounds[0] == 0 and bounds[-1] == 40 and np.all(np.diff(bounds) >= 0)
    assert len(bounds) == min(n_chunks, 40) + 1
    cost = counts + row_cost
    cum = np.concatenate([[0], np.cumsum(cost)])
    total = cum[-1]
    for c in range(1, len(bounds) - 1):
        # each inner bound is the first row at which the cost so far reaches its share
        target = total * c / (len(bounds) - 1)
        b = bounds[c]
        assert cum[b] >= target - 1e-9 and (b == 0 or cum[b - 1] < target)


@njit
def _shuffle(order, lo, hi, seed):
    return shuffle_slice(stream_state(seed, 0, 0), order, lo, hi)


def test_shuffle_slice_is_fisher_yates_on_the_slice_only():
    order = np.arange(12, dtype=np.int64)
    _shuffle(order, 3, 10, np.uint64(4))
    # the reference: Fisher–Yates over positions 3..9 with the same stream's draws
    want = np.arange(12, dtype=np.int64)
    state = np.uint64(stream_state(np.uint64(4), 0, 0))
    for p in range(9, 3, -1):
        state, r = next_below(state, p - 3 + 1)
        state = np.uint64(state)
        want[[p, 3 + r]] = want[[3 + r, p]]
    np.testing.assert_array_equal(order, want)
    assert sorted(order[3:10].tolist()) == list(range(3, 10))


def test_draw_negative_skips_positives_and_gives_up_after_max_draws():
    row = np.array([0, 1, 2, 3, 5, 6, 7], dtype=np.int32)  # item 4 is the only negative
    state = np.uint64(stream_state(np.uint64(1), 0, 0))
    state, j, draws = draw_negative(state, row, 0, len(row), 8, 1000)
    assert j == 4 and draws >= 1
    full = np.arange(8, dtype=np.int32)
    _, j, draws = draw_negative(np.uint64(state), full, 0, 8, 8, 5)
    assert j == -1 and draws == 5


@pytest.mark.parametrize("n_chunks", [1, 2, 7])
def test_parallel_transpose_equals_scipy(n_chunks):
    """The CSR of Mᵀ, rows sorted, whatever the chunking; empty rows and columns kept."""
    import scipy.sparse as sp

    from recli.kernels.transpose import transpose_csr

    m = sp.random(40, 25, density=0.2, format="csr", random_state=5, dtype=np.float32)
    m = m.tolil()
    m[3, :] = 0  # an empty row: an empty column of the transpose
    m[:, 7] = 0  # an empty column: an empty row of the transpose
    m = m.tocsr()
    m.sort_indices()
    indptr, indices, data = transpose_csr(m.indptr, m.indices, m.data, m.shape[1], n_chunks)
    want = m.T.tocsr()
    want.sort_indices()
    assert indptr.dtype == np.int64 and indices.dtype == np.int32 and data.dtype == np.float32
    np.testing.assert_array_equal(indptr, want.indptr)
    np.testing.assert_array_equal(indices, want.indices)
    np.testing.assert_array_equal(data, want.data)
    empty = transpose_csr(np.zeros(4, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), 3, n_chunks)
    assert empty[0].tolist() == [0, 0, 0, 0] and empty[1].size == 0
