"""Slow, obviously-correct NumPy references for the hybrid (LightFM-style) kernel: one step
on dense feature matrices in float64, and one whole single-thread epoch that replays the
kernel's random draws (:mod:`recli.kernels.random_streams`) and does everything else
plainly."""

from __future__ import annotations

import math

import numpy as np

from recli.kernels.random_streams import next_below, stream_state
from tests.reference_warp import rank_weight_reference


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def loss_gradients(loss: str, x_ui: float, x_uj: float, n_items: int, n_sampled: int) -> tuple[float, float, float]:
    """``(∂loss/∂x_ui, ∂loss/∂x_uj, loss)``."""
    if loss == "warp":
        L = rank_weight_reference(n_items, n_sampled)
        return -L, L, L * (1.0 - x_ui + x_uj)
    if loss == "bpr":
        d = x_ui - x_uj
        return -sigmoid(-d), sigmoid(-d), -math.log(sigmoid(d))
    return sigmoid(x_ui) - 1.0, sigmoid(x_uj), -math.log(sigmoid(x_ui)) - math.log(1.0 - sigmoid(x_uj))


class State:
    """Dense float64 copies: feature matrices ``FU``, ``FI`` and per side ``E`` (embeddings,
    bias last), ``G`` and ``M`` (schedule accumulators)."""

    def __init__(self, FU, FI, UP, IP):
        self.FU, self.FI = np.asarray(FU.todense(), np.float64), np.asarray(FI.todense(), np.float64)
        self.U = [np.array(a, np.float64) for a in UP]
        self.I = [np.array(a, np.float64) for a in IP]

    def rep(self, side: str, row: int) -> np.ndarray:
        F, P = (self.FU, self.U) if side == "u" else (self.FI, self.I)
        return F[row] @ P[0]

    def score(self, u: int, i: int) -> float:
        ru, ri = self.rep("u", u), self.rep("i", i)
        return float(ru[:-1] @ ri[:-1] + ru[-1] + ri[-1])

    def step(self, u, i, j, loss, n_sampled, lr, rho, eps, adadelta, alpha_u, alpha_i) -> float:
        """One step from representations taken before it; features of ``i``, then ``j``,
        then ``u``, each in increasing feature order, column by column."""
        ru, ri, rj = self.rep("u", u), self.rep("i", i), self.rep("i", j)
        gi, gj, value = loss_gradients(loss, ru[:-1] @ ri[:-1] + ru[-1] + ri[-1],
                                       ru[:-1] @ rj[:-1] + ru[-1] + rj[-1], self.FI.shape[0], n_sampled)
        k = len(ru) - 1
        moves = [(self.FI[i], self.I, np.append(gi * ru[:k], gi), alpha_i, k + 1),
                 (self.FI[j], self.I, np.append(gj * ru[:k], gj), alpha_i, k + 1),
                 (self.FU[u], self.U, np.append(gi * ri[:k] + gj * rj[:k], gi + gj), alpha_u,
                  k + 1 if loss == "logistic" else k)]
        for weights, (E, G, M), grad, alpha, n_cols in moves:
            for f in np.flatnonzero(weights):
                for c in range(n_cols):
                    g = weights[f] * grad[c] + alpha * E[f, c]
                    if adadelta:
                        G[f, c] = rho * G[f, c] + (1 - rho) * g * g
                        delta = math.sqrt(M[f, c] + eps) / math.sqrt(G[f, c] + eps) * g
                        M[f, c] = rho * M[f, c] + (1 - rho) * delta * delta
                        E[f, c] -= delta
                    else:
                        E[f, c] -= lr / math.sqrt(G[f, c]) * g
                        G[f, c] += g * g
        return value


class Stream:
    """The random stream of chunk 0 of an epoch, one draw at a time."""

    def __init__(self, seed: int, epoch: int):
        self.state = np.uint64(stream_state(np.uint64(seed), np.uint64(epoch), np.uint64(0)))

    def below(self, n: int) -> int:
        state, r = next_below(self.state, n)
        self.state = np.uint64(state)
        return int(r)


def epoch_reference(st: State, indptr, indices, loss, hyper, max_sampled, seed, epoch, kos_k=0, kos_n=10,
                    popular=False):
    """One single-thread epoch: users in a Fisher–Yates order of ``0..n_users-1``; for each
    user with something to rank, a random offset, then one attempt per positive (cyclic
    from the offset, or the k-OS pick), at most ``10·max_sampled`` draws of a negative,
    uniform (or, with ``popular``, the item of a uniformly drawn stored interaction). BPR
    and logistic take the first draw that is not a positive. WARP takes the first draw
    inside the margin ``x_uj > x_ui - 1`` that is not a positive (a positive there is
    skipped, uncounted); a draw outside the margin counts, and after ``max_sampled``
    counted there is no step. ``N`` = the counted draws plus the violator.
    Returns the summed loss and the number of steps."""
    n_users, n_items = len(indptr) - 1, st.FI.shape[0]
    rs = Stream(seed, epoch)
    order = list(range(n_users))
    for p in range(n_users - 1, 0, -1):
        q = rs.below(p + 1)
        order[p], order[q] = order[q], order[p]
    total, steps = 0.0, 0
    for u in order:
        row = [int(x) for x in indices[indptr[u]:indptr[u + 1]]]
        if not row or len(row) >= n_items:
            continue
        off = rs.below(len(row))
        for s in range(len(row)):
            if kos_k > 0:
                drawn = [row[rs.below(len(row))] for _ in range(min(kos_n, len(row)))]
                ranked = sorted(drawn, key=lambda it: -st.score(u, it))  # stable: earlier draw first on ties
                i = ranked[min(kos_k, len(drawn)) - 1]
            else:
                i = row[(off + s) % len(row)]
            pool = [int(x) for x in indices] if popular else list(range(n_items))
            j, n_sampled = _negative(st, rs, u, i, row, pool, loss, max_sampled)
            if j is not None:
                total += st.step(u, i, j, loss, n_sampled, *hyper)
                steps += 1
    return total, steps


def _negative(st, rs, u, i, row, pool, loss, max_sampled):
    """``(j, N)``: the negative of one attempt (a uniform draw from ``pool``) and its WARP
    count, or ``(None, N)``."""
    x_ui, n_sampled = st.score(u, i), 0
    for _ in range(10 * max_sampled):
        j = pool[rs.below(len(pool))]
        if loss != "warp":
            if j not in row:
                return j, 1
            continue
        if st.score(u, j) > x_ui - 1.0:  # WARP: inside the margin, a violator unless a positive
            if j in row:
                continue
            return j, n_sampled + 1
        n_sampled += 1  # outside the margin: counted, whether a positive or not
        if n_sampled >= max_sampled:
            break
    return None, n_sampled
