"""Cold-start splits: --split cold-items / cold-users hold out whole items (users), seeded."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recli.data.split import Size, split_mask
from recli.errors import ConfigError
from recli.stages.prep import PrepOptions, prep_table, validate


def _log(n_rows: int = 600, n_users: int = 30, n_items: int = 40, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"user": [f"u{u:02d}" for u in rng.integers(0, n_users, n_rows)],
                         "item": [f"i{i:02d}" for i in rng.integers(0, n_items, n_rows)],
                         "rating": [str(r) for r in rng.integers(1, 6, n_rows)]})


def _split(raw, strategy, size, seed=0, valid=None):
    return prep_table(raw, PrepOptions(split=strategy, test_size=size, valid_size=valid, seed=seed)).frames


@pytest.mark.parametrize("strategy,key", [("cold-items", "item"), ("cold-users", "user")])
def test_cold_split_holds_out_whole_ids(strategy, key):
    raw = _log()
    clean = prep_table(raw, PrepOptions()).frames["data"]
    frames = _split(raw, strategy, 0.25, valid=0.2)
    train, valid, test = frames["train"], frames["valid"], frames["test"]
    assert pl.concat([train, valid, test]).sort("user", "item").equals(clean.sort("user", "item"))
    n_ids = clean[key].n_unique()
    assert test[key].n_unique() == int(np.floor(0.25 * n_ids + 0.5))           # a fraction of the ids
    n_left = n_ids - test[key].n_unique()
    assert valid[key].n_unique() == int(np.floor(0.2 * n_left + 0.5))          # carved from what is left
    held = set(test[key]) | set(valid[key])
    assert not held & set(train[key])                                           # never seen in training
    assert not set(test[key]) & set(valid[key])
    for ident in set(test[key]):                                                # with all their interactions
        assert (clean[key] == ident).sum() == (test[key] == ident).sum()


@pytest.mark.parametrize("strategy", ["cold-items", "cold-users"])
def test_cold_split_is_seeded(strategy):
    raw = _log()
    a, b, c = (_split(raw, strategy, 0.3, seed=s)["test"] for s in (1, 1, 2))
    assert a.equals(b)
    assert not a.equals(c)


def test_cold_split_does_not_depend_on_row_order():
    raw = _log()
    shuffled = raw.sample(fraction=1.0, shuffle=True, seed=3)
    a = _split(raw, "cold-items", 0.3, seed=5)["test"]
    b = _split(shuffled, "cold-items", 0.3, seed=5)["test"]
    assert set(a["item"]) == set(b["item"])


def test_cold_split_count_and_codes_with_gaps():
    items = np.array([7, 3, 3, 9, 7, 7, 1])
    mask, info = split_mask("cold-items", Size(k=2), np.zeros(7, dtype=np.int64), None,
                            np.random.default_rng(0), items=items)
    held = set(items[mask].tolist())
    assert len(held) == 2 and held <= {1, 3, 7, 9}
    assert not held & set(items[~mask].tolist())
    assert info.strategy == "cold-items" and info.size == "2"


def test_cold_split_refuses_holding_out_every_item():
    with pytest.raises(ConfigError, match="holds out all 3 items"):
        split_mask("cold-items", Size(k=3), np.zeros(4, dtype=np.int64), None, np.random.default_rng(0),
                   items=np.array([0, 1, 2, 2]))


def test_cold_split_refuses_drop_cold():
    with pytest.raises(ConfigError, match="--drop-cold"):
        validate(PrepOptions(split="cold-items", drop_cold=True), has_output_dir=True)


def test_cold_split_report_counts_cold_items():
    res = prep_table(_log(), PrepOptions(split="cold-items", test_size=4))
    split = res.report["split"]
    assert split["strategy"] == "cold-items"
    assert split["cold_items_in_test"] == 4
    assert split["cold_rows_in_test"] == res.frames["test"].height
