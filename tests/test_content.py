"""The ``content`` model against the slow NumPy reference (tests/reference_content.py):
scores, value rule, time decay, fold-in, new items, similar items and both explanations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recli.data.side import SideFeatures
from recli.errors import ConfigError
from recli.models.base import train_arrays
from recli.models.content import Content, ContentConfig
from tests import reference_content as ref

N_USERS, N_ITEMS, N_FEATURES = 12, 10, 6


def _data(seed: int = 3, signed: bool = False):
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((N_USERS, N_ITEMS)) < 0.35, rng.integers(1, 6, (N_USERS, N_ITEMS)), 0)
    if signed:
        dense = dense * np.where(rng.random(dense.shape) < 0.3, -1, 1)
    dense[0] = 0
    dense[0, 1] = 4  # user 0: one interaction
    feats = np.where(rng.random((N_ITEMS, N_FEATURES)) < 0.5, rng.random((N_ITEMS, N_FEATURES)) + 0.1, 0.0)
    feats[7] = 0.0  # an item without any feature scores 0
    times = rng.integers(1_600_000_000, 1_600_000_000 + 400 * 86400, dense.shape).astype(np.float64)
    return dense.astype(np.float32), feats.astype(np.float32), times


def _side(feats: np.ndarray) -> SideFeatures:
    return SideFeatures(sp.csr_matrix(feats), np.array([f"f{j}" for j in range(feats.shape[1])]))


def _fit(dense, feats, times=None, **config) -> Content:
    m = sp.csr_matrix(dense)
    m.sort_indices()
    ts = None if times is None else times[dense != 0]  # row-major order = CSR order
    return Content(ContentConfig(**config)).fit(m, timestamps=ts, item_features=_side(feats))


@pytest.mark.parametrize("config", [{}, {"values": "binary"}, {"half_life_days": 30.0},
                                    {"values": "binary", "half_life_days": 100.0}], ids=str)
@pytest.mark.parametrize("signed", [False, True], ids=["positive", "signed"])
def test_scores_match_the_reference(config, signed):
    dense, feats, times = _data(signed=signed)
    model = _fit(dense, feats, times, **config)
    want = ref.scores(feats, ref.weights(dense, times, config.get("half_life_days", 0.0),
                                         config.get("values") == "binary"))
    got = model.score(np.arange(N_USERS), None)
    assert got.dtype == np.float32 and got.shape == (N_USERS, N_ITEMS)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert (got[:, 7] == 0).all()
    # the stored model (decay weights included) gives the same bits
    loaded = Content.from_arrays(model.config, {**train_arrays(model._raw), **model.to_arrays()})
    np.testing.assert_array_equal(loaded.score(np.arange(N_USERS), None), got)


def test_fold_in_and_new_items_match_the_reference():
    dense, feats, _ = _data()
    model = _fit(dense, feats)
    history = sp.csr_matrix(dense[[2, 5]])
    folded = model.score(np.array([-1, -1]), history)
    np.testing.assert_allclose(folded, ref.scores(feats, dense[[2, 5]]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(folded, model.score(np.array([2, 5]), None), rtol=1e-6)
    fresh = np.array([[0.5, 0, 0, 1.0, 0, 0], [0, 0, 0, 0, 0, 0], feats[3]], dtype=np.float32)
    got = model.score_new_items(np.array([0, 2, -1]), sp.vstack([sp.csr_matrix((2, N_ITEMS)), history[:1]]),
                                _side(fresh))
    w = np.vstack([dense[[0, 2]], dense[[2]]])
    np.testing.assert_allclose(got, ref.scores(feats, w, fresh), rtol=1e-5, atol=1e-6)
    # a new item with item 3's features scores like item 3
    np.testing.assert_allclose(got[:, 2], model.score(np.array([0, 2, 2]), None)[:, 3], rtol=1e-6)
    assert (got[:, 1] == 0).all()


def test_similar_items_are_cosines_of_the_profiles():
    dense, feats, _ = _data()
    q = ref.unit(feats)
    np.testing.assert_allclose(_fit(dense, feats).similar_items(np.arange(N_ITEMS)), q @ q.T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("half_life", [0.0, 50.0])
def test_both_explanations_sum_to_the_score(half_life):
    dense, feats, times = _data()
    model = _fit(dense, feats, times, half_life_days=half_life)
    u = 4
    hist = np.flatnonzero(dense[u])
    items = np.array([0, 3, 7, 9])
    scores = model.score(np.array([u]), None)[0, items]
    by_item = model.explain(u, hist, dense[u, hist], items)
    by_feature = model.explain_features(u, hist, dense[u, hist], items)
    assert by_item.shape == (4, hist.shape[0]) and by_feature.shape == (4, N_FEATURES)
    np.testing.assert_allclose(by_item.sum(axis=1), scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(by_feature.sum(axis=1), scores, rtol=1e-5, atol=1e-6)
    # p_u[f] q_i[f]: the feature part is zero where the item lacks the feature
    assert (by_feature[feats[items] == 0] == 0).all()
    assert list(model.feature_names("item")) == [f"f{j}" for j in range(N_FEATURES)]
    assert model.feature_names("user") is None


def test_refusals():
    dense, feats, _ = _data()
    m = sp.csr_matrix(dense)
    with pytest.raises(ConfigError, match="features"):
        Content().fit(m)
    with pytest.raises(ConfigError, match="timestamps"):
        Content(ContentConfig(half_life_days=7.0)).fit(m, item_features=_side(feats))
