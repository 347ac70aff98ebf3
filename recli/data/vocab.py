"""External string ids ↔ contiguous ``int32`` indices.

A :class:`Vocab` is the sorted list of distinct ids: index ``i`` is the ``i``-th id in
byte order, so the same set of ids always gives the same indices (whatever the row order
of the input) and "ties broken by item index" means ties broken by item id order.
Its :attr:`hash` (sha256 over the ids) is stored in the model file, so a model and the
vocabulary it was trained with can be matched later.

A vocabulary is held either as a Polars Utf8 Series or as a sorted NumPy unicode array
(:meth:`Vocab.from_array`, what a model file's ``user_ids.npy`` holds). The array form
looks ids up with ``np.searchsorted`` and never imports Polars, so serving one user
skips Polars' import time; the Series is built from the array only when asked for.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import polars as pl


class Vocab:
    """Distinct ids (a Utf8 Series, sorted) and the lookup id → index."""

    def __init__(self, ids: pl.Series):
        import polars as pl

        self._array: np.ndarray | None = None
        self.__dict__["ids"] = ids.cast(pl.Utf8).rename("id")

    @classmethod
    def from_array(cls, array: np.ndarray) -> "Vocab":
        """Wrap a NumPy unicode array of ids that is strictly increasing (checked by the caller)."""
        vocab = cls.__new__(cls)
        vocab._array = np.asarray(array)
        return vocab

    @classmethod
    def from_values(cls, values: pl.Series) -> "Vocab":
        """Build from any column of ids (duplicates and order do not matter; nulls dropped)."""
        import polars as pl

        return cls(values.cast(pl.Utf8).drop_nulls().unique().sort())

    @cached_property
    def ids(self) -> pl.Series:
        import polars as pl

        return pl.Series("id", self._array.tolist(), dtype=pl.Utf8)

    def __len__(self) -> int:
        return self._array.shape[0] if self._array is not None else self.ids.len()

    @cached_property
    def _table(self) -> pl.DataFrame:
        import polars as pl

        return pl.DataFrame({"id": self.ids, "idx": np.arange(len(self), dtype=np.int32)})

    def index(self, values: pl.Series | list[str]) -> np.ndarray:
        """``int32`` index of each value, ``-1`` for ids not in the vocabulary."""
        if self._array is not None and isinstance(values, (list, tuple)):
            return self._search(values)
        import polars as pl

        s = pl.Series("id", values, dtype=pl.Utf8) if not isinstance(values, pl.Series) else values.cast(pl.Utf8).rename("id")
        joined = s.to_frame().join(self._table, on="id", how="left", maintain_order="left")
        return joined["idx"].fill_null(-1).to_numpy().astype(np.int32, copy=False)

    def _search(self, values: list[str] | tuple[str, ...]) -> np.ndarray:
        """Binary search in the sorted array (code-point order is UTF-8 byte order)."""
        out = np.full(len(values), -1, dtype=np.int32)
        if not len(values) or not len(self):
            return out
        valid = [i for i, v in enumerate(values) if isinstance(v, str) and "\0" not in v]
        if not valid:
            return out
        query = np.array([values[i] for i in valid], dtype=str)
        pos = np.searchsorted(self._array, query)
        hit = pos < len(self)
        hit[hit] = self._array[pos[hit]] == query[hit]
        out[np.asarray(valid)[hit]] = pos[hit]
        return out

    def lookup(self, idx: np.ndarray) -> pl.Series:
        """The external ids of ``idx`` (all must be valid indices)."""
        return self.ids.gather(np.asarray(idx, dtype=np.int64))

    def lookup_list(self, idx: np.ndarray) -> list[str]:
        """Like :meth:`lookup`, as a list of str (no Polars with the array form)."""
        idx = np.asarray(idx, dtype=np.int64)
        if self._array is not None:
            return [str(v) for v in self._array[idx]]
        return self.lookup(idx).to_list()

    @cached_property
    def array(self) -> np.ndarray:
        """The ids as a NumPy unicode array (index order)."""
        if self._array is not None:
            return self._array
        return np.array(self.ids.to_list(), dtype=str) if len(self) else np.zeros(0, dtype="<U1")

    @cached_property
    def hash(self) -> str:
        """sha256 of the ids joined by NUL bytes (ids cannot hold NUL in our formats)."""
        if not len(self):
            return hashlib.sha256(b"").hexdigest()
        joined = "\0".join(self._array.tolist()) if self._array is not None else self.ids.str.join("\0")[0]
        return hashlib.sha256((joined + "\0").encode("utf-8")).hexdigest()

    def to_frame(self) -> pl.DataFrame:
        import polars as pl

        return pl.DataFrame({"id": self.ids})

    @classmethod
    def from_frame(cls, df: pl.DataFrame) -> "Vocab":
        return cls(df["id"])
