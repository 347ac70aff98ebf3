"""Factor-model scores in one fixed summation order: the Numba kernel and its NumPy twin
give the same bits, a user's scores do not depend on the batch, and ``recommend --user``
equals ``--all-users`` bit for bit on trained ALS and BPR models."""

from __future__ import annotations

import io

import numpy as np
import polars as pl
import pytest

from recli.kernels import cpu
from recli.kernels.dot import dot_scores as numba_dot
from recli.kernels.dot_xp import dot_scores_xp


def reference(U, V, b=None):
    """The documented order, one scalar at a time: s = 0; s += fl(U[u,f]·V[i,f]); s += b[i]."""
    out = np.zeros((U.shape[0], V.shape[0]), np.float32)
    for u in range(U.shape[0]):
        for i in range(V.shape[0]):
            s = np.float32(0)
            for f in range(U.shape[1]):
                s = np.float32(s + np.float32(U[u, f] * V[i, f]))
            out[u, i] = s if b is None else np.float32(s + b[i])
    return out


@pytest.mark.parametrize("shape", [(1, 5, 3), (7, 2100, 4), (70, 260, 9), (3, 1, 1)])  # row blocks, item tiles
@pytest.mark.parametrize("with_bias", [False, True])
def test_numba_and_numpy_twins_equal_the_scalar_reference_bit_for_bit(shape, with_bias):
    n_users, n_items, k = shape
    rng = np.random.default_rng(n_users + n_items)
    U = rng.standard_normal((n_users, k)).astype(np.float32)
    V = rng.standard_normal((n_items, k)).astype(np.float32)
    b = rng.standard_normal(n_items).astype(np.float32) if with_bias else None
    want = reference(U, V, b)
    np.testing.assert_array_equal(numba_dot(U, V, b), want)
    np.testing.assert_array_equal(dot_scores_xp(U, V, b), want)
    np.testing.assert_allclose(want, U.astype(np.float64) @ V.T.astype(np.float64) + (0 if b is None else b),
                               rtol=1e-4, atol=1e-4)


def test_a_row_has_the_same_bits_alone_and_in_any_batch():
    rng = np.random.default_rng(0)
    U = rng.standard_normal((600, 64)).astype(np.float32)
    V = rng.standard_normal((1000, 64)).astype(np.float32)
    b = rng.standard_normal(1000).astype(np.float32)
    full = cpu.dot_scores(U, V, b)  # 600 x 1000 cells: the Numba kernel
    assert U.shape[0] * V.shape[0] > cpu.SMALL_BATCH_CELLS
    for rows in ([5], [0, 599], list(range(17, 40))):  # the NumPy twin
        np.testing.assert_array_equal(cpu.dot_scores(U[rows], V, b), full[rows])
    blas = U[[5]] @ V.T + b  # what BLAS gives differs in the last digits: the reason for this kernel
    np.testing.assert_allclose(blas[0], full[5], rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """ALS and BPR trained on 700 users x 400 items (large enough for the Numba kernel)."""
    from typer.testing import CliRunner

    from recli.cli import app

    root = tmp_path_factory.mktemp("dot")
    rng = np.random.default_rng(8)
    users = np.repeat(np.arange(700), 8)
    items = (users % 40) * 10 + rng.integers(0, 10, users.shape[0])  # blocks, so scores spread
    train = root / "train.csv"
    pl.DataFrame({"user": [f"u{u}" for u in users], "item": [f"i{i}" for i in items]}).unique().write_csv(train)
    out = {}
    for name in ("als", "bpr"):
        res = CliRunner().invoke(app, ["train", str(train), "--model", name, "-o", str(root / name), "-q",
                                       "--factors", "16", "--iterations", "3"])
        assert res.exit_code == 0, res.stderr
        out[name] = root / name
    return out


@pytest.mark.parametrize("name", ["als", "bpr"])
def test_user_and_all_users_give_bit_identical_scores(cli, trained, name):
    chosen = ["u0", "u17", "u123", "u699"]
    every = cli(["recommend", trained[name], "--all-users", "-k", "50"])
    assert every.exit_code == 0, every.stderr
    want = pl.read_csv(io.StringIO(every.stdout), schema_overrides={"score": pl.Utf8}).filter(
        pl.col("user").is_in(chosen))
    for user in chosen:
        one = cli(["recommend", trained[name], "--user", user, "-k", "50"])
        got = pl.read_csv(io.StringIO(one.stdout), schema_overrides={"score": pl.Utf8})
        assert got.equals(want.filter(pl.col("user") == user)), user  # scores compared as printed text
    several = cli(["recommend", trained[name], *sum((["--user", u] for u in chosen), []), "-k", "50"])
    got = pl.read_csv(io.StringIO(several.stdout), schema_overrides={"score": pl.Utf8})
    assert got.sort("user", "rank").equals(want.sort("user", "rank"))


@pytest.mark.parametrize("shape", [(70, 1100, 4), (3, 7, 2)])  # ragged row blocks and item tiles; k > n_items
def test_fused_dot_topk_equals_the_reference_topk_of_the_reference_scores(shape):
    """dot_topk = topk(dot_scores(...)): seen rows (one -1), bans, ties broken by index."""
    import scipy.sparse as sp

    from recli.kernels.dot import dot_topk
    from recli.kernels.topk import topk
    from tests.reference_topk import topk_reference

    n_users, n_items, k = shape
    rng = np.random.default_rng(n_items)
    U = rng.integers(-2, 3, (n_users, k)).astype(np.float32)  # small integers: many exact ties
    V = rng.integers(-2, 3, (n_items, k)).astype(np.float32)
    b = rng.integers(0, 2, n_items).astype(np.float32)
    seen = sp.random(n_users + 5, n_items, density=0.2, format="csr", random_state=3)
    seen.sort_indices()
    indptr, indices = seen.indptr.astype(np.int64), seen.indices.astype(np.int32)
    rows = rng.permutation(n_users + 5)[:n_users].astype(np.int64)
    rows[1] = -1
    banned = (rng.random(n_items) < 0.1).astype(np.uint8)
    scores = {id(bias): reference(U, V, bias) for bias in (b, None)}
    for kk in (1, 10, n_items + 3):
        for bias, ban in ((b, banned), (None, None)):
            want = topk_reference(scores[id(bias)], kk, rows, indptr, indices, ban)
            got = dot_topk(U, V, bias, kk, rows, indptr, indices, ban)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
            split = topk(numba_dot(U, V, bias), kk, rows, indptr, indices, ban)
            np.testing.assert_array_equal(got[0], split[0])
    no_seen = dot_topk(U, V, b, 4)
    np.testing.assert_array_equal(no_seen[0], topk_reference(scores[id(b)], 4)[0])
