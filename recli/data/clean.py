"""Cleaning raw interaction tables into the canonical schema, counting every change.

Every function takes a frame whose columns are still the strings read from the input
(see :func:`recli.data.io.read_table`) or the canonical columns produced here, plus a
``Tally`` that counts dropped and changed rows by reason, so the report and the
manifest can account for each input row. Work is vectorised Polars: no Python loop
touches a row.

Internal columns: ``_row`` (0-based position in the input, keeps output order stable),
``_u`` / ``_i`` (integer codes of the user and item ids). Right after the ids are
checked, the string ids are replaced by their codes and kept once in a :class:`Vocab`,
so deduplication, filters and splits move 4-byte integers instead of strings; the
strings come back only when a table is written (:meth:`Vocab.decode`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from recli.data.schema import ITEM, RATING, TIMESTAMP, USER, ColumnNames, resolve_columns
from recli.errors import ConfigError, InputError

ROW, UCODE, ICODE = "_row", "_u", "_i"
FILL_METHODS = ("mean", "median", "mode", "user-mean")
ON_INVALID = ("drop", "error")
DEDUPE = ("first", "last", "max", "mean", "sum", "none")
WEIGHTS = ("raw", "binary", "log1p")
# ISO-8601 shapes tried in order for timestamps that are not epoch seconds.
_ISO_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d")


@dataclass
class Tally:
    """Rows dropped and changed, by reason, in the order the reasons first occur."""

    dropped: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, n: int) -> None:
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + int(n)

    def change(self, reason: str, n: int) -> None:
        if n:
            self.changed[reason] = self.changed.get(reason, 0) + int(n)


@dataclass
class CleanOptions:
    """How to turn raw columns into clean interactions (see ``recli prep --help``)."""

    user_col: str | None = None
    item_col: str | None = None
    rating_col: str | None = None
    time_col: str | None = None
    fill_rating: str | None = None
    rating_range: tuple[float, float] | None = None
    on_invalid: str = "drop"
    dedupe: str = "last"
    implicit: bool = False
    min_rating: float | None = None
    weight: str = "raw"


def select_columns(raw: pl.DataFrame, opts: CleanOptions) -> pl.DataFrame:
    """Rename the input's user/item/rating/timestamp columns to the canonical names.

    Columns are found by the ``--*-col`` flags, else by common aliases (``user_id``,
    ``movieId``, ``count`` ...; :func:`recli.data.schema.resolve_columns`). Other columns
    are ignored. A ``_row`` index is added.
    """
    names = ColumnNames(opts.user_col, opts.item_col, opts.rating_col, opts.time_col)
    mapping = resolve_columns(raw.columns, names)
    exprs = [pl.col(src).cast(pl.String).alias(dst) if dst in (USER, ITEM) else pl.col(src).alias(dst)
             for dst, src in mapping.items() if src is not None]
    return raw.select(exprs).with_row_index(ROW)


def drop_missing_ids(df: pl.DataFrame, tally: Tally) -> pl.DataFrame:
    """Drop rows whose user or item is null or empty."""
    bad = pl.col(USER).is_null() | (pl.col(USER) == "") | pl.col(ITEM).is_null() | (pl.col(ITEM) == "")
    n_bad = df.select(bad.sum()).item()
    if n_bad:
        df = df.filter(~bad)
        tally.drop("missing user or item", n_bad)
    return df


@dataclass
class Vocab:
    """The distinct user and item ids; a code is a position in these Series."""

    users: pl.Series
    items: pl.Series

    def decode(self, df: pl.DataFrame) -> pl.DataFrame:
        """Replace ``_u``/``_i`` by the ``user``/``item`` strings (other columns kept)."""
        return df.with_columns(self.users.gather(df[UCODE]).alias(USER), self.items.gather(df[ICODE]).alias(ITEM))


def encode(df: pl.DataFrame) -> tuple[pl.DataFrame, Vocab]:
    """Swap the ``user``/``item`` strings for integer codes ``_u``/``_i``.

    Strings are hashed once to 64 bits and the code is the dense rank of the hash
    (ranking fixed-width integers is much cheaper than grouping strings, and the codes
    are deterministic). The result is then checked exactly: decoding every code must
    give back the original string, so a hash collision can never merge two ids; if one
    ever did, the exact (slower) string grouping is used instead.
    """
    u_codes, i_codes = pl.collect_all([
        df.lazy().select((pl.col(col).hash().rank("dense") - 1).cast(pl.UInt32).alias(code))
        for col, code in ((USER, UCODE), (ITEM, ICODE))])
    u, i = u_codes[UCODE], i_codes[ICODE]
    users, items = _first_of_each_code(df[USER], u), _first_of_each_code(df[ITEM], i)
    if not ((users.gather(u) == df[USER]).all() and (items.gather(i) == df[ITEM]).all()):
        return _encode_exact(df)
    keep = [c for c in df.columns if c not in (USER, ITEM, ROW)]
    out = pl.DataFrame([df[ROW], u, i]).with_columns(df.select(keep))
    return out, Vocab(users, items)


def _first_of_each_code(strings: pl.Series, codes: pl.Series) -> pl.Series:
    """``strings`` at one row of each code (codes are dense 0..k-1)."""
    c = codes.to_numpy()
    where = np.empty(int(c.max()) + 1 if c.size else 0, dtype=np.int64)
    where[c] = np.arange(c.size)  # any row of the code will do: the check in encode() is exact
    return strings.gather(where)


def _encode_exact(df: pl.DataFrame) -> tuple[pl.DataFrame, Vocab]:
    """Codes by grouping the strings themselves (the fallback of :func:`encode`)."""
    lf = df.lazy()
    users, items = pl.collect_all([lf.select(pl.col(USER).unique()).with_row_index(UCODE),
                                   lf.select(pl.col(ITEM).unique()).with_row_index(ICODE)])
    keep = [c for c in df.columns if c not in (USER, ITEM, ROW)]
    out = (lf.join(users.lazy(), on=USER, how="left", maintain_order="left")
             .join(items.lazy(), on=ITEM, how="left", maintain_order="left")
             .select([ROW, UCODE, ICODE, *keep])
             .collect())
    return out, Vocab(users[USER], items[ITEM])


def _line_of(row: int, has_header: bool) -> int:
    return row + 1 + (1 if has_header else 0)


def parse_timestamps(df: pl.DataFrame, tally: Tally, has_header: bool = True) -> pl.DataFrame:
    """Turn epoch seconds or ISO-8601 dates into int64 epoch seconds.

    Empty timestamps are dropped (counted); a value that is neither a number nor an
    ISO-8601 date is an error naming the first bad line.
    """
    if TIMESTAMP not in df.columns:
        return df
    col = df[TIMESTAMP]
    if col.dtype.is_integer():
        return df.with_columns(pl.col(TIMESTAMP).cast(pl.Int64))
    if col.dtype.is_float():
        raw = pl.col(TIMESTAMP).cast(pl.String)
    elif col.dtype == pl.String:
        raw = pl.col(TIMESTAMP).str.strip_chars()
    elif col.dtype.is_temporal():
        return df.with_columns(pl.col(TIMESTAMP).cast(pl.Datetime("us")).dt.epoch("s").alias(TIMESTAMP))
    else:
        raw = pl.col(TIMESTAMP).cast(pl.String)
    if col.dtype == pl.String:
        fast = col.cast(pl.Int64, strict=False)  # plain epoch seconds: one cast, no copies
        if fast.null_count() == col.null_count():
            return df.with_columns(fast.alias(TIMESTAMP)) if not fast.null_count() else \
                _drop_missing_ts(df.with_columns(fast.alias(TIMESTAMP)), tally)
    tmp = df.select(ROW, raw.alias("raw"), raw.cast(pl.Float64, strict=False).alias("num"))
    parsed = pl.col("num").floor().cast(pl.Int64, strict=False)
    if tmp["num"].null_count() > tmp["raw"].null_count() + (tmp["raw"] == "").sum():
        iso = [pl.col("raw").str.to_datetime(f, strict=False, time_zone="UTC", time_unit="us").dt.epoch("s")
               for f in _ISO_FORMATS]
        parsed = pl.coalesce(parsed, *iso)
    tmp = tmp.with_columns(parsed.alias("ts"))
    missing = pl.col("raw").is_null() | (pl.col("raw") == "")
    bad = tmp.filter(~missing & pl.col("ts").is_null())
    if bad.height:
        first = bad.row(0, named=True)
        raise InputError(f"unparseable timestamp {first['raw']!r} on line {_line_of(first[ROW], has_header)} "
                         f"({bad.height} bad value{'s' if bad.height > 1 else ''})",
                         hint="timestamps must be epoch seconds or ISO-8601 dates like 2024-01-31T12:00:00; "
                              "pick another column with --time-col")
    return _drop_missing_ts(df.with_columns(tmp["ts"].alias(TIMESTAMP)), tally)


def _drop_missing_ts(df: pl.DataFrame, tally: Tally) -> pl.DataFrame:
    n_missing = df[TIMESTAMP].null_count()
    if n_missing:
        df = df.filter(pl.col(TIMESTAMP).is_not_null())
        tally.drop("missing timestamp", n_missing)
    return df


def _fill_value(df: pl.DataFrame, how: str) -> pl.Expr:
    r = pl.col(RATING)
    if how == "mean":
        return pl.lit(df[RATING].mean())
    if how == "median":
        return pl.lit(df[RATING].median())
    if how == "mode":
        modes = df[RATING].drop_nulls().mode().sort()
        return pl.lit(modes[0] if len(modes) else None)
    if how == "user-mean":
        return pl.coalesce(r.mean().over(UCODE), pl.lit(df[RATING].mean()))
    try:
        return pl.lit(float(how))
    except ValueError:
        raise ConfigError(f"--fill-rating {how!r} is neither a number nor one of {', '.join(FILL_METHODS)}",
                          hint="use e.g. --fill-rating mean or --fill-rating 3") from None


def clean_ratings(df: pl.DataFrame, opts: CleanOptions, tally: Tally, has_header: bool = True) -> pl.DataFrame:
    """Parse ratings to float64; drop or refuse invalid ones; drop or fill missing ones.

    Invalid: not a number, NaN, infinite, or outside ``--rating-range``. Missing: null
    or empty; filled from the valid ratings (``mean``/``median``/``mode``/
    ``user-mean``/a number) with ``--fill-rating``, else dropped.
    """
    if RATING not in df.columns:
        return df
    col = df[RATING]
    if col.dtype.is_numeric() or col.dtype == pl.String:
        fast = col.cast(pl.Float64, strict=False)  # the common case: every value a plain number
        if fast.null_count() == col.null_count() == 0 and fast.is_finite().all() and (
                opts.rating_range is None or fast.is_between(*opts.rating_range).all()):
            return df.with_columns(fast.alias(RATING))
    raw = pl.col(RATING).cast(pl.String).str.strip_chars()
    num = raw.cast(pl.Float64, strict=False)
    ok = num.is_not_null() & num.is_finite()
    if opts.rating_range is not None:
        lo, hi = opts.rating_range
        ok = ok & num.is_between(lo, hi)
    df = df.with_columns(raw.alias("_raw"), num.alias("_num"), ok.alias("_ok"))
    missing = pl.col("_raw").is_null() | (pl.col("_raw") == "")
    bad = df.filter(~missing & ~pl.col("_ok"))
    if bad.height and opts.on_invalid == "error":
        first = bad.row(0, named=True)
        where = f" outside --rating-range {opts.rating_range[0]:g},{opts.rating_range[1]:g}" if (
            opts.rating_range and first["_num"] is not None and first["_num"] == first["_num"]) else ""
        raise InputError(f"invalid rating {first['_raw']!r}{where} on line {_line_of(first[ROW], has_header)} "
                         f"({bad.height} invalid value{'s' if bad.height > 1 else ''})",
                         hint="use --on-invalid drop to drop such rows, or fix the rating column (--rating-col)")
    if bad.height:
        df = df.filter(missing | pl.col("_ok"))
        tally.drop("invalid rating", bad.height)
    df = df.with_columns(pl.when(pl.col("_ok")).then(pl.col("_num")).otherwise(None).alias(RATING))
    df = df.drop("_raw", "_num", "_ok")
    n_missing = df[RATING].null_count()
    if n_missing and opts.fill_rating is not None:
        df = df.with_columns(pl.col(RATING).fill_null(_fill_value(df, opts.fill_rating)))
        tally.change(f"missing rating filled ({opts.fill_rating})", n_missing - df[RATING].null_count())
    n_missing = df[RATING].null_count()
    if n_missing:
        df = df.filter(pl.col(RATING).is_not_null())
        tally.drop("missing rating", n_missing)
    return df


def dedupe(df: pl.DataFrame, how: str, tally: Tally) -> pl.DataFrame:
    """Resolve duplicate (user, item) pairs.

    ``first``/``last`` keep the earliest/latest row by timestamp (file order breaks
    ties, or decides alone without timestamps). ``max``/``mean``/``sum`` aggregate the
    rating (``sum`` counts events when there is no rating column) and keep the latest
    timestamp. ``none`` keeps every row. Output is in input order.
    """
    if how == "none" or df.height == 0:
        return df
    n = df.height
    if how in ("first", "last"):
        # rows are in input order; a stable sort by time makes "first"/"last" mean earliest/latest
        resort = TIMESTAMP in df.columns and not df[TIMESTAMP].is_sorted()
        timed = df.sort(TIMESTAMP, maintain_order=True) if resort else df
        # one u64 key per pair (hashing one fixed-width column beats row-encoding two);
        # arg_unique gives each key's first row, of the reversed key its last row
        key = timed[UCODE].cast(pl.UInt64) * (int(df[ICODE].max()) + 1) + timed[ICODE].cast(pl.UInt64)
        first = (key if how == "first" else key.reverse()).arg_unique().to_numpy()
        if first.size == n:
            return df
        keep = np.zeros(n, dtype=bool)
        keep[first if how == "first" else n - 1 - first] = True
        out = timed.filter(pl.Series(keep))
        tally.drop("duplicate (user, item)", n - out.height)
        return out.sort(ROW) if resort else out
    if RATING not in df.columns:
        if how != "sum":
            raise ConfigError(f"--dedupe {how} needs a rating column",
                              hint="use --dedupe first|last|sum, or name the rating column with --rating-col")
        df = df.with_columns(pl.lit(1.0).alias(RATING))
    agg = {"max": pl.col(RATING).max(), "mean": pl.col(RATING).mean(), "sum": pl.col(RATING).sum()}[how]
    aggs = [pl.col(ROW).min(), agg.alias(RATING), pl.len().alias("_n")]
    if TIMESTAMP in df.columns:
        aggs.append(pl.col(TIMESTAMP).max())
    out = df.group_by([UCODE, ICODE]).agg(aggs)
    tally.change(f"duplicates merged ({how})", out.filter(pl.col("_n") > 1).height)
    out = out.drop("_n").select(df.columns)
    tally.drop("duplicate (user, item)", n - out.height)
    return out.sort(ROW)


def implicit_positives(df: pl.DataFrame, opts: CleanOptions, tally: Tally) -> pl.DataFrame:
    """Keep positives (rating >= ``--min-rating``, else rating > 0) and transform weights."""
    if RATING not in df.columns:
        return df
    n = df.height
    if opts.min_rating is not None:
        df = df.filter(pl.col(RATING) >= opts.min_rating)
        tally.drop(f"below --min-rating {opts.min_rating:g}", n - df.height)
    else:
        df = df.filter(pl.col(RATING) > 0)
        tally.drop("not positive (implicit)", n - df.height)
    if opts.weight == "binary":
        df = df.with_columns(pl.lit(1.0).alias(RATING))
    elif opts.weight == "log1p":
        df = df.with_columns(pl.col(RATING).log1p())
    if opts.weight != "raw":
        tally.change(f"weight transformed ({opts.weight})", df.height)
    return df


def clean(raw: pl.DataFrame, opts: CleanOptions, tally: Tally, has_header: bool = True) -> tuple[pl.DataFrame, Vocab]:
    """Run every cleaning rule in order.

    Returns ``_row``, ``_u``, ``_i`` and the optional ``rating``/``timestamp`` columns in
    input order, and the vocabulary that maps the codes back to the string ids.
    """
    df = select_columns(raw, opts)
    df = drop_missing_ids(df, tally)
    df, vocab = encode(df)
    df = parse_timestamps(df, tally, has_header)
    df = clean_ratings(df, opts, tally, has_header)
    df = dedupe(df, opts.dedupe, tally)
    if opts.implicit:
        df = implicit_positives(df, opts, tally)
    return df, vocab


def parse_time_value(text: str, option: str = "--cut-date") -> int:
    """One epoch-seconds or ISO-8601 value (e.g. ``--cut-date 2024-01-01``) as epoch seconds."""
    frame = pl.DataFrame({ROW: [0], TIMESTAMP: [str(text)]}, schema={ROW: pl.UInt32, TIMESTAMP: pl.String})
    try:
        parsed = parse_timestamps(frame, Tally())
    except InputError:
        parsed = frame.clear()
    if parsed.height == 0:
        raise ConfigError(f"{option} {text!r} is not a date or epoch seconds",
                          hint=f"use an ISO-8601 date like {option} 2024-01-31 or epoch seconds")
    return int(parsed[TIMESTAMP][0])
