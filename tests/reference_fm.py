"""Slow, obviously-correct NumPy references for the factorisation machine (float64, dense
feature vectors): the pairwise term as the double sum over pairs, its gradient, the
AdaGrad steps and the coordinate-descent minimiser."""

from __future__ import annotations

import numpy as np

EPS = 1e-8


def pairwise(x, V):
    """Σ_{j<l} ⟨vⱼ, vₗ⟩ xⱼ xₗ, pair by pair."""
    total = 0.0
    for j in range(x.shape[0]):
        for m in range(j + 1, x.shape[0]):
            total += float(V[j] @ V[m]) * x[j] * x[m]
    return total


def predict(x, w0, w, V):
    return w0 + float(w @ x) + pairwise(x, V)


def pairwise_grad(x, V):
    """∂/∂v_jf of the double sum: xⱼ Σ_{l≠j} v_lf xₗ."""
    g = np.zeros(V.shape)
    for j in range(x.shape[0]):
        for m in range(x.shape[0]):
            if m != j:
                g[j] += V[m] * x[j] * x[m]
    return g


def _adagrad(theta, g, acc, lr):
    acc += g * g
    theta -= lr * g / np.sqrt(acc + EPS)


def sgd_step(x, y, w0, w, V, G0, Gw, GV, lr, reg_w, reg_v):
    """One AdaGrad step on ½(ŷ − y)² + ½λ‖θ‖² over the row's non-zero features; in place
    (w0 and G0 are 1-element arrays)."""
    e = predict(x, w0[0], w, V) - y
    gV = e * pairwise_grad(x, V) + reg_v * V
    gw = e * x + reg_w * w
    _adagrad(w0, np.array([e]), G0, lr)
    for j in np.flatnonzero(x):
        _adagrad(w[j:j + 1], gw[j:j + 1], Gw[j:j + 1], lr)
        _adagrad(V[j], gV[j], GV[j], lr)


def bpr_step(xp, xn, w, V, Gw, GV, lr, reg_w, reg_v):
    """One AdaGrad step on −ln σ(ŷ(x⁺) − ŷ(x⁻)) + ½λ‖θ‖² over the features non-zero in
    x⁺ or x⁻; in place. Returns ln σ(d) before the step."""
    d = predict(xp, 0.0, w, V) - predict(xn, 0.0, w, V)
    g = -1.0 / (1.0 + np.exp(d))
    gV = g * (pairwise_grad(xp, V) - pairwise_grad(xn, V)) + reg_v * V
    gw = g * (xp - xn) + reg_w * w
    for j in np.flatnonzero((xp != 0) | (xn != 0)):
        _adagrad(w[j:j + 1], gw[j:j + 1], Gw[j:j + 1], lr)
        _adagrad(V[j], gV[j], GV[j], lr)
    return -np.log1p(np.exp(-d))


def loss(X, y, w0, w, V):
    return sum((predict(X[r], w0, w, V) - y[r]) ** 2 for r in range(X.shape[0]))


def conditional(X, y, w0, w, V, j, f, alpha, lam, mu):
    """``(mean, precision)`` of wⱼ (``f is None``) or v_jf under the density
    ∝ exp(−½[α·Σ_r (ŷ_r − y_r)² + λ(θ − μ)²]), the other parameters fixed: the exact
    minimiser of the bracket (coordinate descent with α = 1, μ = 0) and the Gibbs
    conditional. ŷ is linear in that one parameter, so the bracket is a parabola
    P·(θ − mean)² + c: fitted through three evaluations."""

    def objective(theta):
        w2, V2 = w.copy(), V.copy()
        if f is None:
            w2[j] = theta
        else:
            V2[j, f] = theta
        return alpha * loss(X, y, w0, w2, V2) + lam * (theta - mu) ** 2

    a, b, c = objective(-1.0), objective(0.0), objective(1.0)
    quad, lin = (a + c) / 2 - b, (c - a) / 2
    return -lin / (2 * quad), quad
