"""``recli eval`` from the command line: inputs, options, outputs, gates and errors."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import polars as pl
import pytest
import scipy.stats

from tests.conftest import run_recli

RECS = "user,item,score\nu1,a,0.9\nu1,b,0.8\nu1,c,0.7\nu2,d,0.5\nu2,a,0.4\nu3,b,1\n"
TEST = "user,item,rating\nu1,b,5\nu1,e,3\nu2,d,4\nu4,a,5\n"
TRAIN = "user,item\nu1,a\nu2,c\nu3,a\nu5,b\n"
ITEMS = "item,genres,title\na,x|y,A\nb,y,B\nc,x|y,C\nd,z,D\ne,,E\n"


@pytest.fixture
def files(tmp_path):
    out = {}
    for name, text in {"recs": RECS, "test": TEST, "train": TRAIN, "items": ITEMS}.items():
        p = tmp_path / f"{name}.csv"
        p.write_text(text)
        out[name] = str(p)
    out["dir"] = tmp_path
    return out


def _rows(stdout: str) -> dict[str, dict]:
    return {(r["metric"] if r["k"] is None else f"{r['metric']}@{r['k']}"): r for r in json.loads(stdout)}


def _ok(res):
    assert res.exit_code == 0, res.stderr
    return res


def test_hand_computed_values_and_user_rule(cli, files):
    res = _ok(cli(["eval", files["recs"], "--test", files["test"], "-k", "1,3", "--format", "json"]))
    rows = _rows(res.stdout)
    # 3 evaluated users (u1, u2, u4); u3 is not in TEST, u4 has no recommendations.
    # u1: [a, b, c] vs {b, e}; u2: [d, a] vs {d}; u4: [] vs {a}.
    assert rows["precision@3"]["value"] == pytest.approx((1 / 3 + 1 / 3 + 0) / 3)
    assert rows["recall@3"]["value"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert rows["mrr@3"]["value"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert rows["hit@1"]["value"] == pytest.approx(1 / 3)
    assert rows["ndcg@3"]["value"] == pytest.approx(((1 / math.log2(3)) / (1 + 1 / math.log2(3)) + 1) / 3)
    assert rows["ndcg@3"]["users"] == 3
    assert "every TEST user with a relevant item" in res.stderr
    assert "score 0: 1" in res.stderr
    assert "1 RECS rows for users not evaluated were ignored" in res.stderr


def test_only_recommended_changes_the_user_set(cli, files):
    res = _ok(cli(["eval", files["recs"], "--test", files["test"], "-k", "3", "--only-recommended", "--format", "json"]))
    rows = _rows(res.stdout)
    assert rows["recall@3"]["users"] == 2
    assert rows["recall@3"]["value"] == pytest.approx(0.75)
    assert "--only-recommended" in res.stderr


@pytest.mark.parametrize("which", ["recs", "test"])
def test_stdin_for_either_input(which, files):
    args = ["eval", "-" if which == "recs" else files["recs"], "--test", "-" if which == "test" else files["test"],
            "-k", "3", "--format", "csv"]
    res = run_recli(args, input=RECS if which == "recs" else TEST)
    assert res.returncode == 0, res.stderr.decode()
    got = list(csv.DictReader(io.StringIO(res.stdout.decode())))
    assert {r["metric"] for r in got} == {"precision", "recall", "ndcg", "map", "mrr", "hit"}
    assert float([r for r in got if r["metric"] == "recall"][0]["value"]) == pytest.approx(0.5)
    assert "recli eval" in res.stderr.decode()  # the table is on stderr, not stdout


def test_rank_score_and_file_order_agree_and_ties_keep_file_order(cli, tmp_path, files):
    by_rank = tmp_path / "rank.csv"
    by_rank.write_text("user,item,rank\nu1,c,3\nu1,a,1\nu1,b,2\nu2,a,2\nu2,d,1\n")
    by_order = tmp_path / "order.csv"
    by_order.write_text("user,item\nu1,a\nu2,d\nu1,b\nu1,c\nu2,a\n")
    ties = tmp_path / "ties.csv"  # equal scores: file order decides (a before b before c)
    ties.write_text("user,item,score\nu1,a,1\nu1,b,1\nu1,c,1\nu2,d,2\nu2,a,2\n")
    outs = []
    for p in (by_rank, by_order, ties, files["recs"]):
        outs.append(_rows(_ok(cli(["eval", str(p), "--test", files["test"], "-k", "1,2,3", "--format", "json"])).stdout))
    for other in outs[1:]:
        assert {k: v["value"] for k, v in other.items()} == {k: v["value"] for k, v in outs[0].items()}


def test_output_file_formats_and_list_metrics(cli, files, tmp_path):
    for name in ("r.csv", "r.tsv", "r.json", "r.parquet"):
        _ok(cli(["eval", files["recs"], "--test", files["test"], "-o", str(tmp_path / name)]))
    assert pl.read_csv(tmp_path / "r.csv").columns[:5] == ["model", "metric", "k", "value", "users"]
    assert pl.read_csv(tmp_path / "r.tsv", separator="\t").height == 6
    assert len(json.loads((tmp_path / "r.json").read_text())) == 6
    assert pl.read_parquet(tmp_path / "r.parquet").height == 6
    res = _ok(cli(["eval", "--list-metrics"]))
    for name in ("precision", "ndcg", "auc", "coverage", "gini", "novelty", "ild", "rmse", "mae"):
        assert f"\n{name}" in "\n" + res.stdout
    assert "edge cases" in res.stdout
    listed = json.loads(_ok(cli(["eval", "--list-metrics", "--format", "json"])).stdout)
    assert {m["name"] for m in listed} >= {"map", "mrr", "hit", "f1", "popularity"}


def test_graded_and_relevance_threshold(cli, files):
    base = ["eval", files["recs"], "--test", files["test"], "-k", "3", "--format", "json"]
    rows = _rows(_ok(cli(base + ["--relevance-threshold", "4"])).stdout)
    # relevant: u1 {b}, u2 {d}, u4 {a}; e (rating 3) is no longer relevant.
    assert rows["recall@3"]["value"] == pytest.approx(2 / 3)
    graded = _rows(_ok(cli(base + ["-m", "ndcg", "--graded"])).stdout)
    u1 = (5 / math.log2(3)) / (5 + 3 / math.log2(3))
    assert graded["ndcg@3"]["value"] == pytest.approx((u1 + 1 + 0) / 3)


def test_seen_in_train_is_reported_and_excluded(cli, files):
    base = ["eval", files["recs"], "--test", files["test"], "--train", files["train"], "-k", "1", "--format", "json"]
    res = _ok(cli(base))
    assert "1 recommended items in the top 1 were seen in TRAIN (1 users)" in res.stderr
    assert _rows(res.stdout)["precision@1"]["value"] == pytest.approx(1 / 3)
    res = _ok(cli(base + ["--exclude-train"]))
    # u1 loses 'a' (seen in TRAIN), so b (relevant) moves to rank 1.
    assert _rows(res.stdout)["precision@1"]["value"] == pytest.approx(2 / 3)
    assert "dropped before scoring" in res.stderr


def test_beyond_accuracy_and_auc_from_cli(cli, files):
    res = _ok(cli(["eval", files["recs"], "--test", files["test"], "--train", files["train"], "--items", files["items"],
                   "-k", "2", "-m", "coverage,gini,novelty,popularity,ild,auc", "--format", "json"]))
    rows = _rows(res.stdout)
    # Lists of evaluated users at k=2: u1 [a, b], u2 [d, a], u4 []; catalogue a..e = 5 items.
    assert rows["coverage@2"]["value"] == pytest.approx(3 / 5)
    assert rows["gini@2"]["value"] == pytest.approx(sum(abs(x - y) for x in [2, 1, 0, 1, 0] for y in [2, 1, 0, 1, 0]) / (2 * 5 * 4))
    # TRAIN users per item: a 2, b 1, c 1, d 0 (counted as 1); 4 TRAIN users.
    nov = lambda c: -math.log2(max(c, 1) / 4)  # noqa: E731
    assert rows["novelty@2"]["value"] == pytest.approx(((nov(2) + nov(1)) / 2 + (nov(0) + nov(2)) / 2) / 2)
    assert rows["novelty@2"]["users"] == 2
    assert rows["popularity@2"]["value"] == pytest.approx((1.5 + 1.0) / 2)
    # genres: a {x,y}, b {y}, d {z}: u1 1 - 1/2, u2 1 - 0
    assert rows["ild@2"]["value"] == pytest.approx((0.5 + 1.0) / 2)
    assert rows["auc@2"]["users"] == 3


def test_wide_table_is_not_cut_when_stderr_is_not_a_terminal(files):
    # a CI log: stderr is a pipe and COLUMNS is unset; rich would assume 80 columns
    args = ["eval", files["recs"], "--test", files["test"], "--train", files["train"], "--items", files["items"],
            "-k", "2", "-m", "precision,recall,ndcg,map,mrr,hit,coverage,gini,novelty,popularity,ild,auc",
            "--format", "csv"]
    res = run_recli(args, env={"COLUMNS": ""})
    assert res.returncode == 0, res.stderr.decode()
    table = res.stderr.decode()
    assert "…" not in table and "popularity" in table and "novelty" in table


def test_auc_without_train_warns(cli, files):
    res = _ok(cli(["eval", files["recs"], "--test", files["test"], "-m", "auc"]))
    assert "warning: auc without --train" in res.stderr


def test_rating_metrics_from_prediction_column_and_file(cli, files, tmp_path):
    recs = tmp_path / "pred.csv"
    recs.write_text("user,item,prediction\nu1,b,4\nu1,e,4\nu2,d,2\nu3,a,1\n")
    rows = _rows(_ok(cli(["eval", str(recs), "--test", files["test"], "--format", "json"])).stdout)
    assert rows["rmse"]["value"] == pytest.approx(math.sqrt((1 + 1 + 4) / 3))
    assert rows["mae"]["value"] == pytest.approx(4 / 3)
    assert rows["rmse"]["k"] is None and rows["rmse"]["users"] == 2
    rows = _rows(_ok(cli(["eval", files["recs"], "--test", files["test"], "--predictions", str(recs),
                          "-m", "rmse", "--format", "json"])).stdout)
    assert rows["rmse"]["value"] == pytest.approx(math.sqrt(2))


def test_rating_metrics_bootstrap_matches_a_plain_loop(cli, tmp_path):
    rng = np.random.default_rng(3)
    users = [f"u{i:02d}" for i in range(40)]
    rows_t, rows_p = ["user,item,rating"], ["user,item,prediction"]
    for u in users:
        for i in rng.choice(50, rng.integers(1, 6), replace=False):
            r = int(rng.integers(1, 6))
            rows_t.append(f"{u},i{i},{r}")
            rows_p.append(f"{u},i{i},{r + rng.normal(0, 1):.4f}")
    (tmp_path / "t.csv").write_text("\n".join(rows_t) + "\n")
    (tmp_path / "p.csv").write_text("\n".join(rows_p) + "\n")
    args = ["eval", str(tmp_path / "p.csv"), "--test", str(tmp_path / "t.csv"), "-m", "rmse,mae",
            "--bootstrap", "300", "--seed", "5", "--format", "json"]
    rows = _rows(_ok(cli(args)).stdout)
    # reference: resample users (sorted ids) with numpy's generator, pairs travel with their user
    t = pl.read_csv(tmp_path / "t.csv").join(pl.read_csv(tmp_path / "p.csv"), on=["user", "item"])
    by_user = [g for _, g in sorted(t.group_by("user"), key=lambda kv: kv[0][0])]
    diffs = [(g["prediction"] - g["rating"]).to_numpy() for g in by_user]
    draws = np.random.default_rng(5)
    rmse, mae = [], []
    for _ in range(300):
        counts = np.bincount(draws.integers(0, len(diffs), len(diffs)), minlength=len(diffs))
        d = np.concatenate([np.tile(x, c) for x, c in zip(diffs, counts)])
        rmse.append(np.sqrt(np.mean(d * d)))
        mae.append(np.mean(np.abs(d)))
    for name, stats in (("rmse", rmse), ("mae", mae)):
        # recli reads scores as float32: agreement to ~1e-6, not to the last bit
        assert rows[name]["ci_low"] == pytest.approx(np.quantile(stats, 0.025), rel=1e-5)
        assert rows[name]["ci_high"] == pytest.approx(np.quantile(stats, 0.975), rel=1e-5)
        assert rows[name]["ci_low"] < rows[name]["value"] < rows[name]["ci_high"]


def test_several_models_significance_bootstrap_and_per_user(cli, files, tmp_path):
    rng = np.random.default_rng(0)
    users = [f"u{i}" for i in range(60)]
    test = tmp_path / "t.csv"
    test.write_text("user,item\n" + "".join(f"{u},{i}\n" for u in users for i in rng.choice(30, 3, replace=False)))
    paths = []
    for m in range(2):
        p = tmp_path / f"m{m}.csv"
        p.write_text("user,item\n" + "".join(f"{u},{i}\n" for u in users for i in rng.permutation(30)[:10]))
        paths.append(str(p))
    per_user = tmp_path / "pu.csv"
    args = ["eval", *paths, "--test", str(test), "--label", "first", "--label", "second", "-m", "ndcg,recall",
            "--bootstrap", "200", "--seed", "7", "--per-user", str(per_user), "--format", "json"]
    res = _ok(cli(args))
    rows = json.loads(res.stdout)
    pu = pl.read_csv(per_user)
    assert pu.height == 120 and set(pu["model"]) == {"first", "second"}
    a = pu.filter(pl.col("model") == "first").sort("user")["ndcg@10"].to_numpy()
    b = pu.filter(pl.col("model") == "second").sort("user")["ndcg@10"].to_numpy()
    second = [r for r in rows if r["model"] == "second" and r["metric"] == "ndcg"][0]
    assert second["p_ttest"] == pytest.approx(scipy.stats.ttest_rel(b, a).pvalue, rel=1e-12)
    assert second["p_wilcoxon"] == pytest.approx(scipy.stats.wilcoxon(b, a).pvalue, rel=1e-12)
    first = [r for r in rows if r["model"] == "first" and r["metric"] == "ndcg"][0]
    assert first["p_ttest"] is None
    assert first["ci_low"] < first["value"] < first["ci_high"]
    assert json.loads(_ok(cli(args)).stdout) == rows  # same seed, same intervals
    assert "paired tests against the first model" in res.stderr


def test_fail_under_exit_codes(cli, files):
    base = ["eval", files["recs"], "--test", files["test"], "-k", "3"]
    assert _ok(cli(base + ["--fail-under", "recall@3=0.4"])).exit_code == 0
    res = cli(base + ["--fail-under", "recall@3=0.6,ndcg@10=0.01", "--format", "csv"])
    assert res.exit_code == 3
    assert res.stderr.count("error: quality gate failed: recs: recall@3 = 0.5000 < 0.6") == 1
    assert "hint: " in res.stderr
    assert "recall" in res.stdout  # results are still written before the gate fails
    assert "ndcg@10" not in res.stderr.split("error:")[1]  # the added cutoff passed
    res = run_recli(base + ["--fail-under", "recall@3=0.9"])
    assert res.returncode == 3


BAD = {
    "recs_without_user": ({"recs": "item,score\na,1\n"}, [], "no user column"),
    "recs_without_item": ({"recs": "user,score\nu1,1\n"}, [], "no item column"),
    "non_numeric_rank": ({"recs": "user,item,rank\nu1,a,first\n"}, [], "'rank' must be numeric"),
    "non_numeric_score": ({"recs": "user,item,score\nu1,a,high\n"}, [], "'score' must be numeric"),
    "k_zero": ({}, ["-k", "0"], "-k must be positive"),
    "k_not_integer": ({}, ["-k", "ten"], "is not an integer"),
    "k_float": ({}, ["-k", "2.5"], "is not an integer"),
    "unknown_metric": ({}, ["-m", "ndcg,accuracy"], "unknown metric 'accuracy'"),
    "empty_test": ({"test": "user,item\n"}, [], "no rows"),
    "threshold_without_rating": ({"test": "user,item\nu1,a\n"}, ["--relevance-threshold", "4"], "needs ratings"),
    "items_without_feature": ({"items": "item,title\na,A\n"}, ["--items", "ITEMS", "-m", "ild"], "no 'genres' column"),
    "duplicate_recs": ({"recs": "user,item\nu1,a\nu1,a\n"}, [], "more than once"),
    "novelty_without_train": ({}, ["-m", "novelty"], "TRAIN popularity"),
    "bad_fail_under": ({}, ["--fail-under", "ndcg=0.3"], "needs a cutoff"),
    "two_stdin": ({}, ["--train", "-"], "only one input"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_error_line_with_hint(cli, files, tmp_path, case):
    texts, extra, message = BAD[case]
    paths = dict(files)
    for name, text in texts.items():
        p = tmp_path / f"bad_{name}.csv"
        p.write_text(text)
        paths[name] = str(p)
    extra = [paths["items"] if a == "ITEMS" else a for a in extra]
    recs = "-" if case == "two_stdin" else paths["recs"]
    out = tmp_path / "out.csv"
    res = cli(["eval", recs, "--test", paths["test"], *extra, "-o", str(out)], input=RECS)
    assert res.exit_code == 2, res.stderr
    assert res.stderr.startswith("error: ")
    assert message in res.stderr.splitlines()[0]
    assert "hint: " in res.stderr and "Traceback" not in res.stderr
    assert res.stdout == "" and not out.exists()


def test_unknown_metric_lists_the_valid_ones(cli, files):
    res = cli(["eval", files["recs"], "--test", files["test"], "-m", "bogus"])
    assert res.exit_code == 2
    assert "valid metrics: precision, recall" in res.stderr


def test_same_output_for_any_thread_count(files):
    args = ["eval", files["recs"], "--test", files["test"], "--train", files["train"], "-k", "1,3",
            "-m", "ndcg,auc,map,novelty", "--bootstrap", "50", "--format", "json"]
    one = run_recli(args + ["--threads", "1"])
    two = run_recli(args + ["--threads", "2"])
    assert one.returncode == two.returncode == 0, one.stderr.decode()
    assert one.stdout == two.stdout


def test_only_recommended_pairs_users_both_models_scored(cli, files, tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("user,item\nu1,b\nu4,a\n")  # scores u1 and u4; recs scores u1 and u2
    res = _ok(cli(["eval", files["recs"], str(other), "--test", files["test"], "-k", "3", "-m", "recall",
                   "--only-recommended", "--format", "json"]))
    rows = {r["model"]: r for r in json.loads(res.stdout)}
    assert rows["recs"]["users"] == 2 and rows["other"]["users"] == 2
    assert rows["other"]["value"] == pytest.approx(0.75)
    # the paired tests use the one user both scored (u1): fewer than 2 pairs -> no p-value
    assert rows["other"]["p_ttest"] is None


def test_disjoint_ids_warn(cli, files, tmp_path):
    recs = tmp_path / "r.csv"
    recs.write_text("user,item\n001,a\n")
    res = _ok(cli(["eval", str(recs), "--test", files["test"]]))
    assert "warning: no user of RECS 'r' is a TEST user" in res.stderr


def test_model_is_loaded_on_the_device_asked_for(cli, files, monkeypatch):
    """``eval --model`` loads the model through ``get_backend(--device, --threads)``, as
    recommend does; cpu is the default, and an unknown device is a usage error."""
    import recli.backend

    model = files["dir"] / "pop.model"
    _ok(cli(["train", files["train"], "--model", "popular", "-o", model]))
    args = ["eval", "--model", model, "--test", files["test"], "-k", "3", "--format", "json"]
    asked = []
    real = recli.backend.get_backend
    monkeypatch.setattr(recli.backend, "get_backend", lambda device, threads=0, *a, **kw:
                        asked.append((device, threads)) or real("cpu", threads, *a, **kw))
    default = _ok(cli(args)).stdout
    assert _ok(cli([*args, "--device", "auto", "--threads", "1"])).stdout == default
    assert asked == [("cpu", 0), ("auto", 1)]
    monkeypatch.setattr(recli.backend, "get_backend", real)
    res = cli([*args, "--device", "tpu"])
    assert res.exit_code == 2 and res.stderr.startswith("error: unknown device 'tpu'") and "hint:" in res.stderr


def test_main_freezes_what_is_left_for_exit(monkeypatch):
    """After the command, ``main`` moves every live object out of the collector's reach, so
    the interpreter's exit-time collections do not walk them (a fresh ``recli eval`` pays
    them after its output is written); the exit code is the command's."""
    import gc

    import recli.cli as cli

    def command():
        raise SystemExit(3)

    monkeypatch.setattr(cli, "app", command)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.main()
        assert exit_info.value.code == 3
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
