"""``recli eval --cold-report`` and ``--feature-col`` / prep's item_features.parquet, by hand."""

from __future__ import annotations

import json

import polars as pl
import pytest

TRAIN = "user,item\nu1,i1\nu1,i2\nu2,i1\nu2,i3\n"
TEST = "user,item\nu1,i4\nu1,i3\nu2,i5\nu3,i1\n"                       # cold items i4, i5; cold user u3
RECS = "user,item,rank\nu1,i4,1\nu1,i3,2\nu1,i5,3\nu2,i3,1\nu2,i2,2\nu2,i4,3\nu3,i1,1\nu3,i4,2\n"


@pytest.fixture
def files(tmp_path):
    paths = {}
    for name, text in {"recs": RECS, "test": TEST, "train": TRAIN}.items():
        paths[name] = tmp_path / f"{name}.csv"
        paths[name].write_text(text)
    return paths


def _rows(stdout: str) -> dict[tuple[str, str], dict]:
    return {(r.get("segment", "all"), f"{r['metric']}@{r['k']}"): r for r in json.loads(stdout)}


def test_cold_report_matches_hand_computed_values(cli, files):
    res = cli(["eval", files["recs"], "--test", files["test"], "--train", files["train"], "-k", "2,3",
               "-m", "precision,recall,hit", "--cold-report", "--format", "json"])
    assert res.exit_code == 0, res.stderr
    rows = _rows(res.stdout)
    expected = {
        # all: u1 [i4 i3] hits 2 of {i4, i3}; u2 [i3 i2] misses i5; u3 [i1 i4] hits i1
        "all": {"precision@2": (1 + 0 + 0.5) / 3, "recall@2": 2 / 3, "hit@2": 2 / 3, "users": 3},
        # truth i4 (u1), i5 (u2); lists keep cold items: u1 [i4 i5], u2 [i4]
        "cold items": {"precision@2": (0.5 + 0) / 2, "recall@2": 0.5, "hit@2": 0.5, "users": 2},
        # truth i3 (u1), i1 (u3); lists keep warm items: u1 [i3], u3 [i1]
        "warm items": {"precision@2": 0.5, "recall@2": 1.0, "hit@2": 1.0, "users": 2},
        "cold users": {"precision@2": 0.5, "recall@2": 1.0, "hit@2": 1.0, "users": 1},    # u3 [i1 i4]
        "warm users": {"precision@2": 0.5, "recall@2": 0.5, "hit@2": 0.5, "users": 2},    # u1, u2
    }
    for segment, values in expected.items():
        for key, value in values.items():
            if key != "users":
                assert rows[(segment, key)]["value"] == pytest.approx(value), (segment, key)
                assert rows[(segment, key)]["users"] == values["users"], (segment, key)
    # top-2 lists hold cold item i4 only (of i4, i5); top-3 adds i5 (u1's third)
    assert rows[("cold items", "cold_coverage@2")]["value"] == 0.5
    assert rows[("cold items", "cold_coverage@3")]["value"] == 1.0
    assert "2 cold items and 1 cold users in TEST" in res.stderr
    assert "cold items @ k=2" in res.stderr


def test_cold_report_needs_train(cli, files):
    res = cli(["eval", files["recs"], "--test", files["test"], "--cold-report"])
    assert res.exit_code == 2 and "--cold-report needs RECS files and --train" in res.stderr


def test_without_cold_report_the_output_has_no_segment(cli, files):
    res = cli(["eval", files["recs"], "--test", files["test"], "--train", files["train"], "--format", "json"])
    assert res.exit_code == 0 and all("segment" not in r for r in json.loads(res.stdout))


def _ild(cli, files, items, *extra):
    res = cli(["eval", files["recs"], "--test", files["test"], "-k", "2", "-m", "ild", "--items", items,
               "--format", "json", *extra])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)[0]["value"], res.stderr


def test_ild_reads_prep_item_features_parquet(cli, files, tmp_path):
    long = pl.DataFrame({
        "item": ["i1", "i1", "i1", "i2", "i2", "i3", "i3", "i4", "i4", "i5"],
        "feature": ["g=X", "g=Y", "item=i1", "g=Y", "item=i2", "g=X", "year", "g=X", "year", "g=Y"],
        "value": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.7, 1.0],
    })
    path = tmp_path / "item_features.parquet"
    long.write_parquet(path)
    # features (identity and zero values left out): i1 {X,Y} i2 {Y} i3 {X} i4 {X,year} i5 {Y}
    # top-2 lists: u1 [i4 i3] J=1/2; u2 [i3 i2] J=0; u3 [i1 i4] J=1/3
    value, _ = _ild(cli, files, path)
    assert value == pytest.approx(1 - (1 / 2 + 0 + 1 / 3) / 3)
    # --feature-col g keeps the g=... features: i4 {X}; u1 J=1, u3 J=1/2
    value, _ = _ild(cli, files, path, "--feature-col", "g")
    assert value == pytest.approx(1 - (1 + 0 + 1 / 2) / 3)


def test_item_features_is_a_deprecated_alias_of_feature_col(cli, files, tmp_path):
    items = tmp_path / "items.csv"
    items.write_text("item,tags\ni1,X|Y\ni2,Y\ni3,X\ni4,X\ni5,Y\n")
    new, _ = _ild(cli, files, items, "--feature-col", "tags")
    old, stderr = _ild(cli, files, items, "--item-features", "tags")
    assert new == old == pytest.approx(1 - (1 + 0 + 1 / 2) / 3)
    assert "warning: --item-features is deprecated; use --feature-col" in stderr
    both = cli(["eval", files["recs"], "--test", files["test"], "-m", "ild", "--items", items,
                "--feature-col", "tags", "--item-features", "tags"])
    assert both.exit_code == 2
    assert "--item-features" not in cli(["eval", "--help"]).stdout
