"""Train/test(/validation) splits over integer user codes and timestamps, seeded.

Strategies
----------
random        each interaction independently: exactly ``round(f * n)`` (or ``k``) rows go to test.
user-ratio    within each user, a random ``round(f * n_u)`` of the user's rows go to test.
temporal      one global cut in time: the latest ``round(f * n)`` (or ``k``) rows by timestamp
              (file order breaks ties), or every row at or after ``--cut-date``.
leave-last    each user's latest ``k`` rows by timestamp (or the latest fraction ``f``).
leave-random  ``k`` random rows per user (or a random fraction ``f``).
cold-items    a random ``round(f * n_items)`` (or ``k``) of the distinct items, with every one of
              their rows: test items are never seen in training (cold start).
cold-users    the same over distinct users.

A fraction becomes a row count by rounding half up, ``floor(f * n + 0.5)``: 7 rows at
0.2 give 1 (1.4), 5 rows at 0.5 give 3 (2.5), 3 rows at 0.5 give 2 (1.5).
Cold splits round the number of items (users) the same way and always leave at least one
item (user) in train. Per-user strategies always leave a user at least one training row: a user with
``n_u`` rows gives at most ``n_u - 1`` to test. Rows must be given in input order;
the randomness is drawn per row from ``numpy.random.default_rng(seed)``, so the same
seed gives the same split whatever order ids were encoded in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recli.errors import ConfigError, InputError

STRATEGIES = ("random", "user-ratio", "temporal", "leave-last", "leave-random", "cold-items", "cold-users")
COLD = ("cold-items", "cold-users")
PER_USER = ("user-ratio", "leave-last", "leave-random")
NEEDS_TIME = ("temporal", "leave-last")


@dataclass(frozen=True)
class Size:
    """A split size: a fraction in (0, 1) or a count k >= 1."""

    fraction: float | None = None
    k: int | None = None

    def __str__(self) -> str:
        return f"{self.fraction:g}" if self.fraction is not None else str(self.k)


def parse_size(value: float | str, option: str = "--test-size") -> Size:
    """``0.2`` is a fraction, ``1``/``5`` are counts; anything else is refused."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{option} {value!r} is not a number",
                          hint=f"use a fraction in (0, 1) like {option} 0.2, or a whole count like {option} 1") from None
    if 0 < v < 1:
        return Size(fraction=v)
    if v >= 1 and v == int(v):
        return Size(k=int(v))
    raise ConfigError(f"{option} {value} is outside its range",
                      hint=f"use a fraction strictly between 0 and 1 (e.g. {option} 0.2) or a whole count >= 1")


@dataclass
class SplitInfo:
    """What a split did, for the report."""

    strategy: str
    size: str
    cut_timestamp: int | None = None
    ties_at_cut: int = 0          # rows sharing the timestamp at the cut
    ties_in_train: int = 0        # ... of which landed in train (split across the cut)


def _per_user_tail(users: np.ndarray, key: np.ndarray, size: Size) -> np.ndarray:
    """Mark each user's last ``n_test(u)`` rows in ``key`` order; ties keep input order (lexsort is stable)."""
    n = users.shape[0]
    order = np.lexsort((key, users))
    su = users[order]
    starts = np.flatnonzero(np.r_[True, su[1:] != su[:-1]])
    counts = np.diff(np.r_[starts, n])
    if size.fraction is not None:
        n_test = np.floor(counts * size.fraction + 0.5).astype(np.int64)
    else:
        n_test = np.full(counts.shape, size.k, dtype=np.int64)
    n_test = np.minimum(n_test, counts - 1)
    # rank from the end within each user; test when it falls in the user's last n_test rows
    ends = np.repeat(starts + counts, counts)
    from_end = ends - np.arange(n)
    mask_sorted = from_end <= np.repeat(n_test, counts)
    mask = np.empty(n, dtype=bool)
    mask[order] = mask_sorted
    return mask


def _global_count(n: int, size: Size, what: str) -> int:
    n_test = size.k if size.k is not None else int(np.floor(n * size.fraction + 0.5))
    if n_test >= n:
        raise ConfigError(f"{what} size {size} leaves no rows to train on ({n} rows)",
                          hint="use a smaller size or a fraction")
    return n_test


def split_mask(strategy: str, size: Size, users: np.ndarray, timestamps: np.ndarray | None,
               rng: np.random.Generator, cut: int | None = None, what: str = "test",
               items: np.ndarray | None = None) -> tuple[np.ndarray, SplitInfo]:
    """Boolean mask of the rows that go to the held-out part (test or validation).

    Parameters
    ----------
    strategy : one of :data:`STRATEGIES`.
    size : fraction or count (``cut`` replaces it for ``temporal``).
    users : integer user code per row, rows in input order.
    timestamps : int64 epoch seconds per row, or ``None``.
    rng : source of randomness for ``random``, ``user-ratio``, ``leave-random`` and the cold splits.
    cut : epoch seconds of ``--cut-date`` (``temporal`` only).
    items : integer item code per row (``cold-items`` only).

    Returns
    -------
    (mask, SplitInfo)
    """
    n = users.shape[0]
    info = SplitInfo(strategy=strategy, size=str(size) if cut is None else f"cut at {cut}")
    if strategy in NEEDS_TIME and timestamps is None:
        raise InputError(f"--split {strategy} needs timestamps but the input has none",
                         hint="name the time column with --time-col, or use --split random / leave-random")
    if strategy == "random":
        n_test = _global_count(n, size, what)
        mask = np.zeros(n, dtype=bool)
        mask[rng.permutation(n)[:n_test]] = True
        return mask, info
    if strategy == "temporal":
        return _temporal(timestamps, size, cut, what, info)
    if strategy in COLD:
        return _cold_ids(users if strategy == "cold-users" else items, size, rng, what, strategy[5:-1]), info
    if strategy == "user-ratio" and size.k is not None:
        raise ConfigError("--split user-ratio takes a fraction, not a count",
                          hint="use e.g. --test-size 0.2, or --split leave-random for k rows per user")
    if strategy == "leave-last":
        return _per_user_tail(users, timestamps, size), info
    if strategy in ("leave-random", "user-ratio"):
        return _per_user_tail(users, rng.permutation(n), size), info
    raise ConfigError(f"unknown split {strategy!r}", hint=f"use one of: {', '.join(STRATEGIES)}")


def _cold_ids(codes: np.ndarray, size: Size, rng: np.random.Generator, what: str, noun: str) -> np.ndarray:
    """Rows of a seeded random ``round(f * n)`` (or ``k``) of the ``n`` distinct codes.

    The codes are drawn from the sorted distinct codes, so the choice depends only on the seed
    and the set of ids, not on the row order."""
    distinct = np.unique(codes)
    n_held = size.k if size.k is not None else int(np.floor(distinct.size * size.fraction + 0.5))
    if n_held >= distinct.size:
        raise ConfigError(f"{what} size {size} leaves no rows to train on: it holds out all {distinct.size} {noun}s",
                          hint=f"use a smaller size: a fraction of the {noun}s, or a count below {distinct.size}")
    held = np.zeros(int(distinct[-1]) + 1, dtype=bool)
    held[rng.permutation(distinct)[:n_held]] = True
    return held[codes]


def _temporal(ts: np.ndarray, size: Size, cut: int | None, what: str, info: SplitInfo) -> tuple[np.ndarray, SplitInfo]:
    n = ts.shape[0]
    if cut is not None:
        mask = ts >= cut
        if mask.all() or not mask.any():
            raise InputError(f"--cut-date puts {'every' if mask.all() else 'no'} row in {what}",
                             hint=f"the data spans {int(ts.min())}..{int(ts.max())} (epoch seconds); pick a date inside it")
        info.cut_timestamp = int(cut)
        info.ties_at_cut = int((ts == cut).sum())
        return mask, info
    n_test = _global_count(n, size, what)
    order = np.argsort(ts, kind="stable")  # stable: file order breaks ties
    mask = np.zeros(n, dtype=bool)
    mask[order[n - n_test:]] = True
    if n_test:
        t_cut = int(ts[order[n - n_test]])
        at_cut = ts == t_cut
        info.cut_timestamp = t_cut
        info.ties_at_cut = int(at_cut.sum())
        info.ties_in_train = int((at_cut & ~mask).sum())
    return mask, info
