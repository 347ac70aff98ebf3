"""The GPU path's array-module (``xp``) kernels and models, run without a GPU: NumPy as
``xp`` directly, or through the NumPy-backed stand-in ``cupy`` (tests/fake_cupy) and the
real CLI. Each xp kernel is compared with a slow reference; the models with the CPU."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import scipy.sparse as sp

from recli.backend import get_backend
from recli.models import registry
from recli.models._weighting import MEASURES
from tests import contracts as C
from tests.reference_similarity import similarity_dense, topk_dense
from tests.test_similarity import as_rows, assert_same_topk, random_matrix

pytestmark = pytest.mark.gpu_sim


def _spd_batch(rng, batch, k):
    m = rng.standard_normal((batch, k, k))
    return m @ m.transpose(0, 2, 1) + k * np.eye(k)[None]


def test_batched_cholesky_solve_matches_a_per_row_solve():
    from recli.kernels.als_xp import xp_cholesky_solve

    rng = np.random.default_rng(0)
    A, b = _spd_batch(rng, 9, 6), rng.standard_normal((9, 6))
    want = np.stack([np.linalg.solve(A[r], b[r]) for r in range(9)])
    np.testing.assert_allclose(xp_cholesky_solve(np, A, b), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_als_on_the_stand_in_gpu_matches_the_cpu_from_the_same_start(fake_cupy, solver):
    """Same seed, same 6 epochs: factors within rtol 1e-2 / atol 1e-3, losses within 1e-4
    (the batched solves sum in another order than the per-row CPU kernels)."""
    cls = registry()["als"]
    m, _, _ = C.block_matrix()
    cpu = cls(C.config_for(cls, solver=solver), get_backend("cpu", 1)).fit(m)
    gpu = cls(C.config_for(cls, solver=solver), get_backend("gpu", 1)).fit(m)
    assert gpu.backend.name == "gpu" and type(gpu.item_factors) is np.ndarray
    np.testing.assert_allclose(gpu.user_factors, cpu.user_factors, rtol=1e-2, atol=1e-3)
    np.testing.assert_allclose(gpu.item_factors, cpu.item_factors, rtol=1e-2, atol=1e-3)
    np.testing.assert_allclose(gpu.epoch_losses, cpu.epoch_losses, rtol=1e-4)


# -- item/user similarity: blocked, top-K pruned per block --------------------------------

@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("k", [4, 30])
def test_blocked_xp_similarity_matches_the_dense_reference(measure, k):
    """Blocks of 3 rows (a budget of 3 × n cells) must give the reference's top-k."""
    from recli.kernels.similarity import Csr
    from recli.kernels.similarity_xp import BYTES_PER_CELL, similarity_topk_xp
    from recli.models._weighting import prepare_rows

    raw = random_matrix(seed=200 + len(measure), n_rows=30, n_cols=20, density=0.3)
    shrink = 0.0 if measure == "dot" else 0.5
    want = topk_dense(similarity_dense(raw.toarray(), measure, shrink=shrink, alpha=0.3), k=k)
    x = sp.csr_matrix(prepare_rows(raw, measure, "none")[0], dtype=np.float32)  # centred for pearson & co
    x.sort_indices()
    xt = x.T.tocsr()
    e = Csr(x.indptr.astype(np.int64), x.indices, x.data)
    f = Csr(xt.indptr.astype(np.int64), xt.indices, xt.data)
    out = similarity_topk_xp(e, f, k, measure, shrink, 0.3, np, batch_bytes=3 * 30 * BYTES_PER_CELL)
    got = as_rows(sp.csr_matrix((out.data, out.indices, out.indptr), shape=(30, 30)))
    assert_same_topk(got, want)


def test_similarity_blocks_are_bounded_by_the_budget():
    from recli.kernels.similarity_xp import BYTES_PER_CELL, block_rows

    assert block_rows(1000, 10 * 1000 * BYTES_PER_CELL) == 10
    assert block_rows(1000, 1) == 1  # a block holds at least one row


@pytest.mark.parametrize("name", ["itemknn", "userknn"])
def test_knn_on_the_xp_path_builds_the_cpu_similarity(name):
    cls = registry()[name]
    m, _, _ = C.block_matrix()
    cpu = C.fit(cls, m)
    xp = cls(C.config_for(cls), get_backend("xp-numpy", 1)).fit(m)
    np.testing.assert_array_equal(xp.similarity.indptr, cpu.similarity.indptr)
    np.testing.assert_array_equal(xp.similarity.indices, cpu.similarity.indices)
    np.testing.assert_allclose(xp.similarity.data, cpu.similarity.data, rtol=1e-6)


# -- ease: the dense solve ---------------------------------------------------------------

def test_xp_ease_weights_match_the_closed_form_and_the_cpu_kernel():
    from recli.kernels.cpu import ease_weights
    from recli.kernels.ease_xp import ease_weights_xp

    x = random_matrix(seed=5, n_rows=25, n_cols=12)
    args = (x.indptr, x.indices, x.data, 12, 3.0)
    d = x.toarray().astype(np.float64)
    P = np.linalg.inv(d.T @ d + 3.0 * np.eye(12))
    want = np.eye(12) - P / np.diag(P)[None, :]
    got = ease_weights_xp(*args, xp=np)
    assert got.dtype == np.float32 and np.all(np.diag(got) == 0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, ease_weights(*args), rtol=1e-5, atol=1e-6)


def test_xp_ease_refuses_a_matrix_that_is_not_positive_definite():
    from recli.kernels.ease_xp import ease_weights_xp

    x = random_matrix(seed=5, n_rows=25, n_cols=12)
    with pytest.raises(np.linalg.LinAlgError):
        ease_weights_xp(x.indptr, x.indices, -x.data * x.data, 12, -1e6, xp=np)


# -- the contract of every GPU-capable model, trained on the stand-in GPU ----------------

GPU_MODELS = [pytest.param(cls, id=name) for name, cls in registry().items() if "gpu" in cls.devices]


@pytest.mark.parametrize("cls", GPU_MODELS)
def test_gpu_model_contract_on_the_stand_in(fake_cupy, cls, tmp_path):
    """Trained with ``--device gpu`` (stand-in): the known answer on blocks, seen items
    masked, host NumPy state; saved, it serves the same top-k on a CPU-only backend and
    on the GPU, and a CPU-trained file serves on the GPU as on the CPU."""
    from recli.artifacts import load_model, save_model
    from recli.models.base import config_to_dict

    matrix, blocks, held = C.block_matrix()
    model = cls(C.config_for(cls), get_backend("gpu", 1)).fit(matrix)
    assert model.backend.name == "gpu"
    assert all(type(a) is np.ndarray for a in model.to_arrays().values())  # results return to the host
    items, scores = C.recommend_all(C.model_file(model, matrix), k=3)
    assert (items[:, 0] == held).mean() >= 0.8 and (C.item_block(items[:, 0]) == blocks).mean() >= 0.8
    assert (np.diff(scores, axis=1) <= 0).all()
    for u in range(matrix.shape[0]):
        assert not set(matrix.indices[matrix.indptr[u]:matrix.indptr[u + 1]].tolist()) & set(items[u].tolist())
    served = {}
    for trained_on, fitted in (("gpu", model), ("cpu", C.fit(cls, matrix))):
        mf = C.model_file(fitted, matrix)
        save_model(tmp_path / trained_on, fitted, mf.users, mf.items, matrix,
                   {"config": config_to_dict(fitted.config), "seed": C.SEED, "device": trained_on})
        for device in ("cpu", "gpu"):
            with pytest.MonkeyPatch.context() as mp:
                if device == "cpu":  # a CPU-only machine: no CuPy at all
                    mp.setitem(sys.modules, "cupy", None)
                loaded = load_model(tmp_path / trained_on, get_backend(device, 1))
                assert loaded.model.backend.name == device
                served[trained_on, device] = C.recommend_all(loaded, k=5)
    for trained_on in ("gpu", "cpu"):
        np.testing.assert_array_equal(served[trained_on, "gpu"][0], served[trained_on, "cpu"][0])
        np.testing.assert_allclose(served[trained_on, "gpu"][1], served[trained_on, "cpu"][1], rtol=1e-6)


# -- MovieLens 100K: the xp path ranks like the CPU ----------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name, params", [("als", {"factors": 32, "iterations": 5, "cg_steps": 6}),
                                          ("als", {"factors": 16, "iterations": 3, "solver": "cholesky"}),
                                          ("itemknn", {}), ("userknn", {}), ("ease", {"lambda_": 200.0})])
def test_ml100k_top10_overlap_with_the_cpu(ml100k, name, params):
    """Deterministic models: on the array-module path with NumPy (what CuPy runs on a GPU)
    the top-10 of every user overlaps the CPU's top-10 by at least 95% on average.

    ALS with CG runs 6 steps: CG cut off after 3 leaves an error that float32 rounding in
    another summation order steers differently, epoch after epoch (overlap about 0.93 at
    the defaults, 64 factors × 15 epochs; 0.99 here; docs/gpu.md)."""
    from tests.test_pairwise_ml100k import split

    train, _ = split(ml100k)
    cls = registry()[name]
    tops = []
    for device in ("cpu", "xp-numpy"):
        model = cls(C.config_for(cls, **params), get_backend(device, 1)).fit(train)
        items, _ = C.recommend_all(C.model_file(model, train), k=10)
        tops.append(items)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(*tops)])
    assert overlap >= 0.95, overlap


# -- memory planning and the GPU's bad input ---------------------------------------------

def test_the_plan_sizes_batches_to_the_budget_and_refuses_with_the_estimate(fake_cupy):
    from recli.device_memory import MAX_BATCH_BYTES, MIN_MARGIN, MemoryEstimate, plan_device_memory
    from recli.errors import ConfigError

    backend = get_backend("gpu")
    est = MemoryEstimate({"factors": 1000, "data": 500}, per_unit=10, min_units=7, unit="non-zero")
    assert plan_device_memory(backend, est, "als", "10KB") == 10 * 1024 - 1500
    assert backend.kernels.batch_bytes == 10 * 1024 - 1500
    import cupy

    free, total = cupy.cuda.runtime.memGetInfo()
    assert plan_device_memory(backend, est, "als") == min(free - max(MIN_MARGIN, total // 10) - 1500, MAX_BATCH_BYTES)
    with pytest.raises(ConfigError) as err:
        plan_device_memory(backend, est, "als", "1500B")  # resident fits, the smallest batch (70 B) does not
    assert "about 1.5 KB" in err.value.message and "factors 1000 B + data 500 B" in err.value.message
    assert "smallest batch 70 B" in err.value.message and "--max-gpu-memory=1500B" in err.value.message
    assert plan_device_memory(get_backend("xp-numpy"), est, "als", "1B") is None  # no device memory to plan
    assert plan_device_memory(get_backend("cpu"), est, "als", "1B") is None


@pytest.mark.parametrize("name", ["als", "itemknn", "ease"])
def test_max_gpu_memory_too_small_is_refused_with_the_estimate(cli, fake_cupy, train_csv, tmp_path, name):
    out = tmp_path / name
    res = cli(["train", train_csv, "--model", name, "-o", out, "--device", "gpu", "--max-gpu-memory", "1KB"])
    assert res.exit_code == 2 and not out.exists()
    assert res.stderr.startswith(f"error: {name} on the GPU needs about ") and "--max-gpu-memory=1KB" in res.stderr
    assert "hint: raise --max-gpu-memory" in res.stderr


def test_the_default_budget_is_the_free_memory_less_a_margin(cli, fake_cupy, train_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("RECLI_FAKE_GPU_MEMORY", f"{600 << 20},{1 << 30}")  # 600 MiB free: 88 MiB past the margin
    res = cli(["train", train_csv, "--model", "ease", "-o", tmp_path / "m", "--device", "gpu"])
    assert res.exit_code == 0, res.stderr
    monkeypatch.setenv("RECLI_FAKE_GPU_MEMORY", f"{500 << 20},{1 << 30}")  # less than the 512 MiB margin
    res = cli(["train", train_csv, "--model", "ease", "-o", tmp_path / "n", "--device", "gpu"])
    assert res.exit_code == 2 and "the free GPU memory less a 512.0 MB margin" in res.stderr


def test_a_tight_budget_gives_small_batches_and_the_same_model(fake_cupy):
    from recli.device_memory import plan_device_memory

    cls = registry()["als"]
    m, _, _ = C.block_matrix()
    config = C.config_for(cls, solver="cholesky")
    est = cls.gpu_memory(config, m)
    roomy, tight = get_backend("gpu", 1), get_backend("gpu", 1)
    plan_device_memory(tight, est, "als", f"{est.smallest}B")  # the smallest batch: one longest row
    assert tight.kernels.batch_bytes == est.smallest_batch
    a, b = cls(config, roomy).fit(m), cls(config, tight).fit(m)
    np.testing.assert_allclose(a.item_factors, b.item_factors, rtol=1e-5, atol=1e-7)


def test_bad_max_gpu_memory_is_a_usage_error(cli, train_csv, tmp_path):
    res = cli(["train", train_csv, "--model", "als", "-o", tmp_path / "m", "--max-gpu-memory", "lots"])
    assert res.exit_code == 2 and res.stderr.startswith("error: --max-gpu-memory='lots' is not a size")


@pytest.mark.parametrize("count, reason", [(None, "CuPy is not installed"), (0, "CuPy sees no CUDA device")])
def test_gpu_without_cupy_or_without_a_device_gives_the_install_hint(cli, monkeypatch, train_csv, tmp_path,
                                                                    count, reason):
    from tests.conftest import FAKE_CUPY, forget_cupy

    forget_cupy()
    if count is None:
        monkeypatch.setitem(sys.modules, "cupy", None)
    else:
        monkeypatch.syspath_prepend(str(FAKE_CUPY))
        import cupy

        monkeypatch.setattr(cupy.cuda.runtime, "getDeviceCount", lambda: count)
    try:
        res = cli(["train", train_csv, "--model", "als", "-o", tmp_path / "m", "--device", "gpu"])
    finally:
        forget_cupy()
    assert res.exit_code == 2 and res.stderr.startswith("error: --device gpu needs CuPy") and reason in res.stderr
    assert 'pip install "recli[cuda12]"' in res.stderr and '"recli[cuda13]"' in res.stderr


def test_bench_parity_covers_every_gpu_model_on_the_xp_path(monkeypatch):
    """``recli bench --check parity`` compares each GPU-capable model's xp path (and the
    real GPU when one is usable) with the CPU; the xp kernels really run."""
    import json

    from recli.kernels.xp import XPKernels
    from tests.test_bench import _invoke

    calls: list[str] = []
    for name in ("similarity_topk", "ease_weights", "als_sweep"):
        real = getattr(XPKernels, name)
        monkeypatch.setattr(XPKernels, name, lambda self, *a, _n=name, _r=real, **kw: calls.append(_n) or _r(self, *a, **kw))
    result = _invoke(["bench", "--synthetic", "200x80x2000", "--models", "als,itemknn,userknn,ease", "--factors", "8",
                      "--threads", "1", "--check", "parity", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert {(r["model"], r["backend"], r["status"]) for r in rows} >= {
        ("als", "xp-numpy", "ok"), ("itemknn", "xp-numpy", "ok"), ("userknn", "xp-numpy", "ok"), ("ease", "xp-numpy", "ok")}
    assert set(calls) == {"similarity_topk", "ease_weights", "als_sweep"}


# Deterministic GPU models: trained on either device they rank alike. The SGD models
# (bpr, warp, mf) train by mini-batch on the GPU; tests/test_gpu_sgd.py compares them.
DETERMINISTIC = [n for n, cls in registry().items() if "gpu" in cls.devices and n not in ("bpr", "warp", "mf")]


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_train_recommend_and_eval_on_the_stand_in_gpu_through_the_cli(cli, fake_cupy, train_csv, tmp_path, name):
    """The real CLI end to end on ``--device gpu``: the same recommendations as the CPU."""
    import json

    outs = {}
    for device in ("gpu", "cpu"):
        out = tmp_path / f"{name}-{device}"
        res = cli(["train", train_csv, "--model", name, "-o", out, "--device", device])
        assert res.exit_code == 0, res.stderr
        assert json.loads((out / "meta.json").read_text())["device"] == device
        recs = cli(["recommend", out, "--all-users", "-k", "3", "--device", device])
        assert recs.exit_code == 0, recs.stderr
        # user, item and rank (ALS's float32 scores differ in the last digits: docs/gpu.md)
        outs[device] = [line.split(",")[:2] + line.split(",")[3:] for line in recs.stdout.splitlines()]
    assert outs["gpu"] == outs["cpu"] and len(outs["gpu"]) == 1 + 3 * C.block_matrix()[0].shape[0]
    test_csv = tmp_path / "test.csv"
    _, _, held = C.block_matrix()
    test_csv.write_text("user,item\n" + "".join(f"u{u:03d},i{i:03d}\n" for u, i in enumerate(held)))
    res = cli(["eval", "--model", tmp_path / f"{name}-gpu", "--test", test_csv, "-k", "3", "--device", "gpu",
               "--format", "json"])
    assert res.exit_code == 0, res.stderr
    recall = [r["value"] for r in json.loads(res.stdout) if r["metric"] == "recall"]
    assert recall and recall[0] >= 0.8  # the held-out item is in the GPU's top 3


def test_recommend_batches_on_a_device_fit_its_budget_with_the_same_result(monkeypatch):
    from recli.kernels.topk_xp import BYTES_PER_CELL
    from recli.kernels.xp import XPKernels
    from recli.models.base import train_arrays

    cls = registry()["ease"]
    m, _, _ = C.block_matrix()
    cpu = C.fit(cls, m)
    model = cls.from_arrays(cpu.config, {**cpu.to_arrays(), **train_arrays(m)},
                            get_backend("xp-numpy"))
    model.backend.kernels.batch_bytes = 5 * m.shape[1] * BYTES_PER_CELL  # 5 users per batch
    sizes: list[int] = []
    real = XPKernels.topk
    monkeypatch.setattr(XPKernels, "topk", lambda self, scores, *a, **kw: sizes.append(len(scores)) or real(self, scores, *a, **kw))
    got = C.recommend_all(C.model_file(model, m), k=4)
    want = C.recommend_all(C.model_file(cpu, m), k=4)
    assert max(sizes) == 5 and sum(sizes) == m.shape[0]
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_als_batches_honour_both_limits_with_the_same_solution():
    from recli.data.matrix import csr_arrays
    from recli.kernels.als_xp import _batches, batch_limits, nnz_bytes, row_bytes, xp_als_sweep
    from tests import reference_als as ref_als

    indptr = np.array([0, 3, 3, 4, 9, 10, 12])
    got = list(_batches(indptr, 4, max_rows=2))
    assert got == [(0, 2), (2, 3), (3, 4), (4, 6)]  # row 3 alone exceeds 4 non-zeros: a batch of its own
    assert batch_limits(2 * 1000 * nnz_bytes(8, "cg"), 8, "cg")[0] == 1000
    assert batch_limits(2 * 10 * row_bytes(8, "cholesky"), 8, "cholesky")[1] == 10
    m, _, _ = C.block_matrix()
    Y = np.random.default_rng(0).random((m.shape[1], 4), dtype=np.float32)
    X = np.zeros((m.shape[0], 4), np.float32)
    xp_als_sweep(np, *csr_arrays(m), X, Y, 0.1, 2.0, "cholesky", nnz_budget=7, max_rows=3)
    np.testing.assert_allclose(X, ref_als.exact_sweep(m, Y, 0.1, 2.0), rtol=1e-4, atol=1e-5)


def test_the_worked_example_in_the_docs_is_what_the_planner_computes():
    """docs/gpu.md: ALS (cg) on 1M users × 100k items × 64 factors, the longest row 250k."""
    from types import SimpleNamespace

    from recli.device_memory import format_bytes
    from recli.kernels.als_xp import batch_limits

    cls = registry()["als"]
    users, items = 1_000_000, 100_000
    indptr = np.zeros(users + 1, np.int64)
    indptr[1:] = 100  # 100 per user, and one item seen by 250k users
    stub = SimpleNamespace(shape=(users, items), nnz=100_000_000, indptr=indptr, indices=np.zeros(250_000, np.int32))
    est = cls.gpu_memory(C.config_for(cls, factors=64, solver="cg"), stub)
    from tests.conftest import REPO_ROOT

    text = (REPO_ROOT / "docs" / "gpu.md").read_text(encoding="utf-8")
    for number in (format_bytes(est.resident), format_bytes(est.smallest_batch), f"{est.smallest / 2**20:,.0f} MiB"):
        assert number.replace(" MB", " MiB") in text, number
    assert "{:,}".format(batch_limits(4 << 30, 64, "cg")[0]) in text
    chol = cls.gpu_memory(C.config_for(cls, factors=64, solver="cholesky"), stub)
    assert f"{chol.smallest / 2**30:.1f} GiB" in text and format_bytes(chol.smallest_batch).replace(" GB", " GiB") in text


@pytest.mark.gpu
@pytest.mark.parametrize("name", DETERMINISTIC)
def test_a_real_gpu_trains_and_ranks_like_the_cpu(name):
    """Only with a real CUDA GPU (skipped otherwise): CuPy fit and serve, same top-3 as the CPU."""
    cls = registry()[name]
    m, _, _ = C.block_matrix()
    backend = get_backend("gpu", 1)
    assert "fake_cupy" not in str(getattr(backend.xp, "__file__", ""))
    gpu = cls(C.config_for(cls), backend).fit(m)
    want = C.recommend_all(C.model_file(C.fit(cls, m), m), k=3)[0]
    np.testing.assert_array_equal(C.recommend_all(C.model_file(gpu, m), k=3)[0], want)
