"""Pieces of the ``fm`` model's solvers (:mod:`recli.models.fm`): the hyper-parameters of
the ``mcmc`` solver and the BPR fold-in of new users."""

from __future__ import annotations

from typing import Any

import numpy as np


class Hyper:
    """The hyper-parameters of Bayesian FM (libFM's priors): noise precision α ~ Γ(1, 1);
    per group g a prior N(μ_g, 1/λ_g) on its linear weights and, per factor f, on its
    v_·f, with λ ~ Γ(1, 1) and μ | λ ~ N(0, 1/λ). Features in no row are left out (they
    stay 0)."""

    def __init__(self, n_groups: int, factors: int, group: np.ndarray, live: np.ndarray):
        self.group, self.live, self.n_groups = group, live, n_groups
        self.mu_w, self.lam_w = np.zeros(n_groups), np.ones(n_groups)
        self.mu_v, self.lam_v = np.zeros((n_groups, factors)), np.ones((n_groups, factors))

    def draw(self, rng: np.random.Generator, e: np.ndarray, w: np.ndarray, V: np.ndarray) -> float:
        """Draw every hyper-parameter given the current sample; returns α."""
        alpha = rng.gamma((1.0 + e.shape[0]) / 2, 2.0 / (1.0 + float(e @ e)))
        for g in range(self.n_groups):
            cols = self.live & (self.group == g)
            n = int(cols.sum())
            for theta, mu, lam in ((w[cols].astype(np.float64)[:, None], self.mu_w[g:g + 1], self.lam_w[g:g + 1]),
                                   (V[cols].astype(np.float64), self.mu_v[g], self.lam_v[g])):
                # μ | λ, θ ~ N(Σθ / (n + 1), 1 / ((n + 1) λ)); then λ | μ, θ ~ Γ((n + 2)/2, rate (1 + Σ(θ−μ)² + μ²)/2)
                mu[:] = theta.sum(axis=0) / (n + 1) + rng.standard_normal(mu.shape) / np.sqrt((n + 1) * lam)
                rate = (1.0 + ((theta - mu) ** 2).sum(axis=0) + mu ** 2) / 2
                lam[:] = rng.gamma((n + 2) / 2, 1.0 / rate)
        return float(alpha)


def bpr_fold_in(c: Any, reg: float, positives: np.ndarray, c_i: np.ndarray, s_i: np.ndarray, warm: np.ndarray) -> np.ndarray:
    """``v_u`` of a new user with these positives (:meth:`recli.models.fm.FM.fold_in`):
    maximise ``Σ ln σ(c(I⁺) − c(I⁻) + v·(s(I⁺) − s(I⁻))) − reg·n_pairs‖v‖²/2`` over
    ``c.negative_tries`` negatives per positive drawn from the warm items the user has not
    interacted with, by Newton's method (the objective is concave)."""
    warm = np.setdiff1d(warm, positives)
    if warm.size == 0:
        return np.zeros(s_i.shape[1])
    # seeded by the history itself: a user's result does not depend on the batch
    rng = np.random.default_rng([c.seed, *positives.tolist()])
    pos = np.repeat(positives, c.negative_tries)
    neg = warm[rng.integers(0, warm.size, size=pos.size)]
    X, base = s_i[pos] - s_i[neg], c_i[pos] - c_i[neg]
    lam = reg * pos.size + 1e-9
    v = np.zeros(s_i.shape[1])
    for _ in range(20):  # Newton: a few steps reach the optimum
        d = base + X @ v
        p = 1.0 / (1.0 + np.exp(d))  # σ(−d)
        grad = X.T @ p - lam * v
        hess = (X * (p * (1 - p))[:, None]).T @ X + lam * np.eye(v.shape[0])
        step = np.linalg.solve(hess, grad)
        v += step
        if np.abs(step).max() < 1e-8:
            break
    return v
