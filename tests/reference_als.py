"""Slow, obviously-correct NumPy references for the ALS kernels (dense Cᵤ, float64)."""

from __future__ import annotations

import numpy as np


def dense_confidence(row_items, row_values, n_items, alpha):
    """Dense Cᵤ diagonal and p(u): c = 1 + alpha·|r| on stored entries, 1 elsewhere."""
    c = np.ones(n_items)
    p = np.zeros(n_items)
    for i, r in zip(row_items, row_values):
        c[i] = 1.0 + alpha * abs(r)
        p[i] = 1.0 if r > 0 else 0.0
    return c, p


def normal_equations(Y, row_items, row_values, regularization, alpha):
    """A = YᵀCᵤY + λI and b = YᵀCᵤp(u), built from the dense diagonal Cᵤ."""
    Y = np.asarray(Y, dtype=np.float64)
    c, p = dense_confidence(row_items, row_values, Y.shape[0], alpha)
    Cu = np.diag(c)
    A = Y.T @ Cu @ Y + regularization * np.eye(Y.shape[1])
    b = Y.T @ Cu @ p
    return A, b


def solve_row(Y, row_items, row_values, regularization, alpha):
    if len(row_items) == 0:
        return np.zeros(Y.shape[1])
    A, b = normal_equations(Y, row_items, row_values, regularization, alpha)
    return np.linalg.solve(A, b)


def row_lambda(matrix, regularization, scale=False):
    """λ of every row: λ, or with ALS-WR scaling λ times the row's stored entries."""
    n_stored = np.array([matrix.indptr[u + 1] - matrix.indptr[u] for u in range(matrix.shape[0])], float)
    return regularization * n_stored if scale else np.full(matrix.shape[0], float(regularization))


def exact_sweep(matrix, Y, regularization, alpha, scale=False):
    """Every row of ``matrix`` (scipy CSR) solved exactly against ``Y``."""
    lam = row_lambda(matrix, regularization, scale)
    out = np.zeros((matrix.shape[0], Y.shape[1]))
    for u in range(matrix.shape[0]):
        s, e = matrix.indptr[u], matrix.indptr[u + 1]
        out[u] = solve_row(Y, matrix.indices[s:e], matrix.data[s:e], lam[u], alpha)
    return out


def cg(A, b, x0, steps):
    """Textbook conjugate gradient, stopping early once the residual is ~0."""
    x = np.array(x0, dtype=np.float64)
    r = b - A @ x
    p = r.copy()
    rsold = r @ r
    if rsold < 1e-20:
        return x
    for _ in range(steps):
        Ap = A @ p
        a = rsold / (p @ Ap)
        x = x + a * p
        r = r - a * Ap
        rsnew = r @ r
        if rsnew < 1e-20:
            break
        p = r + rsnew / rsold * p
        rsold = rsnew
    return x


def cg_sweep(matrix, X0, Y, regularization, alpha, steps, scale=False):
    lam = row_lambda(matrix, regularization, scale)
    out = np.zeros(X0.shape)
    for u in range(matrix.shape[0]):
        s, e = matrix.indptr[u], matrix.indptr[u + 1]
        if s == e:
            continue
        A, b = normal_equations(Y, matrix.indices[s:e], matrix.data[s:e], lam[u], alpha)
        out[u] = cg(A, b, X0[u], steps)
    return out


def loss(matrix, X, Y, regularization, alpha, scale=False):
    """(Σ_{u,i} c_ui (p_ui − xᵤ·yᵢ)² + λ(‖X‖² + ‖Y‖²)) / Σ c_ui over the dense matrix;
    with ALS-WR scaling the penalty is Σᵤ λ·nᵤ‖xᵤ‖² + Σᵢ λ·nᵢ‖yᵢ‖² (n: stored entries)."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    total, weight = 0.0, 0.0
    for u in range(matrix.shape[0]):
        s, e = matrix.indptr[u], matrix.indptr[u + 1]
        c, p = dense_confidence(matrix.indices[s:e], matrix.data[s:e], Y.shape[0], alpha)
        pred = Y @ X[u]
        total += np.sum(c * (p - pred) ** 2)
        weight += c.sum()
    lam_x = row_lambda(matrix, regularization, scale)
    lam_y = row_lambda(matrix.T.tocsr(), regularization, scale)
    total += np.sum(lam_x * np.sum(X ** 2, axis=1)) + np.sum(lam_y * np.sum(Y ** 2, axis=1))
    return total / weight
