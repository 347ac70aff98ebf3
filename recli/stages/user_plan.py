"""Who ``recli recommend`` serves: requested ids resolved against the model once.

:func:`plan_users` turns ``--user``/``--users``/``--all-users``/``--history`` into a
:class:`UserPlan`: per user, the model row to score, or ``-1`` (folded in from a history
row: a new user's ``--history`` rows, or a known user's training rows plus them), or
``FALLBACK`` (popular items). Users that cannot be scored are counted in one warning per
kind, refused with ``--strict``, or served popular items with ``--fallback popular``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from recli.console import log
from recli.errors import ConfigError, InputError

if TYPE_CHECKING:  # SciPy and Polars load lazily: one user's top-k as CSV needs neither
    import scipy.sparse as sp

    from recli.artifacts import ModelFile
    from recli.data.io import ReadOptions
    from recli.data.vocab import Vocab

FALLBACK = -2  # plan marker: serve this user from popularity (--fallback popular)
UNKNOWN = -3  # plan marker while resolving: not a model user (folded in or lost later)


@dataclass
class UserPlan:
    """Who to score: external ids, model row (-1 = fold in from ``history``, -2 = popular)."""

    ids: list[str]
    uidx: np.ndarray
    history: sp.csr_matrix | None  # rows aligned with ``ids`` (only -1 users' rows used)
    skipped: int = 0


class History(NamedTuple):
    """``--history`` rows: their users, one CSR row per user over the model's items, and
    the user ids in first-seen order (``None``: vocabulary order)."""

    users: Vocab
    matrix: sp.csr_matrix
    order: list[str] | None = None


def read_history(source: str, mf: ModelFile, read: ReadOptions | None = None) -> History:
    """``user,item[,rating]`` rows → :class:`History` (repeated cells add up, as in training).
    Columns are found as for every interaction table (``read``: ``--user-col``, ``--sep`` ...)."""
    from recli.data.io import read_interactions
    from recli.data.matrix import ITEM, USER, to_csr
    from recli.data.vocab import Vocab

    df = read_interactions(source, read, roles=("user", "item", "rating"), what="--history")
    users = Vocab.from_values(df[USER])
    matrix, _ = to_csr(df, users, mf.items, what="--history")
    unknown = int((mf.items.index(df[ITEM]) < 0).sum())
    if unknown:
        log.warning(f"--history: {unknown} rows with items unknown to the model ignored")
    return History(users, matrix, df[USER].drop_nulls().unique(maintain_order=True).to_list())


def plan_users(mf: ModelFile, ids: list[str] | None, *, all_users: bool = False,
               history: History | tuple[Vocab, sp.csr_matrix] | None = None, strict: bool = False,
               fallback: str | None = None) -> UserPlan:
    """Resolve the users to serve, in order: ``ids``; with ``all_users`` every training
    user, then the new users of ``history``; with neither, the users of ``history``.

    A known user is scored from its model row. A user with rows in ``history`` is folded
    in: a new user from them, a known user from its training rows plus them (as if they
    were appended to the training data), also for seen-item filtering. Users that cannot
    be scored (unknown without history, or new with no item known to the model) are
    skipped with a warning counting them, an error with ``strict``, or served popular
    items with ``fallback``.
    """
    if fallback not in (None, "popular"):
        raise ConfigError(f"unknown fallback {fallback!r}", hint="use --fallback popular")
    if history is not None and not mf.model.can_fold_in:
        raise ConfigError(f"model {mf.model.name!r} cannot fold in new users from --history",
                          hint="retrain with a model that can (recli train --list-models shows 'fold-in'), "
                               "or use --fallback popular")
    if all_users and history is None:
        return UserPlan(mf.users.ids.to_list(), np.arange(len(mf.users), dtype=np.int64), None)
    ids, uidx = _requested(mf, ids, all_users, history)
    hist_rows, no_items = None, np.zeros(len(ids), dtype=bool)
    if history is not None:
        uidx, hist_rows, no_items = _fold_in_plan(mf, ids, uidx, history)
    unknown = (uidx == UNKNOWN) & ~no_items
    lost = unknown | no_items
    _refuse_if_strict(strict, ids, unknown, no_items)
    if lost.any() and fallback == "popular":
        uidx[lost] = FALLBACK
    _warn_lost(int(unknown.sum()), int(no_items.sum()), fallback)
    if lost.any() and fallback != "popular":
        keep = np.flatnonzero(~lost)
        ids, uidx = [ids[i] for i in keep], uidx[keep]
        hist_rows = hist_rows[keep] if hist_rows is not None else None
    return UserPlan(ids, uidx, hist_rows, skipped=int(lost.sum()) if fallback != "popular" else 0)


def _requested(mf: ModelFile, ids: list[str] | None, all_users: bool,
               history: History | tuple | None) -> tuple[list[str], np.ndarray]:
    """The ids to serve and their model rows (``UNKNOWN`` for users the model lacks)."""
    if all_users:
        order = _history_order(history)
        new = [u for u, i in zip(order, mf.users.index(order)) if i < 0]
        uidx = np.concatenate([np.arange(len(mf.users), dtype=np.int64), np.full(len(new), UNKNOWN, np.int64)])
        return mf.users.ids.to_list() + new, uidx
    ids = list(ids) if ids is not None else _history_order(history)
    uidx = mf.users.index(ids).astype(np.int64)
    uidx[uidx < 0] = UNKNOWN
    return ids, uidx


def _history_order(history: History | tuple | None) -> list[str]:
    """The users of ``history`` in first-seen order (vocabulary order when not recorded)."""
    if history is None:
        return []
    order = history[2] if len(history) > 2 else None
    return list(order) if order is not None else history[0].ids.to_list()


def _fold_in_plan(mf: ModelFile, ids: list[str], uidx: np.ndarray,
                  history: History | tuple) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray]:
    """Mark users with known-item history rows ``-1`` and give them their fold-in rows:
    the history row for a new user, training row + history row for a known one. Returns
    (uidx, rows aligned with ``ids``, new users whose history has no known item)."""
    hist_users, hist_matrix = history[0], history[1]
    rows = hist_users.index(ids).astype(np.int64)
    has_items = np.zeros(len(ids), dtype=bool)
    in_history = rows >= 0
    has_items[in_history] = np.diff(hist_matrix.indptr)[rows[in_history]] > 0
    new, merged = has_items & (uidx == UNKNOWN), has_items & (uidx >= 0)
    folded = _place_rows(hist_matrix, rows, has_items)
    if merged.any():
        folded = folded + _place_rows(mf.user_items, uidx, merged)
        log.info(f"--history: {int(merged.sum())} users known to the model folded in from their training rows "
                 "plus their --history rows")
    folded.sort_indices()
    uidx = uidx.copy()
    uidx[new | merged] = -1
    return uidx, folded, in_history & ~has_items & (uidx == UNKNOWN)


def _place_rows(matrix: sp.csr_matrix, rows: np.ndarray, where: np.ndarray) -> sp.csr_matrix:
    """A CSR with one row per entry of ``where``: ``matrix[rows[i]]`` where ``where[i]``,
    else empty (built from the selected rows only)."""
    import scipy.sparse as sp

    positions = np.flatnonzero(where)
    sub = matrix[rows[positions]]
    lengths = np.zeros(where.shape[0], dtype=np.int64)
    lengths[positions] = np.diff(sub.indptr)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return sp.csr_matrix((sub.data, sub.indices, indptr), shape=(where.shape[0], matrix.shape[1]))


def _refuse_if_strict(strict: bool, ids: list[str], unknown: np.ndarray, no_items: np.ndarray) -> None:
    """``--strict``: users that cannot be scored are an error (InputError)."""
    if not strict:
        return
    for lost, what, fix in ((unknown, "users are unknown to the model", "pass --history for new users"),
                            (no_items, "users in --history have no item known to the model",
                             "give them items the model was trained on")):
        if lost.any():
            examples = ", ".join(repr(ids[i]) for i in np.flatnonzero(lost)[:3])
            raise InputError(f"{int(lost.sum())} {what} (e.g. {examples})",
                             hint=f"drop --strict to skip them, {fix}, or use --fallback popular")


def _warn_lost(n_unknown: int, n_no_items: int, fallback: str | None) -> None:
    """One line per kind of user that cannot be scored: skipped, or served popular items."""
    if n_unknown and fallback == "popular":
        log.info(f"{n_unknown} users unknown to the model get popular items (--fallback popular)")
    elif n_unknown:
        log.warning(f"{n_unknown} users unknown to the model skipped (use --history, --fallback popular or --strict)")
    if n_no_items:
        action = "get popular items (--fallback popular)" if fallback == "popular" else \
            "are skipped (use --fallback popular, or --strict to make it an error)"
        log.warning(f"{n_no_items} users in --history have no item known to the model: they {action}")
