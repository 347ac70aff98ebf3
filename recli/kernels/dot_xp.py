"""Factor-model scores ``U·Vᵀ (+ b)`` summed in one fixed order, so that a user's scores
do not depend on the batch they are computed in.

BLAS computes a one-row product (GEMV) and a many-row product (GEMM) with different
summation orders (and blocking that depends on the shapes), so the same user's score could
differ in the last float32 digit between ``recommend --user`` and ``--all-users``. Here
every score is, in float32 with each operation rounded (no fused multiply-add):

    s = 0;  s = s + U[u, f] * V[i, f]  for f = 0, 1, ..., k - 1;  then  s = s + b[i]

Two implementations compute exactly this: :func:`dot_scores_xp` (written against an
array module ``xp``: one multiply and one add per factor over the whole batch; CuPy on a
GPU, NumPy for small CPU batches, no Numba import) and :func:`recli.kernels.dot.dot_scores`
(Numba, item tiles in parallel) for large CPU batches. Elementwise IEEE operations give
the same bits on any hardware and in any vector width, so both agree exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def dot_scores_xp(user_vectors: Any, item_factors: Any, item_bias: Any = None, xp: Any = np) -> Any:
    """``U·Vᵀ (+ b)`` as float32 ``(len(U), n_items)`` ``xp`` array, in the fixed order of
    the module docstring (one rounded multiply and one rounded add per factor)."""
    U = xp.asarray(user_vectors, dtype=xp.float32)
    Vt = xp.ascontiguousarray(xp.asarray(item_factors, dtype=xp.float32).T)
    out = xp.zeros((U.shape[0], Vt.shape[1]), dtype=xp.float32)
    term = xp.empty_like(out)
    for f in range(U.shape[1]):
        xp.multiply(U[:, f:f + 1], Vt[f][None, :], out=term)  # the product is rounded before the add
        out += term
    if item_bias is not None:
        out += xp.asarray(item_bias, dtype=xp.float32)[None, :]
    return out
