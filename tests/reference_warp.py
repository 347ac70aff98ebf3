"""Slow, obviously-correct NumPy reference for one WARP step (Weston et al. 2011, as in
LightFM with adagrad or a constant learning rate)."""

from __future__ import annotations

import math

import numpy as np


def rank_weight_reference(n_items: int, n_sampled: int) -> float:
    """LightFM's ``log(max(1, floor((n_items - 1) / N)))`` clipped at 10."""
    return min(math.log(max(1.0, math.floor((n_items - 1) / n_sampled))), 10.0)


def warp_step_reference(U, V, b, GU, GV, Gb, u, i, j, n_sampled, lr, reg, adagrad):
    """Updated float64 copies ``(U, V, b, GU, GV, Gb)`` and the loss
    ``L_N · (1 - x_ui + x_uj)`` of one WARP step whose violating negative ``j`` was the
    ``n_sampled``-th draw; gradients from the values before the step."""
    U, V, b = U.astype(np.float64), V.astype(np.float64), b.astype(np.float64)
    GU, GV, Gb = GU.astype(np.float64), GV.astype(np.float64), Gb.astype(np.float64)
    L = rank_weight_reference(V.shape[0], n_sampled)
    loss = L * (1.0 - (U[u] @ V[i] + b[i]) + (U[u] @ V[j] + b[j]))
    grads = [  # (array, accumulator, index, gradient)
        (V, GV, i, -L * U[u] + reg * V[i]),
        (V, GV, j, L * U[u] + reg * V[j]),
        (U, GU, u, L * (V[j] - V[i]) + reg * U[u]),
        (b, Gb, i, -L + reg * b[i]),
        (b, Gb, j, L + reg * b[j]),
    ]
    for param, acc, idx, g in grads:
        if adagrad:
            param[idx] = param[idx] - lr / np.sqrt(acc[idx]) * g
            acc[idx] = acc[idx] + g * g
        else:
            param[idx] = param[idx] - lr * g
    return U, V, b, GU, GV, Gb, loss
