"""The top-k and ALS conjugate-gradient ``numba.cuda`` kernels (:mod:`recli.kernels.cuda`)
on Numba's CUDA simulator (marker ``cudasim``, tiny shapes), against the slow references
their CPU twins are tested with (tests/reference_topk.py, tests/reference_als.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tests import reference_als as ref_als
from tests.reference_topk import topk_reference

pytestmark = pytest.mark.cudasim


@pytest.fixture(autouse=True)
def _simulator_or_gpu():
    from numba import config, cuda

    if not config.ENABLE_CUDASIM and not cuda.is_available():
        pytest.skip("NUMBA_ENABLE_CUDASIM=0 and no CUDA GPU is usable here")


@pytest.mark.parametrize("k", [1, 4, 30])
def test_cuda_topk_matches_the_reference(k):
    from recli.kernels.cuda.topk import topk

    rng = np.random.default_rng(k)
    scores = rng.integers(0, 5, (7, 25)).astype(np.float32)  # many ties
    scores[2, 3] = np.nan
    scores[4, :20] = -np.inf  # fewer eligible items than k
    seen = sp.random(7, 25, density=0.3, format="csr", random_state=1)
    seen.sort_indices()
    rows = np.array([0, 1, -1, 3, 4, 5, 6])
    banned = (np.arange(25) % 7 == 0).astype(np.uint8)
    args = (scores, k, rows, seen.indptr.astype(np.int64), seen.indices.astype(np.int32), banned)
    got, want = topk(*args), topk_reference(*args)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    plain = topk(scores, k)  # no seen rows, no bans
    np.testing.assert_array_equal(plain[0], topk_reference(scores, k)[0])


@pytest.mark.parametrize("steps", [1, 3])
def test_cuda_cg_sweep_matches_the_reference(steps):
    from recli.kernels.als import gram
    from recli.kernels.cuda.cg import cg_sweep

    rng = np.random.default_rng(steps)
    m = sp.random(20, 15, density=0.3, format="csr", random_state=2, dtype=np.float32)
    m.data = np.round(m.data * 6 - 1)  # values -1..5, including stored zeros and dislikes
    m = sp.vstack([m[:3], sp.csr_matrix((1, 15), dtype=np.float32), m[4:]]).tocsr()  # row 3: no interactions
    m.sort_indices()
    assert (m.data == 0).any() and (m.data < 0).any()
    Y = rng.random((15, 4), dtype=np.float32)
    X = rng.random((20, 4), dtype=np.float32) * np.float32(0.1)
    want = ref_als.cg_sweep(m, X, Y, 0.1, 2.0, steps)
    scratch = np.empty((3, 20, 4), np.float32)
    cg_sweep(m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data, X, Y, gram(Y, 0.1), 2.0, steps, scratch)
    np.testing.assert_allclose(X, want, rtol=1e-4, atol=1e-5)
    assert not X[3].any()


_LOWER = """
import sys
from numba import types as T
try:
    from numba.cuda.compiler import compile_cuda
    import numba.cuda.dispatcher as dispatcher
except ImportError as exc:
    sys.exit(f"SKIP {exc}")

class _Device:  # device functions ask the current device its compute capability
    compute_capability = (8, 0)

dispatcher.get_current_device = lambda: _Device()
from recli.kernels.cuda import cg, sgd, topk

i64, i32, f32, f64, u64 = T.int64, T.int32, T.float32, T.float64, T.uint64
def A(dt, nd=1):
    return T.Array(dt, nd, "C")
csr = (A(i64), A(i32))
cases = [
    (sgd._bpr_kernel, csr + (A(i64), A(i64), i64, A(f32, 2), A(f32, 2), A(f32), A(f32, 2), A(f32, 2), A(f32), f32, f32,
                             u64, i64, A(i64), A(f64), A(i32))),
    (sgd._warp_kernel, csr + (A(i64), A(i64), i64) + (A(f32, 2), A(f32, 2), A(f32)) * 4
     + (f32, f32, T.boolean, i64, u64, A(i64), A(i64), A(f64), i64, i64, u64)),
    (sgd._mf_kernel, csr + (A(i64), A(i64), A(f32), i64, f32) + (A(f32, 2), A(f32, 2), A(f32), A(f32)) * 2
     + (f32, f32, f32, i64, i64, u64, A(i64, 2), A(f64))),
    (topk._topk_kernel, (A(f32, 2), A(i64), A(i64), A(i32), A(T.uint8), A(i32, 2), A(f32, 2))),
    (cg._cg_kernel, csr + (A(f32), A(f32, 2), A(f32, 2), A(f32, 2), f32, i64, f32, A(f32, 2), A(f32, 2), A(f32, 2))),
]
for kernel, args in cases:
    compile_cuda(kernel.py_func, T.void, args, cc=(8, 0))
print("lowered", len(cases))
"""


def _without_simulator(script: str):
    """Run ``script`` in a Python process with Numba's CUDA target (the simulator off)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0",
               PYTHONPATH=str(Path(__file__).resolve().parent.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    if res.returncode and res.stderr.strip().startswith("SKIP"):
        pytest.skip(f"this numba-cuda lacks the compiler entry point used here: {res.stderr.strip()}")
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_the_kernels_type_and_lower_for_a_real_gpu():
    """The simulator runs kernels as Python: only Numba's CUDA compiler checks their types.
    Each kernel is typed and lowered to NVVM IR for compute capability 8.0 (no GPU, no
    driver needed), in a process without the simulator, with the argument types recli
    launches it with."""
    res = _without_simulator(_LOWER)
    assert res.stdout.strip() == "lowered 5"


def test_the_kernels_compile_with_a_numpy_without_row_stack():
    """NumPy 2.5 removed ``np.row_stack``, which numba-cuda 0.30 overloads when it first
    compiles a kernel (seen on a real GPU: every compile failed with AttributeError).
    Importing recli's kernels restores the alias, so they still type and lower (here the
    alias is removed first where this NumPy still has it)."""
    res = _without_simulator("import numpy\nif hasattr(numpy, 'row_stack'):\n    del numpy.row_stack\n" + _LOWER)
    assert res.stdout.strip() == "lowered 5"


_LAUNCH = """
import warnings
from recli.kernels.cuda import topk
from recli.kernels.cuda.device import launch

def launched(configure):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = configure()
    return [str(w.message) for w in caught], config

raw, _ = launched(lambda: topk._topk_kernel[2, 128])
ours, config = launched(lambda: launch(topk._topk_kernel, 5))
print(len(raw), "Grid size 2" in "".join(raw), len(ours), config.griddim, config.blockdim)
"""


def test_a_small_launch_does_not_warn_about_occupancy():
    """Numba warns when a grid has fewer than 128 blocks (a launch configures without a
    GPU, so this runs here); a small batch or one user gets a small grid by design, and
    ``launch`` keeps that warning from reaching users as a ``warning:`` line."""
    res = _without_simulator(_LAUNCH)
    assert res.stdout.split() == ["1", "True", "0", "(1,", "1,", "1)", "(128,", "1,", "1)"]


# -- the kernels behind XPKernels --------------------------------------------------------
# XPKernels launches the top-k and CG kernels on a real GPU only (recli.kernels.cuda.launchable);
# forced with cuda=True, the same namespace runs them here on the simulator (a few hundred rows).

def test_the_custom_kernels_are_chosen_for_a_real_gpu_only(fake_cupy):
    import cupy

    from recli.kernels.cuda import launchable
    from recli.kernels.xp import XPKernels

    assert not launchable(np) and not launchable(cupy)  # NumPy, and the NumPy stand-in
    assert not XPKernels(np).cuda and XPKernels(np, cuda=True).cuda


def _spy(monkeypatch, module, name):
    """Count the calls of ``module.name`` (the kernel launcher XPKernels must reach)."""
    calls, real = [], getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **kw: calls.append(1) or real(*a, **kw))
    return calls


def test_xp_kernels_topk_on_the_cuda_kernel_is_the_cpu_topk(monkeypatch):
    from recli.kernels import cpu
    from recli.kernels.cuda import topk as cuda_topk
    from recli.kernels.xp import XPKernels

    rng = np.random.default_rng(5)
    scores = rng.integers(0, 6, (300, 40)).astype(np.float32)  # many ties
    scores[7, 3], scores[9, :35] = np.nan, -np.inf
    seen = sp.random(300, 40, density=0.2, format="csr", random_state=3)
    seen.sort_indices()
    rows = np.arange(300)[::-1].copy()
    rows[::11] = -1
    banned = (np.arange(40) % 9 == 4).astype(np.uint8)
    args = (scores, 10, rows, seen.indptr.astype(np.int64), seen.indices.astype(np.int32), banned)
    kernels, calls = XPKernels(np, cuda=True), _spy(monkeypatch, cuda_topk, "topk")
    for a in (args, (scores, 10)):
        got, want = kernels.topk(*a), cpu.topk(*a)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        assert isinstance(got[0], np.ndarray) and got[0].dtype == want[0].dtype
    assert len(calls) == 2


def test_xp_kernels_cg_sweep_on_the_cuda_kernel_matches_the_reference(monkeypatch):
    """Row batches (a small budget) through the CG kernel: the slow reference's rows, and
    the same loss term as the array-module CG."""
    from recli.kernels.cuda import cg as cuda_cg
    from recli.kernels.xp import XPKernels

    m = sp.random(200, 60, density=0.05, format="csr", random_state=4, dtype=np.float32)
    m.data = np.round(m.data * 5)  # values 0..5: stored zeros included
    m.sort_indices()
    rng = np.random.default_rng(0)
    Y = rng.random((60, 4), dtype=np.float32)
    X0 = rng.random((200, 4), dtype=np.float32) * np.float32(0.1)
    want = ref_als.cg_sweep(m, X0, Y, 0.1, 2.0, 3)
    csr = (m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data)
    budget = 16 * 6 * 4 * 4 * 2  # 16 rows of CG temporaries (recli.kernels.als_xp.row_bytes), halved per kind
    observed, calls = {}, _spy(monkeypatch, cuda_cg, "cg_sweep")
    for cuda in (True, False):
        X = X0.copy()
        observed[cuda] = XPKernels(np, budget, cuda=cuda).als_sweep(*csr, X, Y, 0.1, 2.0, "cg", 3)
        np.testing.assert_allclose(X, want, rtol=1e-4, atol=1e-5)
        assert (len(calls) > 1) == cuda  # several batches, each through the kernel
        calls.clear()
    assert observed[True] == pytest.approx(observed[False], rel=1e-5)


@pytest.mark.gpu
def test_on_a_real_gpu_the_namespace_launches_the_custom_kernels():
    from numba import config

    if config.ENABLE_CUDASIM:
        pytest.skip("the CUDA simulator is on: run with NUMBA_ENABLE_CUDASIM=0 to use the GPU")
    from recli.backend import get_backend
    from recli.kernels import cpu

    kernels = get_backend("gpu").kernels
    assert kernels.cuda
    scores = np.random.default_rng(1).integers(0, 6, (300, 500)).astype(np.float32)
    got, want = kernels.topk(scores, 10), cpu.topk(scores, 10)
    np.testing.assert_array_equal(got[0], want[0])
