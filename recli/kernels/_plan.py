"""The per-fit state of an SGD model's epochs: :class:`SGDPlan`, built once by the
namespace's ``sgd_plan`` and handed back to its ``*_epoch`` kernels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class SGDPlan:
    """A user-item CSR and what the SGD epochs of one device need from it.

    ``indptr``, ``indices``, ``values`` (may be ``None``) and ``rows`` (each stored cell's
    row) are arrays of the namespace's array module. The Numba CPU kernels use
    ``user_order`` (reshuffled in place every epoch) and ``bounds`` (one user chunk per
    thread, :func:`recli.kernels._chunks.balanced_bounds`) and ``threads``; the
    array-module kernels use ``keys`` (``row << 32 | item`` of every cell, sorted: a
    membership test by binary search) and ``batch`` (samples per mini-batch).
    """

    indptr: Any
    indices: Any
    values: Any
    rows: Any
    threads: int = 1
    user_order: Any = None
    bounds: Any = None
    keys: Any = None
    batch: int = 0

    @property
    def nnz(self) -> int:
        return int(self.indices.shape[0])
