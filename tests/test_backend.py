"""The device seam (issue 9): kernel namespaces alike on every device, models refused on
devices they have no kernels for, ``auto`` falling back honestly, ``meta.json`` naming
the device that ran. GPU runs use the NumPy-backed stand-in ``cupy`` (tests/fake_cupy)."""

from __future__ import annotations

import inspect
import json
import sys

import numpy as np
import pytest
import scipy.sparse as sp

import recli.kernels.cpu as cpu_kernels
import recli.kernels.xp as xp_kernels
from recli.backend import get_backend, gpu_available
from recli.errors import ConfigError, DeviceUnavailable
from recli.models import registry
from tests import contracts as C
from tests import reference_als as ref_als
from tests.conftest import FAKE_CUPY, forget_cupy
from tests.reference_topk import topk_reference

pytestmark = pytest.mark.gpu_sim

GPU_MODELS = sorted(name for name, cls in registry().items() if "gpu" in cls.devices)
CPU_ONLY = ("popular",)


@pytest.fixture
def no_cupy(monkeypatch):
    """``import cupy`` fails, whatever is installed."""
    monkeypatch.setitem(sys.modules, "cupy", None)


# -- the kernel namespaces ----------------------------------------------------------

def test_cpu_and_xp_kernel_sets_offer_the_same_functions_with_the_same_signatures():
    assert cpu_kernels.KERNELS == xp_kernels.KERNELS
    xp = xp_kernels.XPKernels(np)
    public_cpu = {n for n, f in inspect.getmembers(cpu_kernels, inspect.isfunction)
                  if f.__module__ == cpu_kernels.__name__ and not n.startswith("_")}
    public_xp = {n for n, _ in inspect.getmembers(xp, inspect.ismethod) if not n.startswith("_")}
    assert public_cpu == public_xp == set(cpu_kernels.KERNELS)
    for name in cpu_kernels.KERNELS:
        assert inspect.signature(getattr(cpu_kernels, name)) == inspect.signature(getattr(xp, name)), name


def test_backends_hand_out_their_namespace():
    assert get_backend("cpu").kernels is cpu_kernels
    assert isinstance(get_backend("xp-numpy").kernels, xp_kernels.XPKernels)


@pytest.mark.parametrize("device", ["cpu", "xp-numpy"])
@pytest.mark.parametrize("k", [1, 4, 30])
def test_topk_of_every_namespace_matches_the_reference(device, k):
    rng = np.random.default_rng(k)
    scores = rng.integers(0, 5, (7, 25)).astype(np.float32)  # many ties
    scores[2, 3] = np.nan
    seen = sp.random(7, 25, density=0.3, format="csr", random_state=1)
    seen.sort_indices()
    rows = np.array([0, 1, -1, 3, 4, 5, 6])
    banned = (np.arange(25) % 7 == 0).astype(np.uint8)
    args = (scores, k, rows, seen.indptr.astype(np.int64), seen.indices.astype(np.int32), banned)
    got = get_backend(device).kernels.topk(*args)
    want = topk_reference(*args)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("device", ["cpu", "xp-numpy"])
def test_dot_scores_and_gram_match_plain_loops(device):
    rng = np.random.default_rng(3)
    U, V, b = (rng.standard_normal(s).astype(np.float32) for s in ((4, 3), (6, 3), (6,)))
    ns = get_backend(device).kernels
    want = np.array([[sum(U[u, f] * V[i, f] for f in range(3)) + b[i] for i in range(6)] for u in range(4)])
    got = ns.dot_scores(U, V, b)
    assert got.dtype == np.float32 and got.shape == (4, 6)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ns.dot_scores(U, V), want - b[None, :], rtol=1e-5, atol=1e-6)
    gram = np.asarray(get_backend(device).to_host(ns.gram(V, 0.5)))
    want_gram = np.array([[sum(V[i, f] * V[i, g] for i in range(6)) + (0.5 if f == g else 0.0) for g in range(3)]
                          for f in range(3)])
    np.testing.assert_allclose(gram, want_gram, rtol=1e-5)


@pytest.mark.parametrize("device", ["cpu", "xp-numpy"])
def test_als_sweep_and_loss_of_every_namespace_match_the_reference(device):
    from recli.data.matrix import csr_arrays

    m, _, _ = C.block_matrix()
    rng = np.random.default_rng(0)
    Y = rng.random((m.shape[1], 4), dtype=np.float32)
    backend = get_backend(device)
    X = backend.xp.zeros((m.shape[0], 4), dtype=np.float32)
    observed = backend.kernels.als_sweep(*csr_arrays(m), X, backend.xp.asarray(Y), 0.1, 2.0, "cholesky")
    X = backend.to_host(X)
    np.testing.assert_allclose(X, ref_als.exact_sweep(m, Y, 0.1, 2.0), rtol=1e-4, atol=1e-5)
    loss = backend.kernels.als_loss_from_observed(observed, X, Y, m.data, 0.1, 2.0)
    assert loss == pytest.approx(ref_als.loss(m, X, Y, 0.1, 2.0), rel=1e-4)


# -- devices per model ---------------------------------------------------------------

def test_every_model_declares_its_devices_and_als_has_gpu_kernels():
    for name, cls in registry().items():
        assert set(cls.devices) <= {"cpu", "gpu"} and "cpu" in cls.devices, name
    assert {"als", "itemknn", "userknn", "ease", "bpr", "warp", "mf"} <= set(GPU_MODELS)
    assert not set(CPU_ONLY) & set(GPU_MODELS)


def test_the_stand_in_cupy_reports_a_device(fake_cupy):
    assert gpu_available()
    import cupy
    import cupyx.scipy.sparse as cusparse

    free, total = cupy.cuda.runtime.memGetInfo()
    assert cupy.cuda.Device().mem_info == (free, total) and 0 < free <= total
    assert cupy.asnumpy(cupy.asarray([1, 2])).tolist() == [1, 2]
    assert cusparse.csr_matrix is sp.csr_matrix
    backend = get_backend("gpu")
    assert backend.name == "gpu" and backend.xp is not np and backend.xp.__name__ == "cupy"


@pytest.mark.parametrize("name", CPU_ONLY)
def test_gpu_is_refused_for_models_without_gpu_kernels_even_with_cupy(cli, fake_cupy, train_csv, tmp_path, name):
    out = tmp_path / name
    res = cli(["train", train_csv, "--model", name, "-o", out, "--device", "gpu"])
    assert res.exit_code == 2
    assert res.stderr.startswith("error:") and f"'{name}' has no GPU kernels" in res.stderr
    assert all(m in res.stderr for m in GPU_MODELS)
    assert not (out / "meta.json").exists()


@pytest.mark.parametrize("name", CPU_ONLY)
def test_gpu_refusal_comes_before_the_gpu_probe(no_cupy, name):
    with pytest.raises(ConfigError, match="no GPU kernels"):
        get_backend("gpu", model=registry()[name])
    with pytest.raises(ConfigError, match="no GPU kernels"):  # the internal GPU-shaped path too
        get_backend("xp-numpy", model=registry()[name])
    assert get_backend("cpu", model=registry()[name]).name == "cpu"


def test_gpu_without_cupy_is_unavailable_for_a_gpu_model(no_cupy):
    with pytest.raises(DeviceUnavailable, match="CuPy"):
        get_backend("gpu", model=registry()["als"])


def test_a_model_never_holds_a_backend_of_a_device_it_lacks():
    cls = registry()["popular"]
    with pytest.raises(ConfigError, match="no GPU kernels"):
        cls(None, get_backend("xp-numpy"))


def test_gpu_train_of_a_gpu_model_records_gpu(cli, fake_cupy, train_csv, tmp_path):
    out = tmp_path / "als"
    res = cli(["train", train_csv, "--model", "als", "-o", out, "--device", "gpu", "--param", "iterations=2"])
    assert res.exit_code == 0, res.stderr
    assert json.loads((out / "meta.json").read_text())["device"] == "gpu"
    recs = cli(["recommend", out, "--user", "u001", "-k", "3", "--device", "gpu"])
    assert recs.exit_code == 0, recs.stderr
    assert len(recs.stdout.strip().splitlines()) == 4


def test_recommend_on_gpu_refuses_a_cpu_only_model_file(cli, fake_cupy, train_csv, tmp_path):
    out = tmp_path / "popular"
    assert cli(["train", train_csv, "--model", "popular", "-o", out]).exit_code == 0
    res = cli(["recommend", out, "--user", "u001", "--device", "gpu"])
    assert res.exit_code == 2 and "no GPU kernels" in res.stderr and res.stdout == ""


@pytest.mark.parametrize("name, cupy, device", [("bpr", True, "gpu"), ("itemknn", True, "gpu"), ("popular", True, "cpu"),
                                                ("als", True, "gpu"), ("als", False, "cpu")])
def test_auto_uses_the_gpu_only_when_usable_and_supported(cli, monkeypatch, train_csv, tmp_path, name, cupy, device):
    if cupy:
        forget_cupy()
        monkeypatch.syspath_prepend(str(FAKE_CUPY))
    else:
        monkeypatch.setitem(sys.modules, "cupy", None)
    out = tmp_path / name
    try:
        res = cli(["train", train_csv, "--model", name, "-o", out, "--device", "auto", "--param", "iterations=2"]
                  if name in ("bpr", "als") else ["train", train_csv, "--model", name, "-o", out, "--device", "auto"])
    finally:
        if cupy:
            forget_cupy()
    assert res.exit_code == 0, res.stderr
    assert json.loads((out / "meta.json").read_text())["device"] == device
    assert "device auto: " in res.stderr and (device == "gpu" or "cpu" in res.stderr)


# -- train --valid and eval --model go through the seam --------------------------------

def _spy_xp_topk(monkeypatch) -> list:
    calls: list = []
    real = xp_kernels.XPKernels.topk
    monkeypatch.setattr(xp_kernels.XPKernels, "topk", lambda self, *a, **kw: calls.append(1) or real(self, *a, **kw))
    return calls


def test_train_valid_ranks_on_the_model_backend(monkeypatch):
    import polars as pl

    from recli.data.matrix import Interactions, build_interactions
    from recli.stages.train import train

    m, _, held = C.block_matrix()
    coo = m.tocoo()
    data = build_interactions(pl.DataFrame({"user": [f"u{u:03d}" for u in coo.row],
                                            "item": [f"i{i:03d}" for i in coo.col]}))
    valid = sp.csr_matrix((np.ones(len(held), np.float32), (np.arange(len(held)), held)), shape=m.shape)
    calls = _spy_xp_topk(monkeypatch)
    cls = registry()["als"]
    result = train(data, cls, C.config_for(cls, iterations=2), device="xp-numpy",
                   valid=Interactions(data.users, data.items, valid, None, len(held)))
    assert result.meta["device"] == "xp-numpy" and len(result.valid_scores) == 2
    assert len(calls) >= 2  # one validation ranking per epoch, on the xp kernels


def test_eval_model_ranks_on_the_model_backend(monkeypatch):
    import polars as pl

    from recli.stages.evaluate_model import evaluate_model

    m, _, held = C.block_matrix()
    model = C.fit(registry()["als"], m)
    model.backend = get_backend("xp-numpy")
    mf = C.model_file(model, m)
    test = pl.DataFrame({"user": [f"u{u:03d}" for u in range(len(held))], "item": [f"i{i:03d}" for i in held]})
    calls = _spy_xp_topk(monkeypatch)
    report = evaluate_model(mf, test, label="als", ks=(3,), metrics=["recall"])
    assert calls and report.results["value"][0] > 0.9


@pytest.mark.gpu
def test_a_real_gpu_runs_the_xp_kernels_like_the_cpu():
    """Only with a real CUDA GPU (skipped otherwise): the CuPy kernels give the CPU's top-k."""
    backend = get_backend("gpu")
    assert backend.xp.__name__ == "cupy" and "fake_cupy" not in backend.xp.__file__
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((5, 40)).astype(np.float32)
    got = backend.kernels.topk(scores, 7)
    want = topk_reference(scores, 7)
    np.testing.assert_array_equal(got[0], want[0])


def test_numba_warmup_runs_the_block_and_joins_its_thread():
    """Kernels called inside the block wait for the warm-up (Numba's compiler lock) and
    give their usual answer; an error in the block propagates and the thread is gone."""
    import threading

    from recli.backend import numba_warmup
    from recli.stages.eval_inputs import build_csr

    def warmup_alive():
        return any(t.name == "recli-numba-warmup" and t.is_alive() for t in threading.enumerate())

    rows, cols = np.array([1, 0, 1, 1]), np.array([2, 1, 0, 2])
    with numba_warmup():
        indptr, indices, _, merged = build_csr(rows, cols, 2, 3)
    assert not warmup_alive()
    assert indptr.tolist() == [0, 1, 3] and indices.tolist() == [1, 0, 2] and merged == 1
    with pytest.raises(ValueError, match="in the block"), numba_warmup():
        raise ValueError("in the block")
    assert not warmup_alive()
