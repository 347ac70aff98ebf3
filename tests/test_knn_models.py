"""itemknn, userknn and ease: scores, fold-in, explanations, persistence and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recli.errors import ConfigError
from recli.models import get_model_class, registry
from recli.models.base import build_config, train_arrays
from tests.reference_similarity import similarity_dense, topk_dense

NAMES = ("itemknn", "userknn", "ease")


def interactions(seed: int = 0, n_users: int = 40, n_items: int = 25, density: float = 0.2) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n_users, n_items)) < density, rng.integers(1, 6, (n_users, n_items)), 0)
    dense[5, :] = 0  # a user without interactions
    dense[:, 7] = 0  # an item nobody saw
    return sp.csr_matrix(dense.astype(np.float32))


def make(name: str, **params):
    cls = get_model_class(name)
    return cls(build_config(cls.Config, {**cls.test_params, **params}, name))


def test_registered_with_test_params():
    for name in NAMES:
        cls = registry()[name]
        assert cls.can_fold_in and cls.can_explain and isinstance(cls.test_params, dict)


@pytest.mark.parametrize("weighting", ["none", "bm25"])
def test_itemknn_scores_equal_dense_reference(weighting):
    x = interactions()
    model = make("itemknn", neighbours=4, similarity="cosine", weighting=weighting).fit(x)
    ref = topk_dense(similarity_dense(x.T.toarray(), "cosine", weighting), 4)
    s = np.zeros((x.shape[1], x.shape[1]))
    for i, row in enumerate(ref):
        for j, v in row:
            s[i, j] = v
    np.testing.assert_allclose(model.score(np.arange(x.shape[0])), x.toarray() @ s, rtol=1e-5, atol=1e-5)


def test_userknn_scores_equal_dense_reference():
    x = interactions(1)
    model = make("userknn", neighbours=3, similarity="jaccard", shrink=1.0).fit(x)
    ref = topk_dense(similarity_dense(x.toarray(), "jaccard", shrink=1.0), 3)
    want = np.array([sum(v * x.toarray()[j] for j, v in row) if row else np.zeros(x.shape[1]) for row in ref])
    np.testing.assert_allclose(model.score(np.arange(x.shape[0])), want, rtol=1e-5, atol=1e-5)


def test_ease_equals_direct_numpy_solve():
    x = interactions(2)
    lam = 7.0
    model = make("ease", lambda_=lam).fit(x)
    g = x.toarray().astype(np.float64).T @ x.toarray()
    p = np.linalg.inv(g + lam * np.eye(g.shape[0]))
    b = np.eye(g.shape[0]) - p / np.diag(p)[None, :]
    np.testing.assert_allclose(model.weights, b, atol=1e-5)
    assert np.all(np.diag(model.weights) == 0)
    np.testing.assert_allclose(model.score(np.arange(3)), x[:3].toarray() @ b, atol=1e-4)


@pytest.mark.parametrize("lam", [0.5, 7.0, 200.0])
def test_ease_satisfies_its_constrained_optimum(lam):
    """Independent of the closed form: B minimises ||X − XB||² + λ||B||² subject to
    diag(B) = 0, so (G + λI)·B − G vanishes off the diagonal (Lagrange multipliers sit on
    it), and an item never scores itself through its own interaction."""
    x = interactions(4)
    model = make("ease", lambda_=lam).fit(x)
    b = model.weights.astype(np.float64)
    g = x.toarray().astype(np.float64).T @ x.toarray()
    residual = (g + lam * np.eye(g.shape[0])) @ b - g
    off = residual - np.diag(np.diag(residual))
    assert np.abs(off).max() < 1e-3 * max(1.0, np.abs(g).max())
    assert np.all(np.diag(b) == 0)
    single = np.zeros((1, x.shape[1]), dtype=np.float32)
    for item in range(x.shape[1]):
        single[:] = 0
        single[0, item] = 1
        assert (single @ model.weights)[0, item] == 0


def test_lambda_alias_is_accepted():
    cls = get_model_class("ease")
    assert build_config(cls.Config, {"lambda": "3"}, "ease").lambda_ == 3.0


@pytest.mark.parametrize("name", NAMES)
def test_new_user_from_history_equals_known_user(name):
    x = interactions(3)
    full = make(name).fit(x)
    hist = x[[4, 9]]
    if name == "userknn":
        # a new user is compared with all training users: train without user 4 to compare
        keep = np.setdiff1d(np.arange(x.shape[0]), [4])
        other = make(name).fit(x[keep])
        np.testing.assert_allclose(other.score(np.array([-1]), hist[[0]]), full.score(np.array([4])), atol=1e-5)
    else:
        np.testing.assert_allclose(full.score(np.array([-1, 9]), sp.vstack([hist[[0]], hist[[1]]])),
                                   full.score(np.array([4, 9])), atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_single_and_round_trip(name):
    x = interactions(4)
    model = make(name).fit(x)
    batch = model.score(np.arange(10))
    for u in (0, 3, 9):
        np.testing.assert_array_equal(model.score(np.array([u]))[0], batch[u])
    again = type(model).from_arrays(model.config, {**train_arrays(x), **model.to_arrays()})
    np.testing.assert_array_equal(again.score(np.arange(10)), batch)
    np.testing.assert_array_equal(again.similar_items(np.array([0, 3])), model.similar_items(np.array([0, 3])))
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in model.to_arrays().values())


@pytest.mark.parametrize("name", NAMES)
def test_explanations_sum_to_scores(name):
    x = interactions(5)
    model = make(name).fit(x)
    items = np.arange(x.shape[1])
    for u in (0, 1, 12):
        row = x[u]
        contrib = model.explain(u, row.indices, row.data, items)
        assert contrib.shape == (len(items), row.nnz)
        np.testing.assert_allclose(contrib.sum(axis=1), model.score(np.array([u]))[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["itemknn", "ease"])
def test_top_explaining_item_on_constructed_example(name):
    # items 0-2 are always bought together, item 3-5 likewise; the user holds 0 and 4:
    # item 1 is recommended because of item 0, item 5 because of item 4
    blocks = np.zeros((30, 6), np.float32)
    blocks[:15, :3] = 1
    blocks[15:, 3:] = 1
    x = sp.csr_matrix(blocks)
    model = make(name).fit(x)
    hist = np.array([0, 4])
    contrib = model.explain(-1, hist, np.ones(2, np.float32), np.array([1, 5]))
    assert hist[np.argmax(contrib[0])] == 0 and hist[np.argmax(contrib[1])] == 4
    assert contrib[0, 0] > 0 and contrib[1, 1] > 0


def test_userknn_explanation_credits_the_shared_item():
    # the new user shares item 0 with users who also bought item 1, and item 9 with nobody
    x = np.zeros((6, 10), np.float32)
    x[:3, [0, 1]] = 1
    x[3:, [5, 6]] = 1
    model = make("userknn", neighbours=3).fit(sp.csr_matrix(x))
    contrib = model.explain(-1, np.array([0, 9]), np.ones(2, np.float32), np.array([1]))
    assert contrib[0, 0] > 0 and contrib[0, 1] == 0


def test_bad_similarity_and_weighting_list_the_choices():
    cls = get_model_class("itemknn")
    with pytest.raises(ConfigError) as err:
        build_config(cls.Config, {"similarity": "euclid"}, "itemknn")
    assert "cosine" in err.value.hint and "jaccard" in err.value.hint
    with pytest.raises(ConfigError) as err:
        build_config(cls.Config, {"weighting": "log"}, "itemknn")
    assert "bm25" in err.value.hint and "tfidf" in err.value.hint


@pytest.mark.parametrize("k", ["0", "-3"])
def test_neighbours_must_be_positive(k):
    with pytest.raises(ConfigError, match="neighbours"):
        build_config(get_model_class("userknn").Config, {"neighbours": k}, "userknn")


def test_ease_refuses_over_max_memory():
    model = make("ease", max_memory="1KB")
    with pytest.raises(ConfigError) as err:
        model.fit(interactions())
    assert "needs about" in err.value.message and "max_memory=1KB" in err.value.message and err.value.hint


def test_ease_refuses_over_available_memory(monkeypatch):
    import recli.models.ease as ease

    monkeypatch.setattr(ease, "available_memory", lambda: 10_000)
    with pytest.raises(ConfigError, match=r"needs about 14\.6 KB .*available memory"):
        make("ease").fit(interactions())  # 25 items: 25 * 25 * 8 * 3 bytes = 14.6 KB


def test_bad_max_memory_value():
    with pytest.raises(ConfigError, match="not a size"):
        make("ease", max_memory="lots").fit(interactions())


@pytest.mark.parametrize("name", NAMES)
def test_model_file_stores_the_training_matrix_once(name, tmp_path):
    import polars as pl

    from recli.artifacts import load_model, save_model
    from recli.data.vocab import Vocab

    x = interactions(6)
    model = make(name).fit(x)
    assert not any(k.startswith("train_") for k in model.to_arrays())
    users = Vocab.from_values(pl.Series([f"u{i:03d}" for i in range(x.shape[0])]))
    items = Vocab.from_values(pl.Series([f"i{i:03d}" for i in range(x.shape[1])]))
    save_model(tmp_path / "m", model, users, items, x, {"config": {}})
    assert not list((tmp_path / "m").glob("model.train_*"))
    loaded = load_model(tmp_path / "m").model
    np.testing.assert_array_equal(loaded.score(np.arange(10)), model.score(np.arange(10)))
    np.testing.assert_array_equal(loaded.similar_items(np.array([0, 3])), model.similar_items(np.array([0, 3])))


def test_format_version_1_model_files_still_load(tmp_path, monkeypatch):
    """Version 1 files hold kNN/EASE's own copy of the training matrix among the model's
    arrays; they must load as before (their copy wins over the shared one)."""
    import polars as pl

    import recli.artifacts as artifacts
    from recli.data.vocab import Vocab

    x = interactions(7)
    model = make("itemknn").fit(x)
    monkeypatch.setattr(artifacts, "FORMAT_VERSION", 1)
    monkeypatch.setattr(model, "to_arrays", lambda: {**type(model).to_arrays(model), **train_arrays(x)})
    users = Vocab.from_values(pl.Series([f"u{i:03d}" for i in range(x.shape[0])]))
    items = Vocab.from_values(pl.Series([f"i{i:03d}" for i in range(x.shape[1])]))
    meta = artifacts.save_model(tmp_path / "m", model, users, items, x, {"config": {}})
    assert meta["format_version"] == 1 and (tmp_path / "m" / "model.train_indptr.npy").exists()
    monkeypatch.undo()
    loaded = artifacts.load_model(tmp_path / "m").model
    np.testing.assert_array_equal(loaded.score(np.arange(10)), model.score(np.arange(10)))
