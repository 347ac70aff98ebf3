"""Slow, obviously-correct NumPy reference for one BPR SGD step (Rendle et al. 2009)."""

from __future__ import annotations

import numpy as np


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
