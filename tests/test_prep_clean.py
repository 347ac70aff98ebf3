"""Every cleaning rule of ``recli prep``, each counted in the report (issue #2)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recli.data.clean import CleanOptions, parse_time_value
from recli.data.io import read_table
from recli.errors import ConfigError, InputError
from recli.stages.prep import PrepOptions, prep_table


def run(rows: dict, **clean) -> tuple[pl.DataFrame, dict]:
    extra = {k: clean.pop(k) for k in list(clean) if k in PrepOptions.__dataclass_fields__}
    res = prep_table(pl.DataFrame(rows), PrepOptions(clean=CleanOptions(**clean), **extra))
    return res.frames["data"], res.report


def by_pair(df: pl.DataFrame, col: str = "rating") -> dict:
    return {(u, i): v for u, i, v in df.select("user", "item", col).rows()}


def test_ids_stay_strings_with_leading_zeros(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("user,item,rating\n007,0042,5\n7,42,3\n")
    df, _ = run(read_table(str(p)).to_dict(as_series=False))
    assert df["user"].to_list() == ["007", "7"] and df["item"].to_list() == ["0042", "42"]
    assert df.schema["user"] == pl.String


def test_column_mapping_and_aliases():
    df, _ = run({"uid": ["a"], "movieId": ["m"], "score": ["4"], "when": ["10"]}, time_col="when")
    assert df.row(0) == ("a", "m", 4.0, 10)
    df, _ = run({"who": ["a"], "what": ["m"], "stars": ["4"]}, user_col="who", item_col="what", rating_col="stars")
    assert df.columns == ["user", "item", "rating"]


def test_missing_required_column_lists_the_columns_found():
    with pytest.raises(InputError, match="columns found: who, item"):
        run({"who": ["a"], "item": ["b"]})
    with pytest.raises(InputError, match="--user-col"):
        run({"who": ["a"], "item": ["b"]}, user_col="nobody")


def test_missing_user_or_item_is_dropped_and_counted():
    df, rep = run({"user": ["a", None, "", "b"], "item": ["x", "y", "z", None]})
    assert df.height == 1
    assert rep["dropped"] == {"missing user or item": 3}


@pytest.mark.parametrize("raw, expected", [
    ("978300760", 978300760), ("978300760.9", 978300760), ("2000-12-31", 978220800),
    ("2000-12-31T23:59:59", 978307199), ("2000-12-31 23:59:59", 978307199),
    ("2001-01-01T01:00:00+01:00", 978307200), ("2001-01-01T00:00:00Z", 978307200),
])
def test_timestamps_epoch_or_iso(raw, expected):
    df, _ = run({"user": ["a", "b"], "item": ["x", "y"], "timestamp": ["5", raw]})
    assert df["timestamp"].to_list() == [5, expected]
    assert df.schema["timestamp"] == pl.Int64


def test_unparseable_timestamp_is_an_error_with_the_line():
    with pytest.raises(InputError, match=r"unparseable timestamp 'yesterday' on line 3"):
        run({"user": ["a", "b"], "item": ["x", "y"], "timestamp": ["5", "yesterday"]})


def test_missing_timestamp_is_dropped_and_counted():
    df, rep = run({"user": ["a", "b"], "item": ["x", "y"], "timestamp": ["5", None]})
    assert df.height == 1 and rep["dropped"] == {"missing timestamp": 1}


def test_invalid_ratings_dropped_or_fatal():
    rows = {"user": list("abcdef"), "item": list("xxxxxx"), "rating": ["4", "abc", "nan", "inf", "9", "1"]}
    df, rep = run(rows, rating_range=(1, 5))
    assert sorted(df["user"]) == ["a", "f"] and rep["dropped"] == {"invalid rating": 4}
    with pytest.raises(InputError, match=r"invalid rating 'abc' on line 3 \(4 invalid values\)"):
        run(rows, rating_range=(1, 5), on_invalid="error")


def test_missing_rating_dropped_without_fill():
    df, rep = run({"user": ["a", "b"], "item": ["x", "x"], "rating": ["3", None]})
    assert df.height == 1 and rep["dropped"] == {"missing rating": 1}


@pytest.mark.parametrize("how, expected", [("mean", 3.0), ("median", 1.5), ("mode", 1.0), ("2.5", 2.5)])
def test_fill_rating(how, expected):
    df, rep = run({"user": list("abcde"), "item": list("xxxxx"), "rating": ["1", "1", "2", "8", None]},
                  fill_rating=how)
    assert by_pair(df)[("e", "x")] == expected
    assert rep["changed"] == {f"missing rating filled ({how})": 1}


def test_fill_rating_user_mean_falls_back_to_global_mean():
    df, _ = run({"user": ["a", "a", "a", "b", "c"], "item": list("xyzxy"), "rating": ["2", "4", None, "6", None]},
                fill_rating="user-mean")
    assert by_pair(df)[("a", "z")] == 3.0 and by_pair(df)[("c", "y")] == 4.0


def test_fill_rating_refuses_nonsense():
    with pytest.raises(ConfigError, match="--fill-rating"):
        run({"user": ["a"], "item": ["x"], "rating": [None]}, fill_rating="often")


DUPES = {"user": ["a", "a", "a", "b"], "item": ["x", "x", "x", "y"], "rating": ["3", "5", "1", "2"],
         "timestamp": ["20", "10", "30", "5"]}


@pytest.mark.parametrize("how, rating, ts", [("first", 5.0, 10), ("last", 1.0, 30), ("max", 5.0, 30),
                                             ("mean", 3.0, 30), ("sum", 9.0, 30)])
def test_dedupe(how, rating, ts):
    df, rep = run(DUPES, dedupe=how)
    row = df.filter(pl.col("user") == "a").row(0)
    assert row[2:] == (rating, ts)
    assert rep["dropped"] == {"duplicate (user, item)": 2}
    assert df["user"].to_list() == ["a", "b"]              # input order kept


def test_dedupe_first_last_by_file_order_without_timestamps_and_none_keeps_all():
    rows = {"user": ["a", "a"], "item": ["x", "x"], "rating": ["1", "2"]}
    assert run(rows, dedupe="first")[0]["rating"].to_list() == [1.0]
    assert run(rows, dedupe="last")[0]["rating"].to_list() == [2.0]
    assert run(rows, dedupe="none")[0].height == 2


def test_dedupe_sum_counts_events_without_a_rating_column():
    df, rep = run({"user": ["a", "a", "b"], "item": ["x", "x", "x"]}, dedupe="sum")
    assert by_pair(df) == {("a", "x"): 2.0, ("b", "x"): 1.0}
    assert rep["changed"] == {"duplicates merged (sum)": 1}


def test_implicit_threshold_and_weights():
    rows = {"user": list("abcd"), "item": list("xxxx"), "rating": ["0", "2", "3", "5"]}
    df, rep = run(rows, implicit=True)
    assert df.height == 3 and rep["dropped"] == {"not positive (implicit)": 1}
    df, rep = run(rows, implicit=True, min_rating=3, weight="binary")
    assert df["rating"].to_list() == [1.0, 1.0] and rep["dropped"] == {"below --min-rating 3": 2}
    df, _ = run(rows, implicit=True, min_rating=3, weight="log1p")
    assert df["rating"].to_list() == pytest.approx([math.log1p(3), math.log1p(5)])


@pytest.mark.parametrize("method, expected", [
    ("minmax", [0.0, 0.5, 1.0]), ("zscore", [-1.224744871, 0.0, 1.224744871]), ("user-mean", [-1.0, 1.0, 0.0])])
def test_normalize(method, expected):
    df, rep = run({"user": ["a", "a", "b"], "item": list("xyz"), "rating": ["1", "3", "5"]}, normalize=method)
    assert df["rating"].to_list() == pytest.approx(expected)
    assert rep["normalization"]["method"] == method


def test_normalize_is_fitted_on_train_only():
    raw = pl.DataFrame({"user": list("abcd"), "item": list("wxyz"), "rating": ["1", "2", "3", "9"],
                        "timestamp": ["1", "2", "3", "4"]})
    res = prep_table(raw, PrepOptions(normalize="minmax", split="temporal", test_size=1))
    params = res.report["normalization"]
    assert (params["min"], params["max"]) == (1.0, 3.0)
    assert res.frames["test"]["rating"].to_list() == [4.0]    # (9 - 1) / (3 - 1), mapped back as r*scale+offset


def test_filters_count_each_reason():
    rows = {"user": ["a", "a", "a", "b", "c", "c"], "item": ["x", "y", "z", "x", "x", "y"]}
    df, rep = run(rows, min_user_interactions=2)
    assert sorted(set(df["user"])) == ["a", "c"] and rep["dropped"] == {"user with < 2 interactions": 1}
    df, rep = run(rows, min_user_interactions=2, min_item_interactions=2, k_core=True)
    assert rep["dropped"] == {"k-core: user with < 2 interactions": 1, "k-core: item with < 2 interactions": 1}
    assert set(zip(df["user"], df["item"])) == {("a", "x"), ("a", "y"), ("c", "x"), ("c", "y")}


def test_a_filter_that_removes_every_row_is_an_error():
    with pytest.raises(InputError, match="removed every row"):
        run({"user": ["a", "b"], "item": ["x", "y"]}, min_item_interactions=2)


def test_parse_time_value():
    assert parse_time_value("2024-01-01") == 1704067200
    assert parse_time_value("1704067200") == 1704067200
    with pytest.raises(ConfigError):
        parse_time_value("soon")


rating_text = st.one_of(st.integers(-2, 7).map(str), st.sampled_from(["", "x", "nan", "inf", "2.5"]), st.none())


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), data=st.data())
def test_every_input_row_is_accounted_for(n, data):
    """rows read == sum of dropped rows + rows written, whatever the options."""
    rows = {"user": data.draw(st.lists(st.sampled_from(["a", "b", "c", "", None]), min_size=n, max_size=n)),
            "item": data.draw(st.lists(st.sampled_from(["x", "y", "z", None]), min_size=n, max_size=n)),
            "rating": data.draw(st.lists(rating_text, min_size=n, max_size=n))}
    opts = dict(dedupe=data.draw(st.sampled_from(["first", "last", "max", "mean", "sum", "none"])),
                rating_range=data.draw(st.sampled_from([None, (1.0, 5.0)])),
                fill_rating=data.draw(st.sampled_from([None, "mean", "user-mean"])),
                implicit=data.draw(st.booleans()),
                min_user_interactions=data.draw(st.integers(0, 2)), k_core=data.draw(st.booleans()))
    try:
        df, rep = run(rows, **opts)
    except InputError as exc:
        assert "no rows are left" in str(exc) or "removed every row" in str(exc)
        return
    assert rep["rows_read"] == n == sum(rep["dropped"].values()) + df.height
    assert df["rating"].is_finite().all()


def test_encode_round_trips_and_matches_the_exact_fallback():
    from recli.data.clean import ROW, _encode_exact, encode

    df = pl.DataFrame({"user": ["b", "a", "b", "007", "7"], "item": ["x", "x", "y", "x", "z"],
                       "rating": ["1", "2", "3", "4", "5"]}).with_row_index(ROW)
    for fn in (encode, _encode_exact):
        out, vocab = fn(df)
        back = vocab.decode(out)
        assert back["user"].to_list() == df["user"].to_list() and back["item"].to_list() == df["item"].to_list()
        assert out["_u"].n_unique() == 4 and out["_i"].n_unique() == 3
        assert out["rating"].to_list() == df["rating"].to_list()


def _reference_core(pairs, min_user, min_item):
    """The k-core by brute force: drop under-count users and items until nothing changes."""
    from collections import Counter

    rows = list(pairs)
    while True:
        users, items = Counter(u for u, _ in rows), Counter(i for _, i in rows)
        kept = [(u, i) for u, i in rows if users[u] >= min_user and items[i] >= min_item]
        if len(kept) == len(rows):
            return kept
        rows = kept


def test_k_core_follows_a_cascade_over_several_passes():
    from recli.data.filter import core_mask

    # c has one row: dropping c-z leaves z with one, then b, then y, then a: four passes
    pairs = [("a", "x"), ("a", "y"), ("b", "y"), ("b", "z"), ("c", "z"),
             ("d", "x"), ("d", "w"), ("e", "x"), ("e", "w")]
    codes = {v: n for n, v in enumerate(sorted({p for pair in pairs for p in pair}))}
    users = np.array([codes[u] for u, _ in pairs])
    items = np.array([codes[i] for _, i in pairs])
    res = core_mask(users, items, 2, 2, iterate=True)
    assert [p for p, k in zip(pairs, res.keep) if k] == _reference_core(pairs, 2, 2)
    assert res.passes >= 4
    one_pass = core_mask(users, items, 2, 2, iterate=False)
    assert one_pass.keep.sum() > res.keep.sum()  # a single pass stops early


def test_k_core_matches_the_brute_force_reference_on_random_data():
    from recli.data.filter import core_mask

    rng = np.random.default_rng(5)
    for _ in range(20):
        users = rng.integers(0, 30, 200)
        items = rng.zipf(1.5, 200) % 40
        res = core_mask(users, items, 3, 3, iterate=True)
        pairs = list(zip(users.tolist(), items.tolist()))
        assert [p for p, k in zip(pairs, res.keep) if k] == _reference_core(pairs, 3, 3)
