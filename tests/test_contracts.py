"""Contract tests, parametrised over EVERY registered model (a new model gets them by
registering itself): known answer, batch == single, seen filtering, k > catalogue,
save → load, determinism, fold-in, explanations, similar items."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from recli.artifacts import load_model, save_model
from recli.errors import ConfigError, InputError
from recli.models import registry
from recli.models.base import build_config, config_to_dict, describe_params, train_arrays
from tests import contracts as C

MODELS = registry()
PARAMS = [pytest.param(cls, id=name) for name, cls in MODELS.items()]
_FITTED: dict[str, object] = {}


def fitted(cls):
    """Fit each model once per test session (fits are the slow part)."""
    if cls.name not in _FITTED:
        matrix, _, _ = C.block_matrix()
        _FITTED[cls.name] = C.fit(cls, matrix)
    return _FITTED[cls.name]


@pytest.mark.parametrize("cls", PARAMS)
def test_config_is_documented_and_round_trips(cls):
    rows = describe_params(cls.Config)
    assert all(r["help"] for r in rows), "every parameter needs a one-line help"
    config = C.config_for(cls)
    assert build_config(cls.Config, config_to_dict(config), cls.name) == config
    assert cls.name and cls.summary


@pytest.mark.parametrize("cls", PARAMS)
def test_known_answer_on_blocks(cls):
    matrix, blocks, held = C.block_matrix()
    mf = C.model_file(fitted(cls), matrix)
    items, scores = C.recommend_all(mf, k=3)
    if cls.personalized:
        # the only unseen item of the user's own block must come first
        hit = items[:, 0] == held
        assert hit.mean() >= 0.8, f"held-out item ranked first for {hit.mean():.0%} of users"
        assert (C.item_block(items[:, 0]) == blocks).mean() >= 0.8
    else:
        for u in range(matrix.shape[0]):
            np.testing.assert_array_equal(items[u], C.popularity_order(matrix, u)[:3])
    assert np.isfinite(scores[items >= 0]).all()
    assert (np.diff(scores, axis=1) <= 0).all(), "scores must be in rank order"


@pytest.mark.parametrize("cls", PARAMS)
def test_batch_equals_single_user(cls):
    matrix, _, _ = C.block_matrix()
    model = fitted(cls)
    users = np.arange(matrix.shape[0], dtype=np.int64)
    batch = model.score(users, None)
    single = np.vstack([model.score(users[i:i + 1], None) for i in range(users.shape[0])])
    assert batch.shape == (matrix.shape[0], matrix.shape[1]) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, single, rtol=1e-5, atol=1e-6)
    mf = C.model_file(model, matrix)
    a, _ = C.recommend_all(mf, k=1, batch_size=1024)
    b, _ = C.recommend_all(mf, k=1, batch_size=1)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", PARAMS)
def test_seen_items_excluded_unless_asked(cls):
    matrix, _, _ = C.block_matrix()
    mf = C.model_file(fitted(cls), matrix)
    items, _ = C.recommend_all(mf, k=matrix.shape[1])
    for u in range(matrix.shape[0]):
        seen = set(matrix.indices[matrix.indptr[u]:matrix.indptr[u + 1]].tolist())
        assert not seen & set(items[u].tolist())
    everything, _ = C.recommend_all(mf, k=matrix.shape[1], include_seen=True)
    assert (np.sort(everything, axis=1) == np.arange(matrix.shape[1])).all()


@pytest.mark.parametrize("cls", PARAMS)
def test_k_larger_than_catalogue(cls):
    matrix, _, _ = C.block_matrix()
    mf = C.model_file(fitted(cls), matrix)
    items, scores = C.recommend_all(mf, k=matrix.shape[1] + 50)
    assert items.shape == (matrix.shape[0], matrix.shape[1])
    for u in range(matrix.shape[0]):
        got = items[u][items[u] >= 0]
        assert len(got) == len(set(got.tolist())) == matrix.shape[1] - np.diff(matrix.indptr)[u]


@pytest.mark.parametrize("cls", PARAMS)
def test_save_load_round_trip(cls, tmp_path):
    matrix, _, _ = C.block_matrix()
    mf = C.model_file(fitted(cls), matrix)
    meta = save_model(tmp_path / "m", mf.model, mf.users, mf.items, matrix,
                      {"config": config_to_dict(mf.model.config), "seed": C.SEED})
    loaded = load_model(tmp_path / "m")
    assert type(loaded.model) is cls and loaded.meta["files"] == meta["files"]
    assert loaded.model.config == mf.model.config
    a_items, a_scores = C.recommend_all(mf, k=5)
    b_items, b_scores = C.recommend_all(loaded, k=5)
    np.testing.assert_array_equal(a_items, b_items)
    np.testing.assert_array_equal(a_scores, b_scores)
    assert (loaded.user_items != matrix).nnz == 0


@pytest.mark.parametrize("cls", PARAMS)
def test_same_seed_one_thread_is_deterministic(cls):
    matrix, _, _ = C.block_matrix()
    a, b = C.fit(cls, matrix), C.fit(cls, matrix)
    arrays_a, arrays_b = a.to_arrays(), b.to_arrays()
    assert arrays_a.keys() == arrays_b.keys()
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)
    np.testing.assert_array_equal(C.recommend_all(C.model_file(a, matrix), 5)[0],
                                  C.recommend_all(C.model_file(b, matrix), 5)[0])


def _fold_in_scores(model, matrix, users):
    history = sp.csr_matrix(matrix[users])
    return model.score(np.full(users.shape[0], -1, dtype=np.int64), history)


@pytest.mark.parametrize("cls", PARAMS)
def test_fold_in_new_users(cls):
    if not cls.can_fold_in:
        pytest.skip(f"{cls.name} cannot fold in users (recommend --history refuses it)")
    matrix, blocks, held = C.block_matrix()
    model = fitted(cls)
    users = np.arange(matrix.shape[0])
    scores = _fold_in_scores(model, matrix, users)
    assert scores.shape == matrix.shape and np.isfinite(scores).all()
    scores[matrix.toarray() > 0] = -np.inf  # the history's own items are "seen"
    top = scores.argmax(axis=1)
    if cls.personalized:
        assert (top == held).mean() >= 0.8
    else:
        np.testing.assert_array_equal(top, [C.popularity_order(matrix, u)[0] for u in users])


@pytest.mark.parametrize("cls", PARAMS)
def test_explanations_sum_to_fold_in_score(cls):
    if not cls.can_explain:
        pytest.skip(f"{cls.name} cannot explain")
    matrix, _, held = C.block_matrix()
    model = fitted(cls)
    u = 3
    hist = matrix.indices[matrix.indptr[u]:matrix.indptr[u + 1]]
    vals = matrix.data[matrix.indptr[u]:matrix.indptr[u + 1]]
    items = np.array([held[u], (held[u] + C.ITEMS_PER_BLOCK) % matrix.shape[1]])
    contrib = np.asarray(model.explain(u, hist, vals, items))
    assert contrib.shape == (2, hist.shape[0])
    if cls.can_fold_in:
        want = _fold_in_scores(model, matrix, np.array([u]))[0, items]
        np.testing.assert_allclose(contrib.sum(axis=1), want, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("cls", PARAMS)
def test_similar_items_stay_in_block(cls):
    matrix, _, _ = C.block_matrix()
    model = fitted(cls)
    try:
        sims = model.similar_items(np.arange(matrix.shape[1], dtype=np.int64))
    except ConfigError:
        pytest.skip(f"{cls.name} has no item similarity")
    assert sims.shape == (matrix.shape[1], matrix.shape[1])
    sims = np.array(sims, dtype=np.float32)
    np.fill_diagonal(sims, -np.inf)
    top = sims.argmax(axis=1)
    assert (C.item_block(top) == C.item_block(np.arange(matrix.shape[1]))).mean() >= 0.8


def test_registry_has_models_and_test_params_are_valid():
    assert "popular" in MODELS
    for cls in MODELS.values():
        fields = {f.name for f in dataclasses.fields(cls.Config)}
        assert set(cls.test_params) <= fields, f"{cls.name}.test_params names unknown parameters"


@pytest.mark.parametrize("cls", PARAMS)
def test_epoch_callback_sees_the_current_model(cls):
    """``recli train --valid`` scores the model inside ``on_epoch`` and snapshots
    ``to_arrays()`` to restore the best epoch: both must reflect the epoch just done."""
    matrix, _, _ = C.block_matrix()
    model = cls(C.config_for(cls))
    seen = []

    def on_epoch(info):
        scores = model.score(np.arange(matrix.shape[0], dtype=np.int64), None)
        assert scores.shape == matrix.shape and np.isfinite(scores).all()
        seen.append((info.epoch, scores.copy(), {k: np.array(v, copy=True) for k, v in model.to_arrays().items()}))

    from recli.backend import threads_context

    with threads_context(1):
        model.fit(matrix, on_epoch=on_epoch, **C.fit_kwargs(cls, matrix))
    epochs = [e for e, _, _ in seen]
    assert seen and epochs == list(range(epochs[0], epochs[0] + len(seen))), "one callback per epoch, in order"
    assert epochs[0] == 1, "epochs are numbered from 1 (issue 9)"
    _, last_scores, last_arrays = seen[-1]
    np.testing.assert_allclose(model.score(np.arange(matrix.shape[0], dtype=np.int64), None), last_scores, rtol=1e-6)
    restored = cls.from_arrays(model.config, {**train_arrays(matrix), **last_arrays})
    restored.n_users, restored.n_items = matrix.shape
    np.testing.assert_allclose(restored.score(np.arange(matrix.shape[0], dtype=np.int64), None), last_scores, rtol=1e-6)


@pytest.mark.parametrize("cls", PARAMS)
def test_epochs_count_from_one_and_elapsed_is_per_epoch(cls):
    """Issue 9: ``EpochInfo.elapsed`` is the epoch's own time, so the epochs' times add up
    to at most the whole fit (cumulative times would add up to far more)."""
    import time

    from recli.backend import threads_context

    matrix, _, _ = C.block_matrix()
    model = cls(C.config_for(cls))
    infos = []
    with threads_context(1):
        model.fit(matrix, **C.fit_kwargs(cls, matrix))  # warm-up: JIT compilation is not what is measured
        start = time.perf_counter()
        model.fit(matrix, on_epoch=infos.append, **C.fit_kwargs(cls, matrix))
        total = time.perf_counter() - start
    assert [i.epoch for i in infos] == list(range(1, len(infos) + 1))
    assert all(i.elapsed >= 0 for i in infos)
    assert sum(i.elapsed for i in infos) <= total


@pytest.mark.parametrize("cls", [p for p in PARAMS if p.values[0].can_fold_in and p.values[0].personalized])
def test_a_new_user_without_history_is_one_input_error(cls):
    """Issue 9: every model that reads a history raises the same error for a -1 row
    without one (``popular`` gives everyone the same list and needs none)."""
    model = fitted(cls)
    with pytest.raises(InputError, match="need their interaction history") as err:
        model.score(np.array([0, -1], dtype=np.int64), None)
    assert err.value.exit_code == 2


def test_a_diverged_fit_is_one_user_fixable_error():
    """Issue 9: one error type for a diverged fit, exit 2 (a setting to change, not a bug)."""
    from recli.errors import ModelFitError

    cls = MODELS["mf"]
    matrix, _, _ = C.block_matrix()
    with pytest.raises(ModelFitError, match="diverged at epoch") as err:
        C.fit(cls, matrix, learning_rate=1e30)
    assert err.value.exit_code == 2 and "learning-rate" in err.value.hint
