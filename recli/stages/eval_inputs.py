"""Validate evaluation tables and map their ids to integer arrays, once, with Polars.

Everything after :func:`encode` works on NumPy arrays (:mod:`recli.metrics`).
Ids keep their type when every table stores them as integers; otherwise they are
compared as strings (CSV ids are read as strings, so ``007`` stays ``007``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl

from recli.data.schema import ITEM, ITEM_GENRES
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
    if s.dtype.is_integer() and not s.null_count():
        return s.cast(pl.Float64)  # nothing to check: every value is a number
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
    ``prediction`` / ``score`` when present."""
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
    # Repeated (user, item) pairs are found on the integer arrays (rec_matrix): cheaper.
    return out


def prepare_test(df: pl.DataFrame, what: str, threshold: float | None, graded: bool):
    """``(rated, relevant)``: all (user, item[, rating]) rows, and the relevant rows with
    their ``gain`` (repeated pairs are merged later, keeping the highest gain)."""
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
    relevant = test.filter(pl.col("rating") >= threshold) if threshold is not None else test
    if relevant.height == 0:
        raise InputError(f"no row of {what} has rating >= {threshold}",
                         hint="lower --relevance-threshold, or check the rating scale of the test file")
    gain = pl.col("rating") if graded else pl.lit(1.0)
    relevant = relevant.select("user", "item", gain.cast(pl.Float64).alias("gain"))
    return test, relevant


def prepare_items(df: pl.DataFrame, what: str, feature: str | None = None) -> pl.DataFrame:
    """``item, feature`` (list of strings) from an item table: the ``feature`` column
    (default ``genres``) split on ``|``, or, when the table has no such column but is the long
    ``item, feature[, value]`` form ``recli prep`` writes (``item_features.parquet``), each
    item's features with a non-zero value, identity features (``item=ID``) left out and, when
    ``feature`` is given, only ``feature`` itself and the ``feature=...`` features."""
    i = find_column(df, ITEM_COLUMNS, what, "item")
    column = feature or ITEM_GENRES
    if column not in df.columns and "feature" in df.columns:
        return _long_items(df, i, feature)
    if column not in df.columns:
        raise InputError(f"{what} has no {column!r} column (found {', '.join(df.columns)})",
                         hint="name the feature column with --feature-col, e.g. --feature-col genres, or pass the "
                              "item_features.parquet of recli prep")
    feats = df[column].cast(pl.Utf8).fill_null("").str.split("|").list.eval(
        pl.element().str.strip_chars().filter(pl.element() != ""))
    return pl.DataFrame({"item": _ids(df[i]), "feature": feats}).unique("item", keep="first", maintain_order=True)


def _long_items(df: pl.DataFrame, item_col: str, feature: str | None) -> pl.DataFrame:
    name = pl.col("feature").cast(pl.Utf8)
    keep = ~name.str.starts_with(f"{ITEM}=")
    if "value" in df.columns:
        keep = keep & (pl.col("value").cast(pl.Float64, strict=False).fill_null(0.0) != 0)
    if feature is not None:
        keep = keep & ((name == feature) | name.str.starts_with(f"{feature}="))
    rows = df.select(_ids(df[item_col]).alias("item"), name.alias("feature"), keep.alias("_keep"))
    # every item stays (an item whose features are all filtered out has an empty set)
    return rows.group_by("item", maintain_order=True).agg(pl.col("feature").filter(pl.col("_keep")).unique().sort())


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

    users: "Vocab"
    items: "Vocab"
    truth: tuple[np.ndarray, np.ndarray, np.ndarray | None]
    train: tuple[np.ndarray, np.ndarray] | None
    item_counts: np.ndarray | None
    n_train_users: int
    features: tuple[np.ndarray, np.ndarray] | None
    n_merged: int = 0
    # (RECS frame, its item codes) where encoding already had them: not parsed twice
    rec_items: tuple = ()

    @property
    def user_ids(self) -> pl.Series:
        return self.users.ids

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)


class Vocab:
    """Sorted unique ids -> ``0..n-1``. Non-negative integer ids that are not too sparse
    use a lookup table (one gather), and so do string ids that all spell such integers
    after one shared ``prefix`` (``"17"`` or ``"u17"``, never ``"017"`` or ``"+17"``:
    :func:`decimal_ids`); other ids a Polars join (a hash of every string)."""

    def __init__(self, ids: pl.Series, lut: np.ndarray | None = None, prefix: str = ""):
        self.ids = ids
        self.lut = lut
        self.prefix = prefix
        self.source_codes: list[np.ndarray] | None = None  # codes of the series given to `of`
        if lut is None and ids.dtype == pl.Int64 and ids.len():
            self.lut = _lookup_table(ids.to_numpy(), np.arange(ids.len(), dtype=np.int32))

    @classmethod
    def of(cls, series: list[pl.Series]) -> "Vocab":
        """The vocabulary of the sorted distinct values of ``series`` (:func:`unique_sorted`).
        Decimal string ids (after a shared prefix) are collected as integers (a presence
        bitmap) and only the distinct ones are sorted as strings, with their lookup table
        built alongside: ``prefix + a`` sorts before ``prefix + b`` exactly when ``a`` sorts
        before ``b``."""
        strings = all(s.dtype == pl.Utf8 for s in series)
        prefix = _leading_text(series) if strings else ""
        parsed = [decimal_ids(s, prefix) for s in series] if strings else [None]
        if not all(p is not None for p in parsed):
            return cls(unique_sorted(series))
        hi = max(int(p.max()) for p in parsed)
        if hi >= 8 * sum(p.size for p in parsed) + (1 << 20):
            return cls(unique_sorted(series))
        seen = np.zeros(hi + 1, dtype=np.bool_)
        for p in parsed:
            seen[p] = True
        values = np.flatnonzero(seen)
        text = pl.Series(values).cast(pl.Utf8)
        order = text.arg_sort().to_numpy()  # string order, as unique_sorted sorts
        ids = text.gather(order)
        ids = (prefix + ids) if prefix else ids
        vocab = cls(ids, _lookup_table(values[order], np.arange(order.size, dtype=np.int32)), prefix)
        if vocab.lut is not None:
            vocab.source_codes = [vocab.lut[p] for p in parsed]
        return vocab

    def __len__(self) -> int:
        return self.ids.len()

    @cached_property
    def _frame(self) -> pl.DataFrame:
        return pl.DataFrame({"id": self.ids, "idx": np.arange(self.ids.len(), dtype=np.int32)})

    def source(self, k: int, values: pl.Series) -> np.ndarray:
        """Codes of ``values``, the ``k``-th series given to :meth:`of` (kept from there
        when the ids were parsed as decimals, so not parsed again)."""
        return self.source_codes[k] if self.source_codes is not None else self.codes(values)

    def codes(self, values: pl.Series) -> np.ndarray:
        """int32 index of each value (-1 when absent), in the order of ``values``. String
        ids in runs (a recommendations file lists each user's rows together) are looked up
        once per run: one comparison of neighbours instead of a parse or hash of each."""
        if values.dtype == pl.Utf8 and values.len() > 1 and 2 * _run_heads(values.head(4096)).size <= min(
                values.len(), 4096):  # the first rows tell whether there are runs to use
            heads = _run_heads(values)
            if 2 * heads.size <= values.len():
                return np.repeat(self._codes(values.gather(heads)), np.diff(np.append(heads, values.len())))
        return self._codes(values)

    def _codes(self, values: pl.Series) -> np.ndarray:
        v = None
        if self.lut is not None and values.dtype == self.ids.dtype:
            v = values.to_numpy() if values.dtype == pl.Int64 else decimal_ids(values, self.prefix)
        if v is not None:
            if v.size == 0 or (v.min() >= 0 and v.max() < self.lut.shape[0]):
                return self.lut[v]  # one gather: the common case
            out = np.full(v.shape[0], -1, dtype=np.int32)
            ok = (v >= 0) & (v < self.lut.shape[0])
            out[ok] = self.lut[v[ok]]
            return out
        joined = pl.DataFrame({"id": values.cast(self.ids.dtype)}).join(self._frame, on="id", how="left",
                                                                         maintain_order="left")
        return joined["idx"].fill_null(-1).to_numpy().astype(np.int32)


def _run_heads(values: pl.Series) -> np.ndarray:
    """Positions where a run of equal values starts (every null starts one)."""
    return (values != values.shift(1)).fill_null(True).arg_true().to_numpy()


def _lookup_table(values: np.ndarray, codes: np.ndarray) -> np.ndarray | None:
    """``lut[value] = code`` (-1 elsewhere) for non-negative ids that are not too sparse."""
    if values.size == 0 or values.min() < 0 or values.max() >= 8 * values.size + (1 << 20):
        return None
    lut = np.full(int(values.max()) + 1, -1, dtype=np.int32)
    lut[values] = codes
    return lut


def _leading_text(series: list[pl.Series]) -> str:
    """The ASCII letters and underscores that start the first id (``"u"`` of ``"u17"``,
    ``"item_"`` of ``"item_5"``), the prefix :func:`decimal_ids` tries; ``""`` when none."""
    first = next((s[0] for s in series if s.len() and s[0] is not None), "")
    return re.match(r"[A-Za-z_]*", first).group()


def decimal_ids(values: pl.Series, prefix: str = "") -> np.ndarray | None:
    """The int64 values of string ids when every one is ``prefix`` followed by the canonical
    decimal spelling of a non-negative integer (``"0"``, ``"17"``; not ``"017"``, ``"+17"``,
    ``"-0"`` or ``" 17"``), so that integer and string are one-to-one; else None."""
    if values.dtype != pl.Utf8 or values.len() == 0:
        return None
    if prefix:
        if not values.str.starts_with(prefix).all():  # False also when a value is null
            return None
        values = values.str.slice(len(prefix))
    ints = values.str.to_integer(strict=False)  # None for anything that is not [+-]digits
    if ints.null_count():
        return None
    out = ints.to_numpy()
    if out.min() < 0:
        return None
    starts = values.str.starts_with  # a test per string, no new strings
    if (starts("+") | starts("-") | (starts("0") & (values.str.len_bytes() > 1))).any():
        return None
    return out


def unique_sorted(series: list[pl.Series]) -> pl.Series:
    """Sorted distinct values of several Series (a presence bitmap for compact
    non-negative integer ids, else Polars ``unique``)."""
    if all(s.dtype == pl.Int64 for s in series) and all(s.len() for s in series):
        lo = min(s.min() for s in series)
        hi = max(s.max() for s in series)
        if lo >= 0 and hi < 8 * sum(s.len() for s in series) + (1 << 20):
            seen = np.zeros(hi + 1, dtype=np.bool_)
            for s in series:
                seen[s.to_numpy()] = True
            return pl.Series(np.flatnonzero(seen).astype(np.int64))
    return pl.concat([s.unique() for s in series]).unique().sort()


def build_csr(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int, data: np.ndarray | None = None):
    """``(indptr, indices, data, n_merged)`` with each row sorted; repeated (row, col)
    pairs are merged, keeping the largest ``data`` (``None`` in, ``None`` out).
    Pairs ordered by the int64 key ``row * n_cols + col`` (a counting sort by row,
    :func:`recli.kernels.metrics.sorted_keys`, skipped when already in order)."""
    from recli.kernels.metrics import csr_from_sorted_keys, sorted_keys

    n_cols = max(n_cols, 1)
    key = rows.astype(np.int64) * n_cols + cols
    vals = np.zeros(0) if data is None else np.ascontiguousarray(data, dtype=np.float64)
    if key.size > 1 and np.any(key[1:] < key[:-1]):
        key, vals = sorted_keys(np.ascontiguousarray(rows, dtype=np.int64), np.ascontiguousarray(cols, dtype=np.int64),
                                vals, n_rows, n_cols)
    indptr, indices, vals, n_merged = csr_from_sorted_keys(key, vals, n_rows, n_cols)
    return indptr, indices, (None if data is None else vals), int(n_merged)


def encode(relevant: pl.DataFrame, recs: list[pl.DataFrame], train: pl.DataFrame | None,
           items: pl.DataFrame | None, graded: bool = False) -> Encoded:
    """Map ids to indices: users = test users with a relevant item (sorted), items =
    every item id in any table (sorted, so indices do not depend on file order)."""
    users = Vocab.of([relevant["user"]])
    item_sources = [relevant["item"], *(r["item"] for r in recs)]
    item_sources += [train["item"]] if train is not None else []
    item_sources += [items["item"]] if items is not None else []
    vocab = Vocab.of(item_sources)
    n_users, n_items = len(users), len(vocab)
    gain = relevant["gain"].to_numpy().astype(np.float64) if graded else None
    t_ptr, t_idx, t_gain, n_merged = build_csr(users.source(0, relevant["user"]), vocab.source(0, relevant["item"]),
                                               n_users, n_items, gain)
    rec_items = tuple((r, vocab.source_codes[1 + n]) for n, r in enumerate(recs)) if vocab.source_codes else ()
    train_csr, counts, n_train_users = None, None, 0
    if train is not None:
        t_items = vocab.source(1 + len(recs), train["item"])
        train_users = Vocab.of([train["user"]])
        n_train_users = len(train_users)
        # TRAIN popularity = distinct TRAIN users per item (repeats of a pair count once).
        all_ptr, all_idx, _, _ = build_csr(train_users.source(0, train["user"]), t_items, n_train_users, n_items)
        counts = np.bincount(all_idx, minlength=n_items)
        t_users = users.codes(train["user"])
        keep = t_users >= 0
        train_csr = build_csr(t_users[keep], t_items[keep], n_users, n_items)[:2]
    features = None
    if items is not None:
        flat = items.explode("feature").drop_nulls("feature")
        fv = Vocab(flat["feature"].unique().sort())
        features = build_csr(vocab.codes(flat["item"]), fv.codes(flat["feature"]), n_items, len(fv))[:2]
    return Encoded(users, vocab, (t_ptr, t_idx, t_gain), train_csr, counts, n_train_users, features, n_merged,
                   rec_items)


def rec_matrix(recs: pl.DataFrame, enc: Encoded, width: int | None, what: str) -> tuple[np.ndarray, np.ndarray, int]:
    """``(rec_items [n_users, width] int32 -1 padded, present bool [n_users], n_outside)``.

    Lists are ordered by ``_ord`` with file order breaking ties (a stable sort).
    ``width=None`` keeps the longest list whole. ``n_outside`` counts RECS rows of users
    who are not evaluated (ignored). An item listed twice for a user is an error.
    """
    from recli.kernels.metrics import run_starts, runs_to_matrix

    u = enc.users.codes(recs["user"])
    i = next((codes for frame, codes in enc.rec_items if frame is recs), None)
    i = enc.items.codes(recs["item"]) if i is None else i
    o = recs["_ord"].to_numpy()
    inside = u >= 0
    n_outside = int(inside.size - np.count_nonzero(inside))
    if n_outside:
        u, i, o = u[inside], i[inside], o[inside]
    order = _list_order(u, o, enc.n_users)
    if order is not None:
        u, i = u[order], i[order]
    bounds = run_starts(u)
    starts = bounds[:-1]
    run_len = np.diff(bounds)
    present = np.zeros(enc.n_users, dtype=bool)
    present[u[starts]] = True
    w = (int(run_len.max()) if run_len.size else 1) if width is None else width
    mat = np.full((enc.n_users, max(w, 1)), -1, dtype=np.int32)
    repeated = np.zeros(starts.size, dtype=np.bool_)
    runs_to_matrix(u[starts].astype(np.int64), bounds, i, mat, repeated)
    if repeated.any():
        r = int(np.flatnonzero(repeated)[0])
        items = i[bounds[r]:bounds[r + 1]]
        vals, counts = np.unique(items, return_counts=True)
        item = enc.items.ids[int(vals[counts > 1][0])]
        user = enc.users.ids[int(u[starts[r]])]
        raise InputError(f"{what} recommends item {item!r} to user {user!r} more than once",
                         hint="each (user, item) pair may appear once per recommendations file; deduplicate it")
    return mat, present, n_outside


def _list_order(u: np.ndarray, o: np.ndarray, n_users: int) -> np.ndarray | None:
    """A permutation grouping rows by user in list order, or None when the rows already
    are (one contiguous run per user, ``_ord`` non-decreasing within it): the common case
    of a recommender's output, which then needs no sort."""
    from recli.kernels.metrics import grouped_in_order

    if u.size == 0 or grouped_in_order(u, o, n_users):
        return None
    return np.lexsort((np.arange(u.size), o, u))
