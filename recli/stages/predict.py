"""Pair scoring: a model's score for given (user, item) pairs (``recommend --pairs``),
and the rating predictions behind ``eval --model -m rmse,mae``.

Known pairs get ``model.score_pairs`` (for ``mf`` the predicted rating
``μ + bᵤ + bᵢ + pᵤ·qᵢ``). Pairs with a user or item the model does not know get its
fallback (``model.fallback_pairs``: ``μ + bᵢ``, ``μ + bᵤ`` or ``μ`` for ``mf``; no score,
an empty field, for ranking models), counted in one warning, or an error with ``strict``.
Models that predict ratings have their predictions clipped to the range of the training
ratings unless ``clip`` is off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from recli.console import log
from recli.data.schema import ITEM, USER
from recli.errors import InputError


@dataclass
class PairScores:
    """Scores aligned with the input pairs; ``unknown`` marks pairs served by the fallback."""

    scores: np.ndarray  # float32, NaN where the model has no score
    unknown: np.ndarray  # bool


def score_pairs(mf, users: pl.Series, items: pl.Series, *, clip: bool = True, strict: bool = False,
                batch_size: int = 1024, what: str = "--pairs") -> PairScores:
    """The scores of pairs ``(users[p], items[p])`` (external ids) from model file ``mf``."""
    uidx = mf.users.index(users).astype(np.int64)  # -1: unknown
    iidx = mf.items.index(items).astype(np.int64)
    unknown = (uidx < 0) | (iidx < 0)
    n_unknown = int(unknown.sum())
    if n_unknown and strict:
        row = int(np.flatnonzero(unknown)[0])
        raise InputError(f"{what}: {n_unknown} pairs name users or items unknown to the model "
                         f"(e.g. {users[row]!r}, {items[row]!r})",
                         hint="drop --strict to give them the model's fallback score")
    scores = np.empty(uidx.shape[0], dtype=np.float32)
    known = ~unknown
    if known.any():
        scores[known] = mf.model.score_pairs(uidx[known], iidx[known], batch_size)
    if n_unknown:
        scores[unknown] = mf.model.fallback_pairs(uidx[unknown], iidx[unknown])
        log.warning(f"{what}: {n_unknown} of {uidx.shape[0]} pairs name users or items unknown to the model; "
                    + ("they get the fallback (global mean + known biases)" if mf.model.predicts_ratings
                       else "they have no score (empty)"))
    if clip and mf.model.predicts_ratings:
        low, high = training_range(mf)
        np.clip(scores, low, high, out=scores)
    return PairScores(scores, unknown)


def training_range(mf) -> tuple[float, float]:
    """The smallest and largest training rating: the range pair predictions are clipped to."""
    data = np.asarray(mf.train[2])
    return (float(data.min()), float(data.max())) if data.size else (-np.inf, np.inf)


def pairs_frame(mf, pairs: pl.DataFrame, *, clip: bool = True, strict: bool = False,
                batch_size: int = 1024) -> pl.DataFrame:
    """``user,item,score`` for every row of ``pairs`` (columns ``user``, ``item``), in
    input order; ``score`` is null where the model has no score."""
    for column in (USER, ITEM):
        if column not in pairs.columns:
            raise InputError(f"--pairs has no {column} column (found: {', '.join(pairs.columns)})",
                             hint="give user,item rows, or name the columns with --user-col/--item-col")
    users = pairs[USER].cast(pl.Utf8)
    items = pairs[ITEM].cast(pl.Utf8)
    result = score_pairs(mf, users, items, clip=clip, strict=strict, batch_size=batch_size)
    score = pl.Series("score", result.scores, dtype=pl.Float32).fill_nan(None)
    return pl.DataFrame({USER: users, ITEM: items}).with_columns(score)
