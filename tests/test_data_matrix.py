"""Vocabularies and the interactions → CSR conversion."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recli.data.matrix import build_interactions, csr_arrays, to_csr
from recli.data.vocab import Vocab
from recli.errors import InputError


def test_vocab_is_sorted_hashable_and_order_independent():
    a = Vocab.from_values(pl.Series(["b", "007", "a", "b", None]))
    b = Vocab.from_values(pl.Series(["a", "b", "007"]))
    assert a.ids.to_list() == ["007", "a", "b"]
    assert a.hash == b.hash and len(a.hash) == 64
    assert Vocab.from_values(pl.Series(["a", "b"])).hash != a.hash
    np.testing.assert_array_equal(a.index(["b", "zz", "007"]), [2, -1, 0])
    assert a.index(["a"]).dtype == np.int32
    assert a.lookup(np.array([2, 0])).to_list() == ["b", "007"]
    assert Vocab.from_frame(a.to_frame()).hash == a.hash


def test_duplicates_summed_rows_sorted_and_dtypes():
    df = pl.DataFrame({"user": ["u2", "u1", "u1", "u2", "u1"], "item": ["y", "y", "x", "y", "y"],
                       "rating": ["1", "2", "3", "4", "0.5"]})
    data = build_interactions(df)
    np.testing.assert_array_equal(data.user_items.toarray(), [[3.0, 2.5], [0.0, 5.0]])
    indptr, indices, values = csr_arrays(data.user_items)
    assert (indptr.dtype, indices.dtype, values.dtype) == (np.int64, np.int32, np.float32)
    assert data.user_items.has_sorted_indices and data.n_rows == 5


def test_no_rating_means_ones_and_fingerprint_ignores_row_order():
    df = pl.DataFrame({"user": ["a", "b", "a"], "item": ["x", "x", "y"]})
    one = build_interactions(df)
    two = build_interactions(df.reverse())
    assert one.user_items.data.tolist() == [1.0, 1.0, 1.0]
    assert one.fingerprint == two.fingerprint
    assert one.fingerprint != build_interactions(df.head(2)).fingerprint


def test_timestamps_epoch_or_iso_latest_per_cell():
    df = pl.DataFrame({"user": ["a", "a", "b"], "item": ["x", "x", "x"],
                       "timestamp": ["2024-01-01", "2024-01-02T00:00:00", "1970-01-01"]})
    data = build_interactions(df)
    np.testing.assert_allclose(data.timestamps, [1704153600.0, 0.0])
    epoch = build_interactions(df.with_columns(pl.Series("timestamp", ["5", "7", "1"])))
    np.testing.assert_allclose(epoch.timestamps, [7.0, 1.0])


@pytest.mark.parametrize("df, message", [
    (pl.DataFrame({"user": ["a"], "rating": ["1"]}), "no item column"),
    (pl.DataFrame({"user": ["a"], "item": ["x"], "rating": ["five"]}), "not finite numbers"),
    (pl.DataFrame({"user": [None], "item": ["x"]}, schema={"user": pl.Utf8, "item": pl.Utf8}), "empty"),
    (pl.DataFrame({"user": ["a"], "item": ["x"], "timestamp": ["yesterday"]}), "timestamps"),
])
def test_bad_frames(df, message):
    with pytest.raises(InputError, match=message):
        build_interactions(df)


def test_to_csr_drops_unknown_ids():
    users, items = Vocab.from_values(pl.Series(["a"])), Vocab.from_values(pl.Series(["x", "y"]))
    m, _ = to_csr(pl.DataFrame({"user": ["a", "b", "a"], "item": ["y", "x", "z"]}), users, items)
    assert m.shape == (1, 2) and m.nnz == 1 and m[0, 1] == 1.0
