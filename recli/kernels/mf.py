"""Biased matrix factorisation trained by SGD (Koren, Bell & Volinsky 2009, eq. 5;
the "Funk SVD" updates as in Surprise's SVD).

Prediction ``r̂ᵤᵢ = μ + bᵤ + bᵢ + pᵤ·qᵢ`` with μ the (fixed) global mean. For one
observed rating, with ``e = r − r̂``::

    bᵤ ← bᵤ + lr·(e − λ_b·bᵤ)          bᵢ ← bᵢ + lr·(e − λ_b·bᵢ)
    pᵤ ← pᵤ + lr·(e·qᵢ − λ·pᵤ)         qᵢ ← qᵢ + lr·(e·pᵤ − λ·qᵢ)   (old pᵤ on the right)

An epoch visits every rating once. Ratings are split into one contiguous block per
thread; each block is visited in an order drawn from its own seeded random stream
(splitmix64 of seed, epoch and block), and the blocks run in parallel without locks
(Hogwild, Recht et al. 2011): updates of two threads to the same row may interleave.
With one block (one thread) an epoch is bit-for-bit deterministic.

With ``negatives > 0`` each rating is followed by that many updates toward 0 for items
drawn uniformly among those the user has *not* rated (implicit-feedback mode).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from recli.kernels import FASTMATH
from recli.kernels._search import slice_contains
from recli.kernels.random_streams import splitmix_next


@njit(cache=True)
def stream_seed(seed, epoch, block):
    """A well-mixed, independent starting state for (seed, epoch, block)."""
    state = np.uint64(seed)
    state, a = splitmix_next(state)
    state = a ^ np.uint64(epoch + 1) * np.uint64(0xD1B54A32D192ED03)
    state, b = splitmix_next(state)
    state = b ^ np.uint64(block + 1) * np.uint64(0x8CB92BA72F3D8DD7)
    state, c = splitmix_next(state)
    return c


@njit(cache=True, fastmath=FASTMATH, inline="always")
def sgd_update(u, i, r, mu, P, Q, bu, bi, lr, reg, reg_bias):
    """One SGD step on rating ``r`` of (u, i); returns the squared error before it."""
    k = P.shape[1]
    dot = np.float32(0.0)
    for f in range(k):
        dot += P[u, f] * Q[i, f]
    e = np.float32(r - (mu + bu[u] + bi[i] + dot))
    bu[u] += lr * (e - reg_bias * bu[u])
    bi[i] += lr * (e - reg_bias * bi[i])
    for f in range(k):
        pf = P[u, f]
        qf = Q[i, f]
        P[u, f] = pf + lr * (e * qf - reg * pf)
        Q[i, f] = qf + lr * (e * pf - reg * qf)
    return np.float64(e) * e


@njit(cache=True, fastmath=FASTMATH)
def sgd_steps(rows, cols, vals, order, mu, P, Q, bu, bi, lr, reg, reg_bias):
    """Apply :func:`sgd_update` to ratings ``order[0], order[1], …`` in that order (serial;
    the reference tests compare it step by step). Returns the summed squared error."""
    total = 0.0
    for j in order:
        total += sgd_update(rows[j], cols[j], vals[j], mu, P, Q, bu, bi, lr, reg, reg_bias)
    return total


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _epoch(indptr, indices, rows, cols, vals, mu, P, Q, bu, bi, lr, reg, reg_bias, negatives, seed, epoch,
           n_blocks, out):
    n = rows.shape[0]
    n_items = Q.shape[0]
    per = (n + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        lo = blk * per
        hi = min(n, lo + per)
        state = stream_seed(seed, epoch, blk)
        # Fisher–Yates shuffle of this block's ratings from its own stream.
        order = np.arange(lo, hi)
        for j in range(hi - lo - 1, 0, -1):
            state, bits = splitmix_next(state)
            m = np.int64(bits % np.uint64(j + 1))
            order[j], order[m] = order[m], order[j]
        total = 0.0
        for j in order:
            u = rows[j]
            total += sgd_update(u, cols[j], vals[j], mu, P, Q, bu, bi, lr, reg, reg_bias)
            for _ in range(negatives):
                # A few tries find an unrated item unless the user rated almost all.
                for _try in range(8):
                    state, bits = splitmix_next(state)
                    item = np.int64(bits % np.uint64(n_items))
                    if not slice_contains(indices, indptr[u], indptr[u + 1], item):
                        sgd_update(u, item, np.float32(0.0), mu, P, Q, bu, bi, lr, reg, reg_bias)
                        break
        out[blk] = total


def mf_epoch(indptr, indices, rows, cols, vals, mu, P, Q, bu, bi, lr, reg, reg_bias, negatives, seed, epoch,
             n_blocks) -> float:
    """One Hogwild SGD epoch over every rating (in place); returns the mean squared
    error of the ratings, each measured just before its update.

    Parameters
    ----------
    indptr, indices : the user-item CSR structure (int64, int32), for negative sampling.
    rows, cols, vals : the ratings in CSR order (int32, int32, float32).
    mu : global mean; P, Q : float32 factors; bu, bi : float32 biases (all in place).
    lr, reg, reg_bias : learning rate and L2 penalties on factors and biases.
    negatives : sampled unrated items per rating, updated toward 0 (0 = explicit only).
    seed, epoch, n_blocks : the random streams; ``n_blocks`` = threads (1 = deterministic).
    """
    out = np.zeros(n_blocks, np.float64)
    f32 = np.float32
    # uint64 wrap-around is the RNG's arithmetic; only NUMBA_DISABLE_JIT runs would warn
    with np.errstate(over="ignore"):
        _epoch(indptr, indices, rows, cols, vals, f32(mu), P, Q, bu, bi, f32(lr), f32(reg), f32(reg_bias),
               int(negatives), int(seed), int(epoch), int(n_blocks), out)
    return float(out.sum()) / max(1, rows.shape[0])


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def predict_pairs(users, items, mu, P, Q, bu, bi, out):
    """out[j] = μ + b_u + b_i + p_u·q_i for each (users[j], items[j])."""
    k = P.shape[1]
    for j in prange(users.shape[0]):
        u, i = users[j], items[j]
        dot = np.float32(0.0)
        for f in range(k):
            dot += P[u, f] * Q[i, f]
        out[j] = mu + bu[u] + bi[i] + dot
