"""Hybrid (LightFM-style) factorisation with side features (Kula 2015), Hogwild SGD.

Every user and item is a sparse feature row (``F_u``, ``F_i``; the identity when there is
no feature file). Each feature ``f`` has an embedding ``E_f`` (``k`` factors) and a bias
``e_f``, stored together as one row of ``k + 1`` columns. The representations are the
weighted sums of their features' rows, and the score is their dot product plus biases::

    r_u = Σ_f F_uf · E^U_f        r_i = Σ_f F_if · E^I_f        (k + 1 columns each)
    x_ui = r_u[:k] · r_i[:k] + r_u[k] + r_i[k]

A step for a user ``u``, a positive ``i`` and a negative ``j`` has gradients ``g_i =
∂loss/∂x_ui`` and ``g_j = ∂loss/∂x_uj``, by loss:

Negatives are drawn uniformly over the items, or (``popular``) as the item of a uniformly
drawn stored interaction, i.e. in proportion to the item's interaction count (how
LightFM's BPR samples); for ``bpr`` and ``logistic`` a draw that is one of ``u``'s
positives is redrawn.

* ``warp`` (Weston et al. 2011): draws are scored until one lies inside the margin,
  ``x_uj > x_ui - 1``, and is not one of ``u``'s positives (a positive there is skipped
  and not counted); draws outside the margin count, and after ``max_sampled`` of them
  the positive is skipped. As in LightFM, only a violating draw is looked up in ``u``'s
  row. With ``j`` the ``N``-th counted draw, ``L_N = min(ln(floor((n_items - 1) / N)), 10)``
  (:func:`recli.kernels.warp.rank_weight`), ``loss = L_N·(1 - x_ui + x_uj)``,
  ``g_i = -L_N``, ``g_j = L_N``;
* ``bpr`` (Rendle et al. 2009): one negative ``j``; ``loss = -ln σ(x_ui - x_uj)``,
  ``g_i = -σ(x_uj - x_ui)``, ``g_j = -g_i``;
* ``logistic``: ``i`` labelled 1 and one negative ``j`` labelled 0;
  ``loss = -ln σ(x_ui) - ln σ(-x_uj)``, ``g_i = σ(x_ui) - 1``, ``g_j = σ(x_uj)``.

By the chain rule, with every right-hand side taken before the step::

    ∂/∂E^I_f = F_if · g_i · (r_u[:k], 1)                       (f a feature of i; same for j with g_j)
    ∂/∂E^U_f = F_uf · (g_i · r_i[:k] + g_j · r_j[:k], g_i + g_j)

and ``alpha · E`` is added (L2, ``item_alpha`` / ``user_alpha``) on each parameter a step
touches. The user bias column gets a zero gradient from the pairwise losses (``g_i + g_j =
0``), so only ``logistic`` moves it. Features are updated in a fixed order: those of
``i``, then of ``j``, then of ``u``, each in CSR order, column by column, so a feature
shared by ``i`` and ``j`` takes two consecutive updates.

Schedules (LightFM's): ``adagrad``: ``G`` starts at 1; ``p -= lr / sqrt(G) · g`` then
``G += g²``. ``adadelta`` (Zeiler 2012): ``G`` and ``M`` start at 0;
``G = ρG + (1-ρ)g²``, ``Δ = sqrt(M + ε) / sqrt(G + ε) · g``, ``M = ρM + (1-ρ)Δ²``,
``p -= Δ``.

k-OS (Weston et al. 2013): the positive is the ``k``-th highest scored of ``min(kos_n,
|u|)`` positives of ``u`` drawn with replacement, as in :mod:`recli.kernels.warp`.

Parallelism and randomness are those of :mod:`recli.kernels.bpr`: one contiguous user
chunk per thread (Hogwild on the shared feature rows), one random stream per chunk from
``(seed, epoch, chunk)``, so one thread is bit-for-bit reproducible. An epoch makes one
attempt per stored interaction, user by user in random order; the user's representation
is recomputed after each of its steps.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from recli.kernels import FASTMATH
from recli.kernels._heap import insert_descending
from recli.kernels._search import slice_contains
from recli.kernels.random_streams import chunk_users, next_below, user_start
from recli.kernels.warp import rank_weight

LOSSES = ("warp", "bpr", "logistic")
WARP, BPR, LOGISTIC = 0, 1, 2


@njit(cache=True, fastmath=FASTMATH)
def represent(F, E, row, out):
    """``out = Σ_p F.data[p] · E[F.indices[p]]`` over the features of ``row``; ``F`` is the
    tuple ``(indptr, indices, data)`` of a feature CSR and ``E`` has ``k + 1`` columns."""
    indptr, indices, data = F
    out[:] = 0.0
    for p in range(indptr[row], indptr[row + 1]):
        f = indices[p]
        w = data[p]
        for c in range(E.shape[1]):
            out[c] += w * E[f, c]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def predict(ru, ri):
    """``x = ru[:k] · ri[:k] + ru[k] + ri[k]``."""
    k = ru.shape[0] - 1
    x = ru[k] + ri[k]
    for c in range(k):
        x += ru[c] * ri[c]
    return x


@njit(cache=True, fastmath=FASTMATH)
def score_row(F, E, row, ru):
    """``x = predict(ru, r)`` for the representation ``r`` of ``row`` without building it:
    ``ru[k] + Σ_p F.data[p] · (ru[:k] · E[f, :k] + E[f, k])``."""
    indptr, indices, data = F
    k = ru.shape[0] - 1
    x = ru[k]
    for p in range(indptr[row], indptr[row + 1]):
        f = indices[p]
        y = E[f, k]
        for c in range(k):
            y += ru[c] * E[f, c]
        x += data[p] * y
    return x


# error_model="numpy": no zero-division check in the column loops, so they vectorise
# (with FASTMATH, lr / sqrt(G) becomes a vector reciprocal square root); G >= 1 (adagrad)
# and ε > 0 (adadelta) keep every divisor positive.
@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _update_row(F, P, row, grad, n_cols, alpha, lr, rho, eps, adadelta):
    """Move every feature ``f`` of ``row`` along ``g = F_f · grad[c] + alpha · E[f, c]``
    for the first ``n_cols`` columns by the schedule; ``P = (E, G, M)`` (``M`` unused by
    adagrad)."""
    indptr, indices, data = F
    E, G, M = P
    decay = np.float32(1.0) - rho
    for p in range(indptr[row], indptr[row + 1]):
        f = indices[p]
        w = data[p]
        e = E[f]
        acc = G[f]
        # the schedule is chosen outside the column loop, which then vectorises
        if adadelta:
            mom = M[f]
            for c in range(n_cols):
                g = w * grad[c] + alpha * e[c]
                a = rho * acc[c] + decay * g * g
                step = math.sqrt(mom[c] + eps) / math.sqrt(a + eps) * g
                acc[c] = a
                mom[c] = rho * mom[c] + decay * step * step
                e[c] -= step
        else:
            for c in range(n_cols):
                g = w * grad[c] + alpha * e[c]
                a = acc[c]
                e[c] -= lr / math.sqrt(a) * g
                acc[c] = a + g * g


@njit(cache=True, fastmath=FASTMATH)
def _step(UF, IF, UP, IP, u, i, j, ru, ri, rj, gi, gj, grad, user_bias, hyper):
    """One step for ``(u, i, j)`` with ``g_i``, ``g_j`` from representations ``ru, ri, rj``
    taken before it; ``hyper = (lr, rho, eps, adadelta, alpha_u, alpha_i)``."""
    lr, rho, eps, adadelta, alpha_u, alpha_i = hyper
    k = ru.shape[0] - 1
    gif = np.float32(gi)
    gjf = np.float32(gj)
    for c in range(k):
        grad[c] = gif * ru[c]
    grad[k] = gif
    _update_row(IF, IP, i, grad, k + 1, alpha_i, lr, rho, eps, adadelta)
    for c in range(k):
        grad[c] = gjf * ru[c]
    grad[k] = gjf
    _update_row(IF, IP, j, grad, k + 1, alpha_i, lr, rho, eps, adadelta)
    for c in range(k):
        grad[c] = gif * ri[c] + gjf * rj[c]
    grad[k] = gif + gjf
    _update_row(UF, UP, u, grad, k + 1 if user_bias else k, alpha_u, lr, rho, eps, adadelta)


@njit(cache=True, fastmath=FASTMATH)
def _sigmoid_terms(x):
    """``(σ(-x), -ln σ(x))`` from one exp, stable for either sign of ``x``."""
    e = math.exp(-abs(x))
    if x >= 0:
        return e / (1.0 + e), math.log1p(e)
    return 1.0 / (1.0 + e), math.log1p(e) - x


@njit(cache=True, fastmath=FASTMATH)
def gradients(loss_code, x_ui, x_uj, n_items, n_sampled):
    """``(g_i, g_j, loss)`` of one step (see the module docstring)."""
    if loss_code == WARP:
        L = rank_weight(n_items, n_sampled)
        return -L, L, L * (1.0 - x_ui + x_uj)
    if loss_code == BPR:
        z, loss = _sigmoid_terms(x_ui - x_uj)
        return -z, z, loss
    zi, li = _sigmoid_terms(x_ui)
    pj, lj = _sigmoid_terms(-x_uj)
    return -zi, pj, li + lj


@njit(cache=True, fastmath=FASTMATH)
def hybrid_apply(UF, IF, UP, IP, users, pos, neg, n_sampled, loss_code, hyper):
    """Apply steps for given ``(users[s], pos[s], neg[s])`` in order (``n_sampled[s]``: the
    WARP count of the negative): the deterministic half of the kernel, for tests. Returns
    each step's loss (before it)."""
    kp1 = UP[0].shape[1]
    ru = np.empty(kp1, np.float32)
    ri = np.empty(kp1, np.float32)
    rj = np.empty(kp1, np.float32)
    grad = np.empty(kp1, np.float32)
    n_items = len(IF[0]) - 1
    out = np.empty(len(users), dtype=np.float64)
    for s in range(len(users)):
        represent(UF, UP[0], users[s], ru)
        represent(IF, IP[0], pos[s], ri)
        represent(IF, IP[0], neg[s], rj)
        gi, gj, out[s] = gradients(loss_code, predict(ru, ri), predict(ru, rj), n_items, n_sampled[s])
        _step(UF, IF, UP, IP, users[s], pos[s], neg[s], ru, ri, rj, gi, gj, grad, loss_code == LOGISTIC, hyper)
    return out


@njit(cache=True, inline="always")
def _draw(state, indices, n_items, popular):
    """One candidate negative: uniform over ``[0, n_items)``, or, with ``popular``, the
    item of a uniformly drawn stored interaction (probability proportional to its
    interaction count, as LightFM's BPR samples); ``(state, item)``."""
    if popular:
        state, r = next_below(state, len(indices))
        return state, np.int64(indices[r])
    return next_below(state, n_items)


@njit(cache=True, inline="always")
def _negative(state, indices, start, end, n_items, popular, max_draws):
    """:func:`_draw` until a draw is not in the row ``indices[start:end]`` (a positive is
    redrawn), at most ``max_draws`` times; ``(state, item, draws)``, ``item`` -1 when
    every draw was a positive (:func:`recli.kernels.random_streams.draw_negative` with
    the popular option)."""
    for t in range(max_draws):
        state, cand = _draw(state, indices, n_items, popular)
        if not slice_contains(indices, start, end, cand):
            return state, cand, t + 1
    return state, np.int64(-1), max_draws


@njit(cache=True, fastmath=FASTMATH)
def _violator(state, ru, IF, EI, indices, start, end, x_ui, max_sampled, popular, rj):
    """WARP's negative search over item representations, in LightFM's order: draw (at
    most ``10 · max_sampled`` times) and score; a draw inside the margin,
    ``x_uj > x_ui - 1``, is the violator unless it is one of the user's positives (then
    it is redrawn and not counted); a draw outside counts, until ``max_sampled`` have.
    Only violating draws are looked up in the user's row, which is what makes a draw
    cheap. Returns ``(state, j, N, x_uj)``, ``N`` counting ``j``, with ``rj`` holding
    ``j``'s representation; ``j`` is -1 when no counted draw violated."""
    n_items = len(IF[0]) - 1
    n_sampled = 0
    for _ in range(10 * max_sampled):
        state, j = _draw(state, indices, n_items, popular)
        x_uj = score_row(IF, EI, j, ru)
        if x_uj > x_ui - 1.0:
            if slice_contains(indices, start, end, j):
                continue
            represent(IF, EI, j, rj)
            return state, j, n_sampled + 1, x_uj
        n_sampled += 1
        if n_sampled >= max_sampled:
            break
    return state, np.int64(-1), n_sampled, np.float32(0.0)


@njit(cache=True, fastmath=FASTMATH)
def _kos_positive(state, ru, IF, EI, indices, start, nu, kos_k, kos_n, ids, vals):
    """k-OS: the ``k``-th highest scored of ``min(kos_n, nu)`` positives drawn with
    replacement (ties keep the earlier draw first); returns ``(state, item)``."""
    n = min(kos_n, nu)
    for t in range(n):
        state, r = next_below(state, nu)
        item = indices[start + r]
        insert_descending(vals, ids, t, score_row(IF, EI, item, ru), item)
    return state, ids[min(kos_k, n) - 1]


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _hybrid_epoch(indptr, indices, user_order, bounds, UF, IF, UP, IP, loss_code, hyper, max_sampled,
                  popular, kos_k, kos_n, seed, epoch, out_loss, out_updates, out_count):
    n_items = len(IF[0]) - 1
    kp1 = UP[0].shape[1]
    for c in prange(len(bounds) - 1):
        state, lo, hi = chunk_users(user_order, bounds, c, seed, epoch)
        ru = np.empty(kp1, np.float32)
        ri = np.empty(kp1, np.float32)
        rj = np.empty(kp1, np.float32)
        grad = np.empty(kp1, np.float32)
        ids = np.empty(max(kos_n, 1), dtype=np.int64)
        vals = np.empty(max(kos_n, 1), dtype=np.float32)
        loss_sum = 0.0
        updates = 0
        count = 0
        for p in range(lo, hi):
            u = user_order[p]
            state, start, nu, off = user_start(indptr, u, n_items, state)
            if nu == 0:
                continue
            end = start + nu
            represent(UF, UP[0], u, ru)
            for s in range(nu):
                if kos_k > 0:
                    state, i = _kos_positive(state, ru, IF, IP[0], indices, start, nu, kos_k, kos_n, ids, vals)
                else:
                    i = indices[start + (off + s) % nu]
                represent(IF, IP[0], i, ri)
                x_ui = predict(ru, ri)
                count += 1
                if loss_code == WARP:
                    state, j, n_sampled, x_uj = _violator(state, ru, IF, IP[0], indices, start, end, x_ui,
                                                          max_sampled, popular, rj)
                else:
                    state, j, n_sampled = _negative(state, indices, start, end, n_items, popular, 10 * max_sampled)
                    x_uj = np.float32(0.0)
                    if j >= 0:
                        represent(IF, IP[0], j, rj)
                        x_uj = predict(ru, rj)
                if j < 0:
                    continue
                gi, gj, loss = gradients(loss_code, x_ui, x_uj, n_items, n_sampled)
                _step(UF, IF, UP, IP, u, i, j, ru, ri, rj, gi, gj, grad, loss_code == LOGISTIC, hyper)
                represent(UF, UP[0], u, ru)
                loss_sum += loss
                updates += 1
        out_loss[c] = loss_sum
        out_updates[c] = updates
        out_count[c] = count


def hybrid_epoch(indptr, indices, user_order, bounds, UF, IF, UP, IP, loss, hyper, max_sampled, seed, epoch,
                 kos_k=0, kos_n=10, popular=False):
    """Run one epoch in place over a CSR ``user_items`` (sorted indices).

    Parameters
    ----------
    indptr, indices : int64 / int32 CSR arrays of the user-item matrix (rows sorted).
    user_order, bounds : as in :func:`recli.kernels.bpr.bpr_epoch` (one chunk per thread).
    UF, IF : user and item feature CSRs as ``(indptr int64, indices int32, data float32)``.
    UP, IP : user and item parameters ``(E, G, M)``, float32 ``(n_features, k + 1)``
        each (embeddings with the bias last, accumulators); updated in place.
    loss : ``"warp"``, ``"bpr"`` or ``"logistic"``.
    hyper : ``(lr, rho, eps, adadelta, alpha_u, alpha_i)`` (see :func:`make_hyper`).
    max_sampled : most negatives counted per WARP positive; ``10 · max_sampled`` is the
        draw budget of a negative for every loss.
    seed, epoch : random stream of chunk ``c`` seeded by ``(seed, epoch, c)``.
    kos_k, kos_n : k-OS variant when ``kos_k > 0``.
    popular : draw negatives in proportion to their interaction counts (else uniformly);
        needs ``nnz < 2**32``.

    Returns
    -------
    (mean loss per positive, fraction of positives that made a step, positives seen)
    """
    n_chunks = len(bounds) - 1
    out_loss = np.zeros(n_chunks, dtype=np.float64)
    out_updates = np.zeros(n_chunks, dtype=np.int64)
    out_count = np.zeros(n_chunks, dtype=np.int64)
    _hybrid_epoch(indptr, indices, user_order, bounds, UF, IF, UP, IP, LOSSES.index(loss), hyper,
                  int(max_sampled), bool(popular), int(kos_k), int(kos_n), np.uint64(seed), np.uint64(epoch),
                  out_loss, out_updates, out_count)
    n = int(out_count.sum())
    if n == 0:
        return 0.0, 0.0, 0
    return float(out_loss.sum() / n), float(out_updates.sum() / n), n


def make_hyper(lr, rho, eps, adadelta, alpha_u, alpha_i):
    """The step's hyper-parameters as the kernels take them (one tuple of fixed types)."""
    return (np.float32(lr), np.float32(rho), np.float32(eps), bool(adadelta), np.float32(alpha_u),
            np.float32(alpha_i))


__all__ = ["LOSSES", "hybrid_apply", "hybrid_epoch", "make_hyper", "predict", "represent"]
