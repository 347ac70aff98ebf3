"""``train --dtype`` during GPU training (issue 15): the factor matrices are held in the
storage form (float16, bfloat16 as uint16 bits) between steps, each batch computes in
float32 from rows upcast, and every row written is rounded back (recli.kernels.sgd_xp,
recli.kernels.als_xp). Checked on the array-module path with NumPy against the slow
references, and end to end through the CLI on the stand-in CuPy (tests/fake_cupy)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from recli.kernels import sgd_xp
from recli.kernels.counter_random import DRAWS, epoch_key
from recli.kernels.precision import STORAGE, to_float32, to_storage
from tests import reference_als as ref_als
from tests.reference_bpr import bpr_step_reference

pytestmark = pytest.mark.gpu_sim
REDUCED = ["float16", "bfloat16"]
# one unit in the last place of the storage type, relative: float16 keeps 10 mantissa bits, bfloat16 7
ULP = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}


@pytest.mark.parametrize("dtype", REDUCED)
def test_a_bpr_batch_on_stored_factors_is_the_reference_steps_rounded(dtype):
    """The reference steps taken from the upcast rows and summed in float64, then rounded:
    the batch's rows within one unit of the storage type, the matrices still stored."""
    m = sp.random(12, 30, density=0.25, format="csr", random_state=3, dtype=np.float32)
    m.sort_indices()
    plan = sgd_xp.make_plan(np, m.indptr, m.indices, batch=64)
    rng = np.random.default_rng(7)
    U, V = (to_storage(rng.standard_normal((n, 4)).astype(np.float32) * 0.5, dtype) for n in (12, 30))
    b = rng.standard_normal(30).astype(np.float32) * 0.1
    cells = sgd_xp.epoch_order(np, plan.nnz, 1, 2)[:40]
    users, pos = plan.rows[cells], plan.indices[cells].astype(np.int64)
    neg = sgd_xp.first_negative(np, plan, users, epoch_key(1, 0, DRAWS), sgd_xp._samples(np, 0, 40), 0, 8, 30)
    ok = neg >= 0
    start = [to_float32(U, dtype).astype(np.float64), to_float32(V, dtype).astype(np.float64), b.astype(np.float64)]
    want = [a.copy() for a in start]
    for u, i, j in zip(users[ok], pos[ok], neg[ok]):
        new = bpr_step_reference(*[a.copy() for a in start], u, i, j, 0.1, 0.02)[:3]
        for w, a, n in zip(want, start, new):
            w += n - a
    got = [U.copy(), V.copy(), b.copy()]
    sgd_xp.bpr_numpy_batch(*got, users, pos, neg, 0.1, 0.02)
    assert got[0].dtype == np.dtype(STORAGE[dtype]) and got[1].dtype == got[0].dtype
    for g, w in zip(got[:2], want[:2]):
        np.testing.assert_allclose(to_float32(g, dtype), w, rtol=ULP[dtype], atol=1e-6)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-5, atol=1e-6)  # biases stay float32
    assert not np.array_equal(got[0], U)  # the batch moved the stored rows


@pytest.mark.parametrize("dtype", REDUCED)
def test_an_als_sweep_on_stored_factors_is_the_float32_sweep_rounded(dtype):
    """The stored ``X`` after a sweep is the float32 sweep from the upcast factors, rounded
    (bit for bit), and within a unit of the slow reference."""
    from recli.kernels.xp import XPKernels

    m = sp.random(50, 20, density=0.2, format="csr", random_state=4, dtype=np.float32)
    m.data = np.round(m.data * 5)
    m.sort_indices()
    rng = np.random.default_rng(1)
    X, Y = (to_storage(rng.random((n, 4), dtype=np.float32) * np.float32(0.1), dtype) for n in (50, 20))
    X32, Y32 = to_float32(X, dtype), to_float32(Y, dtype)
    csr = (m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data)
    want = ref_als.cg_sweep(m, X32.copy(), Y32, 0.1, 2.0, 3)
    kernels = XPKernels(np, 4096)  # several row batches
    kernels.als_sweep(*csr, X32, Y32, 0.1, 2.0, "cg", 3)
    kernels.als_sweep(*csr, X, Y, 0.1, 2.0, "cg", 3)
    assert X.dtype == np.dtype(STORAGE[dtype])
    np.testing.assert_array_equal(X, to_storage(X32, dtype))
    np.testing.assert_allclose(to_float32(X, dtype), want, rtol=ULP[dtype], atol=1e-5)


@pytest.mark.cudasim
@pytest.mark.parametrize("name", ["als", "bpr"])
def test_train_on_the_gpu_holds_the_factors_in_the_dtype_through_the_cli(cli, fake_cupy, train_csv, tmp_path, name,
                                                                         monkeypatch):
    """``recli train --device gpu --dtype float16``: the kernels are given float16 factor
    matrices, meta.json records it (float32 on the CPU), the model stores float16 and
    serves on either device."""
    from recli.kernels.xp import XPKernels

    kernel = "als_sweep" if name == "als" else "bpr_epoch"
    held, real = [], getattr(XPKernels, kernel)
    at = 3 if name == "als" else 1  # the position of X (als_sweep) or U (bpr_epoch)
    monkeypatch.setattr(XPKernels, kernel, lambda self, *a, **kw: held.append(a[at].dtype) or real(self, *a, **kw))
    outs = {}
    for device in ("gpu", "cpu"):
        out = outs[device] = tmp_path / f"{name}-{device}"
        res = cli(["train", train_csv, "--model", name, "-o", out, "--device", device, "--dtype", "float16",
                   "-p", "iterations=3", "-p", "factors=4"])
        assert res.exit_code == 0, res.stderr
        meta = json.loads((out / "meta.json").read_text())
        assert (meta["device"], meta["dtype"]) == (device, "float16")
        assert meta["training_dtype"] == ("float16" if device == "gpu" else "float32")
        assert np.load(out / "model.user_factors.npy").dtype == np.float16
    assert held and set(held) == {np.dtype(np.float16)}
    recs = [cli(["recommend", outs["gpu"], "--user", "u001", "-k", "2", "--device", d]) for d in ("gpu", "cpu")]
    assert recs[0].exit_code == 0 and recs[0].stdout == recs[1].stdout and len(recs[0].stdout.splitlines()) == 3


def test_a_dtype_the_model_does_not_store_is_refused_on_the_gpu_too(cli, fake_cupy, train_csv, tmp_path):
    res = cli(["train", train_csv, "--model", "itemknn", "--device", "gpu", "--dtype", "bfloat16", "-o", tmp_path / "k"])
    assert res.exit_code == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "stores no factor matrices" in errors[0]


def test_the_als_memory_plan_counts_16_bit_factors_and_the_float32_fixed_side():
    from recli.models import get_model_class
    from recli.models.base import build_config

    cls = get_model_class("als")
    m = sp.random(300, 100, density=0.05, format="csr", random_state=1, dtype=np.float32)
    plans = {t: cls.gpu_memory(build_config(cls.Config, {"factors": 8, "dtype": t}, "als"), m)
             for t in ("float32", "bfloat16")}
    assert plans["float32"].parts["factors"] == 4 * 400 * 8
    assert plans["bfloat16"].parts["factors"] == 2 * 400 * 8
    assert plans["bfloat16"].parts["float32 fixed side"] == 4 * 300 * 8
