"""Id lists read from a table: a named column, or a plain file of one id per line."""

from __future__ import annotations

from typing import Callable

from recli.data.io import read_table
from recli.errors import InputError


def _named(columns: list[str], column: str) -> str | None:
    """The one of ``columns`` that names ``column`` (itself or an alias such as ``user_id``,
    ``movieId``, any case: the interaction tables' resolver), or None."""
    from recli.data.schema import resolve_columns  # loads Polars: id lists are read with it anyway

    return resolve_columns(columns, roles=(column,), required=())[column]


def read_ids(source: str, column: str, what: str, fmt: str | None = None,
             known: Callable[[str], bool] | None = None) -> list[str]:
    """Distinct ids, in first-seen order, from ``source`` (a path, or ``-`` for stdin).

    The header rule, the same for every id list (``--users``, ``--items-file``,
    ``--exclude-items``, ``--only-items``): delimited text is read without a header, and
    its first line is a header iff one of its fields names the ``column`` (``user`` /
    ``item`` or an alias such as ``user_id``, ``movieId``; any case), except that in a
    one-column file a first line that is a known id (``known(id)`` is true: an id of the
    model) stays an id. The ids are then that column (the only one of a one-column file);
    a file of several columns without such a header is refused. Parquet and JSON lines
    have named columns: ``column`` (or an alias), else their only column. Blank ids are
    dropped and surrounding whitespace is stripped; a list without ids is an error.
    """
    import polars as pl

    df = read_table(source, fmt, has_header=False)
    if all(c == f"column_{i + 1}" for i, c in enumerate(df.columns)):  # delimited text: no names yet
        first = [str(v).strip() if v is not None else "" for v in df.row(0)]
        named = _named(first, column)
        if named is not None and not (df.width == 1 and known is not None and known(first[0])):
            df = df.slice(1).rename({df.columns[first.index(named)]: column})
        elif df.width == 1:
            df = df.rename({df.columns[0]: column})
        else:
            raise InputError(f"{what} {source!r} has no {column!r} column (first line: {', '.join(first)})",
                             hint=f"name the column {column!r} in a header line, or give one id per line")
    else:
        named = _named(df.columns, column)
        if named is None and df.width != 1:
            raise InputError(f"{what} {source!r} has no {column!r} column (found: {', '.join(df.columns)})",
                             hint=f"name the column {column!r}, or give one id per line")
        df = df.rename({named or df.columns[0]: column})
    ids = df[column].cast(pl.Utf8).drop_nulls().str.strip_chars()
    ids = ids.filter(ids != "").unique(maintain_order=True).to_list()
    if not ids:
        raise InputError(f"{what} {source!r} holds no ids", hint=f"give one {column} id per line")
    return ids
