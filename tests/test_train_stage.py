"""The train stage: validation per epoch, early stopping keeps the best epoch, metadata."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recli.data.matrix import Interactions, build_interactions
from recli.errors import ConfigError, InputError
from recli.models.base import Model, param
from recli.stages.train import load_params_file, resolve_config, train
from recli.stages.validation import validation_score


@dataclass
class ScriptConfig:
    epochs: int = param(6, "epochs to run", min=1)


GOOD_EPOCHS = {2}  # the scripted model ranks the validation items first only at epoch 2


class Scripted(Model):
    """A test model whose ranking is right at epoch 2 only (the state is the epoch number)."""

    name: ClassVar[str] = "scripted"
    Config: ClassVar[type] = ScriptConfig

    def fit(self, user_items, on_epoch=None):
        self.n_users, self.n_items = user_items.shape
        self.target = np.zeros(self.n_items, np.float32)
        self.target[-1] = 1.0
        self.epoch = np.zeros(1, np.int64)
        for e in range(1, self.config.epochs + 1):
            self.epoch[0] = e
            if self._report(on_epoch, e, 0.0, float(10 - e)):
                break
        return self

    def score(self, uidx, history=None):
        good = int(self.epoch[0]) in GOOD_EPOCHS
        row = self.target if good else -self.target
        return np.tile(row, (len(uidx), 1))

    def to_arrays(self):
        return {"epoch": self.epoch, "target": self.target}

    @classmethod
    def from_arrays(cls, config, arrays, backend=None):
        m = cls(config, backend)
        m.epoch = np.array(arrays["epoch"])
        m.target = np.array(arrays["target"])
        return m


@pytest.fixture
def data():
    # items w, x, y, z (indices 0..3); the validation item z is the scripted model's target
    df = pl.DataFrame({"user": ["a", "b", "c", "c", "c"], "item": ["x", "x", "w", "y", "z"]})
    return build_interactions(df)


def _valid(data: Interactions) -> Interactions:
    m = sp.csr_matrix(([1.0, 1.0], ([0, 1], [3, 3])), shape=data.user_items.shape, dtype=np.float32)
    return Interactions(data.users, data.items, m, None, 2)


def test_early_stopping_restores_best_epoch(data):
    result = train(data, Scripted, ScriptConfig(), valid=_valid(data), early_stopping=2, threads=1)
    assert result.meta["best_epoch"] == 2 and result.meta["epochs"] == 4
    assert result.valid_scores[1] == pytest.approx(1.0) and result.valid_scores[0] < 1.0
    assert int(result.model.to_arrays()["epoch"][0]) == 2
    assert result.meta["epoch_losses"] == [9.0, 8.0, 7.0, 6.0]
    assert result.meta["valid_metric"] == "ndcg@10" and result.meta["threads"] == 1


def test_without_early_stopping_keeps_the_last_epoch(data):
    result = train(data, Scripted, ScriptConfig(epochs=3), valid=_valid(data), threads=1)
    assert int(result.model.to_arrays()["epoch"][0]) == 3 and len(result.valid_scores) == 3
    with pytest.raises(ConfigError, match="validation"):
        train(data, Scripted, ScriptConfig(), early_stopping=2)


def test_validation_score_is_ndcg(data):
    model = Scripted(ScriptConfig()).fit(data.user_items)
    model.epoch[0] = 2  # z first
    assert validation_score(model, _valid(data).user_items, data.user_items) == pytest.approx(1.0)
    model.epoch[0] = 3  # z last of the unseen w, y, z (w, y tie at 0: lower index first)
    assert validation_score(model, _valid(data).user_items, data.user_items) == pytest.approx(1 / np.log2(4))
    v = sp.csr_matrix(([1.0, 1.0], ([0, 0], [0, 2])), shape=data.user_items.shape, dtype=np.float32)
    # a: relevant w (rank 1) and y (rank 2) -> ideal
    assert validation_score(model, v, data.user_items) == pytest.approx(1.0)
    v = sp.csr_matrix(([1.0], ([0], [2])), shape=data.user_items.shape, dtype=np.float32)
    assert validation_score(model, v, data.user_items) == pytest.approx(1 / np.log2(3))
    empty = sp.csr_matrix(data.user_items.shape, dtype=np.float32)
    assert validation_score(model, empty, data.user_items) == 0.0


def test_config_file_shapes(tmp_path):
    flat = tmp_path / "flat.json"
    flat.write_text('{"window_days": 4, "measure": "sum"}')
    assert load_params_file(str(flat), "popular") == (None, {"window_days": 4, "measure": "sum"})
    named = tmp_path / "named.toml"
    named.write_text("[popular]\nwindow_days = 1.5\n")
    cls, config = resolve_config("popular", config_file=str(named))
    assert config.window_days == 1.5
    tuned = tmp_path / "tuned.toml"
    tuned.write_text('model = "popular"\n[params]\nmeasure = "sum"\n')
    cls, config = resolve_config(None, config_file=str(tuned), seed=3)
    assert cls.name == "popular" and config.measure == "sum"
    with pytest.raises(ConfigError, match="no model"):
        resolve_config(None)


# -- the value rule is checked before the fit (issue 10 §6) ---------------------------------

class RatingsOnly(Scripted):
    """A model that needs explicit ratings and records whether it was fitted."""

    name: ClassVar[str] = "ratings-only"
    accepts: ClassVar[str] = "ratings"
    fitted: ClassVar[list] = []

    def fit(self, user_items, on_epoch=None):
        self.fitted.append(True)
        return super().fit(user_items, on_epoch)


def test_build_interactions_records_whether_there_were_ratings(data):
    assert data.has_ratings is False
    rated = build_interactions(pl.DataFrame({"user": ["a", "b"], "item": ["x", "y"], "rating": [4.0, 2.0]}))
    assert rated.has_ratings is True


def test_a_ratings_model_is_refused_before_the_fit_without_a_rating_column(data):
    with pytest.raises(InputError, match="no rating column") as exc:
        train(data, RatingsOnly, ScriptConfig(epochs=1), threads=1)
    assert "negatives=" in exc.value.hint and RatingsOnly.fitted == []
    rated = build_interactions(pl.DataFrame({"user": ["a", "b"], "item": ["x", "y"], "rating": [4.0, 2.0]}))
    train(rated, RatingsOnly, ScriptConfig(epochs=1), threads=1)
    assert RatingsOnly.fitted == [True]


def test_binary_models_are_told_what_is_left_out(capsys):
    from recli import console

    class Binary(Scripted):
        name: ClassVar[str] = "binary"
        accepts: ClassVar[str] = "binary"

    console.reset()
    df = pl.DataFrame({"user": ["a", "a", "b", "c"], "item": ["x", "y", "x", "z"], "rating": [5.0, -1.0, 0.0, 2.0]})
    train(build_interactions(df), Binary, ScriptConfig(epochs=1), threads=1)
    err = capsys.readouterr().err
    assert "warning: binary reads values > 0 as positive interactions: 2 of the 4 (user, item) cells" in err
    assert "ignores the size of the values" in err
