"""Canonical column names and dtypes of the tables recli passes between steps.

Interactions: ``user`` and ``item`` are strings (ids are never numbers: leading zeros
are kept and nothing is cast to float), ``rating`` is float64 (a rating, a count or a
weight), ``timestamp`` is int64 epoch seconds. ``rating`` and ``timestamp`` are
optional. Side-information tables (items, users) are keyed by the same string ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import polars as pl

from recli.errors import InputError

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

# The option that names each column, shared by every command that reads interactions.
FLAGS = {USER: "--user-col", ITEM: "--item-col", RATING: "--rating-col", TIMESTAMP: "--time-col"}
# Separators a wrongly split header may still hold (name for --sep, character).
_SEPARATORS = (("'::'", "::"), ("tab", "\t"), ("comma", ","), ("semicolon", ";"), ("pipe", "|"))


@dataclass(frozen=True)
class ColumnNames:
    """Input column names given with ``--user-col/--item-col/--rating-col/--time-col``;
    ``None`` means "find it by its usual names" (:data:`ALIASES`)."""

    user: str | None = None
    item: str | None = None
    rating: str | None = None
    timestamp: str | None = None

    def given(self, role: str) -> str | None:
        return getattr(self, role)


def separator_hint(columns: Sequence[str]) -> str | None:
    """When a header was read as a single column that still holds a separator, say which."""
    if len(columns) != 1:
        return None
    for name, char in _SEPARATORS:
        if char in columns[0]:
            return (f"the header {columns[0]!r} holds {char!r}: the file looks {name}-separated; "
                    f"use --sep {name}, or leave --sep out to infer it")
    return None


def _find(columns: Sequence[str], wanted: str | None, role: str, what: str, required: bool) -> str | None:
    flag = FLAGS[role]
    if wanted is not None:
        if wanted in columns:
            return wanted
        raise InputError(f"{what}: column {wanted!r} given with {flag} not found; columns found: {', '.join(columns)}",
                         hint=separator_hint(columns) or f"pass one of the columns found to {flag}")
    lowered = {c.lower(): c for c in columns}
    for alias in ALIASES[role]:
        if alias in lowered:
            return lowered[alias]
    if required:
        raise InputError(f"{what} has no {role} column (none of {', '.join(ALIASES[role][:3])}, ...); "
                         f"columns found: {', '.join(columns)}",
                         hint=separator_hint(columns) or f"name it with {flag} COLUMN, or for a file without a "
                         "header use --no-header --columns user,item,rating,timestamp")
    return None


def resolve_columns(columns: Sequence[str], names: ColumnNames | None = None, *, roles: Sequence[str] = CANONICAL,
                    required: Sequence[str] = REQUIRED, what: str = "input") -> dict[str, str | None]:
    """Map each canonical role in ``roles`` to the input column that holds it.

    A name given in ``names`` must exist (exact match); otherwise the first of the role's
    :data:`ALIASES` present (case-insensitive) is taken. Roles in ``required`` must be found.

    Returns
    -------
    ``{role: input column or None}`` for every role in ``roles``.

    Raises
    ------
    InputError : a named column is absent, a required role is missing (the hint names a
        separator still present in a one-column header), or user and item are one column.
    """
    names = names or ColumnNames()
    found = {role: _find(columns, names.given(role), role, what, role in required) for role in roles}
    if found.get(USER) is not None and found.get(USER) == found.get(ITEM):
        raise InputError(f"{what}: user and item are the same column {found[USER]!r}",
                         hint="name distinct columns with --user-col and --item-col")
    return found


def to_canonical(df: pl.DataFrame, names: ColumnNames | None = None, *, roles: Sequence[str] = CANONICAL,
                 required: Sequence[str] = REQUIRED, what: str = "input") -> pl.DataFrame:
    """``df`` with the columns found by :func:`resolve_columns` renamed to their canonical
    names (dtypes unchanged); other columns are kept unless they would clash."""
    found = {role: src for role, src in resolve_columns(df.columns, names, roles=roles, required=required,
                                                        what=what).items() if src is not None}
    sources = set(found.values())
    renamed = [pl.col(src).alias(role) for role, src in found.items()]
    others = [c for c in df.columns if c not in sources and c not in found]
    return df.select(renamed + others)


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
