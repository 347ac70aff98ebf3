"""``recli eval --model``: the in-process path equals ``recommend | eval`` on the same data."""

from __future__ import annotations

import io

import polars as pl
import pytest

from tests.conftest import SAMPLE_DATA


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from recli.data.io import read_table

    out = tmp_path_factory.mktemp("evalmodel")
    df = read_table(str(SAMPLE_DATA / "interactions.csv"))
    users = df["user"].unique().sort()[:500]
    df = df.filter(pl.col("user").is_in(users.to_list()))
    df = df.unique(["user", "item"], keep="first", maintain_order=True).with_row_index("n")
    test = df.filter(pl.col("n") % 5 == 0).drop("n")
    train = df.filter(pl.col("n") % 5 != 0).drop("n")
    # one test user unknown to the model, one test item unknown to the model
    test = pl.concat([test, pl.DataFrame({c: ["u-new" if c == "user" else ("i-new" if c == "item" else test[c][0])]
                                          for c in test.columns}),
                      pl.DataFrame({c: [test["user"][0] if c == "user" else ("i-new2" if c == "item" else test[c][0])]
                                    for c in test.columns})])
    train.write_csv(out / "train.csv")
    test.write_csv(out / "test.csv")
    return out


@pytest.mark.parametrize("model", ["popular", "als"])
def test_model_path_equals_recommend_then_eval(cli, data, model):
    m = data / f"{model}.model"
    extra = ["--param", "factors=8", "--param", "iterations=3"] if model == "als" else []
    res = cli(["train", data / "train.csv", "--model", model, "--seed", "1", "--threads", "1", "-o", m, *extra])
    assert res.exit_code == 0, res.stderr
    direct = cli(["eval", "--model", m, "--test", data / "test.csv", "-k", "5,10", "-m",
                  "precision,recall,ndcg,map,mrr,hit,auc,coverage,novelty", "--format", "csv", "-q"])
    assert direct.exit_code == 0, direct.stderr
    recs = cli(["recommend", m, "--users", data / "test.csv", "-k", "10", "-q"])
    assert recs.exit_code == 0, recs.stderr
    (data / "recs.csv").write_text(recs.stdout)
    via_csv = cli(["eval", data / "recs.csv", "--test", data / "test.csv", "--train", data / "train.csv",
                   "-k", "5,10", "-m", "precision,recall,ndcg,map,mrr,hit", "--format", "csv", "-q"])
    assert via_csv.exit_code == 0, via_csv.stderr
    a = pl.read_csv(io.StringIO(direct.stdout)).filter(pl.col("metric").is_in(["precision", "recall", "ndcg", "map", "mrr", "hit"]))
    b = pl.read_csv(io.StringIO(via_csv.stdout))
    assert a.height == b.height == 12
    for ra, rb in zip(a.iter_rows(named=True), b.iter_rows(named=True)):
        assert (ra["metric"], ra["k"], ra["users"]) == (rb["metric"], rb["k"], rb["users"])
        assert ra["value"] == pytest.approx(rb["value"], abs=1e-12), ra
    assert a["value"].max() > 0


def test_model_path_gate_and_clash(cli, data):
    m = data / "pop-gate.model"
    assert cli(["train", data / "train.csv", "--model", "popular", "-o", m]).exit_code == 0
    res = cli(["eval", "--model", m, "--test", data / "test.csv", "--fail-under", "ndcg@10=0.99", "-q"])
    assert res.exit_code == 3
    assert "quality gate failed" in res.stderr
    res = cli(["eval", "--model", m, "--test", data / "test.csv", "--train", data / "train.csv"])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: --model cannot be combined with --train")
    assert "hint:" in res.stderr
    res = cli(["eval", "--model", m, "--test", data / "test.csv", "-m", "rmse"])
    assert res.exit_code == 2 and "predict" in res.stderr
