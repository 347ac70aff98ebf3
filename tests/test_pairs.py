"""Rating prediction as a workflow: ``recommend --pairs``, ``eval --model`` rmse/mae over
every test pair, and ``train --valid-metric``."""

from __future__ import annotations

import io
import json

import numpy as np
import polars as pl
import pytest

from tests.conftest import SAMPLE_DATA


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    from typer.testing import CliRunner

    from recli.cli import app

    out = tmp_path_factory.mktemp("pairs") / "split"
    res = CliRunner().invoke(app, ["prep", str(SAMPLE_DATA / "interactions.csv"), "--split", "leave-random",
                                   "--test-size", "0.2", "--valid-size", "0.1", "--seed", "1", "--out", str(out)])
    assert res.exit_code == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def models(split, tmp_path_factory):
    from typer.testing import CliRunner

    from recli.cli import app

    root = tmp_path_factory.mktemp("pair-models")
    for name, extra in (("mf", ["-p", "iterations=5"]), ("als", ["--iterations", "3"])):
        res = CliRunner().invoke(app, ["train", str(split / "train.csv"), "--model", name, "--seed", "3",
                                       "--threads", "1", "-o", str(root / name), *extra])
        assert res.exit_code == 0, res.stderr
    return root


def _read(text: str) -> pl.DataFrame:
    return pl.read_csv(io.StringIO(text), schema_overrides={"user": pl.Utf8, "item": pl.Utf8})


def _pairs_file(tmp_path, rows) -> str:
    path = tmp_path / "pairs.csv"
    pl.DataFrame(rows, schema=["user", "item"], orient="row").write_csv(path)
    return str(path)


def test_mf_pairs_are_the_model_predictions_in_input_order(cli, split, models, tmp_path):
    from recli.artifacts import load_model

    test = pl.read_csv(split / "test.csv", schema_overrides={"user": pl.Utf8, "item": pl.Utf8}).head(200)
    path = _pairs_file(tmp_path, list(zip(test["user"].to_list()[::-1], test["item"].to_list()[::-1])))
    res = cli(["recommend", models / "mf", "--pairs", path, "--no-clip"])
    assert res.exit_code == 0, res.stderr
    out = _read(res.stdout)
    assert out.columns == ["user", "item", "score"]
    assert out["user"].to_list() == test["user"].to_list()[::-1]
    mf = load_model(models / "mf")
    m = mf.model
    u = mf.users.index(out["user"]).astype(np.int64)
    i = mf.items.index(out["item"]).astype(np.int64)
    known = (u >= 0) & (i >= 0)
    expected = (m.global_mean + m.user_bias[u[known]] + m.item_bias[i[known]]
                + np.einsum("ij,ij->i", m.user_factors[u[known]], m.item_factors[i[known]]))
    np.testing.assert_allclose(out["score"].to_numpy()[known], expected, rtol=1e-5, atol=1e-5)


def test_mf_pairs_are_clipped_to_the_training_range_unless_no_clip(models):
    from recli.artifacts import load_model
    from recli.stages.predict import pairs_frame

    mf = load_model(models / "mf")
    mf.model.global_mean += 2.5  # push predictions past the top of the 1-5 scale
    users, items = mf.users.ids.to_list(), mf.items.ids.to_list()
    pairs = pl.DataFrame({"user": [u for u in users[:40] for _ in range(40)], "item": items[:40] * 40})
    clipped = pairs_frame(mf, pairs)["score"].to_numpy()
    raw = pairs_frame(mf, pairs, clip=False)["score"].to_numpy()
    low, high = float(mf.train[2].min()), float(mf.train[2].max())
    assert (raw > high).any(), "the case does not exercise the clip"
    assert clipped.min() >= low and clipped.max() <= high
    np.testing.assert_allclose(clipped, np.clip(raw, low, high))


def test_unknown_pairs_get_the_documented_fallback(cli, models, tmp_path):
    from recli.artifacts import load_model

    mf = load_model(models / "mf")
    user, item = mf.users.ids[0], mf.items.ids[0]
    path = _pairs_file(tmp_path, [("nobody", item), (user, "nothing"), ("nobody", "nothing"), (user, item)])
    res = cli(["recommend", models / "mf", "--pairs", path, "--no-clip"])
    assert res.exit_code == 0 and "3 of 4 pairs" in res.stderr and "fallback" in res.stderr
    scores = _read(res.stdout)["score"].to_numpy()
    m = mf.model
    np.testing.assert_allclose(scores[:3], [m.global_mean + m.item_bias[0], m.global_mean + m.user_bias[0],
                                            m.global_mean], rtol=1e-6)
    strict = cli(["recommend", models / "mf", "--pairs", path, "--strict"])
    assert strict.exit_code == 2 and "unknown to the model" in strict.stderr and strict.stdout == ""
    ranking = _read(cli(["recommend", models / "als", "--pairs", path]).stdout)
    assert ranking["score"].null_count() == 3 and ranking["score"][3] is not None


def test_ranking_model_pair_scores_equal_its_recommendation_scores(cli, models, tmp_path):
    from recli.artifacts import load_model

    user = load_model(models / "als").users.ids[5]
    recs = _read(cli(["recommend", models / "als", "--user", user, "-k", "5"]).stdout)
    path = _pairs_file(tmp_path, list(zip(recs["user"], recs["item"])))
    scored = _read(cli(["recommend", models / "als", "--pairs", path]).stdout)
    np.testing.assert_allclose(scored["score"].to_numpy(), recs["score"].to_numpy(), rtol=1e-6)


@pytest.mark.parametrize("extra", [["--user", "x"], ["--all-users"], ["--explain"], ["--history", "h.csv"]])
def test_pairs_refuse_other_modes(cli, models, tmp_path, extra):
    res = cli(["recommend", models / "mf", "--pairs", _pairs_file(tmp_path, [("a", "b")]), *extra])
    assert res.exit_code == 2 and "--pairs cannot be combined" in res.stderr


def test_eval_model_rmse_covers_every_test_pair(cli, split, models):
    from recli.metrics import rating_errors

    res = cli(["eval", "--model", models / "mf", "--test", split / "test.csv", "-m", "rmse,mae", "--format", "json"])
    assert res.exit_code == 0, res.stderr
    got = {r["metric"]: r["value"] for r in json.loads(res.stdout)}
    pairs = cli(["recommend", models / "mf", "--pairs", split / "test.csv"])
    test = pl.read_csv(split / "test.csv", schema_overrides={"user": pl.Utf8, "item": pl.Utf8})
    predicted = _read(pairs.stdout)["score"].to_numpy()
    expected = rating_errors(predicted, test["rating"].to_numpy())
    assert got["rmse"] == pytest.approx(expected["rmse"], rel=1e-5)
    assert got["mae"] == pytest.approx(expected["mae"], rel=1e-5)
    refused = cli(["eval", "--model", models / "als", "--test", split / "test.csv", "-m", "rmse"])
    assert refused.exit_code == 2 and "need predicted ratings" in refused.stderr


def test_valid_metric_defaults_by_model_and_follows_the_direction(cli, split, tmp_path):
    out = tmp_path / "mf"
    res = cli(["train", split / "train.csv", "--model", "mf", "-p", "iterations=12", "-p", "learning_rate=0.2",
               "--valid", split / "valid.csv", "--early-stopping", "2", "--threads", "1", "-o", out])
    assert res.exit_code == 0, res.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["valid_metric"] == "rmse"
    scores = meta["valid_scores"]
    assert meta["best_epoch"] == int(np.argmin(scores)) + 1  # lower rmse is better
    out2 = tmp_path / "als"
    res = cli(["train", split / "train.csv", "--model", "als", "--iterations", "3", "--valid", split / "valid.csv",
               "--valid-metric", "recall@5", "-o", out2])
    assert res.exit_code == 0, res.stderr
    assert json.loads((out2 / "meta.json").read_text())["valid_metric"] == "recall@5"


@pytest.mark.parametrize("model, args, needle", [
    ("itemknn", ["--valid", "{valid}"], "fits in one pass"),
    ("ease", ["--valid", "{valid}", "--early-stopping", "2"], "fits in one pass"),
    ("als", ["--valid", "{valid}", "--valid-metric", "rmse"], "needs predicted ratings"),
    ("als", ["--valid", "{valid}", "--valid-metric", "ndcg"], "needs a cutoff"),
    ("als", ["--valid", "{valid}", "--valid-metric", "bogus@3"], "unknown metric"),
    ("als", ["--valid", "{valid}", "--valid-metric", "novelty@10"], "cannot be computed"),
    ("als", ["--valid-metric", "ndcg@10"], "needs a validation set"),
])
def test_validation_options_a_model_cannot_use_are_errors(cli, split, tmp_path, model, args, needle):
    args = [a.format(valid=split / "valid.csv") for a in args]
    res = cli(["train", split / "train.csv", "--model", model, *args, "-o", tmp_path / "m"])
    assert res.exit_code == 2 and needle in res.stderr, res.stderr
    assert not (tmp_path / "m").exists()
