"""Top-K similarity between the rows of a sparse matrix (item–item or user–user).

The input is an *entities × features* CSR matrix ``E``: items × users for item–item
similarity (``user_items.T``), users × items for user–user. The output is an
entities × entities CSR matrix holding, for every row ``i``, its ``k`` most similar
other rows ``j`` (``j != i``), in rank order (score descending, ties by lower index).

Pipeline (each step documented where it is implemented). Steps 1 and 2 transform SciPy
matrices in :mod:`recli.models._weighting` (step 1 of a matrix given with its transpose runs
in :mod:`recli.kernels.weighting`); this module (NumPy and Numba only) runs step 3
on the arrays of a CSR matrix (:func:`similarity_topk_arrays`), and
:mod:`recli.models._similarity` converts SciPy input and sets the thread count around it.

1. **weighting** of the values, treating entities as documents and features as terms,
   exactly as implicit 0.7.3's ``tfidf_weight`` / ``bm25_weight``:

   - ``none``:  ``x``
   - ``tfidf``: ``sqrt(x) · idf_f``
   - ``bm25``:  ``x · (k1 + 1) / (k1 · L_e + x) · idf_f``, ``L_e = (1 − b) + b · len_e / mean(len)``

   with ``idf_f = log(N) − log(1 + df_f)``, ``N`` the number of entities, ``df_f`` the
   number of entities with feature ``f`` and ``len_e = Σ_f x_ef``.
2. **centring** (only for ``pearson`` and ``adjusted_cosine``), over observed entries so
   the matrix stays sparse: ``pearson`` subtracts each *entity's* mean (item mean for
   item–item, as in item-based Pearson correlation), ``adjusted_cosine`` subtracts each
   *feature's* mean (user mean for item–item, Sarwar et al. 2001). Both then use cosine.
3. **measure**, from the dot product ``d = Σ_f x_if x_jf`` and the squared norms
   ``a_i = Σ_f x_if²`` (``n_f`` = number of features, ``λ`` = ``shrink``):

   ============================  ==========================================
   ``dot``                       ``d`` (implicit's BM25Recommender; no shrink)
   ``cosine`` / ``pearson`` /    ``d / (√a_i · √a_j + λ)``
   ``adjusted_cosine``
   ``asymmetric_cosine``         ``d / (a_i^α · a_j^(1−α) + λ)`` (Aiolli 2013)
   ``jaccard``                   ``d / (a_i + a_j − d + λ)`` (Tanimoto; Jaccard on binary data)
   ``conditional``               ``d / (a_i + λ)`` (``P(j | i)`` on binary data)
   ``lift``                      ``d / (a_i · a_j / n_f + λ)`` (``P(i,j) / (P(i)P(j))`` on binary data)
   ============================  ==========================================

   Shrinkage is the additive form of the RecSys reproducibility study (Ferrari Dacrema et
   al. 2019): it damps pairs whose support is small. Pairs with ``d == 0`` (no shared
   feature, or exact cancellation) are never neighbours; a zero denominator gives 0.

Algorithm: row ``i`` of ``E·Eᵀ`` is accumulated sparsely (for each feature ``f`` of ``i``,
for each entity ``j`` of ``f``: ``acc[j] += x_if · x_jf``) into a dense per-thread
accumulator, float64, or float32 where every partial sum is an integer below 2^24 (binary
or small counts: exact, so the same bits, in half the cache). The touched entities are
listed as they appear: on positive data without a branch (the slot is overwritten unless
``acc[j]`` was 0), otherwise through first-touch stamps, or, for dense rows, by a scan. When
every feature value is 1 only the feature rows' indices are read. The feature rows are
prefetched a few features ahead: each walk is short and starts at a random place, so it
would otherwise begin with a cache miss. Only pairs ``j > i`` are accumulated (half the
work: ``d`` is symmetric) and each pair is offered to both rows. Candidates go to
per-thread buffers of ``2k`` packed (score, index) keys per row, cut back in place to the
best ``k`` when full (an append touches one cache line where a heap push on the large, cold
array touches several; a profile showed heap pushes taking half the build). A shared per-row
threshold (the best known k-th score) rejects most candidates before they are packed; a row
is also cut to its best ``k`` once its own pairs are offered, so the threshold is exact for
them before the earlier rows make their offers. The buffers are merged at the end, keys
below the shared threshold left out, so memory is threads × rows × 2k keys, never rows².
Threads claim chunks of rows from a shared counter, last row first; the result does not
depend on the thread count or the schedule: the top-k under the total order (score
descending, index ascending) is unique.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from recli.kernels._atomics import fetch_add
from recli.kernels._heap import heap_push, heap_sort
from recli.kernels._prefetch import prefetch_at


class Csr(NamedTuple):
    """The arrays of a CSR matrix: int64 ``indptr``, int32 sorted ``indices``, float32 ``data``."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray


class Factors(NamedTuple):
    """Per-entity factors of the measure (:func:`measure_factors`) and squared norms ``a``."""

    p_row: np.ndarray
    p_nbr: np.ndarray
    sq: np.ndarray


class Options(NamedTuple):
    """The kernel's scalar settings (see :func:`_similarity_candidates`)."""

    shrink: float
    jaccard: bool  # Tanimoto denominator instead of p_row[i]·p_nbr[j]
    plain: bool  # the dot measure: s_ij = d, no denominator
    symmetric: bool  # s_ij == s_ji, so one score serves both rows of a pair
    positive: bool  # every value > 0: a zero accumulator marks an untouched entity
    unit: bool  # every feature-row value is 1 (binary data): the products need not read them
    k: int
    chunk: int  # rows claimed at a time


class Work(NamedTuple):
    """Per-partition scratch, first axis = partition: the dense accumulator, first-touch
    stamps (empty when ``positive``), the touched list, ``s_ij`` and ``s_ji`` (empty when
    ``symmetric``), and one float32 for packing keys."""

    acc: np.ndarray
    stamp: np.ndarray
    touched: np.ndarray
    sv: np.ndarray
    sw: np.ndarray
    scratch: np.ndarray


class Candidates(NamedTuple):
    """Per-partition candidate buffers (``buf``: rows × 2k packed keys, ``cnt`` used,
    ``thr`` the partition's k-th best key), the shared per-row score threshold ``thr_s``
    and the shared row-chunk counter ``next_chunk``."""

    buf: np.ndarray
    cnt: np.ndarray
    thr: np.ndarray
    thr_s: np.ndarray
    next_chunk: np.ndarray


def measure_factors(sq_norms: np.ndarray, measure: str, alpha: float, n_features: int,
                    shrink: float) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """``(p_row, p_nbr, shrink, jaccard)`` so that ``s_ij = d / (p_row[i]·p_nbr[j] + shrink)``
    (or the Jaccard/Tanimoto denominator when ``jaccard``)."""
    a = np.asarray(sq_norms, dtype=np.float64)
    ones = np.ones_like(a)
    if measure == "dot":
        return ones, ones, 0.0, False
    if measure in ("cosine", "pearson", "adjusted_cosine"):
        r = np.sqrt(a)
        return r, r, float(shrink), False
    if measure == "asymmetric_cosine":
        return a ** alpha, a ** (1.0 - alpha), float(shrink), False
    if measure == "jaccard":
        return a, a, float(shrink), True
    if measure == "conditional":
        return a, ones, float(shrink), False
    if measure == "lift":
        return a / max(n_features, 1), a, float(shrink), False
    raise ValueError(f"unknown measure {measure!r}")


# -- dense top-k ------------------------------------------------------------------
@njit(cache=True)
def topk_rows(scores, k):
    """Reference-grade dense top-k of each row (score desc, index asc) via the heap;
    returns ``(indices int32, values float32, counts)``. Used by tests and small callers."""
    n, m = scores.shape
    k = min(k, m)
    out_v = np.zeros((n, k), np.float32)
    out_i = np.full((n, k), -1, np.int32)
    counts = np.zeros(n, np.int64)
    for r in range(n):
        c = 0
        for j in range(m):
            c = heap_push(out_v[r], out_i[r], c, np.float32(scores[r, j]), j)
        heap_sort(out_v[r], out_i[r], c)
        counts[r] = c
    return out_i, out_v, counts


# -- the similarity kernel ---------------------------------------------------------
@njit(cache=True, inline="always")
def _sim(d, p_row, p_nbr, a_i, a_j, shrink, jaccard):
    den = (a_i + a_j - d + shrink) if jaccard else (p_row * p_nbr + shrink)
    if den == 0.0:
        return np.float32(0.0)
    return np.float32(d / den)


# Candidates are packed into one uint64 key whose integer order is the ranking order:
# the high 32 bits are the float32 score mapped to an order-preserving unsigned integer,
# the low 32 bits are (2^32 - 1 - j), so on equal scores the lower index ranks higher.
_HIGH_BIT = np.uint64(0x80000000)
_LOW_MASK = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)


@njit(cache=True, inline="always")
def _pack(s, j, f32, u32):
    f32[0] = s if s != 0.0 else np.float32(0.0)  # fold -0.0 into +0.0
    bits = np.uint64(u32[0])
    bits = (~bits & _LOW_MASK) if bits & _HIGH_BIT else (bits | _HIGH_BIT)
    return (bits << _SHIFT) | (_LOW_MASK - np.uint64(j))


@njit(cache=True, inline="always")
def _unpack(key, f32, u32):
    bits = key >> _SHIFT
    bits = (bits ^ _HIGH_BIT) if bits & _HIGH_BIT else (~bits & _LOW_MASK)
    u32[0] = np.uint32(bits)
    return f32[0], np.int32(_LOW_MASK - (key & _LOW_MASK))


@njit(cache=True)
def _keep_largest(a, n, k):
    """Move the ``k`` largest of the distinct keys ``a[:n]`` to ``a[:k]`` in place (Hoare
    quickselect, no allocation) and return the smallest of them."""
    lo, hi = 0, n - 1
    while lo < hi:
        pivot = a[(lo + hi) >> 1]
        i, j = lo, hi
        while i <= j:
            while a[i] > pivot:
                i += 1
            while a[j] < pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k - 1 <= j:
            hi = j
        elif k - 1 >= i:
            lo = i
        else:
            break
    low = a[0]
    for x in range(1, k):
        low = min(low, a[x])
    return low


@njit(cache=True, inline="always")
def _cut(buf, cnt, thr, thr_s, t, r, k, f32, u32):
    """Cut row ``r``'s buffer of partition ``t`` (more than ``k`` keys) back to its k best;
    ``thr`` and the shared ``thr_s`` rise to the k-th best."""
    low = _keep_largest(buf[t, r], cnt[t, r], k)
    thr[t, r] = low
    # thr_s is shared by the threads: any thread's k-th best is a lower bound on the final
    # k-th best, so a candidate below it can be dropped by every thread. Racing writes can
    # only leave an older, lower (still valid) bound: a weaker filter, never a different
    # result.
    thr_s[r] = max(thr_s[r], _unpack(low, f32, u32)[0])
    cnt[t, r] = k


@njit(cache=True, inline="always")
def _push(buf, cnt, thr, thr_s, t, r, key, k, f32, u32):
    """Append a candidate key to row ``r``'s buffer of partition ``t``; a full buffer (2k
    keys) is cut back to its k best (a plain append touches one cache line, where a heap
    push on this large, cold array touches several)."""
    if key <= thr[t, r]:
        return
    c = cnt[t, r]
    buf[t, r, c] = key
    cnt[t, r] = c + 1
    if c + 1 == buf.shape[2]:
        _cut(buf, cnt, thr, thr_s, t, r, k, f32, u32)


# How many of a row's features ahead to prefetch the feature rows (their ends, which are
# walked first): the walk over one feature row is short, so without this every feature
# starts with a cache miss on a random ~40 MB array (measured: ~2× on the accumulation).
# PREFETCH_LINES cache lines of each of indices and values are requested (measured on the
# benchmark set: 1 line 15% slower than 2, 4 lines 9% faster than 2, 6 no better than 4).
PREFETCH = 8
PREFETCH_LINES = 4


@njit(cache=True, inline="always")
def _walk(i, q0, q1, w, f_indices, f_data, acc, stamp, touched, nt, track, positive, unit):
    """Add ``w · x_jf`` to ``acc[j]`` over one feature row (entries ``q0 .. q1 - 1``), for
    ``j > i``; returns the new touched count. Called with a constant ``unit``, so each
    caller's copy of the loop has no test of it."""
    # feature rows are sorted by entity index: walk down from the end, stop at j <= i
    for q in range(q1 - 1, q0 - 1, -1):
        j = f_indices[q]
        if j <= i:
            break
        if track:
            if positive:  # the slot is overwritten unless j is new (no mispredicted branch)
                touched[nt] = j
                nt += acc[j] == 0.0
            elif stamp[j] != i:
                stamp[j] = i
                touched[nt] = j
                nt += 1
        acc[j] += w if unit else w * f_data[q]
    return nt


@njit(cache=True, inline="always")
def _accumulate(i, e, f, acc, stamp, touched, track, positive, unit):
    """``acc[j] = Σ_f x_if · x_jf`` for ``j > i`` (``e``: the entity rows, ``f``: the feature
    rows, both :class:`Csr`), summed in float64 and stored in ``acc``'s precision; with
    ``track`` the touched ``j`` are listed as they appear (sparse rows), otherwise the caller
    scans ``acc`` (dense rows). With ``positive`` (all values > 0, so every product is > 0) a
    zero ``acc[j]`` marks a first touch, without a branch, and ``stamp`` is not read. With
    ``unit`` (every feature value is 1) ``x_jf`` is not read: the feature rows' values are
    half their bytes."""
    e_indptr, e_indices, e_data = e
    f_indptr, f_indices, f_data = f
    nt = 0
    p0, p1 = e_indptr[i], e_indptr[i + 1]
    for p in range(p0, p1):
        if p + 2 * PREFETCH < p1:
            prefetch_at(f_indptr, e_indices[p + 2 * PREFETCH] + 1)
        if p + PREFETCH < p1:
            end = f_indptr[e_indices[p + PREFETCH] + 1] - 1
            for back in range(0, 16 * PREFETCH_LINES, 16):  # 16 four-byte values per line
                prefetch_at(f_indices, end - back)
                if not unit:
                    prefetch_at(f_data, end - back)
        u = e_indices[p]
        w = np.float64(e_data[p])
        q0, q1 = f_indptr[u], f_indptr[u + 1]
        if unit:
            nt = _walk(i, q0, q1, w, f_indices, f_data, acc, stamp, touched, nt, track, positive, True)
        else:
            nt = _walk(i, q0, q1, w, f_indices, f_data, acc, stamp, touched, nt, track, positive, False)
    return nt


@njit(cache=True, inline="always")
def _offer(i, nt, touched, acc, sv, sw, fac, opts, t, buf, cnt, thr, thr_s, f32, u32):
    """Turn row ``i``'s accumulated dot products ``acc[touched[:nt]]`` into similarities
    (zeroing ``acc`` for the next row), then offer ``(j, s_ij)`` to row ``i`` and
    ``(i, s_ji)`` to every row ``j``. Separate passes keep the arithmetic loop free of the
    pushes' branches; a pair with ``d == 0`` gets NaN, which passes no threshold (so this
    kernel must never be compiled with fastmath's ``nnan``)."""
    p_row, p_nbr, sq = fac
    shrink, jaccard, symmetric, k = opts.shrink, opts.jaccard, opts.symmetric, opts.k
    nan = np.float32(np.nan)
    if opts.plain:  # d / (1 · 1 + 0) is d: no division, no factors to read
        for m in range(nt):
            j = touched[m]
            d = acc[j]
            acc[j] = 0.0
            sv[m] = np.float32(d) if d != 0.0 else nan
    else:
        for m in range(nt):
            j = touched[m]
            d = acc[j]
            acc[j] = 0.0
            s = _sim(d, p_row[i], p_nbr[j], sq[i], sq[j], shrink, jaccard)
            sv[m] = s if d != 0.0 else nan
            if not symmetric:
                s2 = _sim(d, p_row[j], p_nbr[i], sq[j], sq[i], shrink, jaccard)
                sw[m] = s2 if d != 0.0 else nan
    ti = thr_s[i]
    for m in range(nt):
        if sv[m] >= ti:
            _push(buf, cnt, thr, thr_s, t, i, _pack(sv[m], touched[m], f32, u32), k, f32, u32)
            ti = thr_s[i]
    # row i has now seen all its pairs with later rows: cutting to its k best now sets the
    # threshold that the offers of the earlier rows (which come next) must pass
    if cnt[t, i] > k:
        _cut(buf, cnt, thr, thr_s, t, i, k, f32, u32)
    sj = sv if symmetric else sw
    for m in range(nt):
        j = touched[m]
        if sj[m] >= thr_s[j]:  # the shared thresholds reject most offers before packing
            _push(buf, cnt, thr, thr_s, t, j, _pack(sj[m], i, f32, u32), k, f32, u32)


@njit(cache=True, parallel=True)
def _similarity_candidates(e, f, f_len, fac, opts, work, cands):
    """Collect every row's best candidates over the pairs ``(i, j)``, ``i < j``, into the
    buffers of the partition that computed the pair (``cands.buf/cnt[t]``).

    ``e``, ``f``: the entity and feature rows (:class:`Csr`), ``f_len`` the feature row
    lengths; ``fac``: :class:`Factors`; ``opts``: :class:`Options`; ``work``: per-partition
    :class:`Work` scratch; ``cands``: :class:`Candidates`.

    One partition per thread; each claims the next chunk of rows from a shared counter
    (``fetch_add``) until none is left. Rows near the start carry far more pairs
    (``j > i``), and Numba's OpenMP layer splits a ``prange`` into contiguous static blocks
    (``parallel_chunksize`` does not change that): static blocks left one thread with ~3/4
    of the work. Rows run from last to first: row ``j``'s own pairs (with the rows after
    it) then come before the offers from the rows before it, so its threshold is already up
    when they arrive (measured: ~10% less time). Each partition writes only its own
    buffers, and the merged top-k does not depend on which partition saw what."""
    # Every array written in the prange body is unpacked here first: Numba (0.68) drops a
    # parallel loop's writes made through a tuple of arrays (it sees no side effect), so
    # only read-only groups (e, f, fac, opts) travel as tuples.
    acc_all, stamp_all, touched_all, sv_all, sw_all, scratch = work
    buf, cnt, thr, thr_s, next_chunk = cands
    e_indptr, e_indices = e.indptr, e.indices
    positive, unit, chunk = opts.positive, opts.unit, opts.chunk
    n = e_indptr.shape[0] - 1
    n_chunks = (n + chunk - 1) // chunk
    parts = acc_all.shape[0]
    for t in prange(parts):
        acc = acc_all[t]
        touched = touched_all[t]
        f32 = scratch[t]
        u32 = f32.view(np.uint32)
        while True:
            c = n_chunks - 1 - fetch_add(next_chunk, 0, 1)
            if c < 0:
                break
            for i in range(min(n, (c + 1) * chunk) - 1, c * chunk - 1, -1):
                bound = 0  # upper bound on the touched count, to pick list vs scan
                for p in range(e_indptr[i], e_indptr[i + 1]):
                    bound += f_len[e_indices[p]]
                # positive values are listed branch-free: cheaper than a scan at any density
                track = positive or 4 * bound < n - i
                nt = _accumulate(i, e, f, acc, stamp_all[t], touched, track, positive, unit)
                if not track:  # branch-free compaction of the nonzeros
                    for j in range(i + 1, n):
                        touched[nt] = j
                        nt += acc[j] != 0.0
                _offer(i, nt, touched, acc, sv_all[t], sw_all[t], fac, opts, t, buf, cnt, thr, thr_s, f32, u32)


# float32 holds every integer up to 2^24 exactly
_F32_EXACT = 2.0 ** 24


@njit(cache=True)
def _integer_bound(indptr, data):
    """``max_e len_e · max |x|²`` if every value is an integer, else ``inf``: a bound on every
    partial sum of a dot product ``Σ_f x_if · x_jf``."""
    top = 0.0
    for p in range(data.shape[0]):
        x = abs(np.float64(data[p]))
        if x != np.floor(x):
            return np.inf
        top = max(top, x)
    longest = 0
    for r in range(indptr.shape[0] - 1):
        longest = max(longest, indptr[r + 1] - indptr[r])
    return longest * top * top


def _accumulator_dtype(indptr: np.ndarray, data: np.ndarray) -> type:
    """float32 when every partial sum of every dot product is an integer below 2^24 (binary
    or small integer data: float32 sums are then exact, the same bits as float64, in half
    the accumulator's cache footprint), else float64."""
    return np.float32 if _integer_bound(indptr, data) <= _F32_EXACT else np.float64


@njit(cache=True, parallel=True)
def _row_sq_norms(indptr, data):
    """``a_r = Σ x_rf²`` in float64 from the float32 values."""
    n = indptr.shape[0] - 1
    out = np.zeros(n, np.float64)
    for r in prange(n):
        acc = 0.0
        for p in range(indptr[r], indptr[r + 1]):
            acc += np.float64(data[p]) * np.float64(data[p])
        out[r] = acc
    return out


@njit(cache=True, parallel=True)
def _merge_candidates(buf, cnt, thr_s, k, indptr, out_v, out_i):
    """Row ``r``'s final top-k = the k largest keys over all partitions, best first, written
    to ``out_v/out_i[indptr[r]:indptr[r + 1]]`` (``indptr`` from ``min(k, Σ_t cnt[t, r])``):
    keys scoring below ``thr_s[r]`` (a lower bound on the k-th best score, reached by k
    keys of one partition) are left out, a quickselect cuts the rest to k, and only those
    k are sorted."""
    n_parts, n, cap = buf.shape
    n_blocks = min(n, 256)
    for b in prange(n_blocks):
        f32 = np.zeros(1, np.float32)
        u32 = f32.view(np.uint32)
        keys = np.empty(n_parts * cap, np.uint64)
        for r in range(b * n // n_blocks, (b + 1) * n // n_blocks):
            low = _pack(thr_s[r], 0, f32, u32) & ~_LOW_MASK  # the least key scoring thr_s[r]
            total = 0
            for t in range(n_parts):
                for m in range(cnt[t, r]):
                    keys[total] = buf[t, r, m]
                    total += keys[total] >= low
            m = min(k, total)
            if total > k:
                _keep_largest(keys, total, k)
            best = keys[:m]
            best.sort()
            base = indptr[r]
            for x in range(m):
                out_v[base + x], out_i[base + x] = _unpack(best[m - 1 - x], f32, u32)


def similarity_topk_arrays(e: Csr, f: Csr, k: int, measure: str = "cosine", shrink: float = 0.0,
                           alpha: float = 0.5, parts: int = 1) -> Csr:
    """Top-``k`` similarity between the rows of the entities × features matrix ``e``.

    Parameters
    ----------
    e, f : Csr
        the matrix and its transpose (``f`` = ``e.T``), each with sorted indices, int64
        ``indptr``, int32 ``indices`` and float32 ``data``.
    k : int
        neighbours kept per row (>= 1).
    measure, shrink, alpha
        see the module docstring.
    parts : int
        candidate partitions: the number of Numba threads the caller runs this with (more
        only costs memory; the result does not depend on it).

    Returns
    -------
    Csr
        entities × entities; each row holds at most ``k`` entries in rank order (so its
        column indices are not sorted).
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    n = e.indptr.shape[0] - 1
    n_features = f.indptr.shape[0] - 1
    positive = bool(e.data.shape[0] == 0 or e.data.min() > 0)
    sq = _row_sq_norms(e.indptr, e.data) if measure != "dot" else np.zeros(n)  # dot: unused
    p_row, p_nbr, shrink, jaccard = measure_factors(sq, measure, alpha, n_features, shrink)
    k = int(min(k, max(n - 1, 1)))
    parts = max(1, int(parts))
    symmetric = bool(jaccard or np.array_equal(p_row, p_nbr))
    cands = Candidates(np.zeros((parts, n, 2 * k), np.uint64), np.zeros((parts, n), np.int64),
                       np.zeros((parts, n), np.uint64), np.full(n, -np.inf, np.float32), np.zeros(1, np.int64))
    work = Work(np.zeros((parts, n), _accumulator_dtype(e.indptr, e.data)),
                np.full((parts, 0 if positive else n), -1, np.int64),
                np.zeros((parts, n), np.int32), np.zeros((parts, n), np.float32),
                np.zeros((parts, 0 if symmetric else n), np.float32),
                np.zeros((parts, 1), np.float32))
    _similarity_candidates(e, f, np.diff(f.indptr), Factors(p_row, p_nbr, sq),
                           Options(float(shrink), bool(jaccard), measure == "dot", symmetric, positive,
                                   bool(np.all(f.data == 1.0)), k, 16),
                           work, cands)
    del work
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.minimum(cands.cnt.sum(axis=0), k), out=indptr[1:])
    out_v = np.empty(indptr[-1], np.float32)
    out_i = np.empty(indptr[-1], np.int32)
    _merge_candidates(cands.buf, cands.cnt, cands.thr_s, k, indptr, out_v, out_i)
    return Csr(indptr, out_i, out_v)
