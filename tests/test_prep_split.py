"""Split invariants (hypothesis) and the k-core against a brute-force reference (issue #2)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recli.data.clean import CleanOptions
from recli.data.filter import core_mask
from recli.data.split import STRATEGIES, Size, parse_size, split_mask
from recli.errors import ConfigError
from recli.stages.prep import PrepOptions, prep_table

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def logs(draw, min_rows=2, max_rows=60):
    """Raw string tables: few users/items (so duplicates and ties happen), small timestamps."""
    n = draw(st.integers(min_rows, max_rows))
    n_users = draw(st.integers(1, 8))
    n_items = draw(st.integers(1, 10))
    users = draw(st.lists(st.integers(0, n_users - 1), min_size=n, max_size=n))
    items = draw(st.lists(st.integers(0, n_items - 1), min_size=n, max_size=n))
    ratings = draw(st.lists(st.integers(1, 5), min_size=n, max_size=n))
    ts = draw(st.lists(st.integers(0, 20), min_size=n, max_size=n))
    return pl.DataFrame({"user": [f"u{u:03d}" for u in users], "item": [f"i{i:03d}" for i in items],
                         "rating": [str(r) for r in ratings], "timestamp": [str(t) for t in ts]})


def _rows(df: pl.DataFrame) -> list[tuple]:
    return sorted(df.select("user", "item", "rating", "timestamp").rows())


def _clean(raw: pl.DataFrame) -> pl.DataFrame:
    return prep_table(raw, PrepOptions()).frames["data"]


def _split(raw: pl.DataFrame, strategy: str, size: float, seed: int = 0, valid: float | None = None):
    return prep_table(raw, PrepOptions(split=strategy, test_size=size, valid_size=valid, seed=seed)).frames


sizes = st.sampled_from([0.2, 0.5, 1, 2])


@SETTINGS
@given(raw=logs(min_rows=3), strategy=st.sampled_from(STRATEGIES), size=sizes, seed=st.integers(0, 3))
def test_split_partitions_the_cleaned_data(raw, strategy, size, seed):
    clean = _clean(raw)
    if strategy == "user-ratio" and size >= 1:
        size = 0.5
    try:
        frames = _split(raw, strategy, size, seed)
    except Exception as exc:  # only the documented refusals are allowed
        assert "leaves the test set empty" in str(exc) or "leaves no rows to train on" in str(exc)
        return
    train, test = frames["train"], frames["test"]
    pairs_train = set(zip(train["user"], train["item"]))
    pairs_test = set(zip(test["user"], test["item"]))
    assert not pairs_train & pairs_test                      # train ∩ test = ∅ (pairs are unique after dedupe)
    assert _rows(pl.concat([train, test])) == _rows(clean)   # train ∪ test = cleaned data
    if strategy in ("user-ratio", "leave-last", "leave-random"):
        assert set(test["user"]) <= set(train["user"])      # per-user splits keep >= 1 train row per user
    if strategy == "temporal":
        assert train["timestamp"].max() <= test["timestamp"].min()
    if strategy == "leave-last":
        last_train = train.group_by("user").agg(pl.col("timestamp").max().alias("t_train"))
        first_test = test.group_by("user").agg(pl.col("timestamp").min().alias("t_test"))
        both = last_train.join(first_test, on="user")
        assert (both["t_train"] <= both["t_test"]).all()     # each user's latest rows are in test


@SETTINGS
@given(raw=logs(min_rows=6), strategy=st.sampled_from(["random", "temporal", "leave-last", "leave-random"]),
       seed=st.integers(0, 3))
def test_validation_is_carved_from_train(raw, strategy, seed):
    clean = _clean(raw)
    try:
        frames = _split(raw, strategy, 0.3 if strategy in ("random", "temporal") else 1, seed, valid=0.3)
    except Exception as exc:
        assert "empty" in str(exc) or "no rows to train on" in str(exc)
        return
    parts = [frames["train"], frames["valid"], frames["test"]]
    assert _rows(pl.concat(parts)) == _rows(clean)
    if strategy == "temporal":
        assert frames["train"]["timestamp"].max() <= frames["valid"]["timestamp"].min()
        assert frames["valid"]["timestamp"].max() <= frames["test"]["timestamp"].min()


@SETTINGS
@given(raw=logs(min_rows=3), strategy=st.sampled_from(STRATEGIES), seed=st.integers(0, 100))
def test_same_seed_same_split(raw, strategy, seed):
    try:
        a = _split(raw, strategy, 0.5, seed)
    except Exception:
        return
    b = _split(raw, strategy, 0.5, seed)
    for name in a:
        assert a[name].equals(b[name])


def test_different_seed_gives_a_different_random_split():
    rng = np.random.default_rng(0)
    raw = pl.DataFrame({"user": [f"u{u}" for u in rng.integers(0, 50, 2000)],
                        "item": [f"i{i}" for i in rng.integers(0, 200, 2000)]})
    for strategy in ("random", "user-ratio", "leave-random"):
        a = _split(raw, strategy, 0.3, seed=1)["test"]
        b = _split(raw, strategy, 0.3, seed=2)["test"]
        assert a.height > 0 and not a.equals(b), strategy


def test_temporal_fraction_counts_ties_at_the_cut():
    raw = pl.DataFrame({"user": ["a", "b", "c", "d", "e"], "item": ["x"] * 5, "timestamp": ["1", "2", "3", "3", "4"]})
    res = prep_table(raw, PrepOptions(split="temporal", test_size=0.4))
    assert res.frames["test"]["user"].to_list() == ["d", "e"]   # file order breaks the tie at t=3
    assert res.report["split"]["cut_timestamp"] == 3
    assert res.report["split"]["ties_at_cut"] == 2
    assert res.report["split"]["ties_in_train"] == 1


def test_temporal_cut_date():
    raw = pl.DataFrame({"user": ["a", "b", "c"], "item": ["x"] * 3,
                        "timestamp": ["2024-01-01", "2024-02-01", "2024-03-01T10:00:00"]})
    res = prep_table(raw, PrepOptions(split="temporal", cut_date="2024-02-01"))
    assert res.frames["test"]["user"].to_list() == ["b", "c"]
    assert res.report["split"]["ties_at_cut"] == 1


def test_leave_last_k_and_cold_counts():
    raw = pl.DataFrame({"user": ["a"] * 4 + ["b"], "item": ["1", "2", "3", "4", "5"],
                        "timestamp": ["4", "3", "2", "1", "9"]})
    res = prep_table(raw, PrepOptions(split="leave-last", test_size=2))
    assert sorted(res.frames["test"]["item"].to_list()) == ["1", "2"]   # a's two latest; b keeps its only row
    assert res.report["split"]["cold_items_in_test"] == 2


def test_drop_cold_removes_unseen_users_and_items():
    raw = pl.DataFrame({"user": ["a", "b", "b", "c"], "item": ["1", "2", "1", "3"], "timestamp": ["1", "2", "3", "4"]})
    res = prep_table(raw, PrepOptions(split="temporal", test_size=2, drop_cold=True))
    test = res.frames["test"]
    assert test.height == 1 and test.row(0)[:2] == ("b", "1")   # (c, 3) was cold on both sides
    assert res.report["dropped"]["cold user or item in test (--drop-cold)"] == 1


@pytest.mark.parametrize("value, expected", [("0.2", Size(fraction=0.2)), (1, Size(k=1)), ("5", Size(k=5))])
def test_parse_size(value, expected):
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["0", "1.5", "-1", "abc", "1e9.5"])
def test_parse_size_refuses(value):
    with pytest.raises(ConfigError):
        parse_size(value)


def test_split_mask_random_size_is_exact():
    mask, _ = split_mask("random", Size(fraction=0.25), np.zeros(100, dtype=np.int64), None,
                         np.random.default_rng(0))
    assert mask.sum() == 25


# ---- k-core vs brute force -------------------------------------------------------------------

def brute_force_core(users: list[int], items: list[int], min_user: int, min_item: int) -> set[int]:
    """Remove one violating row at a time until none is left (obviously correct, slow)."""
    alive = set(range(len(users)))
    changed = True
    while changed:
        changed = False
        for r in sorted(alive):
            n_u = sum(1 for s in alive if users[s] == users[r])
            n_i = sum(1 for s in alive if items[s] == items[r])
            if n_u < min_user or n_i < min_item:
                alive.discard(r)
                changed = True
                break
    return alive


@SETTINGS
@given(data=st.data())
def test_k_core_matches_brute_force(data):
    n = data.draw(st.integers(0, 40))
    users = data.draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    items = data.draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    min_user, min_item = data.draw(st.integers(0, 4)), data.draw(st.integers(0, 4))
    res = core_mask(np.array(users, dtype=np.int64), np.array(items, dtype=np.int64), min_user, min_item, iterate=True)
    assert set(np.flatnonzero(res.keep).tolist()) == brute_force_core(users, items, min_user, min_item)
    assert res.dropped_user + res.dropped_item == n - int(res.keep.sum())


def test_single_pass_filter_uses_the_input_counts():
    # user 0 has 2 rows; item 1 has 1 row. One pass drops the item-1 row only; the k-core then
    # also drops user 0's remaining row (now 1 interaction).
    users = np.array([0, 0, 1, 1])
    items = np.array([0, 1, 0, 0])
    one = core_mask(users, items, 2, 2, iterate=False)
    assert one.keep.tolist() == [True, False, True, True]
    core = core_mask(users, items, 2, 2, iterate=True)
    assert core.keep.tolist() == [False, False, True, True] and core.passes >= 2


def test_test_pairs_already_seen_in_train_are_counted_without_dedupe():
    raw = pl.DataFrame({"user": ["a", "a", "a", "b"], "item": ["x", "y", "x", "y"], "timestamp": ["1", "2", "3", "4"]})
    res = prep_table(raw, PrepOptions(split="temporal", test_size=2, clean=CleanOptions(dedupe="none")))
    assert res.report["split"]["test_pairs_seen_in_train"] == 1      # (a, x) at t=3; (b, y) is new
    res = prep_table(raw, PrepOptions(split="temporal", test_size=2))
    assert res.report["split"]["test_pairs_seen_in_train"] == 0
