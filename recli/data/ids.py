"""Id lists read from a table: a named column, or a plain file of one id per line."""

from __future__ import annotations

from recli.data.io import read_table
from recli.errors import InputError


def read_ids(source: str, column: str, what: str, fmt: str | None = None) -> list[str]:
    """Distinct ids, in first-seen order, from the ``column`` column of ``source`` (a path,
    or ``-`` for stdin), or from a single-column file without a header.

    A table of one column not named ``column`` is read as headerless: its first line is an
    id too. Blank ids are dropped and surrounding whitespace is stripped.
    """
    import polars as pl

    df = read_table(source, fmt)
    if column in df.columns:
        series = df[column]
    elif df.width == 1:
        # a single unnamed column: every line (the first one too) is an id; stdin cannot
        # be read twice, so its header line is put back as the first id
        df = read_table(source, fmt, has_header=False, columns=[column]) if source != "-" else \
            pl.concat([pl.DataFrame({column: [df.columns[0]]}), df.rename({df.columns[0]: column})])
        series = df[column]
    else:
        raise InputError(f"{what} {source!r} has no {column!r} column (found: {', '.join(df.columns)})",
                         hint=f"name the column {column!r}, or give one id per line")
    ids = series.cast(pl.Utf8).drop_nulls().str.strip_chars()
    return ids.filter(ids != "").unique(maintain_order=True).to_list()
