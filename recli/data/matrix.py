"""Interactions frame → sparse ``user_items`` matrix (CSR).

The matrix every model trains on is a ``scipy.sparse.csr_matrix`` of shape
``(n_users, n_items)`` with ``float32`` values, ``int32`` column indices and sorted rows
(scipy keeps ``indptr`` and ``indices`` in one dtype; :func:`csr_arrays` gives the
canonical ``int64`` indptr / ``int32`` indices / ``float32`` data that kernels and the
model file use). A cell's value is the ``rating`` column when the frame has
one (so weights written by ``recli prep --weight`` flow through), else 1 per row;
duplicate (user, item) rows are summed. When a ``timestamp`` column is present the
latest timestamp of each cell (epoch seconds, ``float64``) is returned aligned with the
CSR values, for time-aware models such as ``popular --param window_days=…``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from recli.data.vocab import Vocab
from recli.errors import InputError

if TYPE_CHECKING:  # scipy loads lazily: `recli recommend` for a few users never needs it
    import scipy.sparse as sp

USER, ITEM, RATING, TIMESTAMP = "user", "item", "rating", "timestamp"


@dataclass
class Interactions:
    """A training set in array form, with the vocabularies that map ids to rows/columns.
    ``has_ratings``: whether the frame had a rating column (without one every row is 1)."""

    users: Vocab
    items: Vocab
    user_items: sp.csr_matrix
    timestamps: np.ndarray | None
    n_rows: int
    has_ratings: bool = True

    @property
    def fingerprint(self) -> str:
        return matrix_fingerprint(self.user_items, self.users.hash, self.items.hash)


def require_columns(df: pl.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{what} has no {', '.join(missing)} column (found: {', '.join(df.columns) or 'none'})",
                         hint="name the columns user,item[,rating][,timestamp], e.g. with recli prep")


def parse_values(df: pl.DataFrame, what: str = "input") -> pl.Series:
    """The cell values: ``rating`` as float32 (must be finite numbers), else ones."""
    if RATING not in df.columns:
        return pl.Series(RATING, np.ones(df.height, dtype=np.float32))
    raw = df[RATING]
    values = raw.cast(pl.Float32, strict=False)
    bad = (values.is_null() | ~values.is_finite()).fill_null(True)
    if bad.any():
        example = raw.filter(bad).head(1).to_list()[0]
        raise InputError(f"{what}: {int(bad.sum())} rating values are not finite numbers (e.g. {example!r})",
                         hint="clean the ratings with recli prep (--on-invalid drop, --fill-rating)")
    return values.rename(RATING)


def parse_timestamps(df: pl.DataFrame, what: str = "input") -> pl.Series | None:
    """``timestamp`` as float64 epoch seconds (numbers or ISO-8601 dates), or ``None``."""
    if TIMESTAMP not in df.columns:
        return None
    raw = df[TIMESTAMP]
    ts = raw.cast(pl.Float64, strict=False)
    if ts.null_count() > raw.null_count() and raw.dtype in (pl.Utf8, pl.String):
        ts = _parse_dates(raw)
    if ts.null_count() > 0:
        example = raw.filter(ts.is_null()).head(1).to_list()[0]
        raise InputError(f"{what}: {ts.null_count()} timestamps are neither epoch seconds nor ISO-8601 (e.g. {example!r})",
                         hint="write timestamps as epoch seconds or dates like 2024-01-31T12:00:00")
    return ts.rename(TIMESTAMP)


_DATE_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
                 "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d")


def _parse_dates(raw: pl.Series) -> pl.Series:
    """ISO-8601 dates/times (naive = UTC; an offset is honoured) → epoch seconds."""
    frame = raw.str.strip_chars().to_frame("s")
    aware = pl.col("s").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_unit="us", time_zone="UTC")
    naive = [pl.col("s").str.to_datetime(f, strict=False, time_unit="us") for f in _DATE_FORMATS]
    out = frame.select(pl.coalesce([aware.dt.replace_time_zone(None), *naive]).dt.epoch("us").alias("t"))
    return out["t"].cast(pl.Float64) / 1e6


def build_interactions(df: pl.DataFrame, what: str = "training data", *, extra_users: pl.Series | None = None,
                       extra_items: pl.Series | None = None) -> Interactions:
    """Vocabularies and the summed, sorted CSR matrix of an interactions frame.

    ``extra_users`` / ``extra_items``: ids that join the vocabularies even without an
    interaction (the ids of a feature file): their rows / columns of the matrix are empty.
    """
    require_columns(df, (USER, ITEM), what)
    df = df.filter(pl.col(USER).is_not_null() & pl.col(ITEM).is_not_null())
    if df.height == 0:
        raise InputError(f"{what} is empty: no rows with both a user and an item",
                         hint="check the file holds interactions (user,item[,rating]) below the header")
    users = Vocab.from_values(_with_extra(df[USER], extra_users))
    items = Vocab.from_values(_with_extra(df[ITEM], extra_items))
    user_items, ts = to_csr(df, users, items, with_timestamps=True, what=what)
    return Interactions(users, items, user_items, ts, df.height, has_ratings=RATING in df.columns)


def _with_extra(ids: pl.Series, extra: pl.Series | None) -> pl.Series:
    return ids if extra is None else pl.concat([ids.cast(pl.Utf8), extra.cast(pl.Utf8)])


def to_csr(df: pl.DataFrame, users: Vocab, items: Vocab, *, with_timestamps: bool = False,
           what: str = "input") -> tuple[sp.csr_matrix, np.ndarray | None]:
    """CSR over the given vocabularies; rows whose user or item is unknown are dropped.

    Returns ``(user_items, timestamps)``; ``timestamps`` (latest per cell) only when asked
    and the frame has a ``timestamp`` column.
    """
    import scipy.sparse as sp

    values = parse_values(df, what)
    cols = {"u": users.index(df[USER]), "i": items.index(df[ITEM]), "v": values}
    ts = parse_timestamps(df, what) if with_timestamps else None
    if ts is not None:
        cols["t"] = ts
    frame = pl.DataFrame(cols).filter((pl.col("u") >= 0) & (pl.col("i") >= 0))
    aggs = [pl.col("v").sum()] + ([pl.col("t").max()] if ts is not None else [])
    cells = frame.group_by("u", "i").agg(aggs).sort("u", "i")
    rows = cells["u"].to_numpy()
    indptr = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(users)), out=indptr[1:])
    matrix = sp.csr_matrix((cells["v"].to_numpy().astype(np.float32), cells["i"].to_numpy().astype(np.int32), indptr),
                           shape=(len(users), len(items)))
    matrix.has_sorted_indices = True
    times = cells["t"].to_numpy().astype(np.float64) if ts is not None else None
    return matrix, times


def csr_from_arrays(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Wrap stored arrays without copying (they may be memory-mapped)."""
    import scipy.sparse as sp

    m = sp.csr_matrix((data, indices, indptr), shape=shape, copy=False)
    m.has_sorted_indices = True
    return m


def as_csr(matrix: Any, *, n_cols: int | None = None, drop_zeros: bool = False,
           what: str = "user_items") -> sp.csr_matrix:
    """The one CSR normalisation: a float32 CSR copy with int64 ``indptr`` and sorted,
    duplicate-free (summed) int32 ``indices``, what every model and kernel expects.

    ``n_cols``: the column count it must have (else :class:`InputError`, e.g. a history
    built over another item vocabulary); ``drop_zeros``: also remove explicitly stored
    zeros (for models that read any stored cell as an interaction).
    """
    import scipy.sparse as sp

    if not (sp.issparse(matrix) or isinstance(matrix, np.ndarray)):
        raise InputError(f"{what} must be a scipy sparse matrix", hint="pass the CSR built from the interactions")
    m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    if n_cols is not None and m.shape[1] != n_cols:
        raise InputError(f"{what} has {m.shape[1]} item columns, the model has {n_cols}",
                         hint="map the items through the model's item vocabulary")
    m.sum_duplicates()  # also sorts the indices
    if drop_zeros:
        m.eliminate_zeros()
    m.indptr = m.indptr.astype(np.int64, copy=False)
    m.indices = m.indices.astype(np.int32, copy=False)
    return m


def csr_arrays(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(indptr int64, indices int32, data float32)`` of a CSR matrix with sorted rows
    (a sorted CSR is read without a copy; anything else goes through :func:`as_csr`)."""
    import scipy.sparse as sp

    m = matrix if isinstance(matrix, sp.csr_matrix) and matrix.has_sorted_indices else as_csr(matrix)
    return (np.ascontiguousarray(m.indptr, dtype=np.int64), np.ascontiguousarray(m.indices, dtype=np.int32),
            np.ascontiguousarray(m.data, dtype=np.float32))


def matrix_fingerprint(user_items: sp.csr_matrix, users_hash: str, items_hash: str) -> str:
    """sha256 of the vocabularies and the CSR arrays: the same data in any row order or
    file format gives the same fingerprint."""
    h = hashlib.sha256()
    h.update(users_hash.encode())
    h.update(items_hash.encode())
    for a in csr_arrays(user_items):
        h.update(a.tobytes())
    return h.hexdigest()
