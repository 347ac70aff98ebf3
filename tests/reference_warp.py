"""Slow, obviously-correct NumPy reference for one WARP step (Weston et al. 2011, as in
LightFM with adagrad or a constant learning rate)."""

from __future__ import annotations

import math

import numpy as np

from tests.reference_sampling import RowStream


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


def warp_fold_in_reference(indptr, indices, V, b, epochs, lr, reg, adagrad, max_sampled, seed):
    """New users' vectors by WARP steps on the user vector only, in float64. Each row starts
    at zero with accumulators at 1; ``epochs`` times, for each of its items ``i`` in order,
    negatives are drawn (a draw among the row's items is redrawn and not counted, at most
    ``10 · max_sampled`` draws in all) until the ``N``-th counted one violates
    ``u·V_j + b_j > u·V_i + b_i − 1`` (then ``g = L_N·(V_j − V_i) + reg·u`` is applied,
    adagrad or constant) or ``max_sampled`` were counted. Rows with no items, or every
    item, stay zero."""
    V, b = V.astype(np.float64), b.astype(np.float64)
    n_items = V.shape[0]
    out = np.zeros((len(indptr) - 1, V.shape[1]))
    for r in range(len(indptr) - 1):
        row = indices[indptr[r]:indptr[r + 1]]
        if len(row) == 0 or len(row) >= n_items:
            continue
        stream, u, G = RowStream(seed, row), out[r], np.ones(V.shape[1])
        for _ in range(epochs):
            for i in row:
                x_ui = u @ V[i] + b[i]
                n_sampled = 0
                for _draw in range(10 * max_sampled):
                    j = stream.below(n_items)
                    if j in set(row.tolist()):
                        continue
                    n_sampled += 1
                    if u @ V[j] + b[j] > x_ui - 1.0:
                        g = rank_weight_reference(n_items, n_sampled) * (V[j] - V[i]) + reg * u
                        if adagrad:
                            u -= lr / np.sqrt(G) * g
                            G += g * g
                        else:
                            u -= lr * g
                        break
                    if n_sampled >= max_sampled:
                        break
    return out
