"""recli.metrics over arrays vs the slow references, on hypothesis-generated cases:
ties in gain, |relevant| < k, users without recommendations, k larger than the list."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recli.errors import InputError
from recli.metrics import Evaluator, evaluate_arrays
from recli.metrics.beyond import gini
from tests import reference_metrics as ref

RANKING = ["precision", "recall", "f1", "ndcg", "map", "mrr", "hit", "auc"]


@st.composite
def cases(draw, with_train=True):
    n_items = draw(st.integers(1, 24))
    n_users = draw(st.integers(1, 7))
    ks = sorted(set(draw(st.lists(st.integers(1, 8), min_size=1, max_size=3))))
    items = st.lists(st.integers(0, n_items - 1), unique=True, max_size=min(n_items, 10))
    lists = [draw(items) for _ in range(n_users)]                       # may be empty or > k
    rel = [{i: float(draw(st.integers(1, 3))) for i in draw(items)} for _ in range(n_users)]  # gain ties
    train = [draw(items) for _ in range(n_users)] if with_train and draw(st.booleans()) else None
    return n_items, ks, lists, rel, train


def _arrays(lists, rel, train, width):
    rec = np.full((len(lists), max(width, 1)), -1, dtype=np.int32)
    for u, items in enumerate(lists):
        rec[u, : min(len(items), width)] = items[:width]
    t_ptr = np.cumsum([0] + [len(r) for r in rel])
    t_idx = np.array([i for r in rel for i in sorted(r)], dtype=np.int32)
    t_gain = np.array([r[i] for r in rel for i in sorted(r)], dtype=np.float64)
    s = None
    if train is not None:
        s = (np.cumsum([0] + [len(t) for t in train]), np.array([i for t in train for i in sorted(t)], dtype=np.int32))
    return rec, t_ptr, t_idx, t_gain, s


def _check(values, expected):
    for got, want in zip(values, expected):
        if math.isnan(want):
            assert math.isnan(got)
        else:
            assert got == pytest.approx(want, abs=1e-12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.booleans(), st.booleans())
def test_ranking_metrics_match_reference(case, graded, compat):
    n_items, ks, lists, rel, train = case
    kmax = ks[-1]
    rec, t_ptr, t_idx, t_gain, s = _arrays(lists, rel, train, kmax + 2)  # wider than k: gets cut
    ev = Evaluator(t_ptr, t_idx, ks, RANKING, n_items=n_items, truth_gain=t_gain if graded else None,
                   train_indptr=None if s is None else s[0], train_indices=None if s is None else s[1],
                   compat="implicit" if compat else None, keep_per_user=True)
    res = ev.add(rec).result()
    evaluated = [u for u in range(len(lists)) if rel[u]]
    assert list(res.user_rows) == evaluated
    for j, key in enumerate(res.per_user_keys):
        name, k = key.split("@")[0], int(key.split("@")[1])
        if compat and name == "auc" and any(k - len(lists[u][:k]) > n_items - len(rel[u]) - len(set(lists[u][:k]) - set(rel[u]))
                                            for u in evaluated):
            continue  # implicit's padding-as-miss needs enough unlisted negatives to be well defined
        want = [ref.per_user(name, lists[u], rel[u], k, n_items=n_items, train=None if train is None else train[u],
                             graded=graded, compat=compat) for u in evaluated]
        _check(res.per_user[:, j], want)
        ok = [w for w in want if not math.isnan(w)]
        if compat and name == "precision" and evaluated:
            hits = sum(want[x] * min(k, len(rel[u])) for x, u in enumerate(evaluated))
            agg = hits / sum(min(k, len(rel[u])) for u in evaluated)
        else:
            agg = sum(ok) / len(ok) if ok else float("nan")
        _check([res.values[key]], [agg])
        assert res.users[key] == len(ok)


@settings(max_examples=100, deadline=None)
@given(cases(), st.data())
def test_beyond_accuracy_match_reference(case, data):
    n_items, ks, lists, rel, train = case
    counts = [data.draw(st.integers(0, 5)) for _ in range(n_items)]
    n_train_users = max(counts + [1]) + data.draw(st.integers(0, 3))
    features = [data.draw(st.lists(st.integers(0, 4), unique=True, max_size=3)) for _ in range(n_items)]
    f_ptr = np.cumsum([0] + [len(f) for f in features])
    f_idx = np.array([x for f in features for x in sorted(f)], dtype=np.int32)
    rec, t_ptr, t_idx, _, _ = _arrays(lists, rel, None, ks[-1])
    names = ["coverage", "gini", "novelty", "popularity", "ild"]
    ev = Evaluator(t_ptr, t_idx, ks, names, n_items=n_items, item_counts=np.array(counts),
                   n_train_users=n_train_users, item_features=(f_ptr, f_idx), keep_per_user=True)
    res = ev.add(rec).result()
    evaluated = [u for u in range(len(lists)) if rel[u]]
    values = {"novelty": ref.novelty_values(counts, n_train_users), "popularity": [float(c) for c in counts]}
    for j, key in enumerate(res.per_user_keys):
        name, k = key.split("@")[0], int(key.split("@")[1])
        want = [ref.per_user(name, lists[u], rel[u], k, n_items=n_items, item_values=values, features=features)
                for u in evaluated]
        _check(res.per_user[:, j], want)
    for k in ks:
        top = [lists[u] for u in evaluated]
        _check([res.values[f"coverage@{k}"]], [ref.coverage(top, k, n_items)])
        rec_counts = [sum(1 for t in top if i in t[:k]) for i in range(n_items)]
        _check([res.values[f"gini@{k}"]], [ref.gini(rec_counts)])


def test_batches_equal_one_call_and_rows_select_users():
    rng = np.random.default_rng(3)
    n_users, n_items, k = 50, 40, 10
    rec = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)]).astype(np.int32)
    rec[5, 4:] = -1
    t_ptr = np.cumsum([0] + [int(x) for x in rng.integers(0, 6, n_users)])
    t_idx = np.concatenate([np.sort(rng.choice(n_items, t_ptr[u + 1] - t_ptr[u], replace=False))
                            for u in range(n_users)]).astype(np.int32)
    names = ["precision", "recall", "ndcg", "map", "mrr", "hit", "auc", "coverage", "gini"]
    whole = evaluate_arrays(rec, t_ptr, t_idx, [5, 10], names, n_items=n_items)
    ev = Evaluator(t_ptr, t_idx, [5, 10], names, n_items=n_items)
    for start in range(0, n_users, 16):  # batches of users scored against the full truth
        ev.add(rec[start:start + 16], rows=np.arange(start, min(start + 16, n_users)))
    batched = ev.result().values
    assert batched.keys() == whole.keys()
    for key in whole:
        assert batched[key] == pytest.approx(whole[key], abs=1e-12)


@pytest.mark.parametrize("row, message", [
    ([1, 2, 1], "same item twice"),
    ([1, 99, 2], "n_items"),
    ([1, -1, 2], "after -1 padding"),
])
def test_bad_lists_are_rejected(row, message):
    rec = np.array([row], dtype=np.int32)
    with pytest.raises(InputError, match=message):
        evaluate_arrays(rec, np.array([0, 1]), np.array([1]), [3], n_items=10)


def test_unsorted_truth_rows_are_sorted_with_their_gains():
    rec = np.array([[3, 1, 2]], dtype=np.int32)
    a = evaluate_arrays(rec, np.array([0, 2]), np.array([2, 1]), [3], ["ndcg"], n_items=4, truth_gain=np.array([1.0, 5.0]))
    b = evaluate_arrays(rec, np.array([0, 2]), np.array([1, 2]), [3], ["ndcg"], n_items=4, truth_gain=np.array([5.0, 1.0]))
    assert a == b


def test_gini_extremes():
    assert gini([3, 3, 3, 3]) == 0.0
    assert gini([0, 0, 0, 8]) == pytest.approx(0.75)
    assert math.isnan(gini([0, 0]))


@pytest.mark.parametrize("with_data", [False, True])
def test_sorted_keys_is_a_stable_sort_of_the_keys(with_data):
    """The counting sort by row gives the order of ``np.argsort(keys, kind="stable")``, with
    repeated pairs (kept in input order) and rows long enough for the merge-sort branch."""
    from recli.kernels.metrics import sorted_keys

    rng = np.random.default_rng(3)
    n_rows, n_cols = 50, 40
    rows = np.concatenate([rng.integers(0, n_rows, 3000), np.full(200, 7)])  # row 7 is long
    cols = rng.integers(0, n_cols, rows.size)
    data = rng.integers(0, 5, rows.size).astype(np.float64) if with_data else np.zeros(0)
    keys, values = sorted_keys(rows, cols, data, n_rows, n_cols)
    ref = rows * n_cols + cols
    order = np.argsort(ref, kind="stable")
    np.testing.assert_array_equal(keys, ref[order])
    if with_data:
        np.testing.assert_array_equal(values, data[order])
