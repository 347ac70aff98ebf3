"""External string ids ↔ contiguous ``int32`` indices.

A :class:`Vocab` is the sorted list of distinct ids: index ``i`` is the ``i``-th id in
byte order, so the same set of ids always gives the same indices (whatever the row order
of the input) and "ties broken by item index" means ties broken by item id order.
Its :attr:`hash` (sha256 over the ids) is stored in the model file, so a model and the
vocabulary it was trained with can be matched later.
"""

from __future__ import annotations

import hashlib
from functools import cached_property

import numpy as np
import polars as pl


class Vocab:
    """Distinct ids (a Utf8 Series, sorted) and the lookup id → index."""

    def __init__(self, ids: pl.Series):
        self.ids = ids.cast(pl.Utf8).rename("id")

    @classmethod
    def from_values(cls, values: pl.Series) -> "Vocab":
        """Build from any column of ids (duplicates and order do not matter; nulls dropped)."""
        return cls(values.cast(pl.Utf8).drop_nulls().unique().sort())

    def __len__(self) -> int:
        return self.ids.len()

    @cached_property
    def _table(self) -> pl.DataFrame:
        return pl.DataFrame({"id": self.ids, "idx": np.arange(len(self), dtype=np.int32)})

    def index(self, values: pl.Series | list[str]) -> np.ndarray:
        """``int32`` index of each value, ``-1`` for ids not in the vocabulary."""
        s = pl.Series("id", values, dtype=pl.Utf8) if not isinstance(values, pl.Series) else values.cast(pl.Utf8).rename("id")
        joined = s.to_frame().join(self._table, on="id", how="left", maintain_order="left")
        return joined["idx"].fill_null(-1).to_numpy().astype(np.int32, copy=False)

    def lookup(self, idx: np.ndarray) -> pl.Series:
        """The external ids of ``idx`` (all must be valid indices)."""
        return self.ids.gather(np.asarray(idx, dtype=np.int64))

    @cached_property
    def hash(self) -> str:
        """sha256 of the ids joined by NUL bytes (ids cannot hold NUL in our formats)."""
        joined = self.ids.str.join("\0")[0] if len(self) else ""
        return hashlib.sha256((joined + "\0").encode("utf-8") if len(self) else b"").hexdigest()

    def to_frame(self) -> pl.DataFrame:
        return pl.DataFrame({"id": self.ids})

    @classmethod
    def from_frame(cls, df: pl.DataFrame) -> "Vocab":
        return cls(df["id"])
