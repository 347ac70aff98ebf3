"""hybrid through the CLI: ``train --item-features`` with a cold item, recommend (the cold
item for its genre's users), ``--item-table`` new items, ``--similar-items``, fold-in."""

from __future__ import annotations

import polars as pl

from recli.artifacts import load_model

GENRES = ("drama", "comedy", "horror")


def _write(tmp_path):
    """Users of block b watched 3 of the 4 items of genre b; features: identity + genre,
    and one item of genre comedy that nobody watched."""
    rows = [(f"u{b}{j}", f"i{b}{k}", 1.0) for b in range(3) for j in range(4) for k in range(4) if k != j]
    feats = [(f"i{b}{k}", f, 1.0) for b in range(3) for k in range(4) for f in (f"genre={GENRES[b]}", f"id=i{b}{k}")]
    feats.append(("cold", "genre=comedy", 1.0))
    paths = {name: tmp_path / f"{name}.csv" for name in ("train", "feats", "new", "hist")}
    pl.DataFrame(rows, schema=["user", "item", "rating"], orient="row").write_csv(paths["train"])
    pl.DataFrame(feats, schema=["item", "feature", "value"], orient="row").write_csv(paths["feats"])
    pl.DataFrame([("new1", "genre=horror", 1.0), ("new2", "genre=drama", 1.0)],
                 schema=["item", "feature", "value"], orient="row").write_csv(paths["new"])
    paths["hist"].write_text("user,item\nnewbie,i20\nnewbie,i21\n")
    return paths


def _recs(res) -> pl.DataFrame:
    assert res.exit_code == 0, res.stderr
    return pl.read_csv(res.stdout.encode())


def test_hybrid_end_to_end_with_a_cold_item_and_new_items(cli, tmp_path):
    p = _write(tmp_path)
    model = tmp_path / "h.model"
    res = cli(["train", p["train"], "-m", "hybrid", "--item-features", p["feats"], "-o", model,
               "-p", "factors=8", "-p", "iterations=30", "--threads", "1"])
    assert res.exit_code == 0, res.stderr
    assert list(load_model(model).model.feature_names("item"))[:3] == ["genre=comedy", "genre=drama", "genre=horror"]
    top2 = _recs(cli(["recommend", model, "--all-users", "-k", "2"]))
    with_cold = set(top2.filter(pl.col("item") == "cold")["user"].to_list())
    assert with_cold >= {f"u1{j}" for j in range(4)}  # every comedy user, after their unseen comedy item
    first = top2.filter(pl.col("rank") == 1)
    assert first["item"].to_list() == [f"i{u[1]}{u[2]}" for u in first["user"]]  # the own block's unseen item
    new = _recs(cli(["recommend", model, "--user", "u20", "-k", "2", "--item-table", p["new"]]))
    assert new["item"].to_list()[1] == "new1"  # after its one unseen horror item, the new horror film
    similar = _recs(cli(["recommend", model, "--similar-items", "i11", "-k", "3"]))
    assert set(similar["similar_item"]) <= {"cold", "i10", "i12", "i13"}
    folded = _recs(cli(["recommend", model, "--history", p["hist"], "--user", "newbie", "-k", "2"]))
    assert set(folded["item"]) == {"i22", "i23"}
