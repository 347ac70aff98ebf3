"""Canonical column names and dtypes of the tables recli passes between steps.

Interactions: ``user`` and ``item`` are strings (ids are never numbers: leading zeros
are kept and nothing is cast to float), ``rating`` is float64 (a rating, a count or a
weight), ``timestamp`` is int64 epoch seconds. ``rating`` and ``timestamp`` are
optional. Side-information tables (items, users) are keyed by the same string ids.
"""

from __future__ import annotations

import polars as pl

USER = "user"
ITEM = "item"
RATING = "rating"
TIMESTAMP = "timestamp"

REQUIRED = (USER, ITEM)
OPTIONAL = (RATING, TIMESTAMP)
CANONICAL = (USER, ITEM, RATING, TIMESTAMP)

DTYPES: dict[str, pl.DataType] = {
    USER: pl.String(),
    ITEM: pl.String(),
    RATING: pl.Float64(),
    TIMESTAMP: pl.Int64(),
}

# Column names recognised without a --*-col flag (compared case-insensitively).
ALIASES: dict[str, tuple[str, ...]] = {
    USER: ("user", "user_id", "userid", "uid", "users", "customer_id", "visitorid"),
    ITEM: ("item", "item_id", "itemid", "iid", "items", "movie_id", "movieid", "product_id", "track_id"),
    RATING: ("rating", "ratings", "score", "count", "weight", "value", "playcount", "plays"),
    TIMESTAMP: ("timestamp", "time", "ts", "date", "datetime", "event_time", "created_at"),
}

# Item side information produced by the sample generator (genres are "a|b|c").
ITEM_ID = "item"
ITEM_TITLE = "title"
ITEM_GENRES = "genres"
GENRE_SEP = "|"


def output_columns(df: pl.DataFrame) -> list[str]:
    """The canonical columns present in ``df``, in canonical order."""
    return [c for c in CANONICAL if c in df.columns]


def conform(df: pl.DataFrame) -> pl.DataFrame:
    """Select the canonical columns in order and cast them to their canonical dtypes."""
    cols = output_columns(df)
    return df.select([pl.col(c).cast(DTYPES[c]) for c in cols])
