"""The Spark engine (``--engine spark``): one local[2] SparkSession for the whole module.

Checks that need no JVM (option errors, missing Java) come first and run even without
PySpark; the rest share one session (JVM start-up is the main cost) and small data.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.conftest import SAMPLE_DATA

K = 5


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    pytest.importorskip("pyarrow")
    from recli.errors import ConfigError
    from recli.stages.spark.session import SparkSettings, session

    try:
        s = session(SparkSettings("local[2]", {"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "2"}))
    except ConfigError as exc:  # no Java here: the Spark tests cannot run (CI has Java 17)
        pytest.skip(exc.message)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The first 4000 rows of the bundled sample (a few duplicates and negatives-free ratings)."""
    path = tmp_path_factory.mktemp("spark") / "train.csv"
    pl.read_csv(SAMPLE_DATA / "interactions.csv").head(4000).write_csv(path)
    return path


# -- no JVM needed ------------------------------------------------------------
def test_spark_with_gpu_is_a_usage_error(cli, small, tmp_path):
    res = cli(["train", small, "--model", "als", "--engine", "spark", "--device", "gpu", "-o", tmp_path / "m"])
    assert res.exit_code == 2 and res.stderr.startswith("error: --engine spark") and "hint:" in res.stderr
    assert not (tmp_path / "m").exists()


def test_unknown_engine_and_other_models_are_refused(cli, small, tmp_path):
    res = cli(["train", small, "--model", "als", "--engine", "flink", "-o", tmp_path / "m"])
    assert res.exit_code == 2 and "--engine 'flink'" in res.stderr
    res = cli(["train", small, "--model", "bpr", "--engine", "spark", "-o", tmp_path / "m"])
    assert res.exit_code == 2 and "trains als only" in res.stderr and "bpr" in res.stderr
    assert not (tmp_path / "m").exists()


def test_unreachable_master_is_one_error(cli, small, tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    SparkSession = pytest.importorskip("pyspark.sql").SparkSession
    monkeypatch.setattr(SparkSession, "getActiveSession", classmethod(lambda cls: None))
    res = cli(["train", small, "--model", "als", "--engine", "spark", "--spark-master", f"spark://127.0.0.1:{port}",
               "-o", tmp_path / "m"])
    assert res.exit_code == 2 and "cannot reach the Spark master" in res.stderr and "hint:" in res.stderr
    assert not (tmp_path / "m").exists()


def test_missing_java_names_the_install(monkeypatch):
    pytest.importorskip("pyspark")
    from recli.errors import ConfigError
    from recli.stages.spark import session

    monkeypatch.setenv("JAVA_HOME", "/nonexistent/jdk")
    with pytest.raises(ConfigError, match="Java runtime") as err:
        session.require_spark()
    assert "Java 17" in err.value.hint


def test_engine_options_come_from_env_and_config(cli, small, tmp_path):
    env = {"RECLI_TRAIN_ENGINE": "spark", "RECLI_TRAIN_DEVICE": "gpu"}
    res = cli(["train", small, "--model", "als", "-o", tmp_path / "m"], env=env)
    assert res.exit_code == 2 and "--engine spark" in res.stderr
    cfg = tmp_path / "recli.toml"
    cfg.write_text('[train]\nengine = "spark"\nspark-master = "spark://127.0.0.1:1"\nspark-conf = ["a=b"]\n')
    res = cli(["--config", cfg, "train", small, "--model", "bpr", "-o", tmp_path / "m"])
    assert res.exit_code == 2 and "trains als only" in res.stderr
    res = cli(["train", small, "--model", "als", "--engine", "spark", "--spark-conf", "novalue", "-o", tmp_path / "m"])
    assert res.exit_code == 2 and "is not key=value" in res.stderr


# -- on Spark --------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(spark, small, tmp_path_factory):
    """MLlib ALS through the stage, saved as a recli model (and MLlib's own model)."""
    from recli.artifacts import save_model
    from recli.models.als import ALSConfig
    from recli.stages.spark.train import split_params, train_als

    _, params = split_params(["blocks=2"])
    result = train_als(spark, str(small), None, ALSConfig(factors=4, iterations=4, regularization=0.1, alpha=2.0), params)
    path = tmp_path_factory.mktemp("spark-model") / "als"
    save_model(path, result.model, result.users, result.items, result.user_items, result.meta)
    return path, result


def test_spark_model_reproduces_mllib_predictions(spark, trained):
    from recli.artifacts import load_model
    from recli.stages.spark.io import to_arrow
    from recli.stages.spark.train import IIDX, UIDX

    path, result = trained
    mf = load_model(path)
    ui = mf.user_items.tocoo()
    assert ui.nnz == result.user_items.nnz and ui.nnz > 3000
    pairs = spark.createDataFrame([(int(u), int(i)) for u, i in zip(ui.row[:500], ui.col[:500])] + [(0, 1), (3, 7)],
                                  [UIDX, IIDX])
    pred = to_arrow(result.mllib.transform(pairs))
    u, i, p = (pred[c].to_numpy() for c in (UIDX, IIDX, "prediction"))
    ours = np.einsum("ij,ij->i", mf.model.user_factors[u], mf.model.item_factors[i])
    np.testing.assert_allclose(ours, p, atol=1e-5)
    assert mf.meta["engine"] == "spark" and mf.meta["config"]["solver"] == "cholesky"
    # MLlib's objective scales λ by the row count: recorded wherever the local als has the option
    assert mf.meta["config"].get("scale_regularization", True) is True


def test_spark_model_served_locally_equals_recommend_for_all_users(cli, trained, tmp_path):
    from recli.stages.spark.io import to_arrow

    path, result = trained
    out = tmp_path / "recs.csv"
    res = cli(["recommend", path, "--all-users", "-k", K, "-o", out])
    assert res.exit_code == 0, res.stderr
    local = pl.read_csv(out, schema_overrides={"user": pl.Utf8, "item": pl.Utf8})
    seen_max = int(np.diff(result.user_items.indptr).max())
    mllib = to_arrow(result.mllib.recommendForAllUsers(K + seen_max)).to_pylist()
    ui = result.user_items
    users, items = result.users.ids.to_list(), result.items.ids.to_list()
    checked = 0
    for row in mllib[:300]:
        u = row["_u"]
        seen = set(ui.indices[ui.indptr[u]:ui.indptr[u + 1]].tolist())
        recs = [r for r in row["recommendations"] if r["_i"] not in seen][:K]
        mine = local.filter(pl.col("user") == users[u]).sort("rank")
        np.testing.assert_allclose(mine["score"].to_numpy(), [r["rating"] for r in recs], atol=1e-5)
        scores = np.array([r["rating"] for r in recs])
        untied = np.r_[np.diff(scores) < -1e-6, True] & np.r_[True, np.diff(scores) < -1e-6]
        assert [items[r["_i"]] for r, t in zip(recs, untied) if t] == [x for x, t in zip(mine["item"], untied) if t]
        checked += 1
    assert checked == 300


def test_cli_train_on_spark_writes_a_model_every_command_reads(cli, spark, small, tmp_path):
    model = tmp_path / "m"
    res = cli(["train", small, "--model", "als", "--engine", "spark", "--factors", "3", "--iterations", "2",
               "-p", "blocks=2", "-p", "nonnegative=true", "-o", model])
    assert res.exit_code == 0, res.stderr
    res = cli(["info", model, "--format", "json"])
    assert res.exit_code == 0 and '"engine": "spark"' in res.stdout and '"nonnegative": true' in res.stdout
    res = cli(["eval", "--model", model, "--test", small, "-k", "5"])
    assert res.exit_code == 0, res.stderr
    res = cli(["recommend", model, "--user", "u002474", "-k", "3"])
    assert res.exit_code == 0 and res.stdout.count("u002474") == 3


def test_export_import_round_trip_through_spark(cli, spark, trained, small, tmp_path):
    from pyspark.ml.recommendation import ALSModel

    from recli.artifacts import load_model
    from recli.stages.spark.io import to_arrow

    path, result = trained
    res = cli(["export", path, "--format", "spark", "-o", tmp_path / "spark"])
    assert res.exit_code == 0, res.stderr
    loaded = ALSModel.load(str(tmp_path / "spark"))  # Spark reads what recli wrote
    assert loaded.rank == 4
    pairs = spark.createDataFrame([(0, 0), (5, 9), (17, 3)], ["user", "item"])
    pred = to_arrow(loaded.transform(pairs))
    X, Y = result.model.user_factors, result.model.item_factors
    expect = [float(X[u] @ Y[i]) for u, i in zip(pred["user"].to_pylist(), pred["item"].to_pylist())]
    np.testing.assert_allclose(pred["prediction"].to_numpy(), expect, atol=1e-6)
    res = cli(["import", tmp_path / "spark", "--train", small, "-o", tmp_path / "back"])
    assert res.exit_code == 0, res.stderr
    back, orig = load_model(tmp_path / "back"), load_model(path)
    np.testing.assert_array_equal(back.model.user_factors, orig.model.user_factors)
    np.testing.assert_array_equal(back.model.item_factors, orig.model.item_factors)
    assert back.users.hash == orig.users.hash and (back.user_items != orig.user_items).nnz == 0
    # a directory Spark saved itself (part files, .crc, no recli id tables): its integer ids become the ids
    loaded.write().overwrite().save(str(tmp_path / "resaved"))
    res = cli(["import", tmp_path / "resaved", "-o", tmp_path / "numbers"])
    assert res.exit_code == 0 and "will not filter seen items" in res.stderr
    numbers = load_model(tmp_path / "numbers")
    rows = np.array([int(x) for x in numbers.users.ids.to_list()])
    np.testing.assert_array_equal(numbers.model.user_factors, orig.model.user_factors[rows])


def test_import_export_bad_input(cli, trained, small, tmp_path):
    path, _ = trained
    res = cli(["import", path, "-o", tmp_path / "m"])  # a recli model is not a Spark model
    assert res.exit_code == 2 and "not a Spark ALSModel directory" in res.stderr and not (tmp_path / "m").exists()
    res = cli(["train", small, "--model", "popular", "-o", tmp_path / "pop"])
    assert res.exit_code == 0, res.stderr
    res = cli(["export", tmp_path / "pop", "--format", "spark", "-o", tmp_path / "x"])
    assert res.exit_code == 2 and "exports als models" in res.stderr and not (tmp_path / "x").exists()
    res = cli(["export", path, "--format", "onnx", "-o", tmp_path / "x"])
    assert res.exit_code == 2 and "--format 'onnx'" in res.stderr


def test_recommend_on_spark_equals_local_recommend(cli, spark, trained, tmp_path):
    path, _ = trained
    res = cli(["recommend", path, "--all-users", "-k", K, "--engine", "spark", "--batch-size", "100", "-o", tmp_path / "recs"])
    assert res.exit_code == 0, res.stderr
    res = cli(["recommend", path, "--all-users", "-k", K, "-o", tmp_path / "local.parquet"])
    assert res.exit_code == 0, res.stderr
    on_spark = pl.read_parquet(tmp_path / "recs" / "*.parquet")
    local = pl.read_parquet(tmp_path / "local.parquet")
    assert on_spark.schema == local.schema and on_spark.height == local.height
    both = local.join(on_spark, on=["user", "rank"], suffix="_spark")
    assert both.height == local.height
    np.testing.assert_allclose(both["score"].to_numpy(), both["score_spark"].to_numpy(), atol=1e-5)
    # items agree wherever the score is not tied (within float32 noise) with a neighbour
    gap = both.sort("user", "rank").with_columns(
        (pl.col("score").diff().over("user").abs().fill_null(1.0) > 1e-5).alias("a"),
        (pl.col("score").diff(-1).over("user").abs().fill_null(1.0) > 1e-5).alias("b"))
    untied = gap.filter(pl.col("a") & pl.col("b"))
    assert untied.height > 0.9 * local.height
    assert (untied["item"] == untied["item_spark"]).all()


def test_recommend_on_spark_bad_requests(cli, trained, tmp_path):
    path, _ = trained
    res = cli(["recommend", path, "--user", "u002474", "--engine", "spark", "-o", tmp_path / "r"])
    assert res.exit_code == 2 and "--all-users only" in res.stderr
    res = cli(["recommend", path, "--all-users", "--engine", "spark"])
    assert res.exit_code == 2 and "not stdout" in res.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    res = cli(["recommend", path, "--all-users", "--engine", "spark", "-o", tmp_path / "full"])
    assert res.exit_code == 2 and "refusing to replace" in res.stderr and (tmp_path / "full" / "keep.txt").exists()


# -- prep on Spark ------------------------------------------------------------------
@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """1500 sample rows plus the cases cleaning handles: missing ids, bad and missing
    ratings, ISO-8601 dates, exact duplicates and same-timestamp duplicates."""
    rows = pl.read_csv(SAMPLE_DATA / "interactions.csv", schema_overrides={"rating": pl.Utf8, "timestamp": pl.Utf8}).head(1500)
    extra = pl.DataFrame({"user": ["", "u002474", "u002474", "u002373", "u002373", "u000001", "u002474"],
                          "item": ["i000001", "i000430", "i000430", "i000274", "i000999", "i000002", "i000431"],
                          "rating": ["3", "abc", "5", "", "2", "4", "1"],
                          "timestamp": ["1", "1546346098", "1546346098", "1546377165", "2019-01-05T10:00:00",
                                        "2019-01-05", "1546346098"]})
    path = tmp_path_factory.mktemp("spark-prep") / "messy.csv"
    pl.concat([rows, extra, rows.head(50)]).write_csv(path)
    return path


PREP_CASES = {
    "leave-last": ["--dedupe", "last", "--min-user-interactions", "2", "--min-item-interactions", "2", "--k-core",
                   "--split", "leave-last", "--test-size", "1", "--valid-size", "1"],
    "temporal": ["--dedupe", "first", "--rating-range", "1,5", "--normalize", "zscore", "--split", "temporal",
                 "--test-size", "0.2", "--drop-cold"],
    "implicit": ["--dedupe", "sum", "--implicit", "--min-rating", "2", "--weight", "log1p", "--min-user-interactions", "3",
                 "--split", "temporal", "--cut-date", "2019-02-15", "--valid-size", "0.1"],
}


@pytest.mark.parametrize("case", sorted(PREP_CASES))
def test_prep_on_spark_equals_local(cli, spark, messy, tmp_path, case):
    import json

    args = ["prep", messy, "--output-format", "parquet", *PREP_CASES[case]]
    res = cli([*args, "--out", tmp_path / "local"])
    assert res.exit_code == 0, res.stderr
    res = cli([*args, "--out", tmp_path / "spark", "--engine", "spark"])
    assert res.exit_code == 0, res.stderr
    local, on_spark = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("local", "spark"))
    assert local["files"].keys() == on_spark["files"].keys()
    # normalisation statistics are sums: equal up to the order of the additions
    norm = local["report"].pop("normalization"), on_spark["report"].pop("normalization")
    assert norm[0] == pytest.approx(norm[1], rel=1e-12)
    assert local["report"] == on_spark["report"] and local["rows"] == on_spark["rows"]
    for name in local["files"]:
        if name != "manifest":
            a = pl.read_parquet(tmp_path / "local" / local["files"][name])
            b = pl.read_parquet(tmp_path / "spark" / on_spark["files"][name] / "*.parquet")
            assert a.height > 0
            assert_frame_equal(a, b, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)


def test_prep_on_spark_random_split_sizes_and_refusals(cli, spark, messy, tmp_path):
    import json

    res = cli(["prep", messy, "--split", "user-ratio", "--test-size", "0.3", "--seed", "3", "--engine", "spark",
               "--out", tmp_path / "s"])
    assert res.exit_code == 0, res.stderr
    report = json.loads((tmp_path / "s" / "manifest.json").read_text())["report"]
    train = pl.read_parquet(tmp_path / "s" / "train.parquet" / "*.parquet")
    test = pl.read_parquet(tmp_path / "s" / "test.parquet" / "*.parquet")
    n_u = pl.concat([train, test]).group_by("user").len()
    want = n_u.with_columns(pl.min_horizontal((pl.col("len") * 0.3 + 0.5).floor(), pl.col("len") - 1).alias("t"))
    got = test.group_by("user").len().rename({"len": "got"})
    both = want.join(got, on="user", how="left").with_columns(pl.col("got").fill_null(0))
    assert (both["got"] == both["t"]).all() and report["rows_written"]["test"] == test.height
    res = cli(["prep", messy, "--normalize", "user-mean", "--engine", "spark", "--out", tmp_path / "x"])
    assert res.exit_code == 2 and "--normalize user-mean is not available with --engine spark" in res.stderr
    res = cli(["prep", messy, "--split", "cold-items", "--engine", "spark", "--out", tmp_path / "x"])
    assert res.exit_code == 2 and "--split cold-items is not available with --engine spark" in res.stderr
    res = cli(["prep", messy, "--item-table", messy, "--item-feature", "rating:numeric", "--engine", "spark",
               "--out", tmp_path / "x"])
    assert res.exit_code == 2 and "--item-table" in res.stderr and not (tmp_path / "x").exists()
    res = cli(["prep", messy, "--engine", "spark"])
    assert res.exit_code == 2 and "--out DIR" in res.stderr
    (tmp_path / "cols.parquet").mkdir()
    pl.DataFrame({"a": ["1"], "b": ["2"]}).write_parquet(tmp_path / "cols.parquet" / "part-0.parquet")
    res = cli(["train", tmp_path / "cols.parquet", "--model", "als", "--engine", "spark", "-o", tmp_path / "m"])
    assert res.exit_code == 2 and "no user column" in res.stderr and not (tmp_path / "m").exists()


def test_ids_beyond_int32_are_refused(spark, small, monkeypatch):
    from recli.errors import InputError
    from recli.models.als import ALSConfig
    from recli.stages.spark import train as spark_train

    monkeypatch.setattr(spark_train, "INT32_MAX", 100)  # 2870 users cannot be numbered below it
    with pytest.raises(InputError, match="do not fit Spark's int32 ids") as err:
        spark_train.train_als(spark, str(small), None, ALSConfig(factors=2, iterations=1), spark_train.split_params([])[1])
    assert "int32" in err.value.hint
