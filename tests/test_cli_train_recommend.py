"""``recli train`` / ``recommend`` / ``info`` through the CLI: outputs, pipes, bad input."""

from __future__ import annotations

import io
import json
import os
import re

import polars as pl
import pytest

from recli.models import registry
from tests import contracts as C
from tests.conftest import run_recli

MODELS = registry()


@pytest.fixture
def train_csv(tmp_path):
    """The contract block data as a CSV with string ids and epoch timestamps."""
    matrix, _, _ = C.block_matrix()
    coo = matrix.tocoo()
    df = pl.DataFrame({"user": [f"u{u:03d}" for u in coo.row], "item": [f"i{i:03d}" for i in coo.col],
                       "timestamp": [str(1_700_000_000 + 3600 * n) for n in range(coo.nnz)]})
    path = tmp_path / "train.csv"
    df.write_csv(path)
    return path


@pytest.fixture
def model_dir(cli, train_csv, tmp_path):
    out = tmp_path / "pop"
    res = cli(["train", train_csv, "--model", "popular", "-o", out])
    assert res.exit_code == 0, res.stderr
    return out


def _csv(text: str) -> pl.DataFrame:
    return pl.read_csv(io.StringIO(text), schema_overrides={"user": pl.Utf8, "item": pl.Utf8})


def test_list_models_and_show_params_come_from_the_registry(cli):
    res = cli(["train", "--list-models"])
    assert res.exit_code == 0
    for name in MODELS:
        assert name in res.stdout
    rows = json.loads(cli(["train", "--list-models", "--format", "json"]).stdout)
    assert [r["name"] for r in rows] == list(MODELS)
    for name, cls in MODELS.items():
        shown = json.loads(cli(["train", "--model", name, "--show-params", "--format", "json"]).stdout)
        assert [p["name"] for p in shown] == list(cls.Config.__dataclass_fields__)


def test_train_info_recommend(cli, train_csv, model_dir):
    meta = json.loads(cli(["info", model_dir, "--format", "json"]).stdout)
    assert meta["model"] == "popular" and meta["counts"]["users"] == 24 and meta["threads"] >= 1
    assert meta["train_source"] == str(train_csv) and len(meta["training_fingerprint"]) == 64
    table = cli(["info", model_dir])
    assert table.exit_code == 0 and "training fingerprint" in table.stdout
    res = cli(["recommend", model_dir, "--user", "u000", "--user", "u009", "-k", "3"])
    assert res.exit_code == 0, res.stderr
    df = _csv(res.stdout)
    assert df.columns == ["user", "item", "score", "rank"]
    assert df["user"].to_list() == ["u000"] * 3 + ["u009"] * 3
    assert df["rank"].to_list() == [1, 2, 3, 1, 2, 3]
    assert res.stderr == ""


def test_params_precedence_flags_over_param_over_config(cli, train_csv, tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text('model = "popular"\n[params]\nwindow_days = 2.0\nmeasure = "sum"\n')
    out = tmp_path / "m"
    res = cli(["train", train_csv, "--config", cfg, "-p", "window_days=3", "-o", out])
    assert res.exit_code == 0, res.stderr
    config = json.loads((out / "meta.json").read_text())["config"]
    assert config == {"window_days": 3.0, "measure": "sum"}


def test_recent_window_changes_popularity(cli, train_csv, tmp_path):
    out = tmp_path / "recent"
    assert cli(["train", train_csv, "--model", "popular", "-p", "window_days=1", "-o", out]).exit_code == 0
    df = _csv(cli(["recommend", out, "--user", "u000", "-k", "1"]).stdout)
    # only the last day's cells (the last block's users) count: a last-block item wins
    assert df["item"][0] >= f"i{2 * C.ITEMS_PER_BLOCK:03d}"


def test_all_users_stream_file_and_filters(cli, model_dir, tmp_path):
    only = tmp_path / "only.txt"
    only.write_text("i014\ni013\ni000\n")
    out = tmp_path / "recs.parquet"
    res = cli(["recommend", model_dir, "--all-users", "-k", "5", "--only-items", only, "--batch-size", "5", "-o", out])
    assert res.exit_code == 0, res.stderr
    df = pl.read_parquet(out)
    assert df["user"].n_unique() == 24 and set(df["item"].to_list()) <= {"i014", "i013", "i000"}
    deny = tmp_path / "deny.csv"
    deny.write_text("item\ni014\n")
    df = _csv(cli(["recommend", model_dir, "--all-users", "--exclude-items", deny]).stdout)
    assert "i014" not in df["item"].to_list() and df.height == 24 * 10


def test_users_file_stdin_history_and_unknown_users(cli, model_dir):
    res = cli(["recommend", model_dir, "--users", "-", "-k", "2"], input="user\nu001\nnobody\nu002\n")
    assert res.exit_code == 0
    assert _csv(res.stdout)["user"].unique(maintain_order=True).to_list() == ["u001", "u002"]
    assert res.stderr.count("warning:") == 1 and "1 users unknown" in res.stderr
    res = cli(["recommend", model_dir, "--users", "-", "-k", "2", "--fallback", "popular"], input="u001\nnobody\n")
    assert _csv(res.stdout)["user"].to_list() == ["u001", "u001", "nobody", "nobody"]
    res = cli(["recommend", model_dir, "--user", "newbie", "--history", "-", "-k", "20"],
              input="user,item\nnewbie,i000\nnewbie,i001\n")
    df = _csv(res.stdout)
    assert df.height == 13 and not {"i000", "i001"} & set(df["item"].to_list())


def test_end_to_end_pipe_train_from_stdin_then_recommend(train_csv, tmp_path):
    out = tmp_path / "m"
    res = run_recli(["train", "-", "--model", "popular", "-o", out, "--threads", "1"], input=train_csv.read_bytes())
    assert res.returncode == 0, res.stderr.decode()
    res = run_recli(["recommend", out, "--all-users", "-k", "2", "--threads", "1"])
    assert res.returncode == 0, res.stderr.decode()
    df = _csv(res.stdout.decode())
    assert df.height == 48 and df.columns == ["user", "item", "score", "rank"]
    again = run_recli(["recommend", out, "--all-users", "-k", "2", "--threads", "1"])
    assert again.stdout == res.stdout


# -- bad input: one error line with a hint, exit 2, nothing written ------------------------

def _assert_clean_error(res, *needles, written=None):
    assert res.exit_code == 2, (res.exit_code, res.stderr)
    assert res.stderr.startswith("error: ") and "hint: " in res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    for needle in needles:
        assert needle in res.stderr, res.stderr
    if written is not None:
        assert not os.path.exists(written)


def _with_field(field):
    return [pytest.param(name, id=name) for name, cls in MODELS.items() if field in cls.Config.__dataclass_fields__]


def test_unknown_model_lists_registry(cli, train_csv, tmp_path):
    res = cli(["train", train_csv, "--model", "nope", "-o", tmp_path / "m"])
    _assert_clean_error(res, "unknown model", *MODELS, written=tmp_path / "m")


def test_unknown_parameter_lists_valid_ones(cli, train_csv, tmp_path):
    res = cli(["train", train_csv, "--model", "popular", "-p", "colour=red", "-o", tmp_path / "m"])
    _assert_clean_error(res, "unknown parameter", "window_days", "measure", written=tmp_path / "m")
    res = cli(["train", train_csv, "--model", "popular", "-p", "no-equals", "-o", tmp_path / "m"])
    _assert_clean_error(res, "key=value", written=tmp_path / "m")


@pytest.mark.parametrize("flag, field", [("--factors", "factors"), ("--alpha", "alpha"),
                                         ("--learning-rate", "learning_rate")])
def test_out_of_range_common_flags(cli, train_csv, tmp_path, flag, field):
    # Only models whose declared bounds exclude 0 (itemknn's asymmetric-cosine alpha may be 0).
    def zero_is_invalid(cls):
        md = cls.Config.__dataclass_fields__[field].metadata
        lo = md.get("min")
        return lo is not None and (lo > 0 or (lo == 0 and md.get("exclusive_min")))

    models = [n for n, c in MODELS.items() if field in c.Config.__dataclass_fields__ and zero_is_invalid(c)]
    if not models:
        pytest.skip(f"no registered model has {field!r}")
    for name in models:
        res = cli(["train", train_csv, "--model", name, flag, "0", "-o", tmp_path / "m"])
        _assert_clean_error(res, "out of range", written=tmp_path / "m")


def test_out_of_range_model_param(cli, train_csv, tmp_path):
    res = cli(["train", train_csv, "--model", "popular", "-p", "window_days=-2", "-o", tmp_path / "m"])
    _assert_clean_error(res, "out of range", written=tmp_path / "m")
    res = cli(["train", train_csv, "--model", "popular", "-p", "measure=median", "-o", tmp_path / "m"])
    _assert_clean_error(res, "not a valid choice", written=tmp_path / "m")


def test_empty_training_set(cli, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("user,item\n")
    _assert_clean_error(cli(["train", empty, "--model", "popular", "-o", tmp_path / "m"]), written=tmp_path / "m")
    res = cli(["train", "-", "--model", "popular", "-o", tmp_path / "m"], input="")
    _assert_clean_error(res, written=tmp_path / "m")


def test_output_not_writable(cli, train_csv, tmp_path):
    _assert_clean_error(cli(["train", train_csv, "--model", "popular", "-o", tmp_path / "no" / "dir" / "m"]),
                        "does not exist")
    blocker = tmp_path / "file.txt"
    blocker.write_text("mine")
    _assert_clean_error(cli(["train", train_csv, "--model", "popular", "-o", blocker]), "refusing")
    assert blocker.read_text() == "mine"
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        res = cli(["train", train_csv, "--model", "popular", "-o", ro / "m"])
        assert res.exit_code == 4 and "permission denied" in res.stderr and not (ro / "m").exists()


@pytest.mark.parametrize("damage, needle", [
    (lambda p: (p / "model.popularity.npy").write_bytes(b"\x93NUMPY garbage"), "truncated"),
    (lambda p: (p / "train.data.npy").write_bytes((p / "train.data.npy").read_bytes()[:-1] + b"\x01"), "corrupt"),
    (lambda p: (p / "meta.json").write_text(re.sub(r'"format_version": \d+', '"format_version": 99',
                                                   (p / "meta.json").read_text())), "newer"),
])
def test_damaged_model_file(cli, model_dir, tmp_path, damage, needle):
    damage(model_dir)
    out = tmp_path / "recs.csv"
    _assert_clean_error(cli(["recommend", model_dir, "--all-users", "-o", out]), needle, written=out)
    _assert_clean_error(cli(["info", model_dir]), needle)


def test_users_file_without_user_column(cli, model_dir, tmp_path):
    bad = tmp_path / "users.csv"
    bad.write_text("id,name\nu001,x\n")
    _assert_clean_error(cli(["recommend", model_dir, "--users", bad, "-o", tmp_path / "r.csv"]),
                        "no 'user' column", written=tmp_path / "r.csv")


@pytest.mark.parametrize("args, needle", [
    (["-k", "0", "--all-users"], "-k must be at least 1"),
    (["--user", "nobody", "--strict"], "unknown to the model"),
    (["--user", "u001", "--explain"], "cannot explain"),
    (["--similar-items", "i001"], "cannot compute similar items"),
    (["--all-users", "--fallback", "random"], "unknown fallback"),
    ([], "no users given"),
    (["--all-users", "--similar-items", "i001"], "not both"),
])
def test_bad_recommend_options(cli, model_dir, tmp_path, args, needle):
    out = tmp_path / "r.csv"
    _assert_clean_error(cli(["recommend", model_dir, *args, "-o", out]), needle, written=out)


def test_missing_model(cli, tmp_path):
    _assert_clean_error(cli(["recommend", tmp_path / "none", "--all-users"]), "does not exist")


def test_verbose_logs_epochs_and_gpu_without_cupy_is_clear(cli, train_csv, tmp_path):
    res = cli(["train", train_csv, "--model", "popular", "-o", tmp_path / "m", "-v"])
    assert res.exit_code == 0 and "epoch 1:" in res.stderr and res.stdout == ""
    from recli.backend import gpu_available

    if not gpu_available():
        # a model with GPU kernels: one without them is refused before the GPU is probed
        res = cli(["train", train_csv, "--model", "als", "-o", tmp_path / "g", "--device", "gpu"])
        _assert_clean_error(res, "CuPy", written=tmp_path / "g")


@pytest.fixture
def cooccur_model(cli, train_csv, tmp_path, monkeypatch):
    import recli.models as models

    monkeypatch.setattr(models, "_MODEL_CLASSES", models._MODEL_CLASSES + (("tests.explainable_model", "Cooccur"),))
    out = tmp_path / "co"
    assert cli(["train", train_csv, "--model", "cooccur", "-o", out]).exit_code == 0
    return out


def test_explain_flat_and_jsonl(cli, cooccur_model, tmp_path):
    res = cli(["recommend", cooccur_model, "--user", "u001", "-k", "2", "--explain", "--explain-top", "10"])
    assert res.exit_code == 0, res.stderr
    df = _csv(res.stdout).with_columns(pl.col("because_item").cast(pl.Utf8))
    assert df.columns == ["user", "item", "score", "rank", "because_item", "contribution"]
    sums = df.group_by("item").agg(pl.col("contribution").sum(), pl.col("score").first())
    assert ((sums["contribution"] - sums["score"]).abs() < 1e-4).all()
    out = tmp_path / "why.jsonl"
    assert cli(["recommend", cooccur_model, "--user", "u001", "-k", "2", "--explain", "-o", out]).exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["rank"] for r in rows] == [1, 2] and len(rows[0]["because"]) == 3
    assert rows[0]["because"][0]["contribution"] >= rows[0]["because"][1]["contribution"]


def test_similar_items_through_the_cli(cli, cooccur_model, tmp_path):
    items = tmp_path / "items.txt"
    items.write_text("i001\nnot-an-item\n")
    res = cli(["recommend", cooccur_model, "--similar-items", "i000", "--items-file", items, "-k", "3"])
    assert res.exit_code == 0 and "1 items unknown" in res.stderr
    df = _csv(res.stdout)
    assert df["item"].to_list() == ["i000"] * 3 + ["i001"] * 3
    # the block structure: the most similar items share the query's block
    assert all(int(s[1:]) // C.ITEMS_PER_BLOCK == 0 for s in df["similar_item"].to_list())
    res = cli(["recommend", cooccur_model, "--similar-items", "zzz", "--strict"])
    _assert_clean_error(res, "unknown to the model")
