"""The recommend stage with a small linear test model: explanations, similar items,
fold-in batches mixing known and new users, fallback rows, allow/deny masks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recli.artifacts import ModelFile
from recli.data.matrix import csr_arrays
from recli.data.vocab import Vocab
from recli.errors import ConfigError
from recli.models.base import Model
from recli.stages import recommend as stage


@dataclass
class LinearConfig:
    pass


class Linear(Model):
    """score(u) = x_u @ S (an item-kNN/EASE-shaped model): contributions are x_uh * S[h, j]."""

    name: ClassVar[str] = "linear"
    Config: ClassVar[type] = LinearConfig
    can_fold_in: ClassVar[bool] = True
    can_explain: ClassVar[bool] = True

    def __init__(self, S, X):
        super().__init__()
        self.S, self.X = S, X

    def score(self, uidx, history=None):
        rows = np.zeros((len(uidx), self.S.shape[0]), np.float32)
        known = uidx >= 0
        rows[known] = self.X[uidx[known]].toarray()
        if history is not None:
            rows[~known] = history[np.flatnonzero(~known)].toarray()
        return rows @ self.S

    def similar_items(self, iidx):
        return self.S[iidx]

    def explain(self, uidx, history_items, history_values, items):
        return (history_values[None, :] * self.S[np.ix_(history_items, items)].T).astype(np.float32)


@pytest.fixture
def mf():
    return linear_model_file()


def linear_model_file() -> ModelFile:
    """6 users x 8 items, the :class:`Linear` model over a random ``S`` and history ``X``."""
    rng = np.random.default_rng(3)
    n_users, n_items = 6, 8
    S = rng.random((n_items, n_items)).astype(np.float32)
    X = sp.random(n_users, n_items, density=0.3, random_state=4, format="csr", dtype=np.float32)
    X.data[:] = rng.integers(1, 4, X.nnz)
    X.sort_indices()
    users = Vocab(pl.Series([f"u{i}" for i in range(n_users)]))
    items = Vocab(pl.Series([f"i{i}" for i in range(n_items)]))
    return ModelFile(Linear(S, X), users, items, csr_arrays(X), {})


def test_explanations_sum_to_scores_flat_and_nested(mf):
    plan = stage.plan_users(mf, ["u1", "u2"])
    pos, items, values = next(stage.recommend_batches(mf, plan, 3))
    flat = stage.explain_frame(mf, plan, pos, items, values, top=100)
    assert flat.columns == ["user", "item", "score", "rank", "because_item", "contribution"]
    sums = flat.group_by("user", "item").agg(pl.col("contribution").sum(), pl.col("score").first())
    np.testing.assert_allclose(sums["contribution"], sums["score"], rtol=1e-5)
    nested = stage.explain_frame(mf, plan, pos, items, values, top=1, nested=True)
    assert nested.height == 6 and nested["because"].list.len().to_list() == [1] * 6
    # the top explaining item is the history item with the largest x_uh * S[h, j]
    row = nested.row(0, named=True)
    u, j = 1, int(row["item"][1:])
    hist = mf.user_items[u]
    best = hist.indices[np.argmax(hist.data * mf.model.S[hist.indices, j])]
    assert row["because"][0]["item"] == f"i{best}"


def test_history_refused_for_a_model_that_cannot_fold_in(mf, monkeypatch):
    """Every registered model folds in today, so the refusal is checked with the stage's
    test model switched off; the error names the model and points to --fallback popular."""
    hist = (Vocab(pl.Series(["new"])), sp.csr_matrix(np.eye(1, 8, 2, dtype=np.float32)))
    monkeypatch.setattr(Linear, "can_fold_in", False)
    with pytest.raises(ConfigError, match="model 'linear' cannot fold in") as err:
        stage.plan_users(mf, ["new"], history=hist)
    assert "--fallback popular" in err.value.hint
    assert stage.plan_users(mf, ["u0"]).uidx.tolist() == [0]  # without --history it serves as before


def test_mixed_batch_known_new_and_fallback(mf):
    hist = (Vocab(pl.Series(["new"])), sp.csr_matrix(np.eye(1, 8, 2, dtype=np.float32)))
    plan = stage.plan_users(mf, ["u0", "new", "ghost", "u3"], history=hist, fallback="popular")
    assert plan.uidx.tolist() == [0, -1, stage.FALLBACK, 3]
    frames = [stage.to_frame(plan.ids, mf.items, *b) for b in stage.recommend_batches(mf, plan, 8, batch_size=3)]
    df = pl.concat(frames)
    assert df["user"].unique(maintain_order=True).to_list() == ["u0", "new", "ghost", "u3"]
    assert "i2" not in df.filter(pl.col("user") == "new")["item"].to_list()  # its history is "seen"
    np.testing.assert_allclose(df.filter(pl.col("user") == "new")["score"].to_numpy(),
                               np.sort(np.delete(mf.model.S[2], 2))[::-1], rtol=1e-6)
    counts = np.bincount(mf.train[1], minlength=8)
    ghost = df.filter(pl.col("user") == "ghost")
    assert ghost["score"].to_list() == sorted(counts.tolist(), reverse=True)
    for u in ("u0", "u3"):
        seen = {f"i{i}" for i in mf.user_items[int(u[1:])].indices}
        assert not seen & set(df.filter(pl.col("user") == u)["item"].to_list())


def test_similar_items_exclude_the_item_and_respect_bans(mf):
    names, iidx = stage.plan_items(mf, ["i0", "nope", "i5"])
    assert names == ["i0", "i5"]
    banned = stage.item_ban_mask(mf.items, ["i7"], None)
    pos, items, values = next(stage.similar_batches(mf, iidx, 10, banned=banned))
    df = stage.to_frame(names, mf.items, pos, items, values, names=("item", "similar_item"))
    assert df.columns == ["item", "similar_item", "score", "rank"]
    for q in ("i0", "i5"):
        sims = df.filter(pl.col("item") == q)["similar_item"].to_list()
        assert q not in sims and "i7" not in sims and len(sims) == 6
    s0 = mf.model.S[0].copy()
    s0[[0, 7]] = -np.inf
    assert df.filter(pl.col("item") == "i0")["similar_item"][0] == f"i{int(np.argmax(s0))}"


def test_only_items_mask_and_kernels_agree(mf):
    banned = stage.item_ban_mask(mf.items, None, ["i1", "i3", "missing"])
    assert banned.tolist() == [1, 0, 1, 0, 1, 1, 1, 1]
    plan = stage.plan_users(mf, None, all_users=True)
    scores = mf.model.score(plan.uidx, None)
    from recli.kernels.topk import topk
    from recli.kernels.topk_xp import topk_xp

    indptr, indices, _ = mf.train
    a = topk(scores, 3, plan.uidx, indptr, indices, banned)
    b = topk_xp(scores, 3, plan.uidx, indptr, indices, banned)
    np.testing.assert_array_equal(a[0], b[0])
    assert set(a[0][a[0] >= 0].tolist()) <= {1, 3}


def test_xp_backend_runs_the_vectorised_path_with_the_same_result(mf, monkeypatch):
    from recli.backend import get_backend

    plan = stage.plan_users(mf, None, all_users=True)
    import recli.kernels.cpu as cpu_kernels

    monkeypatch.setattr(cpu_kernels, "SMALL_BATCH_CELLS", 0)  # force the Numba kernel on cpu
    cpu = [b[1] for b in stage.recommend_batches(mf, plan, 4)]
    mf.model.backend = get_backend("xp-numpy")
    called = []
    import recli.kernels.topk_xp as txp

    real = txp.topk_xp
    monkeypatch.setattr(txp, "topk_xp", lambda *a, **kw: called.append(1) or real(*a, **kw))
    xp = [b[1] for b in stage.recommend_batches(mf, plan, 4)]
    assert called
    np.testing.assert_array_equal(np.vstack(cpu), np.vstack(xp))


def test_recommend_entry_point_writes_what_the_batches_give(mf, tmp_path):
    """``recommend(mf, RecommendRequest)`` writes the rows of ``to_frame`` over the batches
    (plain CSV for ``--user`` ids, Polars for the rest) and returns their count."""
    plan = stage.plan_users(mf, ["u3", "u0"])
    expected = pl.concat([stage.to_frame(plan.ids, mf.items, *b) for b in stage.recommend_batches(mf, plan, 3)])
    for out, request in ((tmp_path / "a.csv", {"user": ["u3", "u0", "u3"]}),
                         (tmp_path / "b.parquet", {"user": ["u3", "u0"]})):
        rows = stage.recommend(mf, stage.RecommendRequest(**request, k=3, output=str(out)))
        assert rows == expected.height == 6
        got = pl.read_parquet(out) if out.suffix == ".parquet" else pl.read_csv(out, schema=stage.RECS_SCHEMA)
        assert got.equals(expected)
    with pytest.raises(ConfigError, match="not both"):
        stage.RecommendRequest(user=["u0"], similar_items=["i1"])
    with pytest.raises(ConfigError, match="-k must be at least 1"):
        stage.RecommendRequest(user=["u0"], k=0)
