"""``prep --engine spark``: the local ``prep`` pipeline (:mod:`recli.stages.prep`) on Spark.

The same rules in the same order, each as Spark SQL over ``_row`` (the input position,
added at read time with ``monotonically_increasing_id``, increasing in file order), so
that "file order breaks ties" means the same thing: cleaning (ids, timestamps, ratings),
``--dedupe``, ``--implicit`` and ``--weight``, the minimum-count filters and the k-core
(passes repeated until both thresholds hold), the splits, ``--drop-cold`` and
``--normalize`` fitted on train. The report counts the same reasons with the same names,
and ``manifest.json`` has the local layout; the tables are Parquet folders
(``train.parquet/`` ...), rows in input order.

Deterministic operations give the local engine's rows exactly. Seeded random splits
(``random``, ``user-ratio``, ``leave-random``) draw Spark's ``rand(seed)`` per row instead of
NumPy's generator: the same sizes per user (or overall for ``random``: a row goes to test
when its draw is among the ``n_test`` smallest) but not the same rows as the local engine.
Not on Spark: ``--fill-rating median|mode|user-mean``, ``--normalize user-mean`` and
output to stdout.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from recli.data import clean as cl
from recli.data import split as sp
from recli.data.schema import ITEM, RATING, TIMESTAMP, USER
from recli.errors import ConfigError, InputError
from recli.stages.spark.io import ROW, canonical, read_frame

UNSUPPORTED = {"fill_rating": ("median", "mode", "user-mean"), "normalize": ("user-mean",)}


def check_options(opts: Any) -> None:
    """Refuse what ``prep --engine spark`` does not do (see the module docstring)."""
    bad = [(opts.clean.fill_rating in UNSUPPORTED["fill_rating"], f"--fill-rating {opts.clean.fill_rating}"),
           (opts.normalize in UNSUPPORTED["normalize"], f"--normalize {opts.normalize}"),
           (not opts.has_header, "--no-header")]
    bad += [(True, f"--{role}-table / --{role}-feature / --{role}-tags") for role, _ in opts.sides()]
    bad += [(opts.split in ("cold-items", "cold-users"), f"--split {opts.split}")]
    for is_bad, what in bad:
        if is_bad:
            raise ConfigError(f"{what} is not available with --engine spark",
                              hint="run this prep with --engine local, or drop the option")


def _num(col: Any) -> Any:
    return col.cast("string").try_cast("double")


def _timestamps(df: Any, tally: cl.Tally) -> Any:
    """Epoch seconds (numbers) or ISO-8601 dates (UTC) → long; empty ones dropped, bad ones refused."""
    from pyspark.sql import functions as F

    if TIMESTAMP not in df.columns:
        return df
    raw = F.trim(F.col(TIMESTAMP).cast("string"))
    # a date without an offset is UTC, as in the local engine (Spark would read it in the session's zone)
    zone = df.sparkSession.conf.get("spark.sql.session.timeZone")
    iso = F.unix_timestamp(F.to_utc_timestamp(F.try_to_timestamp(raw), zone))
    df = df.withColumn("_raw", raw).withColumn(TIMESTAMP, F.coalesce(F.floor(_num(F.col("_raw"))).cast("long"), iso))
    missing = F.col("_raw").isNull() | (F.col("_raw") == "")
    bad = df.where(~missing & F.col(TIMESTAMP).isNull()).orderBy(ROW).limit(1).collect()
    if bad:
        raise InputError(f"unparseable timestamp {bad[0]['_raw']!r}",
                         hint="timestamps must be epoch seconds or ISO-8601 dates like 2024-01-31T12:00:00")
    n = df.where(missing).count()
    tally.drop("missing timestamp", n)
    return df.where(~missing).drop("_raw")


def _ratings(df: Any, opts: cl.CleanOptions, tally: cl.Tally) -> Any:
    """As :func:`recli.data.clean.clean_ratings`: invalid dropped or refused, missing filled or dropped."""
    from pyspark.sql import functions as F

    if RATING not in df.columns:
        return df
    raw = F.trim(F.col(RATING).cast("string"))
    num = _num(raw)
    ok = num.isNotNull() & ~F.isnan(num) & (F.abs(num) != float("inf"))
    if opts.rating_range is not None:
        ok = ok & num.between(*opts.rating_range)
    df = df.withColumn("_raw", raw).withColumn("_ok", F.coalesce(ok, F.lit(False))).withColumn(RATING, num)
    missing = F.col("_raw").isNull() | (F.col("_raw") == "")
    n_bad = df.where(~missing & ~F.col("_ok")).count()
    if n_bad and opts.on_invalid == "error":
        first = df.where(~missing & ~F.col("_ok")).orderBy(ROW).first()
        raise InputError(f"invalid rating {first['_raw']!r} ({n_bad} invalid value{'s' if n_bad > 1 else ''})",
                         hint="use --on-invalid drop to drop such rows, or fix the rating column (--rating-col)")
    tally.drop("invalid rating", n_bad)
    df = df.where(missing | F.col("_ok")).withColumn(RATING, F.when(F.col("_ok"), F.col(RATING))).drop("_raw", "_ok")
    n_missing = df.where(F.col(RATING).isNull()).count()
    if n_missing and opts.fill_rating is not None:
        fill = df.agg(F.avg(RATING)).first()[0] if opts.fill_rating == "mean" else _fill_number(opts.fill_rating)
        df = df.withColumn(RATING, F.coalesce(F.col(RATING), F.lit(fill)))
        tally.change(f"missing rating filled ({opts.fill_rating})", n_missing if fill is not None else 0)
        n_missing = 0 if fill is not None else n_missing
    tally.drop("missing rating", n_missing)
    return df.where(F.col(RATING).isNotNull())


def _fill_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--fill-rating {text!r} is neither a number nor one of {', '.join(cl.FILL_METHODS)}",
                          hint="use e.g. --fill-rating mean or --fill-rating 3") from None


def _dedupe(df: Any, how: str, tally: cl.Tally) -> Any:
    """As :func:`recli.data.clean.dedupe` (earliest/latest by timestamp, then file order)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if how == "none":
        return df
    n = df.count()
    has_t = TIMESTAMP in df.columns
    if how in ("first", "last"):
        keys = ([F.col(TIMESTAMP)] if has_t else []) + [F.col(ROW)]
        order = keys if how == "first" else [k.desc() for k in keys]
        out = df.withColumn("_k", F.row_number().over(Window.partitionBy(USER, ITEM).orderBy(*order))).where("_k = 1").drop("_k")
    else:
        if RATING not in df.columns:
            if how != "sum":
                raise ConfigError(f"--dedupe {how} needs a rating column",
                                  hint="use --dedupe first|last|sum, or name the rating column with --rating-col")
            df = df.withColumn(RATING, F.lit(1.0))
        agg = {"max": F.max(RATING), "mean": F.avg(RATING), "sum": F.sum(RATING)}[how]
        aggs = [F.min(ROW).alias(ROW), agg.alias(RATING), F.count(F.lit(1)).alias("_n")]
        if has_t:
            aggs.append(F.max(TIMESTAMP).alias(TIMESTAMP))
        out = df.groupBy(USER, ITEM).agg(*aggs)
        tally.change(f"duplicates merged ({how})", out.where("_n > 1").count())
        out = out.drop("_n").select(df.columns)
    out = out.localCheckpoint()
    tally.drop("duplicate (user, item)", n - out.count())
    return out


def _implicit(df: Any, opts: cl.CleanOptions, tally: cl.Tally) -> Any:
    from pyspark.sql import functions as F

    if RATING not in df.columns:
        return df
    n = df.count()
    if opts.min_rating is not None:
        df = df.where(F.col(RATING) >= opts.min_rating)
        tally.drop(f"below --min-rating {opts.min_rating:g}", n - df.count())
    else:
        df = df.where(F.col(RATING) > 0)
        tally.drop("not positive (implicit)", n - df.count())
    if opts.weight != "raw":
        df = df.withColumn(RATING, F.lit(1.0) if opts.weight == "binary" else F.log1p(RATING))
        tally.change(f"weight transformed ({opts.weight})", df.count())
    return df


def clean(spark: Any, source: str, opts: Any, read: Any, tally: cl.Tally) -> tuple[Any, int]:
    """Read and clean: ``(_row, user, item[, rating][, timestamp])`` rows, and the rows read."""
    from pyspark.sql import functions as F

    raw = read_frame(spark, source, read).withColumn(ROW, F.monotonically_increasing_id())
    df = canonical(raw, read, source, cast_rating=False)  # the raw text: _ratings counts invalid and missing
    rows_read = df.count()
    bad = F.col(USER).isNull() | (F.col(USER) == "") | F.col(ITEM).isNull() | (F.col(ITEM) == "")
    tally.drop("missing user or item", df.where(bad).count())
    df = _ratings(_timestamps(df.where(~bad), tally), opts.clean, tally)
    df = _dedupe(df, opts.clean.dedupe, tally)
    if opts.clean.implicit:
        df = _implicit(df, opts.clean, tally)
    return df.localCheckpoint(), rows_read


def core_filter(df: Any, min_user: int, min_item: int, iterate: bool, tally: cl.Tally) -> tuple[Any, int]:
    """As :func:`recli.data.filter.core_mask`: per pass, rows of users below ``min_user``
    (counted as user drops), then rows of items below ``min_item``; repeated with ``iterate``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if min_user <= 1 and min_item <= 1:
        return df, 0
    passes = dropped_user = dropped_item = 0
    while True:
        passes += 1
        counted = (df.withColumn("_nu", F.count(F.lit(1)).over(Window.partitionBy(USER)))
                     .withColumn("_ni", F.count(F.lit(1)).over(Window.partitionBy(ITEM))))
        bad_u, bad_i = F.col("_nu") < min_user, (F.col("_nu") >= min_user) & (F.col("_ni") < min_item)
        n_u, n_i = counted.agg(F.sum(bad_u.cast("long")), F.sum(bad_i.cast("long"))).first()
        if not (n_u or n_i):
            break
        dropped_user, dropped_item = dropped_user + n_u, dropped_item + n_i
        df = counted.where(~bad_u & ~bad_i).drop("_nu", "_ni").localCheckpoint()
        if not iterate:
            break
    prefix = "k-core: " if iterate else ""
    tally.drop(f"{prefix}user with < {min_user} interactions", dropped_user)
    tally.drop(f"{prefix}item with < {min_item} interactions", dropped_item)
    if df.isEmpty():
        raise InputError("the filters removed every row",
                         hint="lower --min-user-interactions / --min-item-interactions, or drop --k-core")
    return df, passes


def split_flag(df: Any, strategy: str, size: sp.Size, seed: int, cut: int | None, what: str) -> tuple[Any, dict]:
    """``df`` with a boolean ``_held`` column (test or validation), as :func:`recli.data.split.split_mask`."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    info = {"strategy": strategy, "size": str(size) if cut is None else f"cut at {cut}", "cut_timestamp": None,
            "ties_at_cut": 0, "ties_in_train": 0}
    if strategy in sp.NEEDS_TIME and TIMESTAMP not in df.columns:
        raise InputError(f"--split {strategy} needs timestamps but the input has none",
                         hint="name the time column with --time-col, or use --split random / leave-random")
    if strategy == "user-ratio" and size.k is not None:
        raise ConfigError("--split user-ratio takes a fraction, not a count",
                          hint="use e.g. --test-size 0.2, or --split leave-random for k rows per user")
    if strategy == "temporal" and cut is not None:
        return _cut(df, cut, what, info)
    if strategy not in sp.NEEDS_TIME:  # one draw per row, kept: a column of rand() is not stable across plans
        df = df.withColumn("_key", F.rand(seed)).localCheckpoint()
    key = TIMESTAMP if strategy in sp.NEEDS_TIME else "_key"
    if strategy in ("temporal", "random"):
        return _global(df, size, key, what, info)
    w = Window.partitionBy(USER)
    ranked = df.withColumn("_n", F.count(F.lit(1)).over(w))
    ranked = ranked.withColumn("_pos", F.row_number().over(w.orderBy(F.col(key).desc(), F.col(ROW).desc())))
    n_test = F.floor(F.col("_n") * size.fraction + 0.5) if size.fraction is not None else F.lit(size.k)
    held = F.col("_pos") <= F.least(n_test, F.col("_n") - 1)
    return ranked.withColumn("_held", held).drop("_key", "_n", "_pos"), info


def _global(df: Any, size: sp.Size, key: str, what: str, info: dict) -> tuple[Any, dict]:
    """The last ``n_test`` rows in ``(key, _row)`` order are held out: a distributed sort
    finds the boundary row, and one comparison marks the rows at or above it."""
    from pyspark.sql import functions as F

    n = df.count()
    n_test = size.k if size.k is not None else int(math.floor(n * size.fraction + 0.5))
    if n_test >= n:
        raise ConfigError(f"{what} size {size} leaves no rows to train on ({n} rows)", hint="use a smaller size or a fraction")
    if n_test == 0:
        return df.withColumn("_held", F.lit(False)).drop("_key"), info
    k, row = df.select(key, ROW).orderBy(F.col(key).desc(), F.col(ROW).desc()).offset(n_test - 1).first()
    out = df.withColumn("_held", (F.col(key) > k) | ((F.col(key) == k) & (F.col(ROW) >= row))).drop("_key")
    if key == TIMESTAMP:
        at = out.where(F.col(TIMESTAMP) == k)
        info.update(cut_timestamp=int(k), ties_at_cut=at.count(), ties_in_train=at.where(~F.col("_held")).count())
    return out, info


def _cut(df: Any, cut: int, what: str, info: dict) -> tuple[Any, dict]:
    from pyspark.sql import functions as F

    out = df.withColumn("_held", F.col(TIMESTAMP) >= cut)
    n_held, n, lo, hi = out.agg(F.sum(F.col("_held").cast("long")), F.count(F.lit(1)), F.min(TIMESTAMP), F.max(TIMESTAMP)).first()
    if n_held in (0, n):
        raise InputError(f"--cut-date puts {'every' if n_held == n else 'no'} row in {what}",
                         hint=f"the data spans {lo}..{hi} (epoch seconds); pick a date inside it")
    info.update(cut_timestamp=int(cut), ties_at_cut=out.where(F.col(TIMESTAMP) == cut).count())
    return out, info


def quantiles(df: Any) -> dict[str, float]:
    """Interactions per user at the report's quantiles (NumPy's, over the collected counts)."""
    from recli.stages.prep import QUANTILES
    from recli.stages.spark.io import to_arrow

    counts = to_arrow(df.groupBy(USER).count())["count"].to_numpy()
    qs = np.quantile(counts, QUANTILES)
    return {name: float(q) for name, q in zip(["min", "p25", "p50", "p75", "p90", "p99", "max"], qs)}


def _split(df: Any, opts: Any, tally: cl.Tally) -> tuple[dict[str, Any], dict]:
    """Train/test(/valid) frames and the split report, as :func:`recli.stages.prep._split`."""
    from pyspark.sql import functions as F

    cut = cl.parse_time_value(opts.cut_date) if opts.cut_date else None
    flagged, report = split_flag(df, opts.split, sp.parse_size(opts.test_size), opts.seed, cut, "test")
    flagged = flagged.localCheckpoint()
    parts = {"train": flagged.where(~F.col("_held")).drop("_held"), "test": flagged.where("_held").drop("_held")}
    if parts["test"].isEmpty():
        raise InputError(f"--split {opts.split} --test-size {opts.test_size} leaves the test set empty",
                         hint="use a larger --test-size, or filter fewer users (per-user splits keep one row in train)")
    if opts.valid_size is not None:
        v, v_info = split_flag(parts["train"], opts.split, sp.parse_size(opts.valid_size, "--valid-size"), opts.seed + 1,
                               None, "validation")
        v = v.localCheckpoint()
        parts["train"], parts["valid"] = v.where(~F.col("_held")).drop("_held"), v.where("_held").drop("_held")
        if parts["valid"].isEmpty():
            raise InputError(f"--split {opts.split} --valid-size {opts.valid_size} leaves the validation set empty",
                             hint="use a larger --valid-size, or drop --valid-size")
        report["valid_cut_timestamp"] = v_info["cut_timestamp"]
    report.update(_cold(parts, opts, tally))
    return parts, report


def _cold(parts: dict[str, Any], opts: Any, tally: cl.Tally) -> dict:
    """As :func:`recli.stages.prep._cold`: count (and with ``--drop-cold`` remove) held-out
    rows whose user or item is not in train."""
    from pyspark.sql import functions as F

    train = parts["train"]
    seen_u = train.select(USER).distinct().withColumn("_su", F.lit(True))
    seen_i = train.select(ITEM).distinct().withColumn("_si", F.lit(True))
    out: dict = {}
    for name in ("test", "valid"):
        if name not in parts:
            continue
        part = parts[name].join(seen_u, USER, "left").join(seen_i, ITEM, "left")
        cold_u, cold_i = F.col("_su").isNull(), F.col("_si").isNull()
        row = part.agg(F.count_distinct(F.when(cold_u, F.col(USER))), F.count_distinct(F.when(cold_i, F.col(ITEM))),
                       F.sum((cold_u | cold_i).cast("long"))).first()
        out[f"cold_users_in_{name}"], out[f"cold_items_in_{name}"], out[f"cold_rows_in_{name}"] = (int(x or 0) for x in row)
        out[f"{name}_pairs_seen_in_train"] = (parts[name].join(train.select(USER, ITEM).distinct(), [USER, ITEM]).count()
                                              if opts.clean.dedupe == "none" else 0)
        if opts.drop_cold and out[f"cold_rows_in_{name}"]:
            parts[name] = part.where(~(cold_u | cold_i)).drop("_su", "_si").localCheckpoint()
            tally.drop(f"cold user or item in {name} (--drop-cold)", out[f"cold_rows_in_{name}"])
    if opts.drop_cold and parts["test"].isEmpty():
        raise InputError("--drop-cold removed every test row",
                         hint="use a per-user split (leave-last, leave-random) or drop --drop-cold")
    return out


def _normalize(parts: dict[str, Any], method: str) -> tuple[dict[str, Any], dict]:
    """As :mod:`recli.data.normalize` (``minmax``, ``zscore``), fitted on train (or the whole data)."""
    from pyspark.sql import functions as F

    fit_on = parts.get("train", parts.get("data"))
    if method == "none" or RATING not in fit_on.columns:
        return parts, {"method": "none", "offset": 0.0, "scale": 1.0}
    if method == "minmax":
        lo, hi = (float(x) for x in fit_on.agg(F.min(RATING), F.max(RATING)).first())
        params = {"method": method, "offset": lo, "scale": (hi - lo) or 1.0, "min": lo, "max": hi}
    else:
        mean, std = (float(x) for x in fit_on.agg(F.avg(RATING), F.stddev_pop(RATING)).first())
        params = {"method": method, "offset": mean, "scale": std or 1.0, "mean": mean, "std": std}
    scaled = (F.col(RATING) - params["offset"]) / params["scale"]
    return {name: part.withColumn(RATING, scaled) for name, part in parts.items()}, params


def prep(spark: Any, source: str, opts: Any, read: Any) -> tuple[dict[str, Any], dict]:
    """The ``prep`` pipeline on Spark: ``({name: DataFrame}, report)`` with the local report's keys."""
    from pyspark.sql import functions as F

    from recli.stages import prep as local

    local.validate(opts, has_output_dir=True)
    check_options(opts)
    tally = cl.Tally()
    df, rows_read = clean(spark, source, opts, read, tally)
    local._check_columns_needed(df, opts)
    if df.isEmpty():
        raise InputError("no rows are left after cleaning", hint="check the dropped-row reasons with -v, "
                         "the rating range (--rating-range) and the column choices (--*-col)")
    df, passes = core_filter(df, opts.min_user_interactions, opts.min_item_interactions, opts.k_core, tally)
    parts, split_report = _split(df, opts, tally) if opts.split else ({"data": df}, None)
    parts, params = _normalize(parts, opts.normalize)
    rows, n_users, n_items = (int(x) for x in df.agg(F.count(F.lit(1)), F.count_distinct(USER), F.count_distinct(ITEM)).first())
    report = {"rows_read": rows_read, "dropped": dict(tally.dropped), "changed": dict(tally.changed), "rows_clean": rows,
              "rows_written": {name: part.count() for name, part in parts.items()}, "users": n_users, "items": n_items,
              "density": rows / (n_users * n_items), "interactions_per_user": quantiles(df), "filter_passes": passes,
              "split": split_report, "normalization": params}
    return parts, report


def output(part: Any) -> Any:
    """A part with the canonical output columns and dtypes, in input order."""
    from pyspark.sql import functions as F

    types = {USER: "string", ITEM: "string", RATING: "double", TIMESTAMP: "long"}
    return part.orderBy(ROW).select([F.col(c).cast(types[c]) for c in (USER, ITEM, RATING, TIMESTAMP) if c in part.columns])
