"""Factorisation machine kernels (Rendle 2010; coordinate descent: Rendle et al. 2011).

A row is a sparse feature vector ``x`` (indices ``idx``, values ``val``). The model is

    ŷ(x) = w0 + Σⱼ wⱼ xⱼ + Σ_{j<l} ⟨vⱼ, vₗ⟩ xⱼ xₗ

and the pairwise term is computed in O(k·n) (n = non-zeros of the row) instead of
O(k·n²) by the reformulation

    Σ_{j<l} ⟨vⱼ, vₗ⟩ xⱼ xₗ = ½ Σ_f [ (Σⱼ v_jf xⱼ)² − Σⱼ v_jf² xⱼ² ],

so with ``s_f = Σⱼ v_jf xⱼ`` the gradients are ``∂ŷ/∂w0 = 1``, ``∂ŷ/∂wⱼ = xⱼ`` and
``∂ŷ/∂v_jf = xⱼ s_f − v_jf xⱼ²``.

Solvers (serial, so bit-for-bit deterministic):

- SGD with AdaGrad (Duchi et al. 2011): per parameter ``G += g²``, ``θ −= lr·g/√(G+ε)``,
  with ``g`` the gradient of the row's loss plus ``λ·θ`` (an L2 penalty applied once per
  row the parameter occurs in). Regression loss ``½(ŷ − y)²``; ranking loss BPR
  ``−ln σ(ŷ(x⁺) − ŷ(x⁻))`` (Rendle et al. 2009) for a positive and a sampled negative
  item of the same user (and context).
- Coordinate descent on ``Σ_r (ŷ_r − y_r)² + Σ_θ λ·n_θ·θ²`` (``n_θ``: rows the parameter
  occurs in, the same penalty SGD applies) with the cached residuals ``e_r = ŷ_r − y_r``
  and the cached sums ``q_rf = Σⱼ v_jf x_rj``: since ŷ is linear in each single
  parameter θ, ``ŷ_r(θ') = ŷ_r(θ) + (θ' − θ)·h_r`` with ``h_r = ∂ŷ_r/∂θ`` (``x_rj`` for wⱼ,
  ``x_rj·(q_rf − v_jf x_rj)`` for v_jf), and the exact minimiser in θ is

      θ* = (θ·Σ_r h_r² − Σ_r e_r h_r) / (Σ_r h_r² + λ·n_θ),

  after which ``e_r += (θ* − θ)·h_r`` (and ``q_rf += (θ* − θ)·x_rj`` for v_jf).
- Gibbs sampling (MCMC, Bayesian FM as in libFM and myfm) uses the same caches: with
  noise precision α and a prior ``N(μ, 1/λ)`` on θ, the conditional of θ is normal with
  precision ``P = α·Σh² + λ`` and mean ``(α(θ·Σh² − Σeh) + λμ)/P``; a draw is
  ``mean + z/√P`` with ``z ~ N(0, 1)``. Coordinate descent is the same update with
  ``α = 1``, ``λ = λ·n_θ``, ``μ = 0`` and ``z = 0``.

Scoring all items for a user splits a row into a user part ``U`` (user one-hot, user
features, context) and an item part ``I`` (item one-hot, item features), disjoint sets of
features, so

    ŷ(u, i) = w0 + c(U) + c(I) + s(U)·s(I),   c(P) = Σ_{j∈P} wⱼxⱼ + ½(‖s(P)‖² − Σ_{j∈P,f} v_jf² xⱼ²),

with ``s(P)_f = Σ_{j∈P} v_jf xⱼ``: the item sums ``c(I), s(I)`` are computed once
(:func:`part_sums`) and a user's scores are one dot product per item.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from recli.kernels._search import slice_contains

ADAGRAD_EPS = 1e-8


@njit(cache=True)
def predict_row(idx, val, w0, w, V, s):
    """``ŷ(x) = w0 + c(x)`` of one row (the O(k·n) form above); fills ``s[f] = Σⱼ v_jf xⱼ``."""
    return w0 + part_terms(idx, val, w, V, s)


@njit(cache=True)
def _adagrad(theta, g, acc, lr):
    """AdaGrad: returns ``(new θ, new accumulator)`` for gradient ``g``."""
    acc += g * g
    return theta - lr * g / np.sqrt(acc + ADAGRAD_EPS), acc


@njit(cache=True)
def sgd_row_step(idx, val, g, s, w0, w, V, G0, Gw, GV, lr, reg_w, reg_v):
    """One AdaGrad step on a row whose loss has derivative ``g`` in ŷ (regression:
    ``g = ŷ − y``); ``s`` holds the row's sums from :func:`predict_row` (before the step).
    ``w0`` and ``G0`` are 1-element arrays; ``w0`` is not regularised."""
    w0[0], G0[0] = _adagrad(w0[0], g, G0[0], lr)
    for t in range(idx.shape[0]):
        j, x = idx[t], val[t]
        w[j], Gw[j] = _adagrad(w[j], g * x + reg_w * w[j], Gw[j], lr)
        for f in range(V.shape[1]):
            v = np.float64(V[j, f])
            V[j, f], GV[j, f] = _adagrad(v, g * (x * s[f] - v * x * x) + reg_v * v, GV[j, f], lr)


@njit(cache=True)
def sgd_regression_epoch(indptr, indices, data, y, order, w0, w, V, G0, Gw, GV, lr, reg_w, reg_v):
    """One pass of :func:`sgd_row_step` over the rows ``order`` of the design matrix
    (CSR); returns the summed squared error, each taken just before its step."""
    s = np.zeros(V.shape[1], np.float64)
    total = 0.0
    for r in order:
        a, b = indptr[r], indptr[r + 1]
        e = predict_row(indices[a:b], data[a:b], w0[0], w, V, s) - y[r]
        total += e * e
        sgd_row_step(indices[a:b], data[a:b], e, s, w0, w, V, G0, Gw, GV, lr, reg_w, reg_v)
    return total


@njit(cache=True)
def part_terms(idx, val, w, V, s):
    """``c(P) = Σ wⱼxⱼ + ½(‖s‖² − Σ v²x²)`` of a feature set (module docstring); fills
    ``s[f] = Σⱼ v_jf xⱼ``."""
    lin = 0.0
    for t in range(idx.shape[0]):
        lin += w[idx[t]] * val[t]
    pair = 0.0
    for f in range(V.shape[1]):
        sf = 0.0
        sq = 0.0
        for t in range(idx.shape[0]):
            vx = np.float64(V[idx[t], f]) * val[t]
            sf += vx
            sq += vx * vx
        s[f] = sf
        pair += sf * sf - sq
    return lin + 0.5 * pair


@njit(cache=True)
def _bpr_side_step(j, a, b, sp_, sn, g, w, V, Gw, GV, lr, reg_w, reg_v):
    """AdaGrad step of feature ``j`` with value ``a`` in x⁺ and ``b`` in x⁻:
    ``∂(ŷ⁺ − ŷ⁻)/∂wⱼ = a − b``, ``∂(ŷ⁺ − ŷ⁻)/∂v_jf = a s⁺_f − b s⁻_f − v_jf (a² − b²)``."""
    w[j], Gw[j] = _adagrad(w[j], g * (a - b) + reg_w * w[j], Gw[j], lr)
    for f in range(V.shape[1]):
        v = np.float64(V[j, f])
        grad = g * (a * sp_[f] - b * sn[f] - v * (a * a - b * b)) + reg_v * v
        V[j, f], GV[j, f] = _adagrad(v, grad, GV[j, f], lr)


@njit(cache=True)
def bpr_pair_step(u_idx, u_val, p_idx, p_val, n_idx, n_val, w, V, Gw, GV, lr, reg_w, reg_v, s_u, s_p, s_n):
    """One AdaGrad BPR step for x⁺ = U ∪ I⁺ and x⁻ = U ∪ I⁻ (shared user part ``u_*``,
    item parts ``p_*`` and ``n_*`` with sorted indices, each disjoint from U). The loss
    ``−ln σ(d)``, ``d = ŷ⁺ − ŷ⁻``, has derivative ``g = −σ(−d)`` in d; w0 cancels in d.
    Returns ``ln σ(d)`` before the step. ``s_*`` are scratch vectors of length k."""
    k = V.shape[1]
    part_terms(u_idx, u_val, w, V, s_u)  # only s(U): c(U) cancels in d
    cp = part_terms(p_idx, p_val, w, V, s_p)
    cn = part_terms(n_idx, n_val, w, V, s_n)
    d = cp - cn
    for f in range(k):
        d += s_u[f] * (s_p[f] - s_n[f])
    g = -1.0 / (1.0 + np.exp(d))
    for f in range(k):  # s⁺ = s(U) + s(I⁺), s⁻ = s(U) + s(I⁻)
        s_p[f] += s_u[f]
        s_n[f] += s_u[f]
    for t in range(u_idx.shape[0]):
        x = np.float64(u_val[t])
        _bpr_side_step(u_idx[t], x, x, s_p, s_n, g, w, V, Gw, GV, lr, reg_w, reg_v)
    # the item parts may share features (a genre): merge the sorted index lists
    a, b = 0, 0
    while a < p_idx.shape[0] or b < n_idx.shape[0]:
        if b >= n_idx.shape[0] or (a < p_idx.shape[0] and p_idx[a] < n_idx[b]):
            _bpr_side_step(p_idx[a], np.float64(p_val[a]), 0.0, s_p, s_n, g, w, V, Gw, GV, lr, reg_w, reg_v)
            a += 1
        elif a >= p_idx.shape[0] or n_idx[b] < p_idx[a]:
            _bpr_side_step(n_idx[b], 0.0, np.float64(n_val[b]), s_p, s_n, g, w, V, Gw, GV, lr, reg_w, reg_v)
            b += 1
        else:
            _bpr_side_step(p_idx[a], np.float64(p_val[a]), np.float64(n_val[b]), s_p, s_n, g, w, V, Gw, GV, lr,
                           reg_w, reg_v)
            a += 1
            b += 1
    return -np.log1p(np.exp(-d)) if d > -30.0 else d


@njit(cache=True)
def bpr_epoch(ui_indptr, ui_indices, cell_users, order, candidates, up_ptr, up_idx, up_val, ip_ptr, ip_idx, ip_val,
              ctx_ptr, ctx_idx, ctx_val, w, V, Gw, GV, lr, reg_w, reg_v):
    """One BPR pass over the positive cells ``order`` (positions in the user-item CSR).
    The negative of a cell is the first of its ``candidates`` row the user has not
    interacted with (the cell is skipped when all are positives). Row parts: user part
    = user CSR row + the cell's context row, item parts = item CSR rows (all over the
    feature space). Returns ``(summed ln σ(d), steps taken)``."""
    k = V.shape[1]
    s_u, s_p, s_n = np.zeros(k), np.zeros(k), np.zeros(k)
    longest = np.diff(up_ptr).max() + (np.diff(ctx_ptr).max() if ctx_ptr.shape[0] > 1 else 0)
    u_idx, u_val = np.empty(longest, up_idx.dtype), np.empty(longest, up_val.dtype)  # the user part, reused
    total = 0.0
    steps = 0
    for c in order:
        u = cell_users[c]
        lo, hi = ui_indptr[u], ui_indptr[u + 1]
        neg = -1
        for t in range(candidates.shape[1]):
            cand = candidates[c, t]
            if not slice_contains(ui_indices, lo, hi, cand):
                neg = cand
                break
        if neg < 0:
            continue
        i = ui_indices[c]
        n = 0
        for t in range(up_ptr[u], up_ptr[u + 1]):
            u_idx[n], u_val[n] = up_idx[t], up_val[t]
            n += 1
        for t in range(ctx_ptr[c], ctx_ptr[c + 1]):
            u_idx[n], u_val[n] = ctx_idx[t], ctx_val[t]
            n += 1
        total += bpr_pair_step(u_idx[:n], u_val[:n], ip_idx[ip_ptr[i]:ip_ptr[i + 1]], ip_val[ip_ptr[i]:ip_ptr[i + 1]],
                               ip_idx[ip_ptr[neg]:ip_ptr[neg + 1]], ip_val[ip_ptr[neg]:ip_ptr[neg + 1]],
                               w, V, Gw, GV, lr, reg_w, reg_v, s_u, s_p, s_n)
        steps += 1
    return total, steps


@njit(cache=True, parallel=True)
def part_sums(indptr, indices, data, w, V, c_out, s_out):
    """``c(P)`` and ``s(P)`` (module docstring) of every row of a CSR over the feature
    space: ``c_out[r]``, ``s_out[r, :]`` (rows in parallel, each in a fixed order)."""
    for r in prange(indptr.shape[0] - 1):
        s = np.zeros(V.shape[1], np.float64)
        a, b = indptr[r], indptr[r + 1]
        c_out[r] = part_terms(indices[a:b], data[a:b], w, V, s)
        for f in range(V.shape[1]):
            s_out[r, f] = s[f]


@njit(cache=True)
def residuals(indptr, indices, data, y, w0, w, V, e, q):
    """The caches of coordinate descent: ``e[r] = ŷ_r − y_r`` and ``q[r, f] = Σⱼ v_jf x_rj``."""
    s = np.zeros(V.shape[1], np.float64)
    for r in range(indptr.shape[0] - 1):
        a, b = indptr[r], indptr[r + 1]
        e[r] = predict_row(indices[a:b], data[a:b], w0, w, V, s) - y[r]
        for f in range(V.shape[1]):
            q[r, f] = s[f]


@njit(cache=True)
def _posterior(old, hh, eh, alpha, lam, mu, z):
    """``(α(θ·Σh² − Σeh) + λμ) / (αΣh² + λ) + z/√(αΣh² + λ)`` (module docstring)."""
    prec = alpha * hh + lam
    return (alpha * (old * hh - eh) + lam * mu) / prec + z / np.sqrt(prec)


@njit(cache=True)
def update_w(j, cptr, crows, cvals, e, w, alpha, lam, lam_row, mu, z):
    """Set ``wⱼ`` from its conditional (``h_r = x_rj``, prior precision ``λ + λ_row·n_j``
    with ``n_j`` the rows of column ``j`` of the design matrix, CSC); ``e`` updated in
    place. A feature in no row is set to 0."""
    a, b = cptr[j], cptr[j + 1]
    if a == b:
        w[j] = 0.0
        return
    hh = 0.0
    eh = 0.0
    for t in range(a, b):
        h = np.float64(cvals[t])
        hh += h * h
        eh += e[crows[t]] * h
    old = np.float64(w[j])
    w[j] = _posterior(old, hh, eh, alpha, lam + lam_row * (b - a), mu, z)
    delta = np.float64(w[j]) - old  # what was stored (float32), so e stays exact
    for t in range(a, b):
        e[crows[t]] += delta * cvals[t]


@njit(cache=True)
def update_v(j, f, cptr, crows, cvals, e, q, V, alpha, lam, lam_row, mu, z):
    """Set ``v_jf`` from its conditional (``h_r = x_rj (q_rf − v_jf x_rj)``), updating
    ``e`` and ``q[:, f]`` in place; as :func:`update_w` otherwise."""
    a, b = cptr[j], cptr[j + 1]
    if a == b:
        V[j, f] = 0.0
        return
    old = np.float64(V[j, f])
    hh = 0.0
    eh = 0.0
    for t in range(a, b):
        x = np.float64(cvals[t])
        h = x * (q[crows[t], f] - old * x)
        hh += h * h
        eh += e[crows[t]] * h
    V[j, f] = _posterior(old, hh, eh, alpha, lam + lam_row * (b - a), mu, z)
    delta = np.float64(V[j, f]) - old
    for t in range(a, b):
        r = crows[t]
        x = np.float64(cvals[t])
        e[r] += delta * x * (q[r, f] - old * x)
        q[r, f] += delta * x


@njit(cache=True)
def _shift_w0(e, w0, alpha, z):
    """w0 from its conditional under a flat prior: mean ``w0 − mean(e)``, precision ``α·n``."""
    n = e.shape[0]
    shift = -e.sum() / n + z / np.sqrt(alpha * n)
    w0[0] += shift
    for r in range(n):
        e[r] += shift


@njit(cache=True)
def cd_epoch(cptr, crows, cvals, e, q, w0, w, V, reg_w, reg_v):
    """One coordinate-descent sweep (``α = 1``, ``λ = 0``, ``λ_row`` = the penalty,
    ``μ = z = 0``: the exact minimiser): w0, then every wⱼ, then for each factor f every
    v_jf. Returns the mean squared residual after it."""
    _shift_w0(e, w0, 1.0, 0.0)
    for j in range(w.shape[0]):
        update_w(j, cptr, crows, cvals, e, w, 1.0, 0.0, reg_w, 0.0, 0.0)
    for f in range(V.shape[1]):
        for j in range(V.shape[0]):
            update_v(j, f, cptr, crows, cvals, e, q, V, 1.0, 0.0, reg_v, 0.0, 0.0)
    return (e * e).sum() / e.shape[0]


@njit(cache=True)
def gibbs_sweep(cptr, crows, cvals, e, q, w0, w, V, alpha, group, mu_w, lam_w, mu_v, lam_v, z0, zw, zv):
    """One Gibbs sweep of Bayesian FM (Freudenthaler, Schmidt-Thieme & Rendle 2011): each
    parameter drawn from its conditional given the others, noise precision ``α`` and the
    prior ``N(μ_g, 1/λ_g)`` of its group ``g = group[j]`` (per factor for v), with the
    standard normal draws ``z0``, ``zw[j]``, ``zv[j, f]`` given. Same order and caches as
    :func:`cd_epoch`."""
    _shift_w0(e, w0, alpha, z0)
    for j in range(w.shape[0]):
        update_w(j, cptr, crows, cvals, e, w, alpha, lam_w[group[j]], 0.0, mu_w[group[j]], zw[j])
    for f in range(V.shape[1]):
        for j in range(V.shape[0]):
            g = group[j]
            update_v(j, f, cptr, crows, cvals, e, q, V, alpha, lam_v[g, f], 0.0, mu_v[g, f], zv[j, f])
    return (e * e).sum() / e.shape[0]
