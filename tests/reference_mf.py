"""Slow, obviously-correct NumPy references for biased-MF SGD and fold-in (float64)."""

from __future__ import annotations

import numpy as np


def sgd_step(u, i, r, mu, P, Q, bu, bi, lr, reg, reg_bias):
    """One SGD update of (u, i, r), written straight from the gradient; in place."""
    e = r - (mu + bu[u] + bi[i] + P[u] @ Q[i])
    bu[u] += lr * (e - reg_bias * bu[u])
    bi[i] += lr * (e - reg_bias * bi[i])
    p_old = P[u].copy()
    P[u] += lr * (e * Q[i] - reg * P[u])
    Q[i] += lr * (e * p_old - reg * Q[i])
    return e * e


def fold_in(items, ratings, mu, Q, bi, reg, reg_bias):
    """argmin over (b, p) of Σ (r − μ − bᵢ − b − p·qᵢ)² + n(λ_b b² + λ‖p‖²), solved by
    setting the gradient to zero with explicit sums."""
    k = Q.shape[1]
    n = len(items)
    A = np.zeros((k + 1, k + 1))
    rhs = np.zeros(k + 1)
    for i, r in zip(items, ratings):
        feat = np.concatenate([[1.0], Q[i].astype(np.float64)])
        A += np.outer(feat, feat)
        rhs += feat * (r - mu - bi[i])
    A += n * np.diag(np.concatenate([[reg_bias], np.full(k, reg)]))
    sol = np.linalg.solve(A, rhs)
    return sol[0], sol[1:]
