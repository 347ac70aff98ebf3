"""Side features end to end: ``train --item-features/--user-features`` (catalogue extension,
refusals, id checks, the model file), ``content`` through the CLI (a cold item is
recommended by content and never by als, ``--explain`` names features) and ``recommend
--item-table`` (long rows, and raw attributes through prep's fitted transform)."""

from __future__ import annotations

import json
import os

import numpy as np
import polars as pl
import pytest

from recli.artifacts import load_model
from recli.data.side import read_feature_table, side_features
from recli.data.vocab import Vocab
from recli.errors import InputError

GENRES = ("drama", "comedy", "horror")


def _interactions() -> pl.DataFrame:
    """Users of block b watched 3 of the 4 items of genre b (u{b}{j}, i{b}{k})."""
    rows = [(f"u{b}{j}", f"i{b}{k}", 4.0) for b in range(3) for j in range(4) for k in range(4) if k != j % 4]
    return pl.DataFrame(rows, schema=["user", "item", "rating"], orient="row")


def _features(cold: bool = True) -> pl.DataFrame:
    rows = [(f"i{b}{k}", f"genre={GENRES[b]}", 1.0) for b in range(3) for k in range(4)]
    if cold:
        rows.append(("cold", "genre=comedy", 1.0))  # nobody watched it
    return pl.DataFrame(rows, schema=["item", "feature", "value"], orient="row")


@pytest.fixture
def files(tmp_path):
    train, feats = tmp_path / "train.csv", tmp_path / "item_features.csv"
    _interactions().write_csv(train)
    _features().write_csv(feats)
    return train, feats


def _clean_error(res, *needles, written=None):
    assert res.exit_code == 2, (res.exit_code, res.stderr)
    assert res.stderr.startswith("error: ") and "hint: " in res.stderr and "Traceback" not in res.stderr
    for needle in needles:
        assert needle in res.stderr, res.stderr
    if written is not None:
        assert not os.path.exists(written)


def _recs(res) -> pl.DataFrame:
    assert res.exit_code == 0, res.stderr
    return pl.read_csv(res.stdout.encode())


# -- reading feature files -------------------------------------------------------------

def test_feature_file_columns_found_by_alias_and_value_defaults_to_one(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("movieId,feature\n7,genre=war\n7,genre=war\n8,year=1999\n")
    table = read_feature_table(str(path), "item")
    assert table.frame.columns == ["id", "feature", "value"] and table.transform is None
    feats, dropped = side_features(table, Vocab.from_values(pl.Series(["6", "7", "8"])))
    assert dropped == 0 and list(feats.names) == ["genre=war", "year=1999"]
    np.testing.assert_array_equal(feats.matrix.toarray(), [[0, 0], [2, 0], [0, 1]])  # repeats add up
    with pytest.raises(InputError, match="no item column"):
        read_feature_table(_write(tmp_path / "g.csv", "thing,feature\n1,a\n"), "item")
    with pytest.raises(InputError, match="no feature column"):
        read_feature_table(_write(tmp_path / "h.csv", "item,tag\n1,a\n"), "item")


def _write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


# -- train: the catalogue, refusals, the model file --------------------------------------------

def test_every_feature_id_joins_the_catalogue_and_the_model_file_keeps_the_features(cli, files, tmp_path):
    train, feats = files
    res = cli(["train", train, "-m", "content", "--item-features", feats, "-o", tmp_path / "m"])
    assert res.exit_code == 0, res.stderr
    assert "13 items with features, 12 of them in the training data" in res.stderr
    mf = load_model(tmp_path / "m")
    assert len(mf.items) == 13 and mf.items.index(["cold"])[0] >= 0
    assert mf.user_items.shape == (12, 13) and mf.user_items[:, int(mf.items.index(["cold"])[0])].nnz == 0
    assert list(mf.model.feature_names("item")) == [f"genre={g}" for g in sorted(GENRES)]
    assert mf.meta["features"]["item"]["features"] == 3 and "transform" not in mf.meta["features"]["item"]
    # the round trip keeps the profiles bit for bit
    fresh = mf.model.score(np.arange(12), None)
    again = load_model(tmp_path / "m", checksums=True).model.score(np.arange(12), None)
    np.testing.assert_array_equal(fresh, again)


def test_feature_files_refused_for_models_that_ignore_them(cli, files, tmp_path):
    train, feats = files
    out = tmp_path / "m"
    _clean_error(cli(["train", train, "-m", "als", "--item-features", feats, "-o", out]),
                 "does not learn from features", "content", written=out)
    _clean_error(cli(["train", train, "-m", "content", "--user-features", feats, "--item-features", feats, "-o", out]),
                 "item features only", written=out)
    _clean_error(cli(["train", train, "-m", "content", "-o", out]), "needs item features", "--item-features",
                 written=out)
    res = cli(["train", train, "-m", "content", "--item-features", feats, "-p", "half_life_days=30", "-o", out])
    assert res.exit_code == 2 and "\nerror: content with half_life_days needs timestamps" in res.stderr
    assert "hint: " in res.stderr and "Traceback" not in res.stderr and not out.exists()


def test_feature_files_with_wrong_ids_or_no_id_column(cli, files, tmp_path):
    train, _ = files
    out = tmp_path / "m"
    other = _write(tmp_path / "other.csv", "item,feature,value\nx1,genre=war,1\nx2,genre=war,1\n")
    _clean_error(cli(["train", train, "-m", "content", "--item-features", other, "-o", out]),
                 "none of its 2 item ids", "0 matched", written=out)
    no_id = _write(tmp_path / "noid.csv", "name,feature,value\ni00,genre=war,1\n")
    _clean_error(cli(["train", train, "-m", "content", "--item-features", no_id, "-o", out]),
                 "no item column", "name", written=out)


# -- content through the CLI ---------------------------------------------------------------

def test_a_cold_item_is_recommended_by_content_and_never_by_als(cli, files, tmp_path):
    train, feats = files
    for name, extra in (("content", ["--item-features", feats]), ("als", ["--iterations", "3"])):
        res = cli(["train", train, "-m", name, *extra, "-o", tmp_path / name])
        assert res.exit_code == 0, res.stderr
    content = _recs(cli(["recommend", tmp_path / "content", "--all-users", "-k", "2"]))
    comedy_fans = content.filter(pl.col("user").str.starts_with("u1"))
    assert set(comedy_fans.filter(pl.col("item") == "cold")["user"]) == {f"u1{j}" for j in range(4)}
    # the other users get it only as a zero-score filler after their own genre's film
    others = content.filter((pl.col("item") == "cold") & ~pl.col("user").str.starts_with("u1"))
    assert (others["score"] == 0).all() and (others["rank"] == 2).all()
    als = _recs(cli(["recommend", tmp_path / "als", "--all-users", "-k", "13"]))
    assert als.height > 0 and "cold" not in set(als["item"])


def test_explain_names_the_features_that_matched(cli, files, tmp_path):
    train, feats = files
    assert cli(["train", train, "-m", "content", "--item-features", feats, "-o", tmp_path / "m"]).exit_code == 0
    flat = _recs(cli(["recommend", tmp_path / "m", "--user", "u20", "-k", "1", "--explain"]))
    assert flat.columns[-2:] == ["because_feature", "feature_contribution"]
    assert flat["because_feature"][0] == "genre=horror" and flat["feature_contribution"][0] == pytest.approx(1.0)
    assert set(flat["because_item"]) == {"i21", "i22", "i23"}
    nested = cli(["recommend", tmp_path / "m", "--user", "u20", "-k", "1", "--explain", "--format", "jsonl"])
    row = json.loads(nested.stdout.splitlines()[0])
    assert row["features"] == [{"feature": "genre=horror", "contribution": pytest.approx(1.0)}]


# -- recommend --item-table ---------------------------------------------------------------------

def test_item_table_in_long_form_scores_new_items(cli, files, tmp_path):
    train, feats = files
    assert cli(["train", train, "-m", "content", "--item-features", feats, "-o", tmp_path / "m"]).exit_code == 0
    new = _write(tmp_path / "new.csv", "item,feature,value\nnew1,genre=horror,1\nnew2,genre=drama,1\n"
                                       "new2,genre=unknown,1\n")
    everything = _recs(cli(["recommend", tmp_path / "m", "--user", "u20", "-k", "20", "--item-table", new]))
    scores = dict(zip(everything["item"], everything["score"]))
    assert scores["new1"] == pytest.approx(1.0) and scores["new2"] == pytest.approx(0.0)
    assert scores["new1"] == pytest.approx(scores["i20"])  # like the one horror film u20 has not seen
    assert everything.height == 13 - 3 + 2  # the unseen catalogue items and both new ones
    _clean_error(cli(["recommend", tmp_path / "m", "--user", "u20", "--item-table", new, "--explain"]),
                 "--item-table cannot be combined")


def test_item_table_refused_for_a_model_without_features(cli, files, tmp_path):
    train, _ = files
    assert cli(["train", train, "-m", "popular", "-o", tmp_path / "m"]).exit_code == 0
    new = _write(tmp_path / "new.csv", "item,feature,value\nnew1,genre=horror,1\n")
    _clean_error(cli(["recommend", tmp_path / "m", "--user", "u20", "--item-table", new]), "not trained on item features")


def test_item_table_of_raw_attributes_goes_through_the_prep_transform(cli, files, tmp_path):
    train, _ = files
    items = tmp_path / "items.txt"  # like MovieLens u.item: no header, ';'-separated
    items.write_text("".join(f"i{b}{k};{GENRES[b]}\n" for b in range(3) for k in range(4)))
    res = cli(["prep", train, "--out", tmp_path / "prep", "--item-table", items, "--item-table-sep", "semicolon",
               "--item-table-columns", "item,genres", "--item-feature", "genres:multi:|"])
    assert res.exit_code == 0, res.stderr
    res = cli(["train", train, "-m", "content", "--item-features",
               tmp_path / "prep" / "item_features.parquet", "-o", tmp_path / "m"])
    assert res.exit_code == 0, res.stderr
    assert load_model(tmp_path / "m").meta["features"]["item"]["transform"]["role"] == "item"
    assert "(with prep's transform)" in cli(["info", tmp_path / "m"]).stdout
    raw = _write(tmp_path / "raw.txt", "fresh;horror\n")  # read as prep read the attribute table
    recs = _recs(cli(["recommend", tmp_path / "m", "--user", "u20", "-k", "20", "--item-table", raw]))
    fresh = recs.filter(pl.col("item") == "fresh")
    assert fresh.height == 1 and fresh["score"][0] > 0


def test_both_feature_files_reach_fit_aligned_with_the_extended_vocabularies(files, tmp_path):
    """What a model reading item and user features (hybrid, fm) is given by the train stage."""
    from recli.models.popular import Popular
    from recli.stages import train as stage

    class Recorder(Popular):
        uses_features = True

        def fit(self, user_items, on_epoch=None, *, item_features=None, user_features=None):
            self.given = (user_items.shape, item_features, user_features)
            return super().fit(user_items, on_epoch)

    train, feats = files
    users = _write(tmp_path / "users.csv", "user_id,feature,value\nu00,age=young,1\nnewcomer,age=old,2\n")
    tables = stage.load_features(None, item=str(feats), user=users)
    data = stage.load_interactions(str(train), features=tables)
    model = stage.train(data, Recorder, Recorder.Config(), features=tables).model
    shape, items, people = model.given
    assert shape == (13, 13) and len(data.users) == 13 and len(data.items) == 13
    assert items.matrix.shape == (13, 3) and people.matrix.shape == (13, 2)
    newcomer = int(data.users.index(["newcomer"])[0])
    assert model.given[0] == data.user_items.shape and data.user_items[newcomer].nnz == 0
    np.testing.assert_array_equal(people.matrix[newcomer].toarray(), [[2, 0]])  # age=old, age=young
    cold = int(data.items.index(["cold"])[0])
    assert items.names[items.matrix[cold].indices].tolist() == ["genre=comedy"]
