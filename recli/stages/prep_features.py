"""``prep --item-table/--user-table``: side features of items and users, fitted next to the split.

The attribute table (and tag table) is read, :func:`recli.data.features.fit_transform` turns
the chosen columns into long ``item, feature, value`` rows, and the ids are checked against
the interactions: a table none of whose ids occur there is refused (its ids are not the same
ids), a partial match is reported. Every id of the table stays (an item nobody interacted with
yet is the point of side features).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from recli.data import features as ft
from recli.data.io import check_encoding, read_table, resolve_separator
from recli.errors import ConfigError, InputError

ROLES = ("item", "user")


@dataclass
class SideTableOptions:
    """``--ROLE-table FILE --ROLE-id-col COL --ROLE-feature SPEC... --ROLE-tags FILE`` and how to
    read the table (``--ROLE-table-sep``, ``--ROLE-table-encoding``, ``--ROLE-table-columns``
    naming the columns of a file without a header)."""

    table: str | None = None
    id_col: str | None = None
    features: list[str] = field(default_factory=list)
    tags: str | None = None
    sep: str | None = None
    encoding: str | None = None
    columns: list[str] | None = None
    identity: bool = True

    @property
    def given(self) -> bool:
        return bool(self.table or self.tags or self.features or self.id_col or self.columns or self.sep
                    or self.encoding)


def validate_side(side: SideTableOptions, role: str, has_output_dir: bool) -> list[ft.FeatureSpec]:
    """Check the options of one side table before any data is read; return the parsed specs."""
    flag = f"--{role}-table"
    specs = [ft.parse_spec(text, f"--{role}-feature") for text in side.features]
    if not side.table and not side.tags:
        raise ConfigError(f"--{role}-feature, --{role}-id-col and the {flag}-* options need {flag} FILE "
                          f"(or --{role}-tags FILE)", hint=f"add {flag} FILE, the table of {role} attributes")
    if side.table and not specs and not side.tags:
        raise ConfigError(f"{flag} needs at least one --{role}-feature COL:KIND (or --{role}-tags FILE)",
                          hint=f"e.g. --{role}-feature genres:multi:| ; kinds: {', '.join(ft.KINDS)}")
    if not side.table and (side.columns or side.sep or side.encoding or side.id_col or specs):
        raise ConfigError(f"--{role}-feature, --{role}-id-col and the {flag}-* options describe {flag}, "
                          "which is not given", hint=f"add {flag} FILE, or drop those options")
    if not has_output_dir:
        raise ConfigError(f"{flag} / --{role}-tags need --out DIR",
                          hint=f"add --out DIR: the features are written there as {role}_features.parquet")
    resolve_separator(side.sep)
    check_encoding(side.encoding)
    return specs


def extract(side: SideTableOptions, role: str, frames: dict[str, pl.DataFrame]) -> tuple[ft.Fitted, dict]:
    """Read, fit and check one side table against the interaction ids in ``frames``.

    Returns the fitted features and the report entry (the counts plus how many ids match).

    Raises
    ------
    InputError : bad table (see :func:`recli.data.features.fit_transform`), or none of its ids
        among the interaction ids.
    """
    specs = validate_side(side, role, has_output_dir=True)
    tags = read_table(side.tags) if side.tags else None
    if side.table:
        table = read_table(side.table, sep=side.sep, has_header=side.columns is None, columns=side.columns,
                           encoding=side.encoding)
    else:
        id_col = ft.find_id_column(tags.columns, role, None, f"--{role}-tags {side.tags}", f"--{role}-id-col")
        table = tags.select(pl.col(id_col).cast(pl.Utf8).str.strip_chars().alias(role)).unique(maintain_order=True)
        table = table.filter(pl.col(role).is_not_null() & (pl.col(role) != ""))
    fitted = ft.fit_transform(table, specs, role=role, id_col=side.id_col, tags=tags, identity=side.identity,
                              what=f"--{role}-table {side.table}", flag=f"--{role}-feature",
                              id_flag=f"--{role}-id-col", tags_what=f"--{role}-tags {side.tags}")
    # how the table was read, so that a later table of new ids can be read the same way
    fitted.transform["read"] = {"sep": side.sep, "encoding": side.encoding, "columns": side.columns}
    known = pl.concat([f[role] for f in frames.values()]).unique()
    ids = fitted.frame[role].unique()
    matched = int(ids.is_in(known.implode()).sum())
    if matched == 0:
        raise InputError(f"none of the {ids.len():,} {role} ids of the {role} features match the {known.len():,} "
                         f"{role} ids of the interactions (0 matched; e.g. feature id {ids.sort()[0]!r}, interaction "
                         f"id {known.sort()[0]!r})",
                         hint=f"check the id column (--{role}-id-col, --{role}-table-columns) and that both files "
                              "use the same ids")
    report = dict(fitted.counts, matched=matched, interaction_ids=known.len(),
                  interaction_ids_without_features=known.len() - int(known.is_in(ids.implode()).sum()))
    return fitted, report


def manifest_entry(fitted: ft.Fitted, role: str, side: SideTableOptions, report: dict) -> dict:
    """The manifest's ``features.<role>`` entry: file, id column, fitted transform, counts."""
    return {"file": f"{role}_features.parquet", "id_column": role, "table": side.table, "tags": side.tags,
            "transform": fitted.transform, "counts": report}
