"""WARP: weighted approximate-rank pairwise loss (Weston, Bengio & Usunier 2011), as in
LightFM (Kula 2015), with its optional k-order-statistic variant (k-OS, Weston et al. 2013).

For a user ``u`` and a positive item ``i`` with score ``x_ui = U_u · V_i + b_i``, draw
negatives ``j`` uniformly (a draw that is one of ``u``'s positives is redrawn and not
counted) until one violates the margin, ``x_uj > x_ui - 1``, or ``max_sampled`` negatives
have been counted. If the ``N``-th negative violates, the rank of ``i`` is estimated as
``floor((n_items - 1) / N)`` and the step minimises ::

    L_N · (1 - x_ui + x_uj),       L_N = min(ln(max(1, floor((n_items - 1) / N))), 10)

(the clip at 10 is LightFM's ``MAX_LOSS``) with gradients, taken at the values before the
step::

    g(V_i) = -L_N·U_u + reg·V_i     g(b_i) = -L_N + reg·b_i
    g(V_j) =  L_N·U_u + reg·V_j     g(b_j) =  L_N + reg·b_j
    g(U_u) =  L_N·(V_j - V_i) + reg·U_u

Schedules: ``adagrad`` (LightFM's default): every parameter ``p`` has an accumulator ``G``
starting at 1; ``p -= lr / sqrt(G) · g`` then ``G += g²``. ``constant``: ``p -= lr · g``
(the caller may lower ``lr`` per epoch for inverse scaling). ``reg`` is an L2 penalty on
the parameters a step touches; with ``reg = 0`` the step equals LightFM's with
``item_alpha = user_alpha = 0`` (its default), except that LightFM also moves a user bias
that cancels out of every ranking, which is left out here.

k-OS: instead of the stored positive, draw ``min(kos_n, |u|)`` positives of ``u`` (with
replacement), and use the ``k``-th highest scored of them (``k = min(kos_k, drawn)``).

Parallelism and randomness are as in :mod:`recli.kernels.bpr`: one contiguous user chunk
per thread (Hogwild on item rows), one random stream per chunk from
``(seed, epoch, chunk)``, so one thread is bit-for-bit reproducible. An epoch makes one
WARP attempt per stored interaction, user by user in random order.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from recli.kernels import FASTMATH
from recli.kernels._heap import insert_descending
from recli.kernels.random_streams import chunk_users, draw_negative, fold_in_row, next_below, user_start

MAX_LOSS = 10.0


@njit(cache=True)
def rank_weight(n_items, n_sampled):
    """``L_N = min(ln(max(1, floor((n_items - 1) / N))), 10)``."""
    est = (n_items - 1) // n_sampled
    if est < 1:
        est = 1
    return min(math.log(est), MAX_LOSS)


@njit(cache=True, fastmath=FASTMATH)
def _score(u, V, b, i):
    """``x = u·V_i + b_i`` for the user vector ``u``."""
    x = b[i]
    for f in range(u.shape[0]):
        x += u[f] * V[i, f]
    return x


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _violator(state, u, V, b, indices, start, end, x_ui, max_sampled):
    """Draw negatives for the user vector ``u`` (a draw in the row ``indices[start:end]`` is
    redrawn and not counted; at most ``10 · max_sampled`` draws in all) until the ``N``-th
    counted one violates the margin, ``x_uj > x_ui - 1``, or ``max_sampled`` were counted.
    Returns ``(state, j, N, x_uj)``; ``j`` is -1 when none violated."""
    n_items = V.shape[0]
    n_sampled = 0
    left = 10 * max_sampled
    while left > 0:
        state, j, used = draw_negative(state, indices, start, end, n_items, left)
        left -= used
        if j < 0:
            break
        n_sampled += 1
        x_uj = _score(u, V, b, j)
        if x_uj > x_ui - 1.0:
            return state, j, n_sampled, x_uj
        if n_sampled >= max_sampled:
            break
    return state, np.int64(-1), n_sampled, np.float32(0.0)


@njit(cache=True, fastmath=FASTMATH)
def _sgd(p, g, G, lr, adagrad):
    """New value of one parameter and of its accumulator."""
    if adagrad:
        return p - lr / math.sqrt(G) * g, G + g * g
    return p - lr * g, G


@njit(cache=True, fastmath=FASTMATH)
def _warp_step(U, V, b, GU, GV, Gb, u, i, j, weight, lr, reg, adagrad):
    """One WARP step in place for ``(u, i, j)`` with rank weight ``weight``."""
    L = np.float32(weight)
    lrf = np.float32(lr)
    regf = np.float32(reg)
    b[i], Gb[i] = _sgd(b[i], -L + regf * b[i], Gb[i], lrf, adagrad)
    b[j], Gb[j] = _sgd(b[j], L + regf * b[j], Gb[j], lrf, adagrad)
    for f in range(U.shape[1]):
        uf = U[u, f]
        vi = V[i, f]
        vj = V[j, f]
        V[i, f], GV[i, f] = _sgd(vi, -L * uf + regf * vi, GV[i, f], lrf, adagrad)
        V[j, f], GV[j, f] = _sgd(vj, L * uf + regf * vj, GV[j, f], lrf, adagrad)
        U[u, f], GU[u, f] = _sgd(uf, L * (vj - vi) + regf * uf, GU[u, f], lrf, adagrad)


@njit(cache=True, fastmath=FASTMATH)
def warp_apply(U, V, b, GU, GV, Gb, users, pos, neg, n_sampled, lr, reg, adagrad):
    """Apply WARP steps for given ``(users[s], pos[s], neg[s])`` whose violating negative
    was the ``n_sampled[s]``-th counted draw, in order: the deterministic half of the
    kernel, for tests. Returns each step's loss ``L_N · (1 - x_ui + x_uj)`` (before it)."""
    n_items = V.shape[0]
    out = np.empty(len(users), dtype=np.float64)
    for s in range(len(users)):
        u, i, j = users[s], pos[s], neg[s]
        w = rank_weight(n_items, n_sampled[s])
        out[s] = w * (1.0 - _score(U[u], V, b, i) + _score(U[u], V, b, j))
        _warp_step(U, V, b, GU, GV, Gb, u, i, j, w, lr, reg, adagrad)
    return out


@njit(cache=True, fastmath=FASTMATH)
def _kos_positive(U, V, b, u, indices, start, nu, kos_k, kos_n, state, ids, vals):
    """k-OS: the ``k``-th highest scored of ``min(kos_n, nu)`` positives drawn with
    replacement; returns ``(state, item)``."""
    n = min(kos_n, nu)
    for t in range(n):
        state, r = next_below(state, nu)
        item = indices[start + r]
        insert_descending(vals, ids, t, _score(U[u], V, b, item), item)
    return state, ids[min(kos_k, n) - 1]


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _warp_epoch(indptr, indices, user_order, bounds, U, V, b, GU, GV, Gb, lr, reg, adagrad,
                max_sampled, kos_k, kos_n, seed, epoch, out_loss, out_updates, out_count):
    n_items = V.shape[0]
    for c in prange(len(bounds) - 1):
        state, lo, hi = chunk_users(user_order, bounds, c, seed, epoch)
        ids = np.empty(max(kos_n, 1), dtype=np.int64)
        vals = np.empty(max(kos_n, 1), dtype=np.float32)
        loss_sum = 0.0
        updates = 0
        count = 0
        for p in range(lo, hi):
            u = user_order[p]
            state, start, nu, off = user_start(indptr, u, n_items, state)
            end = start + nu
            for s in range(nu):
                if kos_k > 0:
                    state, i = _kos_positive(U, V, b, u, indices, start, nu, kos_k, kos_n, state, ids, vals)
                else:
                    i = indices[start + (off + s) % nu]
                x_ui = _score(U[u], V, b, i)
                count += 1
                state, j, n_sampled, x_uj = _violator(state, U[u], V, b, indices, start, end, x_ui, max_sampled)
                if j >= 0:
                    w = rank_weight(n_items, n_sampled)
                    loss_sum += w * (1.0 - x_ui + x_uj)
                    _warp_step(U, V, b, GU, GV, Gb, u, i, j, w, lr, reg, adagrad)
                    updates += 1
        out_loss[c] = loss_sum
        out_updates[c] = updates
        out_count[c] = count


def warp_epoch(indptr, indices, user_order, bounds, U, V, b, GU, GV, Gb, lr, reg, adagrad,
               max_sampled, seed, epoch, kos_k=0, kos_n=10):
    """Run one WARP epoch in place over a CSR ``user_items`` (sorted indices).

    Parameters
    ----------
    indptr, indices : int64 / int32 CSR arrays of the user-item matrix (rows sorted).
    user_order, bounds : as in :func:`recli.kernels.bpr.bpr_epoch` (one chunk per thread).
    U, V, b : float32 user factors, item factors, item biases; updated in place.
    GU, GV, Gb : float32 adagrad accumulators shaped like U, V, b (start them at 1);
        untouched when ``adagrad`` is false.
    lr, reg : learning rate and L2 penalty; ``adagrad`` selects the schedule.
    max_sampled : most negatives counted per positive.
    seed, epoch : random stream of chunk ``c`` seeded by ``(seed, epoch, c)``.
    kos_k, kos_n : k-OS variant when ``kos_k > 0``.

    Returns
    -------
    (mean loss per positive, fraction of positives that caused an update, positives seen)
    """
    n_chunks = len(bounds) - 1
    out_loss = np.zeros(n_chunks, dtype=np.float64)
    out_updates = np.zeros(n_chunks, dtype=np.int64)
    out_count = np.zeros(n_chunks, dtype=np.int64)
    _warp_epoch(indptr, indices, user_order, bounds, U, V, b, GU, GV, Gb, np.float32(lr),
                np.float32(reg), bool(adagrad), int(max_sampled), int(kos_k), int(kos_n),
                np.uint64(seed), np.uint64(epoch), out_loss, out_updates, out_count)
    n = int(out_count.sum())
    if n == 0:
        return 0.0, 0.0, 0
    return float(out_loss.sum() / n), float(out_updates.sum() / n), n


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def warp_fold_in(indptr, indices, V, b, epochs, lr, reg, adagrad, max_sampled, seed):
    """User vectors for new users (rows of a history CSR) by WARP steps on the user vector
    only, against fixed items. Each row starts at zero with fresh accumulators; its result
    depends only on ``seed`` and the row's items."""
    n_rows = len(indptr) - 1
    n_items, k = V.shape
    out = np.zeros((n_rows, k), dtype=np.float32)
    lrf = np.float32(lr)
    regf = np.float32(reg)
    for r in prange(n_rows):
        start, end, state = fold_in_row(indptr, indices, r, n_items, seed)
        u = out[r]
        G = np.ones(k, dtype=np.float32)
        for _epoch in range(epochs):
            for p in range(start, end):
                i = indices[p]
                x_ui = _score(u, V, b, i)
                state, j, n_sampled, _ = _violator(state, u, V, b, indices, start, end, x_ui, max_sampled)
                if j >= 0:
                    L = np.float32(rank_weight(n_items, n_sampled))
                    for f in range(k):
                        u[f], G[f] = _sgd(u[f], L * (V[j, f] - V[i, f]) + regf * u[f], G[f], lrf, adagrad)
    return out
