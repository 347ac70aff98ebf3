"""Side-feature extraction (``recli prep --item-table``) against hand-computed tables."""

from __future__ import annotations

import json
import math

import polars as pl
import pytest

from recli.data.features import apply_transform, fit_transform, parse_spec
from recli.errors import ConfigError, InputError
from tests.conftest import ML100K

ITEMS = pl.DataFrame({
    "movie_id": ["a", "b", "c", "d"],
    "genres": ["X|Y", "Y", "Z", None],
    "title": ["Red apple apple", "green APPLE", "red pear", "the"],
    "year": ["1990", "2000", "2010", "2020"],
    "studio": ["s1", "s1", "s2", "s3"],
})
SPECS = ["genres:multi:|", "title:text", "year:numeric", "year:numeric:bins=2", "studio:categorical:min_count=2"]


def _rows(frame: pl.DataFrame) -> dict[tuple[str, str], float]:
    return {(r[0], r[1]): r[2] for r in frame.iter_rows()}


def _fit(table=ITEMS, specs=SPECS, **kw):
    return fit_transform(table, [parse_spec(s) for s in specs], **kw)


def _tfidf(n_docs: int, df: int) -> float:
    return math.log((1 + n_docs) / (1 + df)) + 1


def test_extraction_matches_a_hand_computed_table():
    fitted = _fit()
    # TF-IDF over N = 4 items: apple and red are in 2 items, green and pear in 1; "the" is a stop word
    i2, i1 = _tfidf(4, 2), _tfidf(4, 1)
    b_norm, c_norm = math.hypot(i1, i2), math.hypot(i2, i1)
    std = math.sqrt((15 ** 2 + 5 ** 2 + 5 ** 2 + 15 ** 2) / 4)   # population std around the mean 2005
    expected = {
        ("a", "genres=X"): 1.0, ("a", "genres=Y"): 1.0, ("b", "genres=Y"): 1.0, ("c", "genres=Z"): 1.0,
        # a: apple tf 2, red tf 1, same idf → (2, 1) / sqrt(5)
        ("a", "title=apple"): 2 / math.sqrt(5), ("a", "title=red"): 1 / math.sqrt(5),
        ("b", "title=apple"): i2 / b_norm, ("b", "title=green"): i1 / b_norm,
        ("c", "title=red"): i2 / c_norm, ("c", "title=pear"): i1 / c_norm,
        ("a", "year"): -15 / std, ("b", "year"): -5 / std, ("c", "year"): 5 / std, ("d", "year"): 15 / std,
        # the median 2005 is the one inner edge of 2 quantile bins
        ("a", "year=bin0"): 1.0, ("b", "year=bin0"): 1.0, ("c", "year=bin1"): 1.0, ("d", "year=bin1"): 1.0,
        # s2 and s3 are in one item each, under min_count=2: pooled
        ("a", "studio=s1"): 1.0, ("b", "studio=s1"): 1.0, ("c", "studio=<other>"): 1.0, ("d", "studio=<other>"): 1.0,
        ("a", "item=a"): 1.0, ("b", "item=b"): 1.0, ("c", "item=c"): 1.0, ("d", "item=d"): 1.0,
    }
    got = _rows(fitted.frame)
    assert fitted.frame.columns == ["item", "feature", "value"]
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    assert fitted.frame.select("item", "feature").rows() == sorted(got)          # sorted by id, feature
    counts = fitted.counts
    assert counts["per_kind"] == {"multi": 3, "text": 4, "numeric": 3, "categorical": 2, "identity": 4}
    assert counts["dropped_min_count"] == {"studio": 2}
    assert counts["ids_without_features"] == 0 and counts["ids"] == 4


def test_transform_is_json_and_holds_the_fitted_parameters():
    t = json.loads(json.dumps(_fit().transform))
    assert t["table_id_column"] == "movie_id" and t["role"] == "item" and t["identity"] is True
    title = next(c for c in t["columns"] if c["kind"] == "text")
    assert title["vocabulary"] == ["apple", "green", "pear", "red"]
    assert title["idf"] == pytest.approx([_tfidf(4, 2), _tfidf(4, 1), _tfidf(4, 1), _tfidf(4, 2)])
    year = [c for c in t["columns"] if c["column"] == "year"]
    assert year[0]["mean"] == 2005 and year[1]["edges"] == [2005.0]
    studio = next(c for c in t["columns"] if c["column"] == "studio")
    assert studio["vocabulary"] == ["s1"] and studio["other"] is True


def test_apply_transform_on_new_rows_equals_the_fitted_rows():
    fitted = _fit()
    transform = json.loads(json.dumps(fitted.transform))         # as read back from manifest.json
    again = apply_transform(ITEMS.reverse().slice(0, 3), transform)  # d, c, b in another order
    expected = fitted.frame.filter(pl.col("item").is_in(["b", "c", "d"]))
    assert again.equals(expected)
    new = pl.DataFrame({"movie_id": ["n"], "genres": ["Y|W"], "title": ["apple kiwi"], "year": ["1999"],
                        "studio": ["s9"]})
    rows = _rows(apply_transform(new, transform))
    # unseen genre W and token kiwi add nothing; the unseen studio joins the pool; bin 0 below the edge
    assert rows.keys() == {("n", "genres=Y"), ("n", "title=apple"), ("n", "year"), ("n", "year=bin0"),
                           ("n", "studio=<other>"), ("n", "item=n")}
    assert rows[("n", "title=apple")] == pytest.approx(1.0)
    assert rows[("n", "year")] == pytest.approx((1999 - 2005) / math.sqrt(125))


def test_bm25_weights_by_hand():
    table = pl.DataFrame({"item": ["p", "q"], "text": ["apple apple pear", "pear"]})
    fitted = _fit(table, ["text:text:weighting=bm25,stop_words=none"], identity=False)
    k1, b, avgdl = 1.2, 0.75, 2.0                                  # 4 tokens over 2 items
    idf_apple, idf_pear = math.log(1 + 1.5 / 1.5), math.log(1 + 0.5 / 2.5)

    def bm25(idf, tf, dl):
        return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))

    apple, pear = bm25(idf_apple, 2, 3), bm25(idf_pear, 1, 3)
    got = _rows(fitted.frame)
    assert got[("p", "text=apple")] == pytest.approx(apple / math.hypot(apple, pear))
    assert got[("p", "text=pear")] == pytest.approx(pear / math.hypot(apple, pear))
    assert got[("q", "text=pear")] == pytest.approx(1.0)


def test_tags_are_aggregated_per_id_and_weighted():
    tags = pl.DataFrame({"item": ["a", "a", "a", "b", "e"], "tag": ["Funny", "funny", "dark", "dark", "dark"],
                         "weight": ["2", "1", "1", "1", "1"]})
    table = pl.DataFrame({"item": ["a", "b"], "genres": ["X", "Y"]})
    fitted = _fit(table, ["genres:categorical"], tags=tags)
    funny, dark = 3 * _tfidf(3, 1), 1 * _tfidf(3, 3)              # tf = summed weight; N = 3 tagged ids
    got = _rows(fitted.frame)
    assert got[("a", "tag=funny")] == pytest.approx(funny / math.hypot(funny, dark))
    assert got[("a", "tag=dark")] == pytest.approx(dark / math.hypot(funny, dark))
    assert got[("e", "tag=dark")] == pytest.approx(1.0) and got[("e", "item=e")] == 1.0   # a tagged id joins
    assert fitted.counts["per_kind"]["tags"] == 2 and fitted.counts["ids"] == 3
    assert apply_transform(table, fitted.transform, tags=tags).equals(fitted.frame)


def test_text_vocabulary_cap_and_min_count():
    table = pl.DataFrame({"item": ["1", "2", "3"], "t": ["x1 x2 x3", "x1 x2", "x1 zz"]})
    fitted = _fit(table, ["t:text:max_features=2,min_count=2"], identity=False)
    text = fitted.transform["columns"][0]
    assert text["vocabulary"] == ["x1", "x2"]            # x3, zz in one item each (min_count)
    assert fitted.counts["dropped_min_count"] == {"t": 2}
    capped = _fit(table, ["t:text:max_features=1"], identity=False)
    assert capped.transform["columns"][0]["vocabulary"] == ["x1"]
    assert capped.counts["dropped_vocabulary_cap"] == {"t": 3}
    assert capped.counts["ids_without_features"] == 0


def test_numeric_scale_none_keeps_indicators_and_ranges_expand():
    table = pl.DataFrame({"item": ["1", "2"], "A": ["0", "1"], "B": ["1", "1"], "C": ["0", "0"]})
    fitted = _fit(table, ["A..C:numeric:scale=none"], identity=False)
    assert _rows(fitted.frame) == {("1", "B"): 1.0, ("2", "A"): 1.0, ("2", "B"): 1.0}


def test_identity_off_and_ids_without_features():
    table = pl.DataFrame({"item": ["1", "2"], "g": ["x", None]})
    fitted = _fit(table, ["g:categorical"], identity=False)
    assert _rows(fitted.frame) == {("1", "g=x"): 1.0}
    assert fitted.counts["ids_without_features"] == 1 and "identity" not in fitted.counts["per_kind"]


@pytest.mark.parametrize("spec,match", [
    ("genres", "is not COL:KIND"), ("genres:tags", "unknown kind"), (":text", "is not COL:KIND"),
    ("year:numeric:bins=x", "not a whole number"), ("title:text:weighting=bm26", "not one of"),
    ("title:text:colour=red", "unknown option"), ("year:numeric:bins=1", "bins=1"),
])
def test_malformed_specs_are_refused(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_spec(spec)


def test_multi_separator_forms():
    assert parse_spec("g:multi:,").options["sep"] == ","
    assert parse_spec("g:multi:pipe").options["sep"] == "|"
    assert parse_spec("g:multi:sep=;,min_count=2").options == {"sep": ";", "min_count": 2}
    assert parse_spec("g:multi:|,min_count=3").options == {"sep": "|", "min_count": 3}


@pytest.mark.parametrize("table,spec,match", [
    (ITEMS.drop("movie_id"), "title:text", "no item column"),
    (ITEMS, "title:numeric", "marked numeric but 4 of 4 values are not numbers"),
    (ITEMS, "title:text:min_count=3", "vocabulary of 'title' is empty"),
    (ITEMS, "nope:categorical", "column 'nope' not found"),
    (pl.concat([ITEMS, ITEMS.head(1)]), "title:text", "appear on more than one row"),
])
def test_bad_tables_are_refused(table, spec, match):
    with pytest.raises(InputError, match=match):
        _fit(table, [spec])


def test_the_same_feature_twice_is_refused():
    with pytest.raises(InputError, match="two specs make the same feature 'studio=s1'"):
        _fit(ITEMS, ["studio:categorical", "studio:multi:|"])


# ---- through the CLI --------------------------------------------------------------------------------------

def _log(tmp_path, items=("a", "b", "c")):
    p = tmp_path / "log.csv"
    p.write_text("user,item,rating\n" + "".join(f"u{k % 2},{i},{k + 1}\n" for k, i in enumerate(items)))
    return p


def _table(tmp_path, text="movie_id,genres,title\na,X|Y,red apple\nb,Y,green\nz,Z,blue\n"):
    p = tmp_path / "items.csv"
    p.write_text(text)
    return p


def test_cli_writes_item_features_and_the_manifest(cli, tmp_path):
    out = tmp_path / "out"
    res = cli(["prep", _log(tmp_path), "--split", "random", "--test-size", "1", "--out", out,
               "--item-table", _table(tmp_path), "--item-feature", "genres:multi:|", "--item-feature", "title:text"])
    assert res.exit_code == 0, res.stderr
    frame = pl.read_parquet(out / "item_features.parquet")
    assert frame.columns == ["item", "feature", "value"]
    assert set(frame["item"]) == {"a", "b", "z"}                  # z has no interactions and stays
    man = json.loads((out / "manifest.json").read_text())
    entry = man["features"]["item"]
    assert entry["file"] == "item_features.parquet" and entry["id_column"] == "item"
    assert man["files"]["item_features"] == "item_features.parquet"
    assert apply_transform(pl.read_csv(_table(tmp_path), infer_schema=False), entry["transform"]).equals(frame)
    assert entry["counts"]["matched"] == 2 and entry["counts"]["interaction_ids_without_features"] == 1
    assert "2 of the 3 ids with features occur in the interactions" in res.stderr
    assert "item features" in res.stderr


@pytest.mark.parametrize("extra,match", [
    (["--item-table", "ITEMS", "--item-feature", "title:numeric"], "marked numeric"),
    (["--item-table", "ITEMS", "--item-feature", "title:text", "--item-id-col", "nope"], "id column 'nope'"),
    (["--item-table", "NOID", "--item-feature", "title:text"], "no item column"),
    (["--item-table", "OTHER", "--item-feature", "title:text"], "0 matched"),
    (["--item-table", "ITEMS", "--item-feature", "title:text:min_count=5"], "vocabulary of 'title' is empty"),
    (["--item-table", "ITEMS", "--item-feature", "title:vector"], "unknown kind"),
    (["--item-table", "ITEMS"], "needs at least one --item-feature"),
    (["--item-feature", "title:text"], "need --item-table"),
])
def test_cli_bad_input_gives_one_error_and_writes_nothing(cli, tmp_path, extra, match):
    tables = {"ITEMS": _table(tmp_path), "NOID": tmp_path / "noid.csv", "OTHER": tmp_path / "other.csv"}
    tables["NOID"].write_text("code,title\na,red\n")
    tables["OTHER"].write_text("item,title\nx1,red\nx2,blue\n")
    out = tmp_path / "out"
    args = [str(tables.get(a, a)) for a in extra]
    res = cli(["prep", _log(tmp_path), "--split", "random", "--out", out, *args])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert lines[-2].startswith("error: ") and match in lines[-2] and lines[-1].startswith("hint: ")
    assert "Traceback" not in res.stderr
    assert not out.exists()


def test_cli_features_need_out(cli, tmp_path):
    res = cli(["prep", _log(tmp_path), "--item-table", _table(tmp_path), "--item-feature", "title:text"])
    assert res.exit_code == 2 and "need --out" in res.stderr


def test_movielens_genres_from_u_item(cli, ml100k, tmp_path):
    """The command of docs/prep.md: u.item (pipe-separated, latin-1, no header) → genre features."""
    out = tmp_path / "ml"
    genres = (ML100K / "u.genre").read_text().split()
    res = cli(["prep", ml100k, "--no-header", "--columns", "user,item,rating,timestamp", "--split", "cold-items",
               "--out", out, "--item-table", ML100K / "u.item", "--item-table-encoding", "latin-1",
               "--item-table-columns", "item,title,release_date,video_release_date,url,unknown,Action,Adventure,"
               "Animation,Children,Comedy,Crime,Documentary,Drama,Fantasy,Film-Noir,Horror,Musical,Mystery,"
               "Romance,Sci-Fi,Thriller,War,Western", "--item-feature", "unknown..Western:numeric:scale=none"])
    assert res.exit_code == 0, res.stderr
    assert len(genres) == 19
    frame = pl.read_parquet(out / "item_features.parquet")
    assert frame["item"].n_unique() == 1682
    toy_story = set(frame.filter(pl.col("item") == "1")["feature"])
    assert toy_story == {"item=1", "Animation", "Children", "Comedy"}
    genre_rows = frame.filter(~pl.col("feature").str.starts_with("item="))
    assert genre_rows["feature"].n_unique() == 19 and (genre_rows["value"] == 1.0).all()
    man = json.loads((out / "manifest.json").read_text())
    assert man["features"]["item"]["counts"]["matched"] == 1682
    read = man["features"]["item"]["transform"]["read"]
    assert read["encoding"] == "latin-1" and read["columns"][:2] == ["item", "title"]
    test_items = set(pl.read_csv(out / "test.csv", infer_schema=False)["item"])
    train_items = set(pl.read_csv(out / "train.csv", infer_schema=False)["item"])
    assert test_items and not test_items & train_items


def test_cli_tags_without_a_table(cli, tmp_path):
    tags = tmp_path / "tags.csv"
    tags.write_text("userId,movieId,tag,timestamp\n1,a,Funny,5\n2,a,dark,6\n1,b,dark,7\n1,q,odd,8\n")
    out = tmp_path / "out"
    res = cli(["prep", _log(tmp_path), "--split", "random", "--test-size", "1", "--out", out,
               "--item-tags", tags, "--no-identity-features"])
    assert res.exit_code == 0, res.stderr
    rows = _rows(pl.read_parquet(out / "item_features.parquet"))
    funny, dark = _tfidf(3, 1), _tfidf(3, 2)                     # a, b, q tagged: N = 3
    assert rows.keys() == {("a", "tag=funny"), ("a", "tag=dark"), ("b", "tag=dark"), ("q", "tag=odd")}
    assert rows[("a", "tag=funny")] == pytest.approx(funny / math.hypot(funny, dark))
    man = json.loads((out / "manifest.json").read_text())
    assert man["features"]["item"]["counts"]["per_kind"] == {"tags": 3}
    assert man["features"]["item"]["transform"]["identity"] is False
