"""Side features of users or items: the long ``id, feature, value`` form ``recli prep``
writes (``item_features.parquet`` with columns ``item, feature, value``), as a sparse
matrix over a model's id vocabulary.

:class:`SideFeatures` is what a model that learns from features (``uses_features`` in
:mod:`recli.models.base`) receives in ``fit(..., item_features=, user_features=)``: row
``i`` is the feature vector of id ``i`` of the model's vocabulary (all rows present, an id
without features has an empty row), column ``j`` is the feature named ``names[j]``.

A feature file (:func:`read_feature_table`) is any table recli reads (csv, tsv, parquet,
jsonl) with an id column found like an interaction table's (``item``, ``item_id``,
``movieId``, … for items; ``user``, ``user_id``, … for users), a ``feature`` column and an
optional ``value`` column (1 when absent); repeated ``(id, feature)`` rows add up. When the
file lies in a ``recli prep`` folder whose ``manifest.json`` describes it under
``features``, the fitted transform recorded there comes with it, so that new items' raw
attributes can later be turned into the same features.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recli.errors import InputError

if TYPE_CHECKING:
    import polars as pl
    import scipy.sparse as sp

    from recli.data.io import ReadOptions
    from recli.data.vocab import Vocab

SIDES = ("item", "user")
FEATURE, VALUE = "feature", "value"


@dataclass
class SideFeatures:
    """``matrix``: CSR ``(n_ids, n_features)``, float32 values, int32 indices, sorted rows;
    ``names``: the feature vocabulary, a NumPy unicode array of ``n_features`` names."""

    matrix: sp.csr_matrix
    names: np.ndarray

    @property
    def n_features(self) -> int:
        return int(self.matrix.shape[1])

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """For a model's ``to_arrays``: the matrix as ``{prefix}_indptr`` (int64),
        ``_indices`` (int32), ``_data`` (float32) and ``_shape``, the layout of
        :func:`recli.models.base.csr_to_arrays`, plus ``{prefix}_names`` (a unicode array,
        stored without pickle)."""
        from recli.data.matrix import csr_arrays

        indptr, indices, data = csr_arrays(self.matrix)
        return {f"{prefix}_indptr": indptr, f"{prefix}_indices": indices, f"{prefix}_data": data,
                f"{prefix}_shape": np.asarray(self.matrix.shape, np.int64),
                f"{prefix}_names": np.asarray(self.names, dtype=str)}

    @classmethod
    def from_arrays(cls, prefix: str, arrays: dict[str, Any]) -> "SideFeatures | None":
        """What :meth:`to_arrays` stored under ``prefix``, or ``None`` when nothing was."""
        if f"{prefix}_names" not in arrays:
            return None
        from recli.data.matrix import csr_from_arrays

        shape = tuple(int(x) for x in arrays[f"{prefix}_shape"])
        matrix = csr_from_arrays(arrays[f"{prefix}_indptr"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_data"], shape)
        return cls(matrix, np.asarray(arrays[f"{prefix}_names"]))


@dataclass
class FeatureTable:
    """A feature file in long form: ``frame`` has the columns ``id`` (str), ``feature``
    (str) and ``value`` (float32); ``transform`` is the fitted transform of the ``recli
    prep`` folder the file came from (``None`` for any other file)."""

    side: str
    source: str
    frame: pl.DataFrame
    transform: dict[str, Any] | None = None
    id_column: str | None = None


def read_feature_table(source: str, side: str, read: ReadOptions | None = None,
                       what: str | None = None) -> FeatureTable:
    """Read a feature file for ``side`` (``item`` or ``user``); see the module docstring.
    ``what`` names it in messages (default ``--SIDE-features SOURCE``).

    Raises :class:`InputError` for a file without the id column or without a ``feature``
    column, and for values that are not finite numbers.
    """
    import polars as pl

    from recli.data.io import read_table
    from recli.data.schema import ColumnNames, resolve_columns

    what = what or f"--{side}-features {source}"
    df = read_table(source, None, sep=read.sep if read else None, quote=read.quote if read else "auto",
                    encoding=read.encoding if read else None)
    given = read.columns.given(side) if read is not None and read.columns is not None else None
    names = ColumnNames(**{side: given if given in df.columns else None})
    id_col = resolve_columns(df.columns, names, roles=(side,), required=(side,), what=what)[side]
    lowered = {c.lower(): c for c in df.columns}
    if FEATURE not in lowered:
        raise InputError(f"{what} has no {FEATURE} column; columns found: {', '.join(df.columns)}",
                         hint=f"write features in long form: {side},feature,value (what recli prep writes)")
    value = pl.col(lowered[VALUE]).cast(pl.Float32, strict=False) if VALUE in lowered else pl.lit(1.0, pl.Float32)
    frame = df.select(pl.col(id_col).cast(pl.Utf8).alias("id"), pl.col(lowered[FEATURE]).cast(pl.Utf8).alias(FEATURE),
                      value.alias(VALUE)).filter(pl.col("id").is_not_null() & pl.col(FEATURE).is_not_null())
    bad = frame[VALUE].is_null() | ~frame[VALUE].is_finite().fill_null(False)
    if bad.any():
        raise InputError(f"{what}: {int(bad.sum())} feature values are not finite numbers",
                         hint="give every feature row a numeric value (or drop the value column: 1 each)")
    if frame.height == 0:
        raise InputError(f"{what} holds no (id, feature) rows", hint="check the file, e.g. run recli prep again")
    transform, prep_id = _prep_transform(source, side)
    return FeatureTable(side, source, frame, transform, prep_id)


def _prep_transform(source: str, side: str) -> tuple[dict[str, Any] | None, str | None]:
    """The ``transform`` and ``id_column`` that the ``manifest.json`` beside ``source``
    records for it under ``features.<side>`` (a ``recli prep`` folder), else ``None``s."""
    if source == "-":
        return None, None
    manifest = Path(source).parent / "manifest.json"
    try:
        entry = json.loads(manifest.read_text(encoding="utf-8"))["features"][side]
    except (OSError, ValueError, KeyError, TypeError):
        return None, None
    if not isinstance(entry, dict) or Path(str(entry.get("file", ""))).name != Path(source).name:
        return None, None
    transform = entry.get("transform")
    return (transform if isinstance(transform, dict) else None), entry.get("id_column")


def distinct_ids(table: FeatureTable) -> pl.Series:
    """The distinct ids of a feature table (every one joins the model's catalogue)."""
    return table.frame["id"].unique()


def matched_ids(table: FeatureTable, interaction_ids: pl.Series) -> int:
    """How many distinct ids of ``table`` occur among ``interaction_ids``; :class:`InputError`
    when none does (the file belongs to another data set, or names ids differently)."""
    ids = distinct_ids(table)
    matched = int(ids.is_in(interaction_ids.cast(ids.dtype).unique().implode()).sum())
    if matched == 0:
        example = ids.sort().head(1).to_list()[0]
        raise InputError(f"--{table.side}-features {table.source}: none of its {ids.len()} {table.side} ids matches "
                         f"an id of the training data (0 matched; e.g. {example!r})",
                         hint=f"use the feature file made from the same data (recli prep), with the same "
                              f"{table.side} ids")
    return matched


def side_features(table: FeatureTable, vocab: Vocab, names: np.ndarray | None = None) -> tuple[SideFeatures, int]:
    """The feature matrix of ``table`` over ``vocab`` (rows) and the feature vocabulary
    ``names`` (default: the file's distinct features, sorted), and the number of rows left
    out because their id or feature is not in those vocabularies. Repeated cells add up."""
    import polars as pl
    import scipy.sparse as sp

    from recli.data.matrix import as_csr
    from recli.data.vocab import Vocab

    features = Vocab.from_values(table.frame[FEATURE]) if names is None else Vocab(pl.Series("id", list(names)))
    rows = vocab.index(table.frame["id"])
    cols = features.index(table.frame[FEATURE])
    keep = (rows >= 0) & (cols >= 0)
    values = table.frame[VALUE].to_numpy().astype(np.float32)[keep]
    matrix = sp.csr_matrix((values, (rows[keep], cols[keep])), shape=(len(vocab), len(features)), dtype=np.float32)
    names = features.array if names is None else np.asarray(names, dtype=str)
    return SideFeatures(as_csr(matrix), names), int((~keep).sum())
