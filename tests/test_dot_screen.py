"""The screened top-k of factor scores (a BLAS screen, then the fixed-order rescore of the
items near the cut) equals the fixed-order fused kernel ``dot_topk`` and the slow
reference ``topk_reference(dot_scores_xp(...))`` exactly, items and scores, on near-ties
built to split BLAS's order from the fixed one."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recli.kernels import dot_screen
from recli.kernels.dot import dot_topk
from recli.kernels.dot_screen import max_row_norm, row_margins, screened_topk
from recli.kernels.dot_xp import dot_scores_xp
from recli.kernels.precision import to_float32, to_storage
from tests.reference_topk import topk_reference

NONE = np.zeros(0, np.float32)  # no bias


def seen_csr(rng, n_rows, n_items, density=0.1):
    """A seen-items CSR with one row that has seen every item."""
    seen = sp.random(n_rows, n_items, density=density, format="csr", random_state=int(rng.integers(1 << 30)))
    seen = sp.vstack([seen, sp.csr_matrix(np.ones((1, n_items)))]).tocsr()
    seen.sort_indices()
    return seen.indptr.astype(np.int64), seen.indices.astype(np.int32)


def assert_exact(U, V, b, k, rows=None, indptr=None, indices=None, banned=None, **kw):
    """screened_topk == dot_topk == the reference, items and scores bit for bit."""
    got = screened_topk(U, V, b, k, rows, indptr, indices, banned, **kw)
    fixed = dot_topk(U, V, b, k, rows, indptr, indices, banned)
    assert np.array_equal(got[0], fixed[0]) and np.array_equal(got[1], fixed[1], equal_nan=True)
    if U.shape[0] * V.shape[0] <= 400_000:
        want = topk_reference(dot_scores_xp(U, V, b), k, rows, indptr, indices, banned)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    return got


def near_ties(rng, n_users=40, n_items=700, f=64):
    """Item vectors in clusters: exact duplicates, and copies nudged by a few ulps in one
    factor, so scores within a cluster differ by an ulp or so."""
    U = rng.standard_normal((n_users, f)).astype(np.float32)
    base = rng.standard_normal((n_items // 10, f)).astype(np.float32)
    V = np.repeat(base, 10, axis=0)
    nudge = rng.integers(-3, 4, V.shape[0])
    col = rng.integers(0, f, V.shape[0])
    for j in range(V.shape[0]):
        if j % 10 >= 5:  # half of each cluster: exact duplicates; the rest nudged
            for _ in range(abs(int(nudge[j]))):
                V[j, col[j]] = np.nextafter(V[j, col[j]], np.float32(np.sign(nudge[j]) * np.inf))
    return U, V


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("workers,block_rows,tile", [(1, 0, 0), (2, 7, 128), (2, 16, 64)])
def test_near_ties_give_the_fixed_order_result(with_bias, workers, block_rows, tile, monkeypatch):
    """One tile of items, or several (the screen's bar rises from tile to tile)."""
    if tile:
        monkeypatch.setattr(dot_screen, "BLOCK_BYTES", 4 * block_rows * tile)
    rng = np.random.default_rng(5 + with_bias)
    U, V = near_ties(rng)
    b = np.repeat(rng.standard_normal(V.shape[0] // 10), 10).astype(np.float32) if with_bias else None  # per cluster
    indptr, indices = seen_csr(rng, U.shape[0], V.shape[0])
    rows = rng.permutation(indptr.shape[0] - 1)[:U.shape[0]].astype(np.int64)
    rows[0], rows[1] = -1, indptr.shape[0] - 2  # nothing seen; everything seen
    banned = (rng.random(V.shape[0]) < 0.1).astype(np.uint8)
    for k in (1, 10, 64):
        got = assert_exact(U, V, b, k, rows, indptr, indices, banned, workers=workers, block_rows=block_rows)
        assert (got[0][1] == -1).all() and np.isneginf(got[1][1]).all()  # no eligible item
    # the test has teeth: BLAS's own scores rank these near-ties differently
    blas = U @ V.T + (0 if b is None else b)
    assert not np.array_equal(topk_reference(blas, 10)[0], dot_topk(U, V, b, 10)[0])


def test_a_user_bias_added_last():
    """``mf``'s order: ``fl(fl(dot + b_j) + c_u)``; rows with a non-finite ``c_u`` take the
    fixed-order scores and topk."""
    from recli.kernels.topk import topk

    rng = np.random.default_rng(9)
    U, V = near_ties(rng, n_users=30, n_items=400, f=32)
    b = np.repeat(rng.standard_normal(40), 10).astype(np.float32)
    c = (rng.standard_normal(30) * 3).astype(np.float32)
    c[4] = np.nan
    indptr, indices = seen_csr(rng, 30, 400)
    rows = np.arange(30, dtype=np.int64)
    scores = dot_scores_xp(U, V, b) + c[:, None]
    for k in (1, 10, 400):
        got = screened_topk(U, V, b, k, rows, indptr, indices, user_bias=c, workers=2, block_rows=8)
        want = topk_reference(scores, k, rows, indptr, indices)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
        assert (got[0][4] == topk(scores[[4]], k, rows[[4]], indptr, indices)[0]).all()  # all NaN: none
    assert not np.array_equal(topk_reference(U @ V.T + b + c[:, None], 10)[0], topk_reference(scores, 10)[0])


@pytest.mark.parametrize("scale", [1e-22, 1e-3, 1.0, 1e12, 1e17, 4e18])
def test_scaled_factors_subnormal_products_and_the_overflow_fallback(scale):
    rng = np.random.default_rng(1)
    U, V = near_ties(rng, n_users=12, n_items=300, f=16)
    U, V = (U * np.float32(scale)).astype(np.float32), (V * np.float32(scale)).astype(np.float32)
    b = (rng.standard_normal(V.shape[0]) * scale * scale).astype(np.float32)  # 1e-22: products are subnormal
    margins = row_margins(U, V, b, NONE)
    assert np.isfinite(margins).all() == (scale < 1e18)  # 4e18: scores could overflow: dot_topk
    for k in (3, 30):
        assert_exact(U, V, b, k)
        assert_exact(U, V, None, k)


def test_non_finite_factors_go_to_the_fixed_order_kernel():
    rng = np.random.default_rng(2)
    U = rng.standard_normal((9, 8)).astype(np.float32)
    V = rng.standard_normal((150, 8)).astype(np.float32)
    reference = np.linalg.norm(V.astype(np.float64), axis=1).max()
    assert max_row_norm(V) == pytest.approx(reference, rel=1e-12)
    U[2, 3], U[4, 0] = np.nan, np.inf
    margins = row_margins(U, V, NONE, NONE)
    assert np.isinf(margins[[2, 4]]).all() and np.isfinite(np.delete(margins, [2, 4])).all()
    assert_exact(U, V, None, 5)
    V[7, 1] = np.nan  # every row: NaN scores skipped, the rest ranked
    assert np.isnan(max_row_norm(V))
    assert np.isinf(row_margins(U, V, NONE, NONE)).all()
    assert_exact(U, V, None, 5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_factors_stored_in_reduced_precision(dtype):
    """Upcast float16 / bfloat16 values: few mantissa bits, so many exact ties."""
    rng = np.random.default_rng(3)
    U = to_float32(to_storage(rng.standard_normal((30, 32)), dtype), dtype)
    V = to_float32(to_storage(rng.standard_normal((500, 32)), dtype), dtype)
    V[250:] = V[:250]  # duplicates on top
    b = to_float32(to_storage(rng.standard_normal(500) * 0.1, dtype), dtype)
    for k in (1, 10, 500):
        assert_exact(U, V, b, k, workers=2, block_rows=4)
        assert_exact(U, V, b, k, block_rows=30)


def test_k_beyond_the_eligible_items_and_tiny_catalogues():
    rng = np.random.default_rng(4)
    for n_items in (1, 5, 63, 64, 65, 129):  # whole chunks and a ragged tail
        U = rng.integers(-2, 3, (6, 3)).astype(np.float32)  # small integers: exact ties everywhere
        V = rng.integers(-2, 3, (n_items, 3)).astype(np.float32)
        banned = (rng.random(n_items) < 0.5).astype(np.uint8)
        for k in (1, 4, n_items + 3):
            assert_exact(U, V, None, k, banned=banned)
            assert_exact(U, V, rng.integers(0, 2, n_items).astype(np.float32), k)


@pytest.mark.parametrize("name,dtype", [("bpr", "bfloat16"), ("als", "float16"), ("bpr", "float32"),
                                        ("mf", "bfloat16")])
def test_factor_model_top_k_of_a_large_batch_equals_topk_of_its_scores(name, dtype):
    """FactorModel.top_k (the screened path, under threads_context) equals the reference
    top-k of the model's fixed-order scores, for factors stored as ``dtype``."""
    from recli.backend import threads_context
    from recli.kernels.cpu import SMALL_BATCH_CELLS
    from recli.models import get_model_class
    from recli.models.base import build_config

    rng = np.random.default_rng(6)
    n_users, n_items, f = 700, 400, 8
    cls = get_model_class(name)
    config = build_config(cls.Config, {"factors": f, "dtype": dtype}, name)
    arrays = {"user_factors": to_storage(rng.standard_normal((n_users, f)), dtype),
              "item_factors": to_storage(rng.standard_normal((n_items, f)), dtype)}
    if name in ("bpr", "mf"):
        arrays["item_bias"] = rng.standard_normal(n_items).astype(np.float32)
    if name == "mf":
        arrays.update(user_bias=rng.standard_normal(n_users).astype(np.float32), global_mean=np.array([3.6]))
    model = cls.from_arrays(config, arrays)
    users = np.arange(n_users)
    assert n_users * n_items > SMALL_BATCH_CELLS  # the large-batch branch
    indptr, indices = seen_csr(rng, n_users, n_items)
    banned = (rng.random(n_items) < 0.05).astype(np.uint8)
    with threads_context(2):
        got = model.top_k(users, None, 10, users, indptr, indices, banned)
    want = topk_reference(model.score(users, None), 10, users, indptr, indices, banned)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_blas_limit_for_the_worker_thread_is_set_from_the_main_thread():
    """A limit set from a worker thread does not always hold (OpenBLAS keeps the main
    thread's count once the main thread set one); the recommend stage sets it from the
    main thread, so the worker that scores sees one BLAS thread and runs its workers."""
    import threading

    from recli.backend import single_threaded_blas, threads_context

    seen = []

    def worker():
        with threads_context(2), single_threaded_blas() as single:
            seen.append(single)

    with threads_context(2), single_threaded_blas() as single:
        assert single
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    assert seen == [True]


def test_one_worker_when_the_blas_limit_does_not_hold(monkeypatch):
    """screened_top_k falls back to one worker (BLAS keeps its threads) when the limit does
    not hold, with the same result."""
    import contextlib

    from recli.models import _factors

    calls = []
    real = dot_screen.screened_topk

    def spy(*args, **kw):
        calls.append(kw["workers"])
        return real(*args, **kw)

    @contextlib.contextmanager
    def not_held():
        yield False

    monkeypatch.setattr(dot_screen, "screened_topk", spy)
    monkeypatch.setattr("recli.backend.single_threaded_blas", not_held)
    rng = np.random.default_rng(9)
    U, V = near_ties(rng)
    got = _factors.screened_top_k(U, V, None, 10, None, None, None, None)
    want = dot_topk(U, V, None, 10)
    assert calls == [1] and np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_block_rows_give_every_worker_a_block():
    """Tall blocks (BLOCK_ROWS users) for a big batch; shorter ones, never below
    MIN_BLOCK_ROWS, when the batch would leave a worker idle."""
    assert dot_screen.block_rows_for(100_000, 2) == dot_screen.BLOCK_ROWS
    assert dot_screen.block_rows_for(1024, 2) == 512
    assert dot_screen.block_rows_for(1000, 3) == 384  # 334 rounded up to a multiple of 64
    assert dot_screen.block_rows_for(10, 8) == dot_screen.MIN_BLOCK_ROWS


@pytest.mark.parametrize("item_bias,user_bias", [(True, False), (False, True), (True, True), (False, False)])
def test_bias_columns_make_the_product_carry_the_biases(item_bias, user_bias):
    """[U | 1 | c]·[V | b | 1]ᵀ = U·Vᵀ + b + c (the screen's scores, biases included)."""
    rng = np.random.default_rng(3)
    U = rng.standard_normal((9, 5)).astype(np.float32)
    V = rng.standard_normal((11, 5)).astype(np.float32)
    b = rng.standard_normal(11).astype(np.float32) if item_bias else NONE
    c = rng.standard_normal(9).astype(np.float32) if user_bias else NONE
    Va = dot_screen.with_bias_columns(V, b, user_bias)
    Ua = dot_screen.user_columns(np.empty((9, Va.shape[1]), np.float32), U, item_bias, c)
    assert Va.shape[1] == Ua.shape[1] == 5 + item_bias + user_bias
    want = U.astype(np.float64) @ V.T.astype(np.float64) + (b if item_bias else 0) + (c[:, None] if user_bias else 0)
    np.testing.assert_allclose(Ua @ Va.T, want, rtol=1e-5, atol=1e-5)
    if not (item_bias or user_bias):
        assert Va is V and Ua is U


def test_fused_batches_hold_several_blocks_per_thread():
    """The recommend stage hands a CPU factor model batches of several tall blocks per
    thread, whatever --batch-size; other devices keep --batch-size."""
    from types import SimpleNamespace

    from recli.backend import threads_context
    from recli.models._factors import BLOCKS_PER_WORKER, screen_batch_rows

    with threads_context(2):
        cpu = SimpleNamespace(backend=SimpleNamespace(name="cpu"))
        assert screen_batch_rows(cpu, 1024) == BLOCKS_PER_WORKER * dot_screen.BLOCK_ROWS * 2
        assert screen_batch_rows(cpu, 10**6) == 10**6
        assert screen_batch_rows(SimpleNamespace(backend=SimpleNamespace(name="xp-numpy")), 1024) == 1024
