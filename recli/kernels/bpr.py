"""Bayesian personalised ranking (Rendle, Freudenthaler, Gantner & Schmidt-Thieme 2009).

For a user ``u``, a positive item ``i`` (in ``u``'s row) and a negative item ``j``
(uniform over the catalogue, redrawn while it is one of ``u``'s positives)::

    x_uij = U_u · (V_i - V_j) + b_i - b_j
    loss  = -ln σ(x_uij)                          (BPR-Opt, without the prior term)
    z     = σ(-x_uij) = 1 - σ(x_uij)              (= -∂loss/∂x_uij)
    U_u  += lr · ( z·(V_i - V_j) - reg·U_u )
    V_i  += lr · ( z·U_u         - reg·V_i )
    V_j  += lr · (-z·U_u         - reg·V_j )
    b_i  += lr · ( z - reg·b_i ),   b_j += lr · (-z - reg·b_j)

All right-hand sides use the values from before the step (as in implicit's ``bpr_update``).

Parallelism is Hogwild (Niu et al. 2011): users are split into one contiguous chunk per
thread, balanced by interaction count; each chunk owns its users' rows of ``U`` and
writes item rows of ``V``/``b`` without locks (sparse, rare collisions only perturb SGD
a little). Each chunk draws from its own random stream seeded by
``(seed, epoch, chunk)``; with one thread the epoch is bit-for-bit reproducible.

An epoch draws ``nnz`` triples (one per stored interaction, like implicit), but visits
them user by user in a random user order and, within a user, each positive once starting
at a random offset. Keeping a user's row hot in cache for its samples is what makes this
faster than sampling a random interaction for every triple.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from recli.kernels import FASTMATH
from recli.kernels._chunks import balanced_bounds
from recli.kernels.random_streams import chunk_users, draw_negative, fold_in_row, user_start


@njit(cache=True, fastmath=FASTMATH)
def _bpr_step(U, V, b, u, i, j, lr, reg):
    """Apply one BPR SGD step in place; returns ``(loss, x_uij)``."""
    k = U.shape[1]
    x = b[i] - b[j]
    for f in range(k):
        x += U[u, f] * (V[i, f] - V[j, f])
    # σ(-x) and -ln σ(x) from one exp, stable for either sign of x.
    e = math.exp(-abs(x))
    if x >= 0:
        z = e / (1.0 + e)
        loss = math.log1p(e)
    else:
        z = 1.0 / (1.0 + e)
        loss = math.log1p(e) - x
    zf = np.float32(z)
    lrf = np.float32(lr)
    regf = np.float32(reg)
    for f in range(k):
        uf = U[u, f]
        vi = V[i, f]
        vj = V[j, f]
        U[u, f] = uf + lrf * (zf * (vi - vj) - regf * uf)
        V[i, f] = vi + lrf * (zf * uf - regf * vi)
        V[j, f] = vj + lrf * (-zf * uf - regf * vj)
    bi = b[i]
    bj = b[j]
    b[i] = bi + lrf * (zf - regf * bi)
    b[j] = bj + lrf * (-zf - regf * bj)
    return loss, x


@njit(cache=True, fastmath=FASTMATH)
def bpr_apply(U, V, b, users, pos, neg, lr, reg):
    """Apply BPR steps for the given ``(users[s], pos[s], neg[s])`` triples, in order.

    The deterministic half of the kernel (no sampling), exposed so tests can compare one
    step with a plain NumPy reference. Returns the per-triple loss ``-ln σ(x_uij)``.
    """
    out = np.empty(len(users), dtype=np.float64)
    for s in range(len(users)):
        loss, _ = _bpr_step(U, V, b, users[s], pos[s], neg[s], lr, reg)
        out[s] = loss
    return out


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _bpr_epoch(indptr, indices, user_order, bounds, U, V, b, lr, reg, seed, epoch,
               max_tries, out_loss, out_correct, out_count):
    n_items = V.shape[0]
    n_chunks = len(bounds) - 1
    for c in prange(n_chunks):
        state, lo, hi = chunk_users(user_order, bounds, c, seed, epoch)
        loss_sum = 0.0
        correct = 0
        count = 0
        for p in range(lo, hi):
            u = user_order[p]
            state, start, nu, off = user_start(indptr, u, n_items, state)
            end = start + nu
            for s in range(nu):
                i = indices[start + (off + s) % nu]
                state, j, _ = draw_negative(state, indices, start, end, n_items, max_tries)
                if j < 0:
                    continue  # only users owning almost every item get here
                loss, x = _bpr_step(U, V, b, u, i, j, lr, reg)
                loss_sum += loss
                correct += x > 0
                count += 1
        out_loss[c] = loss_sum
        out_correct[c] = correct
        out_count[c] = count


def bpr_epoch(indptr, indices, user_order, bounds, U, V, b, lr, reg, seed, epoch, max_tries=32):
    """Run one BPR epoch in place over a CSR ``user_items`` (sorted indices).

    Parameters
    ----------
    indptr, indices : int64 / int32 CSR arrays of the user-item matrix (rows sorted).
    user_order : int64 permutation of the users, reshuffled in place chunk by chunk.
    bounds : int64 chunk boundaries into ``user_order`` (:func:`balanced_bounds`);
        one chunk per thread.
    U, V, b : float32 user factors, item factors, item biases; updated in place.
    lr, reg : learning rate and L2 regularisation.
    seed, epoch : the random stream of chunk ``c`` is seeded by ``(seed, epoch, c)``.
    max_tries : negative draws per triple before the triple is skipped.

    Returns
    -------
    (mean loss, fraction of triples ranked correctly before their step, triples used)
    """
    n_chunks = len(bounds) - 1
    out_loss = np.zeros(n_chunks, dtype=np.float64)
    out_correct = np.zeros(n_chunks, dtype=np.int64)
    out_count = np.zeros(n_chunks, dtype=np.int64)
    _bpr_epoch(indptr, indices, user_order, bounds, U, V, b, np.float32(lr), np.float32(reg),
               np.uint64(seed), np.uint64(epoch), int(max_tries), out_loss, out_correct, out_count)
    n = int(out_count.sum())
    if n == 0:
        return 0.0, 0.0, 0
    return float(out_loss.sum() / n), float(out_correct.sum() / n), n


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def bpr_fold_in(indptr, indices, V, b, epochs, lr, reg, seed, max_tries):
    """User vectors for new users (rows of a history CSR) by BPR SGD against fixed items.

    Each row starts from zero and runs ``epochs`` passes of ``len(row)`` triples, updating
    only its own user vector, so rows are independent: the result for a row depends only
    on ``seed`` and that row's items, not on the batch or the thread count.
    """
    n_rows = len(indptr) - 1
    n_items, k = V.shape
    out = np.zeros((n_rows, k), dtype=np.float32)
    lrf = np.float32(lr)
    regf = np.float32(reg)
    for r in prange(n_rows):
        start, end, state = fold_in_row(indptr, indices, r, n_items, seed)
        u = out[r]
        for _epoch in range(epochs):
            for p in range(start, end):
                i = indices[p]
                state, j, _ = draw_negative(state, indices, start, end, n_items, max_tries)
                if j < 0:
                    continue
                x = b[i] - b[j]
                for f in range(k):
                    x += u[f] * (V[i, f] - V[j, f])
                z = np.float32(1.0 / (1.0 + math.exp(min(max(x, -30.0), 30.0))))
                for f in range(k):
                    u[f] += lrf * (z * (V[i, f] - V[j, f]) - regf * u[f])
    return out


__all__ = ["balanced_bounds", "bpr_apply", "bpr_epoch", "bpr_fold_in"]
