"""Numba twin of :func:`recli.kernels.dot_xp.dot_scores_xp`: the same fixed-order float32
sum (see there), for large CPU batches. Item tiles run in parallel; within a tile each
user's row accumulates factor by factor, so ``V``'s tile stays in cache across users.
Numba emits separate multiply and add instructions (no ``fastmath``, so no fused
multiply-add and no reordering): the bits equal the NumPy twin's."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

ROWS, TILE = 64, 1024  # users x items per parallel block (a tile of V: 4 KiB per factor)


def dot_scores(user_vectors: np.ndarray, item_factors: np.ndarray, item_bias: np.ndarray | None = None) -> np.ndarray:
    """``U·Vᵀ (+ b)``: float32 ``(len(U), n_items)``, summed as :mod:`recli.kernels.dot_xp` sums."""
    U = np.ascontiguousarray(user_vectors, dtype=np.float32)
    Vt = np.ascontiguousarray(np.asarray(item_factors, dtype=np.float32).T)
    bias = np.ascontiguousarray(item_bias if item_bias is not None else np.zeros(0), dtype=np.float32)
    out = np.empty((U.shape[0], Vt.shape[1]), dtype=np.float32)
    _dot_into(U, Vt, bias, out)
    return out


@njit(parallel=True, cache=True, nogil=True)
def _dot_into(U, Vt, bias, out):  # pragma: no cover - compiled
    n_rows, k = U.shape
    n_items = Vt.shape[1]
    row_blocks = (n_rows + ROWS - 1) // ROWS
    tiles = (n_items + TILE - 1) // TILE
    for block in prange(row_blocks * tiles):
        # a local accumulator (not a row of ``out``) lets LLVM vectorise the inner loop
        acc = np.empty(TILE, np.float32)
        r0 = (block // tiles) * ROWS
        lo = (block % tiles) * TILE
        hi = min(lo + TILE, n_items)
        width = hi - lo
        for i in range(r0, min(r0 + ROWS, n_rows)):
            acc[:] = 0.0
            for f in range(k):
                uf = U[i, f]
                vf = Vt[f, lo:hi]
                for j in range(width):
                    acc[j] += uf * vf[j]
            if bias.shape[0]:
                for j in range(width):
                    acc[j] += bias[lo + j]
            out[i, lo:hi] = acc[:width]
