"""The GPU path's array-module (``xp``) kernels and models, run without a GPU: NumPy as
``xp`` directly, or through the NumPy-backed stand-in ``cupy`` (tests/fake_cupy) and the
real CLI. Each xp kernel is compared with a slow reference; the models with the CPU."""

from __future__ import annotations

import numpy as np
import pytest

from recli.backend import get_backend
from recli.models import registry
from tests import contracts as C

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
