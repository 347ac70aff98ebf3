"""Mini-batch SGD for ``bpr``, ``warp`` and ``mf`` on the array-module path (``xp``).

The losses and per-sample updates are those of the Numba kernels
(:mod:`recli.kernels.bpr`, :mod:`recli.kernels.warp`, :mod:`recli.kernels.mf`); what
differs is how samples are ordered and applied:

* **Order.** An epoch visits every stored interaction once, in the order of
  ``argsort(bits(seed, epoch, s))`` (:mod:`recli.kernels.counter_random`), cut into
  mini-batches of ``plan.batch`` consecutive samples.
* **Mini-batch.** Every sample of a batch computes its step from the parameters as they
  were when the batch began; the steps are then summed into the parameters (a row that
  several samples touch moves by the sum of their steps). With a batch of one sample
  this is exactly the CPU's sequential step. Adagrad (``warp``) scales each step by its
  accumulator at the batch start and adds each step's ``g²`` to it.
* **Draws.** Negative ``d`` of sample ``s`` is ``below(bits(key, s, d), n_items)``: a
  pure function of ``(seed, epoch, s, d)``, the same on every path.

The CPU kernels are Hogwild instead: each thread walks its own users and every step
sees all the steps before it (of its thread, and racily of the others). Within a batch,
the mini-batch step ignores the other samples of that batch, so a popular item touched
by many samples of one batch takes one large summed step rather than many small
sequential ones: the final factors differ from the CPU's, the ranking quality is
comparable while a batch holds few samples of any one row (:func:`auto_batch`).

Two executions of a batch, chosen by the array module:

* NumPy (the CI-tested "GPU-shaped" path): vectorised draws and gradients, summed into
  the parameters (:func:`scatter_add`). Deterministic.
* CuPy: the :mod:`recli.kernels.cuda.sgd` kernels, one CUDA thread per sample, which
  draw on the device and add their steps into zeroed delta arrays with
  ``cuda.atomic.add``; the touched rows are then moved by their deltas. Float additions
  land in thread-schedule order, so the last bits may differ between runs.

**Storage precision** (``train --dtype``): the factor matrices ``U``, ``V`` (``P``, ``Q``)
may be held in a storage form of :mod:`recli.kernels.precision` (float16, or bfloat16 as
its uint16 bits; biases and adagrad accumulators stay float32). Every batch reads its
rows upcast to float32, computes in float32 and rounds each row it writes back to the
storage type (round to nearest even). On NumPy the matrices stay in storage form
throughout; the CUDA kernels read float32, so there an epoch works on float32 copies
whose touched rows are rounded after every batch (the same values), written back into
the storage-form matrices when the epoch ends.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recli.kernels._plan import SGDPlan
from recli.kernels.counter_random import DRAWS, ORDER, POSITIVES, below, counter_bits, epoch_key
from recli.kernels.precision import reduced, storage_of, to_float32, to_storage

# A mini-batch holds about this many samples of its busiest row (user or item) at most:
# that row then moves by the sum of a few steps taken from the same start, which SGD
# tolerates; many more (a large batch on a catalogue with a very popular item) diverge.
STALE_SAMPLES = 8
SGD_BATCH_MIN, SGD_BATCH_MAX = 256, 1 << 16
# MF draws up to this many candidates per sampled negative (as the CPU kernel does).
MF_NEGATIVE_TRIES = 8


def auto_batch(indptr: np.ndarray, indices: np.ndarray) -> int:
    """``STALE_SAMPLES · nnz / busiest row`` samples, within ``[SGD_BATCH_MIN, SGD_BATCH_MAX]``:
    a batch of uniformly ordered samples holds about ``STALE_SAMPLES`` of the busiest row."""
    busiest = max(int(np.diff(indptr).max(initial=1)), int(np.bincount(indices).max(initial=1)))
    return int(np.clip(STALE_SAMPLES * len(indices) // busiest, SGD_BATCH_MIN, SGD_BATCH_MAX))


def make_plan(xp: Any, indptr: Any, indices: Any, values: Any = None, batch: int = 0) -> SGDPlan:
    """An :class:`SGDPlan` of a CSR with sorted rows, its arrays on ``xp``'s device;
    ``batch`` samples per mini-batch (0: :func:`auto_batch`)."""
    indptr = np.asarray(indptr, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int32)
    rows = np.repeat(np.arange(indptr.shape[0] - 1, dtype=np.int64), np.diff(indptr))
    keys = (rows << 32) | indices.astype(np.int64)  # sorted: rows ascend, items ascend within a row
    put = xp.asarray
    return SGDPlan(put(indptr), put(indices), None if values is None else put(np.asarray(values, np.float32)),
                   put(rows), keys=put(keys), batch=int(batch) or auto_batch(indptr, indices))


def device_bytes(n_users: int, n_items: int, nnz: int, factors: int, batch: int, accumulators: bool = False,
                 user_bias: bool = False) -> int:
    """Device memory of a GPU SGD fit, in bytes (an upper estimate)::

        40·nnz + 8·(n_users + 1)              the plan (indptr, indices, rows, keys, values)
                                              and an epoch's order with its sort keys
      + 4·P·(2 + 2·accumulators)              float32 parameters and their deltas (WARP's
                                              adagrad: accumulators and theirs too)
      + 64·batch·(1 + factors)                one batch's samples, draws and outputs

    with ``P = (n_users + n_items)·factors + n_items (+ n_users with user_bias)``."""
    params = (n_users + n_items) * factors + n_items + (n_users if user_bias else 0)
    return 40 * nnz + 8 * (n_users + 1) + 4 * params * (2 + 2 * accumulators) + 64 * batch * (1 + factors)


def epoch_order(xp: Any, n: int, seed: int, epoch: int) -> Any:
    """The epoch's visiting order of ``n`` samples: a permutation from counter bits."""
    return xp.argsort(counter_bits(epoch_key(seed, epoch, ORDER), xp.arange(n, dtype=xp.uint64), np.uint64(0)))


def draw_items(xp: Any, key: np.uint64, samples: Any, first: int, count: int, n_items: int) -> Any:
    """``(len(samples), count)`` int64 items: draws ``first .. first + count - 1`` of each sample."""
    draws = xp.arange(first, first + count, dtype=xp.uint64)[None, :]
    return below(counter_bits(key, samples[:, None], draws), np.uint64(n_items)).astype(xp.int64)


def is_positive(xp: Any, plan: SGDPlan, users: Any, items: Any) -> Any:
    """Whether each ``(users, items)`` cell (broadcast) is stored in the plan's CSR."""
    query = (users.astype(xp.int64) << 32) | items.astype(xp.int64)
    at = xp.minimum(xp.searchsorted(plan.keys, query.ravel()), plan.keys.shape[0] - 1)
    return (plan.keys[at] == query.ravel()).reshape(query.shape)


def first_negative(xp: Any, plan: SGDPlan, users: Any, key: np.uint64, samples: Any, first: int, count: int,
                   n_items: int) -> Any:
    """Per sample, the first of its draws ``first .. first + count - 1`` that is not one of
    its user's positives, or -1 when all are. Draws are made only for the samples still
    unresolved (most resolve at their first draw)."""
    out = xp.full(users.shape[0], -1, dtype=xp.int64)
    todo = xp.arange(users.shape[0])
    for d in range(first, first + count):
        cand = draw_items(xp, key, samples[todo], d, 1, n_items)[:, 0]
        free = ~is_positive(xp, plan, users[todo], cand)
        out[todo[free]] = cand[free]
        todo = todo[~free]
        if todo.shape[0] == 0:
            break
    return out


def _batches(xp: Any, plan: SGDPlan, seed: int, epoch: int):
    """``(lo, cells)`` per mini-batch: its first sample number and its CSR cells."""
    order = epoch_order(xp, plan.nnz, seed, epoch)
    for lo in range(0, plan.nnz, plan.batch):
        yield lo, order[lo:lo + plan.batch]


def _samples(xp: Any, lo: int, n: int) -> Any:
    return xp.arange(lo, lo + n, dtype=xp.uint64)


def _apply(param: Any, delta: Any, rows: Any, dtype: str = "float32", xp: Any = np) -> None:
    """Move the touched ``rows`` of ``param`` by their accumulated ``delta`` and clear it
    (duplicate rows write the same value; ``-1`` marks no row). ``dtype``: the storage
    type of the factors ``param`` is a float32 working copy of; the moved rows are
    rounded to it."""
    rows = rows[rows >= 0]
    param[rows] += delta[rows]
    if dtype != "float32":
        param[rows] = to_float32(to_storage(param[rows], dtype, xp), dtype, xp)
    delta[rows] = 0


def _rows(param: Any, rows: Any, xp: Any = np) -> Any:
    """``param[rows]``, upcast to float32 from the storage form a factor matrix may be held in."""
    return to_float32(param[rows], storage_of(param), xp) if reduced(param) else param[rows]


def _working(xp: Any, *held: Any) -> tuple[list, list]:
    """Float32 working copies of factor matrices held in a storage form (the arrays
    themselves when float32), and their storage types: the CUDA kernels read float32."""
    dtypes = [storage_of(a) if reduced(a) else "float32" for a in held]
    return [a if d == "float32" else to_float32(a, d, xp) for a, d in zip(held, dtypes)], dtypes


def _hold(xp: Any, held: tuple, work: list, dtypes: list) -> None:
    """Write an epoch's working copies back into the storage-form matrices (exact: their
    values were rounded to the storage type as they were written)."""
    for h, w, d in zip(held, work, dtypes):
        if d != "float32":
            h[...] = to_storage(w, d, xp)


def scatter_add(param: np.ndarray, rows: np.ndarray, *values: np.ndarray) -> None:
    """``param[rows] += values`` with repeated rows summed (``np.add.at``, by a sort and a
    segment sum, which is much faster for rows of a 2-D array). ``values`` are the
    per-row blocks of ``rows`` in order (concatenated when several are given). A
    ``param`` in a storage form is added to in float32 and rounded back."""
    if rows.shape[0] == 0:
        return
    vals = np.concatenate(values) if len(values) > 1 else values[0]
    order = np.argsort(rows, kind="stable")
    rows = rows[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    sums, at = np.add.reduceat(vals[order], starts, axis=0), rows[starts]
    if not reduced(param):
        param[at] += sums
    else:  # factors held in a storage form: the sum in float32, rounded as written
        dtype = storage_of(param)
        param[at] = to_storage(to_float32(param[at], dtype) + sums, dtype)


# -- BPR ------------------------------------------------------------------------------

def bpr_numpy_batch(U, V, b, users, pos, neg, lr, reg):
    """One mini-batch of BPR steps on ``(users, pos, neg)`` (``neg == -1``: skipped), all
    from the parameters before the batch, summed in (NumPy). Returns ``(Σ loss, #x>0, n)``."""
    ok = neg >= 0
    u, i, j = users[ok], pos[ok], neg[ok]
    Uu, Vi, Vj, bi, bj = _rows(U, u), _rows(V, i), _rows(V, j), b[i], b[j]
    x = np.einsum("nf,nf->n", Uu, Vi - Vj) + bi - bj
    e = np.exp(-np.abs(x))
    z = np.where(x >= 0, e / (1 + e), 1 / (1 + e)).astype(np.float32)[:, None]
    loss = np.log1p(e.astype(np.float64)) - np.minimum(x, 0)
    lr, reg = np.float32(lr), np.float32(reg)
    scatter_add(U, u, lr * (z * (Vi - Vj) - reg * Uu))
    ij = np.concatenate([i, j])
    scatter_add(V, ij, lr * (z * Uu - reg * Vi), lr * (-z * Uu - reg * Vj))
    scatter_add(b, ij, lr * (z[:, 0] - reg * bi), lr * (-z[:, 0] - reg * bj))
    return float(loss.sum()), int((x > 0).sum()), int(ok.sum())


def bpr_epoch(xp: Any, plan: SGDPlan, U, V, b, lr: float, reg: float, seed: int, epoch: int,
              max_tries: int = 32) -> tuple[float, float, int]:
    """One mini-batch BPR epoch in place; returns ``(mean loss, share with x_uij > 0, n)``."""
    key, n_items = epoch_key(seed, epoch, DRAWS), V.shape[0]
    totals = xp.zeros(3, dtype=xp.float64)
    if xp is not np:
        from recli.kernels.cuda import sgd as cuda_sgd

        held = (U, V)
        (U, V), dtypes = _working(xp, *held)
        dU, dV, db = xp.zeros_like(U), xp.zeros_like(V), xp.zeros_like(b)
    for lo, cells in _batches(xp, plan, seed, epoch):
        users, pos = plan.rows[cells], plan.indices[cells].astype(xp.int64)
        if xp is np:
            neg = first_negative(xp, plan, users, key, _samples(xp, lo, len(cells)), 0, max_tries, n_items)
            totals += bpr_numpy_batch(U, V, b, users, pos, neg, lr, reg)
            continue
        neg = xp.empty(len(cells), dtype=xp.int64)
        loss, correct = xp.zeros(len(cells), dtype=xp.float64), xp.zeros(len(cells), dtype=xp.int32)
        cuda_sgd.bpr_batch(plan.indptr, plan.indices, users, pos, lo, U, V, b, dU, dV, db, lr, reg, key,
                           max_tries, neg, loss, correct)
        _apply(U, dU, users, dtypes[0], xp)
        for delta, param, dtype in ((dV, V, dtypes[1]), (db, b, "float32")):
            _apply(param, delta, xp.concatenate([pos, neg]), dtype, xp)
        totals += xp.stack([loss.sum(), correct.sum(), (neg >= 0).sum()])
    if xp is not np:
        _hold(xp, held, [U, V], dtypes)
    return _means(totals)


def _means(totals: Any) -> tuple[float, float, int]:
    loss, second, n = (float(t) for t in totals.tolist())
    return (0.0, 0.0, 0) if n == 0 else (loss / n, second / n, int(n))


# -- WARP -----------------------------------------------------------------------------

def rank_weight(xp: Any, n_items: int, n_sampled: Any) -> Any:
    """``L_N = min(ln(max(1, floor((n_items - 1) / N))), 10)`` per sample, float32."""
    est = xp.maximum((n_items - 1) // xp.maximum(n_sampled, 1), 1)
    return xp.minimum(xp.log(est.astype(xp.float64)), 10.0).astype(xp.float32)


def warp_violators(xp: Any, plan: SGDPlan, U, V, b, users, pos, samples, key, max_sampled: int):
    """The WARP negative search of :func:`recli.kernels.warp._violator`, vectorised over
    samples: of the ``10 · max_sampled`` draws of each sample, positives are skipped and
    not counted, and the first counted one (among the first ``max_sampled``) with
    ``x_uj > x_ui - 1`` wins. Returns ``(neg, n_sampled, x_ui, x_uj)``; ``neg == -1``
    where none violated."""
    n = users.shape[0]
    x_ui = xp.einsum("nf,nf->n", _rows(U, users, xp), _rows(V, pos, xp)) + b[pos]
    neg, counted = xp.full(n, -1, dtype=xp.int64), xp.zeros(n, dtype=xp.int64)
    x_uj = xp.zeros(n, dtype=x_ui.dtype)
    todo = xp.arange(n)
    for d in range(10 * max_sampled):
        cand = draw_items(xp, key, samples[todo], d, 1, V.shape[0])[:, 0]
        free = ~is_positive(xp, plan, users[todo], cand)  # a positive is redrawn, not counted
        live, cand = todo[free], cand[free]
        counted[live] += 1
        x = xp.einsum("nf,nf->n", _rows(U, users[live], xp), _rows(V, cand, xp)) + b[cand]
        viol = x > x_ui[live] - 1
        neg[live[viol]], x_uj[live[viol]] = cand[viol], x[viol]
        done = xp.zeros(n, dtype=bool)
        done[live[viol | (counted[live] >= max_sampled)]] = True
        todo = todo[~done[todo]]
        if todo.shape[0] == 0:
            break
    return neg, counted, x_ui, x_uj


def kos_positives(xp: Any, plan: SGDPlan, U, V, b, users, samples, key, kos_k: int, kos_n: int) -> Any:
    """k-OS (:func:`recli.kernels.warp._kos_positive`): per sample, ``n = min(kos_n, |u|)``
    positives drawn with replacement (draw ``q``: entry ``below(bits(key, s, q), |u|)`` of
    the user's row) and the ``min(kos_k, n)``-th highest scored of them (equal scores: the
    earlier draw ranks higher)."""
    start = plan.indptr[users]
    nu = plan.indptr[users + 1] - start
    bits = counter_bits(key, samples[:, None], xp.arange(kos_n, dtype=xp.uint64)[None, :])
    items = plan.indices[start[:, None] + below(bits, nu.astype(xp.uint64)[:, None]).astype(xp.int64)]
    items = items.astype(xp.int64)
    n = xp.minimum(kos_n, nu)
    x = xp.einsum("nf,nqf->nq", _rows(U, users, xp), _rows(V, items, xp)) + b[items]
    x = xp.where(xp.arange(kos_n)[None, :] < n[:, None], x, -xp.inf)
    rows = xp.arange(users.shape[0])
    return items[rows, xp.argsort(-x, axis=1, kind="stable")[rows, xp.minimum(kos_k, n) - 1]]


def warp_numpy_batch(U, V, b, GU, GV, Gb, users, pos, neg, n_sampled, lr, reg, adagrad):
    """One mini-batch of WARP steps (``neg == -1``: no step), all from the parameters and
    accumulators before the batch, summed in (NumPy). Returns the rank weights used."""
    ok = neg >= 0
    u, i, j = users[ok], pos[ok], neg[ok]
    L = rank_weight(np, V.shape[0], n_sampled[ok])
    Lc = L[:, None]
    Uu, Vi, Vj = _rows(U, u), _rows(V, i), _rows(V, j)
    reg = np.float32(reg)
    steps = [(V, GV, i, -Lc * Uu + reg * Vi), (V, GV, j, Lc * Uu + reg * Vj), (U, GU, u, Lc * (Vj - Vi) + reg * Uu),
             (b, Gb, i, -L + reg * b[i]), (b, Gb, j, L + reg * b[j])]
    scaled = [(p, G, idx, g, np.float32(lr) / np.sqrt(G[idx]) if adagrad else np.float32(lr)) for p, G, idx, g in steps]
    for p, G, idx, g, rate in scaled:  # every scale read before any accumulator moves
        scatter_add(p, idx, -rate * g)
        if adagrad:
            scatter_add(G, idx, g * g)
    return L


def warp_epoch(xp: Any, plan: SGDPlan, U, V, b, GU, GV, Gb, lr: float, reg: float, adagrad: bool,
               max_sampled: int, seed: int, epoch: int, kos_k: int = 0, kos_n: int = 10) -> tuple[float, float, int]:
    """One mini-batch WARP epoch in place (k-OS positives when ``kos_k > 0``); returns
    ``(mean loss, share updated, n)``."""
    key, kos_key = epoch_key(seed, epoch, DRAWS), epoch_key(seed, epoch, POSITIVES)
    totals = xp.zeros(3, dtype=xp.float64)
    if xp is not np:
        from recli.kernels.cuda import sgd as cuda_sgd

        held = (U, V)
        (U, V), dtypes = _working(xp, *held)
        deltas = [xp.zeros_like(a) for a in (U, V, b, GU, GV, Gb)]
    for lo, cells in _batches(xp, plan, seed, epoch):
        users, pos = plan.rows[cells], plan.indices[cells].astype(xp.int64)
        n = len(cells)
        if xp is np:
            if kos_k:
                pos = kos_positives(xp, plan, U, V, b, users, _samples(xp, lo, n), kos_key, kos_k, kos_n)
            neg, n_sampled, x_ui, x_uj = warp_violators(xp, plan, U, V, b, users, pos, _samples(xp, lo, n), key,
                                                        max_sampled)
            L = warp_numpy_batch(U, V, b, GU, GV, Gb, users, pos, neg, n_sampled, lr, reg, adagrad)
            ok = neg >= 0
            totals += (float((L * (1 - x_ui[ok] + x_uj[ok])).sum(dtype=np.float64)), int(ok.sum()), n)
            continue
        neg, n_sampled = xp.empty(n, dtype=xp.int64), xp.empty(n, dtype=xp.int64)
        loss = xp.zeros(n, dtype=xp.float64)
        cuda_sgd.warp_batch(plan.indptr, plan.indices, users, pos, lo, U, V, b, GU, GV, Gb, *deltas, lr, reg,
                            adagrad, max_sampled, key, neg, n_sampled, loss, kos_k, kos_n, kos_key)
        items = xp.concatenate([pos, neg])
        params = (U, V, b, GU, GV, Gb) if adagrad else (U, V, b)  # constant: no accumulators
        for param, delta, rows, dtype in zip(params, deltas, (users, items, items) * 2, dtypes + ["float32"] * 4):
            _apply(param, delta, rows, dtype, xp)
        totals += xp.stack([loss.sum(), (neg >= 0).sum(), xp.asarray(n)])
    if xp is not np:
        _hold(xp, held, [U, V], dtypes)
    return _means(totals)


# -- MF -------------------------------------------------------------------------------

def mf_numpy_batch(P, Q, bu, bi, users, items, ratings, mu, lr, reg, reg_bias):
    """One mini-batch of biased-MF steps on ``(users, items, ratings)``, all from the
    parameters before the batch, summed in (NumPy). Returns each step's error ``e``."""
    Pu, Qi = _rows(P, users), _rows(Q, items)
    bu_u, bi_i = bu[users], bi[items]
    e = (ratings - (np.float32(mu) + bu_u + bi_i + np.einsum("nf,nf->n", Pu, Qi))).astype(np.float32)
    lr, reg, reg_bias = np.float32(lr), np.float32(reg), np.float32(reg_bias)
    scatter_add(bu, users, lr * (e - reg_bias * bu_u))
    scatter_add(bi, items, lr * (e - reg_bias * bi_i))
    scatter_add(P, users, lr * (e[:, None] * Qi - reg * Pu))
    scatter_add(Q, items, lr * (e[:, None] * Pu - reg * Qi))
    return e


def mf_negatives(xp: Any, plan: SGDPlan, users, samples, key, negatives: int, n_items: int) -> Any:
    """``(len(users), negatives)`` unrated items (``MF_NEGATIVE_TRIES`` draws each; -1 when
    every draw was rated): negative ``q`` uses draws ``q·tries .. q·tries + tries - 1``."""
    out = xp.empty((len(users), negatives), dtype=xp.int64)
    for q in range(negatives):
        out[:, q] = first_negative(xp, plan, users, key, samples, q * MF_NEGATIVE_TRIES, MF_NEGATIVE_TRIES, n_items)
    return out


def mf_epoch(xp: Any, plan: SGDPlan, mu: float, P, Q, bu, bi, lr: float, reg: float, reg_bias: float,
             negatives: int, seed: int, epoch: int) -> float:
    """One mini-batch MF epoch in place (each rating, then ``negatives`` sampled unrated
    items pushed toward 0); returns the ratings' mean squared error before their steps."""
    key, n_items = epoch_key(seed, epoch, DRAWS), Q.shape[0]
    total = xp.zeros((), dtype=xp.float64)
    if xp is not np:
        from recli.kernels.cuda import sgd as cuda_sgd

        held = (P, Q)
        (P, Q), dtypes = _working(xp, *held)
        deltas = [xp.zeros_like(a) for a in (P, Q, bu, bi)]
    for lo, cells in _batches(xp, plan, seed, epoch):
        users, items, ratings = plan.rows[cells], plan.indices[cells].astype(xp.int64), plan.values[cells]
        n = len(cells)
        if xp is np:
            neg = mf_negatives(xp, plan, users, _samples(xp, lo, n), key, negatives, n_items)
            ok = neg >= 0
            users_all = np.concatenate([users, np.repeat(users, negatives)[ok.ravel()]])
            e = mf_numpy_batch(P, Q, bu, bi, users_all, np.concatenate([items, neg[ok]]),
                               np.concatenate([ratings, np.zeros(int(ok.sum()), np.float32)]), mu, lr, reg, reg_bias)
            total += np.dot(e[:n].astype(np.float64), e[:n])
            continue
        neg, loss = xp.empty((n, negatives), dtype=xp.int64), xp.zeros(n, dtype=xp.float64)
        cuda_sgd.mf_batch(plan.indptr, plan.indices, users, items, ratings, lo, mu, P, Q, bu, bi, *deltas, lr, reg,
                          reg_bias, negatives, key, neg, loss)
        touched = xp.concatenate([items, neg.ravel()])
        for param, delta, rows, dtype in zip((P, Q, bu, bi), deltas, (users, touched) * 2, dtypes + ["float32"] * 2):
            _apply(param, delta, rows, dtype, xp)
        total += loss.sum()
    if xp is not np:
        _hold(xp, held, [P, Q], dtypes)
    return float(total) / max(1, plan.nnz)
