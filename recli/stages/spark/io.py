"""Reading and writing tables on Spark, and the Arrow hand-off between the JVM and Python.

:func:`read_interactions` reads CSV/TSV (optionally gzip), JSON lines or Parquet from any
path Spark can read (a file, a folder of part files, ``hdfs://``, ``s3a://`` through the
user's Spark configuration) and renames the columns to ``user, item[, rating][, timestamp]``
with the same resolver as the local engine (``--user-col`` ..., else the usual aliases).
Ids become strings, as the local engine reads them.
"""

from __future__ import annotations

import os
from typing import Any

from recli.data.io import QUOTE_AUTO, ReadOptions, check_format, format_from_path, resolve_separator, sniff_separator
from recli.data.schema import CANONICAL, ITEM, RATING, REQUIRED, USER, resolve_columns
from recli.errors import InputError

ROW = "_row"  # position of a row in the input (file order), for the tie-breaks the local engine makes by order


def to_spark(spark: Any, table: Any) -> Any:
    """A Spark DataFrame from a ``pyarrow.Table`` (no pandas)."""
    return spark.createDataFrame(table)


def to_arrow(df: Any) -> Any:
    """A Spark DataFrame collected to the driver as a ``pyarrow.Table`` (no pandas)."""
    return df.toArrow()


def _input_format(source: str, read: ReadOptions) -> str:
    fmt = check_format(read.fmt, "--input-format")
    if fmt:
        return fmt.removesuffix(".gz")
    if os.path.isdir(source):
        return "parquet"
    return format_from_path(source) or "csv"


def _local_first_line(source: str, encoding: str | None) -> str | None:
    if not os.path.isfile(source):
        return None
    import gzip

    opener = gzip.open if source.endswith(".gz") else open
    with opener(source, "rb") as fh:
        return fh.readline().decode(encoding or "utf-8-sig", errors="replace")


def read_frame(spark: Any, source: str, read: ReadOptions) -> Any:
    """The table at ``source`` as Spark read it (delimited columns as strings)."""
    if source == "-":
        raise InputError("--engine spark reads paths, not standard input", hint="pass a file or folder path")
    if "://" not in source and not os.path.exists(source):
        raise InputError(f"input {source!r} does not exist", hint="check the path")
    fmt = _input_format(source, read)
    if fmt == "parquet":
        return spark.read.parquet(source)
    if fmt == "jsonl":
        return spark.read.json(source)
    sep = resolve_separator(read.sep)
    if sep is None:
        first = _local_first_line(source, read.encoding)
        sep = sniff_separator(first) if first else ("\t" if fmt == "tsv" else ",")
    reader = spark.read.option("header", "true").option("sep", sep).option("encoding", read.encoding or "UTF-8")
    if read.quote is None:
        reader = reader.option("quote", "")
    elif read.quote != QUOTE_AUTO:
        reader = reader.option("quote", read.quote)
    return reader.csv(source)


def canonical(df: Any, read: ReadOptions, what: str, roles: tuple[str, ...] = CANONICAL, cast_rating: bool = True) -> Any:
    """``df`` with the user/item/rating/timestamp columns found and renamed (ids as strings,
    the rating as double, null where it is not a number, unless ``cast_rating`` is false);
    other columns dropped except ``_row``."""
    from pyspark.sql import functions as F

    found = resolve_columns([c for c in df.columns if c != ROW], read.columns, roles=roles, required=REQUIRED, what=what)
    cols = [F.col(ROW)] if ROW in df.columns else []
    for role, src in found.items():
        if src is None:
            continue
        col = F.col(f"`{src}`")
        if role in (USER, ITEM):
            col = col.cast("string")
        elif role == RATING and cast_rating:
            col = col.cast("string").try_cast("double")
        cols.append(col.alias(role))
    return df.select(cols)


def read_interactions(spark: Any, source: str, read: ReadOptions | None = None) -> Any:
    """``user, item[, rating]`` rows of ``source`` (timestamps are not used for training)."""
    read = read or ReadOptions()
    return canonical(read_frame(spark, source, read), read, source, roles=(USER, ITEM, RATING))
