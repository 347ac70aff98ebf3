"""Per-row context columns (``recli train --context-col COL``) as one-hot features of the
training cells, for models that learn from context (``fm``).

A cell (user, item) holds the summed values of its rows, but one context: the values of
its latest row (largest ``timestamp``; without a timestamp column, or on a tie, the last
row in file order). Each column is categorical: the feature ``COL=VALUE`` is 1 for the
cells whose latest row has that value, and a missing value sets none.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recli.data.matrix import ITEM, USER, parse_timestamps
from recli.data.side import SideFeatures
from recli.data.vocab import Vocab
from recli.errors import InputError


def context_features(df: pl.DataFrame, columns: list[str], users: Vocab, items: Vocab,
                     what: str = "training data") -> SideFeatures:
    """One row per stored cell of the CSR :func:`recli.data.matrix.to_csr` builds from
    ``df`` over ``users`` x ``items`` (cells sorted by user, then item), one column per
    ``COL=VALUE`` seen; names in column order, values sorted."""
    import scipy.sparse as sp

    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{what} has no context column {', '.join(missing)} (found: {', '.join(df.columns)})",
                         hint="name an existing column with --context-col")
    cols = {"u": users.index(df[USER]), "i": items.index(df[ITEM]), "row": np.arange(df.height)}
    stamps = parse_timestamps(df, what)
    if stamps is not None:
        cols["t"] = stamps
    cols.update({f"c{k}": df[c].cast(pl.Utf8) for k, c in enumerate(columns)})
    frame = pl.DataFrame(cols).filter((pl.col("u") >= 0) & (pl.col("i") >= 0))
    latest = frame.sort(["t", "row"] if stamps is not None else ["row"])
    cells = latest.group_by("u", "i").agg(pl.col(f"c{k}").last() for k in range(len(columns))).sort("u", "i")
    blocks, names = [], []
    for k, col in enumerate(columns):
        values = cells[f"c{k}"]
        levels = values.drop_nulls().unique().sort().to_list()
        code = values.replace_strict(levels, list(range(len(levels))), default=None, return_dtype=pl.Int64)
        rows = np.flatnonzero(code.is_not_null().to_numpy())
        blocks.append(sp.csr_matrix((np.ones(rows.size, np.float32), (rows, code.to_numpy()[rows].astype(np.int64))),
                                    shape=(cells.height, len(levels))))
        names += [f"{col}={v}" for v in levels]
    matrix = sp.hstack(blocks, format="csr", dtype=np.float32)
    matrix.sort_indices()
    return SideFeatures(matrix, np.array(names, dtype=str))
