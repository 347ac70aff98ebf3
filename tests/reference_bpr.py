"""Slow, obviously-correct NumPy reference for one BPR SGD step (Rendle et al. 2009)."""

from __future__ import annotations

import numpy as np

from tests.reference_sampling import RowStream


def bpr_step_reference(U, V, b, u, i, j, lr, reg):
    """Return updated copies ``(U, V, b)`` and the loss ``-ln σ(x_uij)`` of one step on
    the triple ``(u, i, j)``, computed in float64 from the values before the step."""
    U, V, b = U.astype(np.float64), V.astype(np.float64), b.astype(np.float64)
    x = U[u] @ (V[i] - V[j]) + b[i] - b[j]
    sigma = 1.0 / (1.0 + np.exp(-x))
    loss = -np.log(sigma)
    z = 1.0 - sigma  # -d loss / d x
    du = z * (V[i] - V[j]) - reg * U[u]
    dvi = z * U[u] - reg * V[i]
    dvj = -z * U[u] - reg * V[j]
    dbi = z - reg * b[i]
    dbj = -z - reg * b[j]
    U[u] += lr * du
    V[i] += lr * dvi
    V[j] += lr * dvj
    b[i] += lr * dbi
    b[j] += lr * dbj
    return U, V, b, loss


def bpr_fold_in_reference(indptr, indices, V, b, epochs, lr, reg, seed, max_tries):
    """New users' vectors by BPR SGD on the user vector only, in float64: each row starts
    at zero and, ``epochs`` times, for each of its items ``i`` in order draws a negative
    ``j`` (uniform, redrawn while it is one of the row's items, at most ``max_tries``
    draws, else the item is skipped) and steps ``u += lr·(σ(−x)·(V_i − V_j) − reg·u)``
    with ``x = u·(V_i − V_j) + b_i − b_j``. Rows with no items, or every item, stay zero."""
    V, b = V.astype(np.float64), b.astype(np.float64)
    n_items = V.shape[0]
    out = np.zeros((len(indptr) - 1, V.shape[1]))
    for r in range(len(indptr) - 1):
        row = indices[indptr[r]:indptr[r + 1]]
        if len(row) == 0 or len(row) >= n_items:
            continue
        stream, u = RowStream(seed, row), out[r]
        for _ in range(epochs):
            for i in row:
                j = stream.negative(row, n_items, max_tries)
                if j is None:
                    continue
                x = u @ (V[i] - V[j]) + b[i] - b[j]
                z = 1.0 / (1.0 + np.exp(x))  # σ(−x)
                u += lr * (z * (V[i] - V[j]) - reg * u)
    return out
