"""The one-user ``recli recommend --user`` path: NumPy id arrays in the model file and a
stdlib CSV writer, so it imports neither Polars nor SciPy nor Numba, with output
byte-for-byte equal to the Polars path (frames from ``to_frame`` written by Polars)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from recli.artifacts import load_model
from recli.backend import get_backend
from recli.data.plain_text import csv_field, format_float32
from recli.stages import recommend as stage
from tests.conftest import REPO_ROOT

# odd ids on purpose: CSV quoting, non-ASCII, a prefix of another id, byte order vs case
USERS = ["u1", "u10", "U2", "a,b", 'say "hi"', "ü3", "sp ace", "u4", "u5", "u6"]
ITEMS = [f"i{j:02d}" for j in range(18)] + ["x,y", "é"]
MODELS = ["popular", "als", "itemknn", "bpr"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """One small model directory per model name, trained through the CLI (one thread)."""
    from typer.testing import CliRunner

    from recli.cli import app

    root = tmp_path_factory.mktemp("fast")
    rng = np.random.default_rng(3)
    rows = [(u, ITEMS[j]) for i, u in enumerate(USERS)
            for j in rng.choice(len(ITEMS), size=3 + i % 5, replace=False)]
    train = root / "train.csv"
    pl.DataFrame({"user": [r[0] for r in rows], "item": [r[1] for r in rows]}).write_csv(train)
    out = {}
    for name in MODELS:
        params = ["--factors", "4", "--iterations", "5"] if name in ("als", "bpr") else []
        res = CliRunner().invoke(app, ["train", str(train), "--model", name, "-o", str(root / name),
                                       "--threads", "1", "-q", *params], catch_exceptions=False)
        assert res.exit_code == 0, res.stderr
        out[name] = root / name
    return out


def polars_path(model_dir, users: list[str], k: int) -> bytes:
    """What the normal path writes: ``to_frame`` batches written by Polars' CSV writer."""
    mf = load_model(model_dir, get_backend("cpu", 1))
    mf.users, mf.items = (type(v)(v.ids) for v in (mf.users, mf.items))  # Series-backed vocabularies
    plan = stage.plan_users(mf, users)
    frames = [stage.to_frame(plan.ids, mf.items, *b) for b in stage.recommend_batches(mf, plan, k)]
    df = pl.concat(frames) if frames else pl.DataFrame(schema=stage.RECS_SCHEMA)
    buf = io.BytesIO()
    df.write_csv(buf)
    return buf.getvalue()


def user_args(users):
    return [a for u in users for a in ("--user", u)]


def test_model_file_holds_sorted_id_arrays(models):
    meta = json.loads((models["als"] / "meta.json").read_text())
    for name, ids in (("user_ids.npy", USERS), ("item_ids.npy", ITEMS)):
        arr = np.load(models["als"] / name, allow_pickle=False)
        assert arr.dtype.kind == "U" and arr.tolist() == sorted(ids)
        assert meta["files"][name]["bytes"] == (models["als"] / name).stat().st_size
        assert len(meta["files"][name]["sha256"]) == 64


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("k", [1, 3, 25])
def test_fast_output_equals_polars_path(cli, models, name, k):
    users = ["a,b", "u10", 'say "hi"', "ü3", "u1"]
    res = cli(["recommend", models[name], *user_args(users), "-k", k, "--threads", "1"])
    assert res.exit_code == 0, res.stderr
    assert res.stdout_bytes == polars_path(models[name], users, k)
    assert res.stdout_bytes.count(b"\n") > 1


@pytest.mark.parametrize("name", ["popular", "als", "itemknn"])
def test_fast_output_to_file_and_without_id_arrays(cli, models, tmp_path, name):
    """``-o x.csv`` writes the same bytes; a model file without the NumPy id arrays (as
    written before they were added) loads through Parquet and gives the same output."""
    users = ["u5", "sp ace", "U2"]
    expected = polars_path(models[name], users, 4)
    out = tmp_path / "recs.csv"
    assert cli(["recommend", models[name], *user_args(users), "-k", 4, "-o", out]).exit_code == 0
    assert out.read_bytes() == expected
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left

    old = tmp_path / "old"
    shutil.copytree(models[name], old)
    meta = json.loads((old / "meta.json").read_text())
    for f in ("user_ids.npy", "item_ids.npy"):
        (old / f).unlink()
        del meta["files"][f]
    (old / "meta.json").write_text(json.dumps(meta))
    mf = load_model(old, checksums=True)
    assert mf.users._array is None and mf.users.ids.to_list() == sorted(USERS)
    res = cli(["recommend", old, *user_args(users), "-k", 4])
    assert res.exit_code == 0 and res.stdout_bytes == expected


def test_unknown_users_warning_and_strict(cli, models, tmp_path):
    res = cli(["recommend", models["als"], "--user", "nobody", "--user", "u4", "--user", "u4x", "-k", 2])
    assert res.exit_code == 0
    assert res.stdout_bytes == polars_path(models["als"], ["u4"], 2)
    assert "2 users unknown to the model skipped" in res.stderr
    res = cli(["recommend", models["als"], "--user", "nobody", "-k", 2])
    assert res.exit_code == 0 and res.stdout == "user,item,score,rank\n"  # header only, as Polars writes it
    out = tmp_path / "strict.csv"
    res = cli(["recommend", models["als"], "--user", "nobody", "--user", "u4", "--strict", "-o", out])
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and "hint: " in res.stderr
    assert "1 users are unknown" in res.stderr and not out.exists()


def test_vocab_search_matches_polars_join(models):
    mf = load_model(models["als"])
    assert mf.users._array is not None
    queries = USERS + ["", "u", "u100", "zzz", "a,", "ü", "U2 ", "\0"]
    slow = type(mf.users)(mf.users.ids)
    assert mf.users.index(queries).tolist() == slow.index(queries).tolist()
    assert mf.users.hash == slow.hash


def test_float32_and_field_format_match_polars():
    rng = np.random.default_rng(0)
    values = (rng.standard_normal(20000) * 10.0 ** rng.integers(-45, 38, 20000)).astype(np.float32)
    special = [0.0, -0.0, 1.0, 5.0, 1e-6, 9.99999e-7, 1e12, 9.999999e12, 1e13, 16777216.0, 0.1,
               3.4e38, 1.4e-45, np.inf, -np.inf, np.nan]
    values = np.concatenate([values[np.isfinite(values)], np.array(special, dtype=np.float32)])
    strings = ["a,b", 'a"b', "a\nb", "a\rb", " a", "", "a b", "a\tb", "é", "#x", '"', "a;b", "a'b"]
    buf = io.BytesIO()
    pl.DataFrame({"s": values}).write_csv(buf, include_header=False)
    assert buf.getvalue().decode().splitlines() == [format_float32(v) for v in values]
    buf = io.BytesIO()
    pl.DataFrame({"s": strings}).write_csv(buf, include_header=False)
    assert buf.getvalue().decode() == "".join(csv_field(s) + "\n" for s in strings)


def imported_modules(args: list[str]) -> set[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "recli", *map(str, args)],
                         capture_output=True, env=env, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = [ln.split("|")[-1].strip() for ln in res.stderr.splitlines() if ln.startswith("import time:")]
    assert "recli.stages.recommend" in lines and "numpy" in lines  # the probe does see imports
    return {name.split(".")[0] for name in lines}


@pytest.mark.parametrize("name", ["als", "popular", "bpr"])
def test_one_user_path_imports_no_polars_scipy_numba(models, tmp_path, name):
    for extra in ([], ["-o", tmp_path / "r.csv"]):
        top = imported_modules(["recommend", models[name], "--user", "u1", "--user", "nobody", "-k", "3", *extra])
        assert not top & {"polars", "scipy", "numba"}, top & {"polars", "scipy", "numba"}
    # the other paths still work and do load Polars (a --users file)
    users = tmp_path / "users.txt"
    users.write_text("user\nu1\n")
    assert "polars" in imported_modules(["recommend", models[name], "--users", users, "-k", "3"])


def test_id_array_tampering_is_refused(models, tmp_path):
    """A rewritten ``user_ids.npy`` fails the sha256 check; with checksums off (sizes only)
    the vocabulary hash recorded in meta.json still catches it."""
    from recli.errors import ArtifactError

    bad = tmp_path / "bad"
    shutil.copytree(models["als"], bad)
    ids = np.load(bad / "user_ids.npy").copy()
    ids[0] = "A1"  # same length, same byte size
    np.save(bad / "user_ids.npy", ids, allow_pickle=False)
    for checksums in (True, None, False):
        with pytest.raises(ArtifactError):
            load_model(bad, checksums=checksums)


@pytest.mark.parametrize("name", ["als", "bpr"])
def test_loaded_model_keeps_the_item_transpose(models, name):
    """A loaded factor model (read-only item factors) makes ``Vᵀ`` once: repeated one-user
    scores reuse it and equal the fixed-order kernel's bits on a fresh copy of ``V``."""
    from recli.kernels.dot_xp import dot_scores_xp

    model = load_model(models[name], get_backend("cpu", 1)).model
    V, b = model.item_side()
    assert not V.flags.writeable
    first = model.score(np.array([0, 3]))
    kept = model._items_t[1]
    again = model.score(np.array([3]))
    assert model._items_t[1] is kept  # not transposed again
    want = dot_scores_xp(model.user_vectors(np.array([0, 3]), None), np.array(V), b)
    assert np.array_equal(first, want) and np.array_equal(again[0], want[1])


def test_training_model_scores_its_current_item_factors(models):
    """Writable item factors (a model in training) are never cached: a change in place
    shows in the next scores."""
    model = load_model(models["als"], get_backend("cpu", 1)).model
    model.item_factors = np.array(model.item_factors)  # writable, as during training
    before = model.score(np.array([1]))
    model.item_factors *= 2
    assert np.allclose(model.score(np.array([1])), 2 * before)
    assert "_items_t" not in model.__dict__
