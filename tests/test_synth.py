"""The seeded generator behind sample_data/ and the benchmarks (issue #2, section 3)."""

from __future__ import annotations

import numpy as np
import polars as pl

from recli.data import synth
from recli.data.io import read_table
from tests.conftest import SAMPLE_DATA


def test_same_seed_same_frame_and_shape():
    a = synth.interactions(200, 100, 5000, seed=3)
    b = synth.interactions(200, 100, 5000, seed=3)
    assert a.equals(b) and not a.equals(synth.interactions(200, 100, 5000, seed=4))
    assert a.columns == ["user", "item", "rating", "timestamp"] and a.height == 5000
    assert a.schema["user"] == pl.String and a["user"][0].startswith("u0")
    assert set(a["rating"].unique()) <= {1, 2, 3, 4, 5}
    assert a["timestamp"].is_sorted()


def test_popularity_and_activity_are_skewed():
    df = synth.interactions(2000, 1000, 100_000, seed=0)
    items = np.sort(df.group_by("item").len()["len"].to_numpy())[::-1]
    users = np.sort(df.group_by("user").len()["len"].to_numpy())[::-1]
    assert items[: len(items) // 10].sum() > 0.3 * items.sum()   # top 10% of items: > 30% of events
    assert users[: len(users) // 10].sum() > 0.3 * users.sum()


def test_items_have_titles_and_pipe_separated_genres():
    df = synth.items(50, seed=1)
    assert df.columns == ["item", "title", "genres"] and df.height == 50
    for g in df["genres"]:
        assert 1 <= len(g.split("|")) <= 3 and set(g.split("|")) <= set(synth.GENRES)


def test_committed_sample_data_is_what_the_generator_makes(tmp_path):
    synth.main(["--out", str(tmp_path)])
    for name in ("interactions.csv", "items.csv"):
        assert (tmp_path / name).read_bytes() == (SAMPLE_DATA / name).read_bytes(), name
    df = read_table(str(SAMPLE_DATA / "interactions.csv"))
    assert 2000 <= df["user"].n_unique() <= 5000 and 10_000 <= df.height <= 99_999
