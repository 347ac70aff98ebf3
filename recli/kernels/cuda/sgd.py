"""Mini-batch SGD kernels for ``bpr``, ``warp`` and ``mf`` (``numba.cuda``).

One thread per sample of a mini-batch: thread ``t`` handles sample ``base + t`` of the
epoch (its user and positive are given), makes its draws from the counter-based stream
(:mod:`recli.kernels.counter_random`: a pure function of the key, the sample number and
the draw number), computes its step from the parameters as they were at the batch start
(the kernel never writes them) and adds the step into zeroed delta arrays with
``cuda.atomic.add``. The caller then moves the touched rows by their deltas
(:func:`recli.kernels.sgd_xp._apply`). So a batch equals the summed per-sample steps of
the NumPy mini-batch path (:mod:`recli.kernels.sgd_xp`); only the order in which the
atomic float additions land depends on thread scheduling (last-bit differences between
runs on a GPU).

Per-sample steps, losses and draws are those of the Numba CPU kernels; see
:mod:`recli.kernels.bpr`, :mod:`recli.kernels.warp` and :mod:`recli.kernels.mf` for the
formulas. Launchers take device arrays (CuPy, or NumPy on the simulator) and scalars,
and write into the preallocated outputs they are given.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from recli.kernels.cuda.device import counter_bits, draw_item, find, first_negative, launch, uniform_below

# -- BPR ------------------------------------------------------------------------------

@cuda.jit
def _bpr_kernel(indptr, indices, users, pos, base, U, V, b, dU, dV, db, lr, reg, key, max_tries, neg, loss,
                correct):
    t = cuda.grid(1)
    if t >= users.shape[0]:
        return
    u = users[t]
    i = pos[t]
    j = first_negative(indices, indptr[u], indptr[u + 1], key, base + t, 0, max_tries, V.shape[0])
    neg[t] = j
    if j < 0:
        return
    x = b[i] - b[j]
    for f in range(U.shape[1]):
        x += U[u, f] * (V[i, f] - V[j, f])
    # σ(-x) and -ln σ(x) from one exp, stable for either sign of x (as the CPU kernel)
    e = math.exp(-abs(x))
    if x >= 0:
        z = e / (1.0 + e)
        loss[t] = math.log1p(e)
    else:
        z = 1.0 / (1.0 + e)
        loss[t] = math.log1p(e) - x
    if x > 0:
        correct[t] = 1
    zf = np.float32(z)
    for f in range(U.shape[1]):
        uf = U[u, f]
        vi = V[i, f]
        vj = V[j, f]
        cuda.atomic.add(dU, (u, f), lr * (zf * (vi - vj) - reg * uf))
        cuda.atomic.add(dV, (i, f), lr * (zf * uf - reg * vi))
        cuda.atomic.add(dV, (j, f), lr * (-zf * uf - reg * vj))
    cuda.atomic.add(db, i, lr * (zf - reg * b[i]))
    cuda.atomic.add(db, j, lr * (-zf - reg * b[j]))


def bpr_batch(indptr, indices, users, pos, base, U, V, b, dU, dV, db, lr, reg, key, max_tries, neg, loss, correct):
    """BPR steps of samples ``base .. base + len(users) - 1`` (users and positives given,
    negatives drawn: up to ``max_tries``, -1 in ``neg`` when all were positives) added into
    ``dU``, ``dV``, ``db``; per-sample loss ``-ln σ(x_uij)`` and ``x_uij > 0`` out."""
    launch(_bpr_kernel, len(users))(indptr, indices, users, pos, np.int64(base), U, V, b, dU, dV, db, np.float32(lr),
                                    np.float32(reg), np.uint64(key), np.int64(max_tries), neg, loss, correct)


# -- WARP -----------------------------------------------------------------------------

@cuda.jit(device=True)
def _score(U, u, V, b, i):
    x = b[i]
    for f in range(U.shape[1]):
        x += U[u, f] * V[i, f]
    return x


@cuda.jit(device=True)
def _push(delta, dG, G, at, g, lr, adagrad):
    """Add the step of gradient ``g`` at ``at`` (adagrad: scaled by ``G[at]`` as it was at the
    batch start, and ``g²`` added into ``dG``)."""
    if adagrad:
        cuda.atomic.add(delta, at, -lr / math.sqrt(G[at]) * g)
        cuda.atomic.add(dG, at, g * g)
    else:
        cuda.atomic.add(delta, at, -lr * g)


@cuda.jit(device=True)
def _drawn_positive(indices, start, nu, key, sample, q):
    """Positive draw ``q`` of a sample (k-OS): a uniform entry of the user's row."""
    at = uniform_below(counter_bits(key, np.uint64(sample), np.uint64(q)), np.uint64(nu))
    return np.int64(indices[start + np.int64(at)])


@cuda.jit(device=True)
def _kos_positive(U, u, V, b, indices, start, nu, kos_k, kos_n, key, sample):
    """k-OS: the ``min(kos_k, n)``-th highest scored of the ``n = min(kos_n, nu)`` positive
    draws (equal scores: the earlier draw ranks higher), found by counting each draw's
    rank (no per-thread array: ``n`` is small)."""
    n = min(kos_n, nu)
    want = min(kos_k, n) - 1
    for q in range(n):
        iq = _drawn_positive(indices, start, nu, key, sample, q)
        vq = _score(U, u, V, b, iq)
        rank = 0
        for r in range(n):
            vr = _score(U, u, V, b, _drawn_positive(indices, start, nu, key, sample, r))
            if vr > vq or (vr == vq and r < q):
                rank += 1
        if rank == want:
            return iq
    return _drawn_positive(indices, start, nu, key, sample, 0)  # not reached: ranks are 0 .. n-1


@cuda.jit
def _warp_kernel(indptr, indices, users, pos, base, U, V, b, GU, GV, Gb, dU, dV, db, dGU, dGV, dGb, lr, reg,
                 adagrad, max_sampled, key, neg, n_sampled, loss, kos_k, kos_n, kos_key):
    t = cuda.grid(1)
    if t >= users.shape[0]:
        return
    u = users[t]
    n_items = V.shape[0]
    start = indptr[u]
    end = indptr[u + 1]
    i = pos[t]
    if kos_k > 0:
        i = _kos_positive(U, u, V, b, indices, start, end - start, kos_k, kos_n, kos_key, base + t)
        pos[t] = i
    x_ui = _score(U, u, V, b, i)
    j = np.int64(-1)
    x_uj = x_ui
    counted = 0
    for d in range(10 * max_sampled):  # positives are redrawn and not counted
        c = draw_item(key, base + t, d, n_items)
        if find(indices, start, end, c) >= 0:
            continue
        counted += 1
        x = _score(U, u, V, b, c)
        if x > x_ui - 1.0:
            j = c
            x_uj = x
            break
        if counted >= max_sampled:
            break
    neg[t] = j
    n_sampled[t] = counted
    if j < 0:
        return
    est = max((n_items - 1) // counted, 1)
    L = np.float32(min(math.log(est), 10.0))
    loss[t] = L * (1.0 - x_ui + x_uj)
    _push(db, dGb, Gb, i, -L + reg * b[i], lr, adagrad)
    _push(db, dGb, Gb, j, L + reg * b[j], lr, adagrad)
    for f in range(U.shape[1]):
        uf = U[u, f]
        vi = V[i, f]
        vj = V[j, f]
        _push(dV, dGV, GV, (i, f), -L * uf + reg * vi, lr, adagrad)
        _push(dV, dGV, GV, (j, f), L * uf + reg * vj, lr, adagrad)
        _push(dU, dGU, GU, (u, f), L * (vj - vi) + reg * uf, lr, adagrad)


def warp_batch(indptr, indices, users, pos, base, U, V, b, GU, GV, Gb, dU, dV, db, dGU, dGV, dGb, lr, reg, adagrad,
               max_sampled, key, neg, n_sampled, loss, kos_k=0, kos_n=10, kos_key=0):
    """WARP steps of samples ``base ..`` added into the deltas (``dG*``: accumulator deltas,
    adagrad only); the positive is the given one, or with ``kos_k > 0`` the k-OS pick of
    draws keyed by ``kos_key`` (written back into ``pos``). Out per sample: the violating negative (or -1), the number
    of negatives counted and the loss ``L_N · (1 - x_ui + x_uj)``."""
    launch(_warp_kernel, len(users))(indptr, indices, users, pos, np.int64(base), U, V, b, GU, GV, Gb, dU, dV, db, dGU,
                                     dGV, dGb, np.float32(lr), np.float32(reg), bool(adagrad), np.int64(max_sampled),
                                     np.uint64(key), neg, n_sampled, loss, np.int64(kos_k), np.int64(kos_n),
                                     np.uint64(kos_key))


# -- MF -------------------------------------------------------------------------------

@cuda.jit(device=True)
def _mf_step(u, i, r, mu, P, Q, bu, bi, dP, dQ, dbu, dbi, lr, reg, reg_bias):
    """Add the biased-MF step of rating ``r`` of ``(u, i)``; returns the error before it."""
    dot = np.float32(0.0)
    for f in range(P.shape[1]):
        dot += P[u, f] * Q[i, f]
    e = np.float32(r - (mu + bu[u] + bi[i] + dot))
    cuda.atomic.add(dbu, u, lr * (e - reg_bias * bu[u]))
    cuda.atomic.add(dbi, i, lr * (e - reg_bias * bi[i]))
    for f in range(P.shape[1]):
        pf = P[u, f]
        qf = Q[i, f]
        cuda.atomic.add(dP, (u, f), lr * (e * qf - reg * pf))
        cuda.atomic.add(dQ, (i, f), lr * (e * pf - reg * qf))
    return e


@cuda.jit
def _mf_kernel(indptr, indices, users, items, ratings, base, mu, P, Q, bu, bi, dP, dQ, dbu, dbi, lr, reg, reg_bias,
               negatives, tries, key, neg, loss):
    t = cuda.grid(1)
    if t >= users.shape[0]:
        return
    u = users[t]
    e = _mf_step(u, items[t], ratings[t], mu, P, Q, bu, bi, dP, dQ, dbu, dbi, lr, reg, reg_bias)
    loss[t] = np.float64(e) * e
    for q in range(negatives):
        c = first_negative(indices, indptr[u], indptr[u + 1], key, base + t, q * tries, tries, Q.shape[0])
        neg[t, q] = c
        if c >= 0:
            _mf_step(u, c, np.float32(0.0), mu, P, Q, bu, bi, dP, dQ, dbu, dbi, lr, reg, reg_bias)


def mf_batch(indptr, indices, users, items, ratings, base, mu, P, Q, bu, bi, dP, dQ, dbu, dbi, lr, reg, reg_bias,
             negatives, key, neg, loss):
    """Biased-MF steps of ratings ``base ..`` and of ``negatives`` unrated items drawn per
    rating (``neg[t, q]``, -1 when none found) added into the deltas; the rating's squared
    error before its step out per sample."""
    from recli.kernels.sgd_xp import MF_NEGATIVE_TRIES

    launch(_mf_kernel, len(users))(indptr, indices, users, items, ratings, np.int64(base), np.float32(mu), P, Q, bu, bi,
                                   dP, dQ, dbu, dbi, np.float32(lr), np.float32(reg), np.float32(reg_bias),
                                   np.int64(negatives), np.int64(MF_NEGATIVE_TRIES), np.uint64(key), neg, loss)
