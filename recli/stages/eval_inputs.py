"""Validate evaluation tables and map their ids to integer arrays, once, with Polars.

Everything after :func:`encode` works on NumPy arrays (:mod:`recli.metrics`).
Ids keep their type when every table stores them as integers; otherwise they are
compared as strings (CSV ids are read as strings, so ``007`` stays ``007``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from recli.errors import InputError

USER_COLUMNS = ("user", "user_id")
ITEM_COLUMNS = ("item", "item_id")
RATING_COLUMNS = ("rating",)
PREDICTION_COLUMNS = ("prediction",)


def find_column(df: pl.DataFrame, names: tuple[str, ...], what: str, role: str, required: bool = True) -> str | None:
    """The first of ``names`` present in ``df`` (case-insensitive), else an error / None."""
    lower = {c.lower(): c for c in df.columns}
    for name in names:
        if name in lower:
            return lower[name]
    if not required:
        return None
    raise InputError(f"{what} has no {role} column (looked for {', '.join(names)}; found {', '.join(df.columns)})",
                     hint=f"rename the {role} column to '{names[0]}', e.g. a header line '{names[0]},...'")


def _numeric(df: pl.DataFrame, col: str, what: str) -> pl.Series:
    """``df[col]`` as Float64; non-numeric or empty values are an error that names a row."""
    s = df[col]
    if s.dtype.is_numeric():
        out = s.cast(pl.Float64)
    else:
        out = s.cast(pl.Utf8).str.strip_chars().cast(pl.Float64, strict=False)
    bad = out.is_null() | out.is_nan()
    if bad.any():
        i = int(bad.arg_max())
        raise InputError(f"{what}: column {col!r} must be numeric, row {i + 1} holds {s[i]!r}",
                         hint=f"fix or drop the rows whose {col} is not a number")
    return out


def _ids(s: pl.Series) -> pl.Series:
    return s.cast(pl.Int64) if s.dtype.is_integer() else s.cast(pl.Utf8)


def harmonize(frames: list[pl.DataFrame], col: str) -> list[pl.DataFrame]:
    """Give ``col`` one dtype across frames: Int64 when all are integers, else String."""
    if all(f[col].dtype == pl.Int64 for f in frames):
        return frames
    return [f.with_columns(pl.col(col).cast(pl.Utf8)) for f in frames]


def prepare_recs(df: pl.DataFrame, what: str) -> pl.DataFrame:
    """``user, item, _ord`` (lower = better; rank, else -score, else file order), plus
    ``prediction`` / ``score`` when present. Repeated (user, item) pairs are an error."""
    u = find_column(df, USER_COLUMNS, what, "user")
    i = find_column(df, ITEM_COLUMNS, what, "item")
    rank = find_column(df, ("rank",), what, "rank", required=False)
    score = find_column(df, ("score",), what, "score", required=False)
    pred = find_column(df, PREDICTION_COLUMNS, what, "prediction", required=False)
    cols = {"user": _ids(df[u]), "item": _ids(df[i])}
    if rank is not None:
        cols["_ord"] = _numeric(df, rank, what)
    elif score is not None:
        cols["_ord"] = -_numeric(df, score, what)
    else:
        cols["_ord"] = pl.Series(np.arange(df.height, dtype=np.float64))
    if score is not None:
        cols["score"] = _numeric(df, score, what)
    if pred is not None:
        cols["prediction"] = _numeric(df, pred, what)
    out = pl.DataFrame(cols)
    if out["user"].null_count() or out["item"].null_count():
        raise InputError(f"{what} has empty user or item values", hint="drop rows without a user or an item")
    dup = out.select(pl.struct("user", "item").is_duplicated()).to_series()
    if dup.any():
        row = out.row(int(dup.arg_max()), named=True)
        raise InputError(f"{what} recommends item {row['item']!r} to user {row['user']!r} more than once",
                         hint="each (user, item) pair may appear once per recommendations file; deduplicate it")
    return out


def prepare_test(df: pl.DataFrame, what: str, threshold: float | None, graded: bool):
    """``(rated, relevant, notes)``: all (user, item[, rating]) rows with repeats merged
    (highest rating kept), and the relevant rows with their ``gain``."""
    u = find_column(df, USER_COLUMNS, what, "user")
    i = find_column(df, ITEM_COLUMNS, what, "item")
    r = find_column(df, RATING_COLUMNS, what, "rating", required=False)
    if r is None and threshold is not None:
        raise InputError(f"--relevance-threshold needs ratings, but {what} has no rating column "
                         f"(found {', '.join(df.columns)})",
                         hint="drop --relevance-threshold for implicit data, or add a 'rating' column")
    if r is None and graded:
        raise InputError(f"--graded needs ratings, but {what} has no rating column",
                         hint="drop --graded, or add a 'rating' column to the test file")
    cols = {"user": _ids(df[u]), "item": _ids(df[i])}
    if r is not None:
        cols["rating"] = _numeric(df, r, what)
    test = pl.DataFrame(cols)
    notes = []
    if test.height != test.select(pl.struct("user", "item").n_unique()).item():
        before = test.height
        agg = pl.col("rating").max() if r is not None else pl.len().alias("_n")
        test = test.group_by("user", "item", maintain_order=True).agg(agg).select(test.columns)
        notes.append(f"{what}: {before - test.height} repeated (user, item) rows merged (highest rating kept)")
    relevant = test.filter(pl.col("rating") >= threshold) if threshold is not None else test
    if relevant.height == 0:
        raise InputError(f"no row of {what} has rating >= {threshold}",
                         hint="lower --relevance-threshold, or check the rating scale of the test file")
    gain = pl.col("rating") if graded else pl.lit(1.0)
    relevant = relevant.select("user", "item", gain.cast(pl.Float64).alias("gain"))
    return test, relevant, notes


def prepare_items(df: pl.DataFrame, what: str, feature: str) -> pl.DataFrame:
    """``item, feature`` (list of strings, split on ``|``) from an item-features table."""
    i = find_column(df, ITEM_COLUMNS, what, "item")
    if feature not in df.columns:
        raise InputError(f"{what} has no {feature!r} column (found {', '.join(df.columns)})",
                         hint="name the feature column with --item-features, e.g. --item-features genres")
    feats = df[feature].cast(pl.Utf8).fill_null("").str.split("|").list.eval(
        pl.element().str.strip_chars().filter(pl.element() != ""))
    return pl.DataFrame({"item": _ids(df[i]), "feature": feats}).unique("item", keep="first", maintain_order=True)


def prepare_pairs(df: pl.DataFrame, what: str, value_names: tuple[str, ...], role: str) -> pl.DataFrame:
    """``user, item, value`` from a table such as TRAIN or ``--predictions``."""
    u = find_column(df, USER_COLUMNS, what, "user")
    i = find_column(df, ITEM_COLUMNS, what, "item")
    cols = {"user": _ids(df[u]), "item": _ids(df[i])}
    if value_names:
        cols["value"] = _numeric(df, find_column(df, value_names, what, role), what)
    return pl.DataFrame(cols)


@dataclass
class Encoded:
    """Integer view of the inputs: evaluated users ``0..n_users-1``, catalogue
    ``0..n_items-1``; truth / train as sorted CSR; TRAIN popularity; item features."""

    user_ids: pl.Series
    item_ids: pl.Series
    truth: tuple[np.ndarray, np.ndarray, np.ndarray]
    train: tuple[np.ndarray, np.ndarray] | None
    item_counts: np.ndarray | None
    n_train_users: int
    features: tuple[np.ndarray, np.ndarray] | None

    @property
    def n_users(self) -> int:
        return self.user_ids.len()

    @property
    def n_items(self) -> int:
        return self.item_ids.len()


def _codes(values: pl.Series, vocab: pl.DataFrame, key: str, idx: str) -> np.ndarray:
    """Index of each value in ``vocab`` (-1 when absent), in the order of ``values``."""
    joined = pl.DataFrame({key: values}).join(vocab, on=key, how="left", maintain_order="left")
    return joined[idx].fill_null(-1).to_numpy().astype(np.int64)


def _csr(rows: np.ndarray, cols: np.ndarray, n_rows: int, data: np.ndarray | None = None):
    order = np.lexsort((cols, rows))
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    out = (indptr, cols[order].astype(np.int32))
    return out + (data[order],) if data is not None else out


def encode(relevant: pl.DataFrame, recs: list[pl.DataFrame], train: pl.DataFrame | None,
           items: pl.DataFrame | None) -> Encoded:
    """Map ids to indices: users = test users with a relevant item (sorted), items =
    every item id in any table (sorted, so indices do not depend on file order)."""
    user_ids = relevant["user"].unique().sort()
    item_sources = [relevant["item"], *(r["item"] for r in recs)]
    item_sources += [train["item"]] if train is not None else []
    item_sources += [items["item"]] if items is not None else []
    item_ids = pl.concat([s.unique() for s in item_sources]).unique().sort()
    users = pl.DataFrame({"user": user_ids, "uidx": np.arange(user_ids.len(), dtype=np.int64)})
    vocab = pl.DataFrame({"item": item_ids, "iidx": np.arange(item_ids.len(), dtype=np.int64)})
    n_users = user_ids.len()
    truth = _csr(_codes(relevant["user"], users, "user", "uidx"), _codes(relevant["item"], vocab, "item", "iidx"),
                 n_users, relevant["gain"].to_numpy().astype(np.float64))
    train_csr, counts, n_train_users = None, None, 0
    if train is not None:
        pairs = train.select("user", "item").unique()
        t_items = _codes(pairs["item"], vocab, "item", "iidx")
        counts = np.bincount(t_items, minlength=item_ids.len())
        n_train_users = pairs["user"].n_unique()
        t_users = _codes(pairs["user"], users, "user", "uidx")
        keep = t_users >= 0
        train_csr = _csr(t_users[keep], t_items[keep], n_users)
    features = None
    if items is not None:
        flat = items.explode("feature").drop_nulls("feature").unique(["item", "feature"])
        f_vocab = flat["feature"].unique().sort()
        fv = pl.DataFrame({"feature": f_vocab, "fidx": np.arange(f_vocab.len(), dtype=np.int64)})
        features = _csr(_codes(flat["item"], vocab, "item", "iidx"), _codes(flat["feature"], fv, "feature", "fidx"),
                        item_ids.len())
    return Encoded(user_ids, item_ids, truth, train_csr, counts, n_train_users, features)


def rec_matrix(recs: pl.DataFrame, enc: Encoded, width: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """``(rec_items [n_users, width] int32 -1 padded, present bool [n_users], n_outside)``.

    Lists are ordered by ``_ord`` with file order breaking ties (a stable sort).
    ``width=None`` keeps the longest list whole. ``n_outside`` counts RECS rows of users
    who are not evaluated (ignored).
    """
    users = pl.DataFrame({"user": enc.user_ids, "uidx": np.arange(enc.n_users, dtype=np.int64)})
    vocab = pl.DataFrame({"item": enc.item_ids, "iidx": np.arange(enc.n_items, dtype=np.int64)})
    u = _codes(recs["user"], users, "user", "uidx")
    i = _codes(recs["item"], vocab, "item", "iidx")
    o = recs["_ord"].to_numpy()
    inside = u >= 0
    n_outside = int(inside.size - np.count_nonzero(inside))
    if n_outside:
        u, i, o = u[inside], i[inside], o[inside]
    order = _list_order(u, o)
    if order is not None:
        u, i = u[order], i[order]
    counts = np.bincount(u, minlength=enc.n_users)
    present = counts > 0
    # Rows are now grouped by user (runs) in list order; position = offset in the run.
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]]) if u.size else np.zeros(0, np.int64)
    run_len = np.diff(np.r_[starts, u.size])
    pos = np.arange(u.size) - np.repeat(starts, run_len)
    w = int(counts.max()) if width is None and u.size else int(width or 0)
    mat = np.full((enc.n_users, max(w, 1)), -1, dtype=np.int32)
    keep = pos < w
    mat[u[keep], pos[keep]] = i[keep]
    return mat, present, n_outside


def _list_order(u: np.ndarray, o: np.ndarray) -> np.ndarray | None:
    """A permutation grouping rows by user in list order, or None when the rows already
    are (one contiguous run per user, ``_ord`` non-decreasing within it): the common case
    of a recommender's output, which then needs no sort."""
    if u.size == 0:
        return None
    change = u[1:] != u[:-1]
    run_users = u[np.r_[True, change]]
    if np.bincount(run_users).max() == 1 and not np.any((o[1:] < o[:-1]) & ~change):
        return None
    return np.lexsort((np.arange(u.size), o, u))
