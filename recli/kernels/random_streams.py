"""Small, fast, seedable random streams for the SGD kernels (BPR, WARP), and the sampling
BPR and WARP share: the chunk's user shuffle, the negative draw and the fold-in row set-up.

Each parallel chunk (one per thread) owns one 64-bit xorshift* state derived from
``(seed, epoch, chunk)`` by SplitMix64, so a run with the same seed and the same number
of threads draws exactly the same samples, and one thread is bit-for-bit reproducible.
The state lives in a local variable of the chunk loop (no shared array is written), which
keeps the generator in registers: one draw is a few shifts and a multiply, far cheaper
than a Mersenne twister plus a rejection-sampling distribution.

All arithmetic is done in ``uint64``: Numba would promote ``uint64 op int64`` to float64.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from recli.kernels._search import slice_contains

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_XS_MULT = np.uint64(0x2545F4914F6CDD1D)
_EPOCH_KEY = np.uint64(0xD1B54A32D192ED03)
_CHUNK_KEY = np.uint64(0x8CB92BA72F3D8DD7)


@njit(cache=True)
def splitmix64(x):
    """SplitMix64 finaliser (Steele, Lea & Flood 2014): a bijective 64-bit mix."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def splitmix_next(state):
    """One step of the SplitMix64 generator: ``(state + golden, 64 random bits)``."""
    return state + _GOLDEN, splitmix64(state)


@njit(cache=True)
def stream_state(seed, epoch, chunk):
    """Initial xorshift state for ``(seed, epoch, chunk)``; never zero."""
    s = splitmix64(np.uint64(seed))
    s = splitmix64(s ^ (np.uint64(epoch) * _EPOCH_KEY))
    s = splitmix64(s ^ (np.uint64(chunk) * _CHUNK_KEY))
    if s == np.uint64(0):
        s = _GOLDEN
    return s


@njit(cache=True)
def next_u32(state):
    """One xorshift64* step (Marsaglia 2003; Vigna 2016): ``(new_state, 32 random bits)``."""
    s = state
    s ^= s >> np.uint64(12)
    s ^= s << np.uint64(25)
    s ^= s >> np.uint64(27)
    return s, (s * _XS_MULT) >> np.uint64(32)


@njit(cache=True)
def next_below(state, n):
    """``(new_state, r)`` with ``r`` uniform in ``[0, n)`` for ``0 < n < 2**32``.

    Lemire's multiply-shift (2019) without the rejection step: the bias is below
    ``n / 2**32`` (< 0.0005% for a million items), irrelevant for SGD sampling.
    """
    s, r = next_u32(state)
    return s, np.int64((r * np.uint64(n)) >> np.uint64(32))


@njit(cache=True)
def history_seed(seed, indices, start, end):
    """A seed that depends only on ``seed`` and the items of one history row, so that a
    folded-in user gets the same vector whether it is scored alone or in a batch."""
    h = splitmix64(np.uint64(seed))
    for p in range(start, end):
        h = splitmix64(h ^ np.uint64(indices[p]))
    return h


@njit(cache=True, inline="always")
def shuffle_slice(state, order, lo, hi):
    """Fisher–Yates shuffle of ``order[lo:hi]`` in place from the stream (a chunk shuffles
    only its own slice, so chunks never race); returns the new state."""
    for p in range(hi - 1, lo, -1):
        state, r = next_below(state, p - lo + 1)
        q = lo + r
        tmp = order[p]
        order[p] = order[q]
        order[q] = tmp
    return state


@njit(cache=True, inline="always")
def draw_negative(state, indices, start, end, n_items, max_draws):
    """Draw items uniformly from ``[0, n_items)`` until one is not in the sorted row
    ``indices[start:end]`` (a positive is redrawn), at most ``max_draws`` times.

    Returns ``(state, item, draws)``: ``item`` is -1 when every draw was a positive, and
    ``draws`` counts the draws used, so a caller can spend one budget over several calls.
    """
    for t in range(max_draws):
        state, cand = next_below(state, n_items)
        if not slice_contains(indices, start, end, cand):
            return state, cand, t + 1
    return state, np.int64(-1), max_draws


@njit(cache=True, inline="always")
def chunk_users(user_order, bounds, c, seed, epoch):
    """``(state, lo, hi)``: chunk ``c``'s slice ``user_order[lo:hi]``, shuffled in place from
    the chunk's own stream ``(seed, epoch, c)``, and that stream's state after it."""
    lo = bounds[c]
    hi = bounds[c + 1]
    return shuffle_slice(stream_state(seed, epoch, c), user_order, lo, hi), lo, hi


@njit(cache=True, inline="always")
def rankable_row(indptr, r, n_items):
    """``(start, end)`` of row ``r``; ``end == start`` when it has nothing to rank against
    (no items, or every item): such a row is skipped."""
    start = indptr[r]
    end = indptr[r + 1]
    if end - start >= n_items:
        return start, start
    return start, end


@njit(cache=True, inline="always")
def user_start(indptr, u, n_items, state):
    """``(state, start, nu, off)``: user ``u``'s row ``indices[start:start + nu]`` and a
    random offset: an epoch visits each positive once, cyclically from ``off``, so the user's
    row stays in cache. ``nu == 0`` (and nothing is drawn) when the row has nothing to rank
    against."""
    start, end = rankable_row(indptr, u, n_items)
    nu = end - start
    off = 0
    if nu > 0:
        state, off = next_below(state, nu)
    return state, start, nu, off


@njit(cache=True, inline="always")
def fold_in_row(indptr, indices, r, n_items, seed):
    """``(start, end, state)`` of history row ``r`` (see :func:`rankable_row`) and its random
    stream, which depends only on ``seed`` and the row's items, so a folded-in user gets the
    same vector alone or in any batch."""
    start, end = rankable_row(indptr, r, n_items)
    if end == start:
        return start, end, np.uint64(0)
    return start, end, stream_state(history_seed(seed, indices, start, end), 0, 0)
