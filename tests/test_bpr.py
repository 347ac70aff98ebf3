"""BPR kernel and model: reference step, convergence, determinism, fold-in, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recli.backend import get_backend
from recli.errors import ArtifactError, ConfigError, InputError
from recli.kernels._chunks import balanced_bounds
from recli.kernels.bpr import bpr_apply, bpr_epoch, bpr_fold_in
from recli.models.base import build_config
from recli.models.bpr import BPR
from tests.reference_bpr import bpr_fold_in_reference, bpr_step_reference


def block_matrix(n_users=60, n_items=40, density=0.6, seed=0) -> sp.csr_matrix:
    """Two user groups, each liking (a random 60% of) its own half of the items."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((n_users, n_items), dtype=np.float32)
    half_u, half_i = n_users // 2, n_items // 2
    dense[:half_u, :half_i] = rng.random((half_u, half_i)) < density
    dense[half_u:, half_i:] = rng.random((n_users - half_u, n_items - half_i)) < density
    return sp.csr_matrix(dense)


def fit(params=None, data=None, threads=1) -> BPR:
    cfg = build_config(BPR.Config, {**BPR.test_params, **(params or {})}, "bpr")
    return BPR(cfg, get_backend("cpu", threads)).fit(block_matrix() if data is None else data)


def random_state(rng, n_users=5, n_items=7, k=6):
    U = rng.normal(0, 0.3, (n_users, k)).astype(np.float32)
    V = rng.normal(0, 0.3, (n_items, k)).astype(np.float32)
    b = rng.normal(0, 0.3, n_items).astype(np.float32)
    return U, V, b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_step_matches_reference(seed):
    rng = np.random.default_rng(seed)
    U, V, b = random_state(rng)
    lr, reg = 0.1, 0.03
    ru, rv, rb, rloss = bpr_step_reference(U, V, b, 2, 1, 5, lr, reg)
    loss = bpr_apply(U, V, b, np.array([2]), np.array([1]), np.array([5]), np.float32(lr), np.float32(reg))
    np.testing.assert_allclose(loss[0], rloss, rtol=1e-5)
    np.testing.assert_allclose(U, ru, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(V, rv, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(b, rb, rtol=1e-5, atol=1e-7)


def test_sequence_of_steps_matches_reference_applied_in_order():
    rng = np.random.default_rng(7)
    U, V, b = random_state(rng)
    users, pos, neg = np.array([0, 0, 3, 4]), np.array([1, 2, 1, 6]), np.array([2, 1, 5, 1])
    ref = (U.copy(), V.copy(), b.copy())
    ref_losses = []
    for u, i, j in zip(users, pos, neg):
        *ref, loss = bpr_step_reference(*ref, u, i, j, 0.05, 0.01)
        ref_losses.append(loss)
    losses = bpr_apply(U, V, b, users, pos, neg, np.float32(0.05), np.float32(0.01))
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    np.testing.assert_allclose(V, ref[1], rtol=1e-5, atol=1e-7)


def test_large_scores_keep_the_loss_finite():
    U = np.full((1, 4), 10.0, np.float32)
    V = np.array([[10.0] * 4, [-10.0] * 4], np.float32)
    b = np.zeros(2, np.float32)
    loss = bpr_apply(U.copy(), V.copy(), b.copy(), np.array([0]), np.array([1]), np.array([0]),
                     np.float32(0.01), np.float32(0.0))
    assert np.isfinite(loss[0]) and loss[0] == pytest.approx(800.0, rel=1e-4)  # -ln σ(-800)


def test_loss_and_ranking_improve_over_epochs():
    model = fit({"iterations": 25})
    losses = model.epoch_losses
    assert len(losses) == 25
    assert losses[-1] < 0.5 * losses[0]
    assert model.epoch_auc[-1] > max(0.8, model.epoch_auc[0])
    scores = model.score(np.arange(60), None)
    # every user prefers its own half of the catalogue
    own = np.where(np.arange(60)[:, None] < 30, scores[:, :20].mean(1, keepdims=True), scores[:, 20:].mean(1, keepdims=True))
    other = np.where(np.arange(60)[:, None] < 30, scores[:, 20:].mean(1, keepdims=True), scores[:, :20].mean(1, keepdims=True))
    assert (own > other).all()


def test_one_thread_is_bit_for_bit_deterministic():
    a, b = fit(threads=1), fit(threads=1)
    assert np.array_equal(a.user_factors, b.user_factors)
    assert np.array_equal(a.item_factors, b.item_factors)
    assert np.array_equal(a.item_bias, b.item_bias)
    assert a.epoch_losses == b.epoch_losses


def test_different_seeds_differ():
    a, b = fit({"seed": 1}), fit({"seed": 2})
    assert not np.array_equal(a.item_factors, b.item_factors)


def test_two_threads_train_as_well():
    model = fit({"iterations": 25}, threads=2)
    assert model.threads_used in (1, 2)
    assert model.epoch_losses[-1] < 0.5 * model.epoch_losses[0]


def test_epoch_draws_one_triple_per_interaction_and_skips_full_rows():
    m = block_matrix()
    dense = m.toarray()
    dense[0, :] = 1.0  # a user owning every item has no negative: skipped, no hang
    m = sp.csr_matrix(dense)
    rng = np.random.default_rng(0)
    U, V = rng.random((60, 4), dtype=np.float32), rng.random((40, 4), dtype=np.float32)
    before = U[0].copy()
    b = np.zeros(40, np.float32)
    indptr, indices = m.indptr.astype(np.int64), m.indices.astype(np.int32)
    loss, frac, n = bpr_epoch(indptr, indices, np.arange(60, dtype=np.int64), balanced_bounds(indptr, 1),
                              U, V, b, 0.05, 0.0, 3, 0)
    assert n == m.nnz - 40
    assert 0.0 <= frac <= 1.0 and loss > 0
    assert np.array_equal(U[0], before)


def test_balanced_bounds_split_interactions_evenly():
    indptr = np.array([0, 10, 10, 20, 30, 40], dtype=np.int64)
    bounds = balanced_bounds(indptr, 2)
    assert bounds[0] == 0 and bounds[-1] == 5 and len(bounds) == 3
    counts = np.diff(indptr[bounds])
    assert counts.tolist() == [20, 20]
    assert balanced_bounds(indptr, 99)[-1] == 5  # more chunks than users is fine


def test_fold_in_is_batch_independent_and_prefers_its_block():
    model = fit({"iterations": 25})
    hist = block_matrix()[[3, 40]]  # one user of each group, folded in as new users
    batch = model.score(np.array([-1, 5, -1]), sp.vstack([hist[0], hist[0], hist[1]]).tocsr())
    alone = model.score(np.array([-1]), hist[1])
    np.testing.assert_allclose(batch[2], alone[0], rtol=1e-5, atol=1e-6)  # BLAS rounding only
    vecs = model.user_vectors(np.array([-1, -1]), sp.vstack([hist[0], hist[1]]).tocsr())
    np.testing.assert_array_equal(vecs[1], model.user_vectors(np.array([-1]), hist[1])[0])
    assert batch[0, :20].mean() > batch[0, 20:].mean()
    assert batch[2, 20:].mean() > batch[2, :20].mean()
    np.testing.assert_allclose(batch[1], model.score(np.array([5]), None)[0], rtol=1e-5, atol=1e-6)


def fold_in_history(n_items=12) -> sp.csr_matrix:
    """History rows of new users: short, long, empty, and one holding every item."""
    rows = [[1, 4, 7], [0, 2, 3, 5, 8, 9, 10], [], list(range(n_items)), [11], [6, 7, 8]]
    indptr = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    indices = np.array([i for r in rows for i in r], dtype=np.int32)
    return sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(len(rows), n_items))


@pytest.mark.parametrize("seed", [3, 4])
def test_fold_in_matches_reference(seed):
    rng = np.random.default_rng(seed)
    hist = fold_in_history()
    _, V, b = random_state(rng, n_items=12)
    got = bpr_fold_in(hist.indptr, hist.indices, V, b, 4, np.float32(0.3), np.float32(0.02), np.uint64(seed), 32)
    want = bpr_fold_in_reference(hist.indptr, hist.indices, V, b, 4, 0.3, 0.02, seed, 32)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert not got[2].any() and not got[3].any()  # nothing to rank against: zero
    assert np.abs(got[[0, 1, 4, 5]]).sum(axis=1).min() > 0


def test_fold_in_rows_stay_aligned_with_their_history():
    rng = np.random.default_rng(7)
    hist = fold_in_history()
    _, V, b = random_state(rng, n_items=12)
    args = (V, b, 3, np.float32(0.3), np.float32(0.02), np.uint64(9), 32)
    order = np.array([5, 0, 3, 1, 4, 2])
    moved = hist[order]
    np.testing.assert_array_equal(bpr_fold_in(moved.indptr, moved.indices, *args),
                                  bpr_fold_in(hist.indptr, hist.indices, *args)[order])


def test_fold_in_needs_history_and_known_users_in_range():
    model = fit({"iterations": 2})
    with pytest.raises(InputError, match="need their interaction history"):  # issue 9: one error type
        model.score(np.array([-1]), None)
    with pytest.raises(InputError):
        model.score(np.array([600]), None)


def test_similar_items_are_cosine_and_follow_blocks():
    model = fit({"iterations": 25})
    sim = model.similar_items(np.array([0, 30]))
    assert sim.shape == (2, 40) and sim.dtype == np.float32
    np.testing.assert_allclose(sim[0, 0], 1.0, rtol=1e-5)
    assert sim[0, 1:20].mean() > sim[0, 20:].mean()
    assert sim[1, 20:].mean() > sim[1, :20].mean()


def test_round_trip_through_arrays_gives_identical_scores():
    model = fit({"iterations": 3})
    arrays = {k: v.copy() for k, v in model.to_arrays().items()}
    back = BPR.from_arrays(model.config, arrays)
    np.testing.assert_array_equal(back.score(np.arange(60), None), model.score(np.arange(60), None))
    with pytest.raises(ArtifactError):
        BPR.from_arrays(model.config, {**arrays, "item_bias": arrays["item_bias"][:-1]})
    with pytest.raises(ArtifactError):
        BPR.from_arrays(model.config, {"user_factors": arrays["user_factors"]})


def test_config_bounds_and_empty_input():
    with pytest.raises(ConfigError):
        build_config(BPR.Config, {"learning_rate": 0}, "bpr")
    with pytest.raises(ConfigError):
        build_config(BPR.Config, {"factors": 0}, "bpr")
    with pytest.raises(InputError):
        BPR(BPR.Config()).fit(sp.csr_matrix((3, 4), dtype=np.float32))
