"""WARP kernel and model: reference step, rank weights, convergence, determinism, k-OS."""

from __future__ import annotations

import numpy as np
import pytest

from recli.backend import get_backend
from recli.errors import ConfigError
from recli.kernels._chunks import balanced_bounds
from recli.kernels.warp import rank_weight, warp_apply, warp_epoch, warp_fold_in
from recli.models.base import build_config
from recli.models.warp import WARP
from tests.reference_warp import rank_weight_reference, warp_fold_in_reference, warp_step_reference
from tests.test_bpr import block_matrix, fold_in_history


def fit(params=None, data=None, threads=1) -> WARP:
    cfg = build_config(WARP.Config, {**WARP.test_params, **(params or {})}, "warp")
    return WARP(cfg, get_backend("cpu", threads)).fit(block_matrix() if data is None else data)


def random_state(rng, n_users=4, n_items=9, k=5):
    U = rng.normal(0, 0.3, (n_users, k)).astype(np.float32)
    V = rng.normal(0, 0.3, (n_items, k)).astype(np.float32)
    b = rng.normal(0, 0.3, n_items).astype(np.float32)
    G = [(1.0 + rng.random(x.shape)).astype(np.float32) for x in (U, V, b)]
    return U, V, b, *G


@pytest.mark.parametrize("n_items, n_sampled", [(9, 1), (9, 3), (9, 9), (10_000, 1), (10**7, 1), (2, 1)])
def test_rank_weight_matches_lightfm_formula(n_items, n_sampled):
    assert rank_weight(n_items, n_sampled) == pytest.approx(rank_weight_reference(n_items, n_sampled))


@pytest.mark.parametrize("adagrad", [True, False])
@pytest.mark.parametrize("n_sampled", [1, 4])
def test_one_step_matches_reference(adagrad, n_sampled):
    rng = np.random.default_rng(n_sampled)
    state = random_state(rng)
    ref = warp_step_reference(*state, 1, 2, 7, n_sampled, 0.05, 0.02, adagrad)
    loss = warp_apply(*state, np.array([1]), np.array([2]), np.array([7]), np.array([n_sampled]),
                      np.float32(0.05), np.float32(0.02), adagrad)
    np.testing.assert_allclose(loss[0], ref[-1], rtol=1e-5)
    for got, want in zip(state, ref[:-1]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_loss_improves_and_users_prefer_their_block():
    model = fit({"iterations": 15})
    assert model.epoch_losses[-1] < 0.75 * model.epoch_losses[0]
    assert model.epoch_update_rate[-1] < model.epoch_update_rate[0]
    scores = model.score(np.arange(60), None)
    first = scores[:30, :20].mean(1) > scores[:30, 20:].mean(1)
    second = scores[30:, 20:].mean(1) > scores[30:, :20].mean(1)
    assert first.all() and second.all()


@pytest.mark.parametrize("params", [{"schedule": "constant", "learning_rate": 0.02},
                                    {"schedule": "invscaling"},
                                    {"kos_k": 2, "kos_n": 5},
                                    {"regularization": 0.01}])
def test_variants_learn_the_blocks(params):
    model = fit({"iterations": 15, **params})
    assert model.epoch_losses[-1] < model.epoch_losses[0]
    s = model.score(np.array([0, 59]), None)
    assert s[0, :20].mean() > s[0, 20:].mean() and s[1, 20:].mean() > s[1, :20].mean()


def test_one_thread_is_bit_for_bit_deterministic_and_seeds_differ():
    a, b = fit({"kos_k": 2}), fit({"kos_k": 2})
    assert np.array_equal(a.user_factors, b.user_factors)
    assert np.array_equal(a.item_factors, b.item_factors)
    assert np.array_equal(a.item_bias, b.item_bias)
    c = fit({"kos_k": 2, "seed": 99})
    assert not np.array_equal(a.item_factors, c.item_factors)


def test_two_threads_train():
    model = fit({"iterations": 10}, threads=2)
    assert model.epoch_losses[-1] < model.epoch_losses[0]


def test_epoch_counts_every_interaction_and_updates_only_violations():
    m = block_matrix()
    indptr, indices = m.indptr.astype(np.int64), m.indices.astype(np.int32)
    U = np.zeros((60, 4), np.float32)  # all scores 0: every first negative violates
    V = np.zeros((40, 4), np.float32)
    b = np.zeros(40, np.float32)
    G = [np.ones(x.shape, np.float32) for x in (U, V, b)]
    loss, rate, n = warp_epoch(indptr, indices, np.arange(60, dtype=np.int64), balanced_bounds(indptr, 1),
                               U, V, b, *G, 1e-12, 0.0, True, 10, 0, 0)  # tiny steps: scores stay 0
    assert n == m.nnz
    assert rate == 1.0
    # first violation at N=1 with margin 1: loss = ln(39)
    assert loss == pytest.approx(np.log(39), rel=1e-6)


def test_fold_in_prefers_its_block_and_is_batch_independent():
    model = fit({"iterations": 15})
    hist = block_matrix()[[2, 50]]
    vecs = model.user_vectors(np.array([-1, -1]), hist)
    alone = model.user_vectors(np.array([-1]), hist[1])
    np.testing.assert_array_equal(vecs[1], alone[0])
    s = model.score(np.array([-1, -1]), hist)
    assert s[0, :20].mean() > s[0, 20:].mean() and s[1, 20:].mean() > s[1, :20].mean()


@pytest.mark.parametrize("adagrad", [True, False])
@pytest.mark.parametrize("max_sampled", [1, 3])
def test_fold_in_matches_reference(adagrad, max_sampled):
    rng = np.random.default_rng(max_sampled)
    hist = fold_in_history()
    V = rng.normal(0, 0.5, (12, 5)).astype(np.float32)
    b = rng.normal(0, 0.5, 12).astype(np.float32)
    got = warp_fold_in(hist.indptr, hist.indices, V, b, 4, np.float32(0.2), np.float32(0.02), adagrad,
                       max_sampled, np.uint64(5))
    want = warp_fold_in_reference(hist.indptr, hist.indices, V, b, 4, 0.2, 0.02, adagrad, max_sampled, 5)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert not got[2].any() and not got[3].any()  # nothing to rank against: zero
    assert np.abs(got[[0, 1, 4, 5]]).sum(axis=1).min() > 0


def test_fold_in_rows_stay_aligned_with_their_history():
    rng = np.random.default_rng(8)
    hist = fold_in_history()
    V = rng.normal(0, 0.5, (12, 5)).astype(np.float32)
    b = rng.normal(0, 0.5, 12).astype(np.float32)
    args = (V, b, 3, np.float32(0.2), np.float32(0.02), True, 3, np.uint64(9))
    order = np.array([5, 0, 3, 1, 4, 2])
    moved = hist[order]
    np.testing.assert_array_equal(warp_fold_in(moved.indptr, moved.indices, *args),
                                  warp_fold_in(hist.indptr, hist.indices, *args)[order])


def test_kos_k_above_n_is_a_config_error():
    with pytest.raises(ConfigError, match="kos_k"):
        WARP(build_config(WARP.Config, {"kos_k": 6, "kos_n": 5}, "warp"))
    with pytest.raises(ConfigError):
        build_config(WARP.Config, {"schedule": "adam"}, "warp")


def test_round_trip_through_arrays():
    model = fit({"iterations": 2})
    back = WARP.from_arrays(model.config, {k: v.copy() for k, v in model.to_arrays().items()})
    np.testing.assert_array_equal(back.score(np.arange(60), None), model.score(np.arange(60), None))
    sim = back.similar_items(np.array([3]))
    assert sim.shape == (1, 40) and sim[0, 3] == pytest.approx(1.0, rel=1e-5)
