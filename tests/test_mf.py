"""MF SGD kernel against the NumPy reference, and the ``mf`` model's behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import recli.kernels  # noqa: F401  (sets NUMBA_CACHE_DIR before numba loads)
from recli.backend import get_backend
from recli.errors import ArtifactError, ConfigError, InputError
from recli.kernels.mf import mf_epoch, sgd_steps
from recli.models.base import build_config
from recli.models.mf import MF, MFConfig
from tests import reference_mf as ref


def ratings_matrix(n_users=30, n_items=25, seed=0):
    """Ratings from a rank-2 truth plus biases, 40% observed, values 1..5."""
    rng = np.random.default_rng(seed)
    low_rank = rng.standard_normal((n_users, 2)) @ rng.standard_normal((2, n_items))
    truth = 3 + low_rank + rng.standard_normal(n_items)[None]
    mask = rng.random((n_users, n_items)) < 0.4
    mask[:, 0] = True
    rows, cols = np.nonzero(mask)
    vals = np.clip(np.round(truth[rows, cols]), 1, 5).astype(np.float32)
    return sp.csr_matrix((vals, (rows, cols)), shape=(n_users, n_items))


def test_sgd_steps_equal_reference_on_fixed_sample():
    m = ratings_matrix()
    coo = m.tocoo()
    rows, cols, vals = coo.row.astype(np.int32), coo.col.astype(np.int32), coo.data
    rng = np.random.default_rng(1)
    P = (rng.standard_normal((30, 6)) * 0.1).astype(np.float32)
    Q = (rng.standard_normal((25, 6)) * 0.1).astype(np.float32)
    bu, bi = (rng.standard_normal(30) * 0.1).astype(np.float32), (rng.standard_normal(25) * 0.1).astype(np.float32)
    order = rng.integers(0, vals.shape[0], 40).astype(np.int64)  # repeats included
    args = (3.1, 0.02, 0.05, 0.03)
    ref_state = [a.astype(np.float64) for a in (P, Q, bu, bi)]
    expected = sum(ref.sgd_step(rows[j], cols[j], vals[j], args[0], *ref_state, *args[1:]) for j in order)
    got = sgd_steps(rows, cols, vals, order, np.float32(args[0]), P, Q, bu, bi, *map(np.float32, args[1:]))
    assert got == pytest.approx(expected, rel=1e-4)
    for a, b in zip((P, Q, bu, bi), ref_state):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_epoch_visits_every_rating_once_deterministically():
    m = ratings_matrix()
    indptr, indices = m.indptr.astype(np.int64), m.indices.astype(np.int32)
    rows = np.repeat(np.arange(30, dtype=np.int32), np.diff(indptr))
    # with lr = 0 nothing moves, so the epoch's MSE is the MSE of the start point
    P, Q = np.zeros((30, 3), np.float32), np.zeros((25, 3), np.float32)
    bu, bi = np.zeros(30, np.float32), np.zeros(25, np.float32)
    mse = mf_epoch(indptr, indices, rows, indices, m.data, 3.0, P, Q, bu, bi, 0.0, 0.0, 0.0, 0, 1, 1, 2)
    assert mse == pytest.approx(np.mean((m.data - 3.0) ** 2), rel=1e-6)


def fit(params=None, threads=1, matrix=None):
    config = build_config(MFConfig, {"factors": 4, "iterations": 25, "learning_rate": 0.03, **(params or {})}, "mf")
    return MF(config, get_backend("cpu", threads)).fit(ratings_matrix() if matrix is None else matrix)


@pytest.mark.parametrize("schedule", ["constant", "exponential"])
def test_loss_decreases_and_fits_ratings(schedule):
    m = ratings_matrix()
    model = fit({"lr_schedule": schedule})
    losses = model.epoch_losses
    assert len(losses) == 25 and losses[-1] < 0.8 * losses[0]
    pred = model.score(np.arange(30), None)[m.nonzero()]
    baseline = np.sqrt(np.mean((m.data - m.data.mean()) ** 2))
    assert np.sqrt(np.mean((pred - m.data) ** 2)) < 0.7 * baseline
    np.testing.assert_allclose(model.predict(*m.nonzero()), pred, rtol=1e-5, atol=1e-5)


def test_epoch_callback_sees_current_state_and_can_stop():
    seen = []

    def on_epoch(info):
        seen.append(model.predict(np.array([0]), np.array([0]))[0])
        return info.epoch == 4

    model = MF(build_config(MFConfig, {"factors": 4, "learning_rate": 0.03}), get_backend("cpu", 1))
    model.fit(ratings_matrix(), on_epoch=on_epoch)
    assert len(seen) == 4 and len(model.epoch_losses) == 4 and len(set(seen)) == 4
    assert seen[-1] == model.predict(np.array([0]), np.array([0]))[0]


def test_learning_rate_schedule():
    model = MF(build_config(MFConfig, {"learning_rate": 0.1, "lr_schedule": "exponential", "lr_decay": 0.5}))
    assert [model.learning_rate(e) for e in (1, 2, 3)] == pytest.approx([0.1, 0.05, 0.025])
    assert MF(build_config(MFConfig, {"lr_schedule": "constant"})).learning_rate(9) == pytest.approx(0.01)


def test_deterministic_with_one_thread():
    a, b = fit(threads=1), fit(threads=1)
    for name, arr in a.to_arrays().items():
        assert np.array_equal(arr, b.to_arrays()[name]), name
    assert not np.array_equal(a.item_factors, fit({"seed": 5}).item_factors)
    assert fit(threads=2).epoch_losses[-1] == pytest.approx(a.epoch_losses[-1], rel=0.2)


def test_fold_in_matches_reference_and_score():
    model = fit()
    hist = sp.csr_matrix(([4.0, 2.0, 5.0, 3.0], ([0, 0, 0, 0], [0, 3, 7, 11])), shape=(1, 25), dtype=np.float32)
    c = model.config
    b, p = ref.fold_in(hist.indices, hist.data, model.global_mean, model.item_factors, model.item_bias,
                       c.regularization, c.bias_regularization)
    bias, P = model.fold_in(hist)
    assert bias[0] == pytest.approx(b, rel=1e-4, abs=1e-5)
    np.testing.assert_allclose(P[0], p, rtol=1e-4, atol=1e-5)
    scores = model.score(np.array([-1, 2]), sp.vstack([hist, sp.csr_matrix((1, 25), dtype=np.float32)]).tocsr())
    expected = model.global_mean + b + model.item_bias + model.item_factors @ p
    np.testing.assert_allclose(scores[0], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(scores[1], model.score(np.array([2]), None)[0], rtol=1e-5, atol=1e-5)


def test_negatives_learn_implicit_blocks():
    from tests.test_als import block_matrix

    m = block_matrix()
    model = MF(build_config(MFConfig, MF.test_params, "mf"), get_backend("cpu", 1)).fit(m)
    scores = model.score(np.arange(40), None)
    scores[m.nonzero()] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :3]
    assert np.all(top[:20] < 15) and np.all(top[20:] >= 15)


def test_round_trip_and_errors():
    model = fit()
    back = MF.from_arrays(model.config, model.to_arrays())
    assert np.array_equal(back.score(np.arange(30), None), model.score(np.arange(30), None))
    arrays = model.to_arrays()
    del arrays["item_bias"]
    with pytest.raises(ArtifactError):
        MF.from_arrays(model.config, arrays)
    with pytest.raises(InputError):
        fit(matrix=sp.csr_matrix((4, 4), dtype=np.float32))
    with pytest.raises(ConfigError, match="learning_rate"):
        build_config(MFConfig, {"learning_rate": 0}, "mf")
    with pytest.raises(ConfigError, match="lr_schedule"):
        build_config(MFConfig, {"lr_schedule": "cosine"}, "mf")
    with pytest.raises(InputError, match="history"):
        model.score(np.array([-1]), None)


@pytest.mark.slow
def test_ml100k_rmse_goal(ml100k):
    raw = np.loadtxt(ml100k, dtype=np.int64)
    users = np.unique(raw[:, 0], return_inverse=True)[1]
    items = np.unique(raw[:, 1], return_inverse=True)[1]
    ratings = raw[:, 2].astype(np.float32)
    test = np.random.default_rng(42).random(users.shape[0]) < 0.2
    train = sp.csr_matrix((ratings[~test], (users[~test], items[~test])), shape=(users.max() + 1, items.max() + 1))
    model = MF(MFConfig(), get_backend("cpu", 1)).fit(train)
    rmse = np.sqrt(np.mean((model.predict(users[test], items[test]) - ratings[test]) ** 2))
    assert rmse <= 0.93
