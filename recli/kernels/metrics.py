"""Metric kernels over integer-encoded top-k lists and CSR truth, parallel over users.

Conventions shared by every kernel here
---------------------------------------
``rec_items``  int32 ``[n, kmax]``: row ``i`` is one user's ranked list, best first, item
               indices ``>= 0``, padded at the end with ``-1`` (a list shorter than
               ``kmax``). Items within a row are unique (the caller checks).
``rows``       int64 ``[n]``: row ``i`` of ``rec_items`` belongs to CSR row ``rows[i]``
               of the truth / train matrices (lets callers score a batch of users
               against full matrices without slicing them).
``*_indptr``   int64 ``[n_users + 1]`` and ``*_indices`` int32, each CSR row sorted
               ascending without duplicates (binary search relies on it).
``ks``         int64, ascending, each ``1 <= k <= kmax``.

Outputs are preallocated by the caller and written one row per user, so ``prange``
threads never share an output cell: no locks, and the result does not depend on the
thread count. Values are float64 and no fastmath is used, so per-user sums are exactly
the sequential sums a plain Python reference computes.

Definitions follow trec_eval / ranx (Järvelin-Kekäläinen DCG with ``log2(rank + 1)``
discounts); the full formulas and edge cases are in :mod:`recli.metrics.registry`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from recli.kernels._search import slice_contains, slice_find

# Column order of the ranking output (``out[:, q, RANKING_COLUMNS.index(name)]``).
RANKING_COLUMNS = ("precision", "recall", "f1", "ndcg", "map", "mrr", "hit", "auc")


@njit(cache=True)
def _ideal_dcg(gains, kmax, disc):
    """Cumulative ideal DCG ``idcg[j]`` for cutoff ``j + 1``: the user's gains sorted
    descending, discounted by position (ties in gain do not matter for a sum)."""
    g = np.sort(gains)[::-1]
    idcg = np.zeros(kmax, dtype=np.float64)
    acc = 0.0
    for j in range(kmax):
        if j < g.shape[0]:
            acc += g[j] * disc[j]
        idcg[j] = acc
    return idcg


@njit(cache=True, inline="always")
def _put(out, base, c, q, value):
    # Only the asked metrics have a column: base[c] = -1 skips metric c.
    if base[c] >= 0:
        out[base[c] + q] = value


@njit(cache=True, inline="always")
def _user_ranking(recs, t_indices, a, b, t_gain, graded, s_indices, sa, sb, has_train,
                  ks, n_items, compat, disc, cum_disc, base, out):
    """All ranking metrics of one user at every k (see :func:`ranking_kernel`)."""
    kmax = recs.shape[0]
    n_rel = b - a
    # Binary IDCG at cutoff j + 1 is cum_disc[min(j + 1, |R|) - 1]: no per-user array.
    idcg = _ideal_dcg(t_gain[a:b], kmax, disc) if graded else cum_disc
    # AUC candidate set: standard = catalogue minus the user's TRAIN items;
    # compat (implicit) = the whole catalogue.
    n_pos = n_rel
    n_neg = n_items - n_rel
    if has_train and not compat:
        in_train = 0
        for p in range(a, b):
            if slice_contains(s_indices, sa, sb, t_indices[p]):
                in_train += 1
        n_pos = n_rel - in_train
        n_neg = n_items - (sb - sa) - n_pos
    hits = 0
    dcg = 0.0
    ap = 0.0
    rr = 0.0
    # (positive, negative) pairs won by listed positives: each beats every negative not
    # listed above it. Same pairs as implicit's per-miss ``auc += hit`` accounting.
    auc_won = 0.0
    listed_pos = 0
    negs_above = 0
    q = 0
    for j in range(kmax):
        item = recs[j]
        if item >= 0:
            pos = slice_find(t_indices, a, b, item)
            seen = has_train and (not compat) and slice_contains(s_indices, sa, sb, item)
            if pos >= 0:
                hits += 1
                dcg += (t_gain[pos] if graded else 1.0) * disc[j]
                ap += hits / (j + 1.0)
                if rr == 0.0:
                    rr = 1.0 / (j + 1.0)
                if not seen:
                    listed_pos += 1
                    auc_won += n_neg - negs_above
            elif not seen:
                negs_above += 1
        elif compat:
            negs_above += 1  # implicit counts padding as listed misses
        while q < ks.shape[0] and ks[q] == j + 1:
            k = ks[q]
            denom = min(k, n_rel) if compat else k
            prec = hits / denom
            rec = hits / n_rel
            ideal = idcg[j] if graded else cum_disc[min(j + 1, n_rel) - 1]
            auc = np.nan
            if n_pos > 0 and n_neg > 0:
                # Unlisted positives tie with unlisted negatives (half a win each).
                ties = 0.5 * (n_pos - listed_pos) * (n_neg - negs_above)
                auc = (auc_won + ties) / (n_pos * n_neg)
            _put(out, base, 0, q, prec)
            _put(out, base, 1, q, rec)
            _put(out, base, 2, q, 0.0 if prec + rec == 0.0 else 2.0 * prec * rec / (prec + rec))
            _put(out, base, 3, q, dcg / ideal if ideal > 0.0 else 0.0)
            _put(out, base, 4, q, ap / (min(k, n_rel) if compat else n_rel))
            _put(out, base, 5, q, rr)
            _put(out, base, 6, q, 1.0 if hits > 0 else 0.0)
            _put(out, base, 7, q, auc)
            q += 1


@njit(cache=True, parallel=True)
def ranking_kernel(rec_items, rows, t_indptr, t_indices, t_gain, graded, s_indptr, s_indices,
                   has_train, ks, n_items, compat, base, out):
    """Per-user precision, recall, F1, NDCG, AP, RR, hit and AUC at every k.

    Writes ``out[i, base[c] + q]`` (float64 ``[n, n_cols]``) for metric ``c`` (order of
    ``RANKING_COLUMNS``; ``base[c] = -1`` skips it), user ``rows[i]``, cutoff ``ks[q]``. With ``R`` the user's relevant items
    (truth row), ``rel_j`` whether the item at rank ``j`` is in ``R`` and
    ``hits@k = sum_{j<=k} rel_j``:

    - precision = hits@k / k (compat: / min(k, |R|)); a list shorter than k still
      divides by k
    - recall = hits@k / |R|;  f1 = 2PR / (P + R), 0 when both are 0
    - ndcg = sum_j g_j / log2(j + 1) over the list, divided by the same sum over the
      ideal list (gains sorted descending, first min(k, |R|)); g = 1 or the truth gain
    - map (AP) = sum over relevant ranks j <= k of hits@j / j, divided by |R|
      (compat: min(k, |R|))
    - mrr = 1 / rank of the first relevant item within k, else 0;  hit = hits@k > 0
    - auc = P(positive ranked above negative) over candidate items, unlisted items tied
      below the list, ties count 1/2. Candidates are all ``n_items`` minus the user's
      train items (standard, train items in the list are skipped) or all ``n_items``
      (compat, padding counts as a listed negative). NaN when there is no positive or
      no negative candidate.

    Users whose truth row is empty get NaN in every column (they are not evaluated).
    """
    n = rec_items.shape[0]
    kmax = rec_items.shape[1]
    disc = 1.0 / np.log2(np.arange(2, kmax + 2).astype(np.float64))
    cum_disc = np.cumsum(disc)
    for i in prange(n):
        r = rows[i]
        a = t_indptr[r]
        b = t_indptr[r + 1]
        if b == a:
            out[i, :] = np.nan
            continue
        sa = 0
        sb = 0
        if has_train:
            sa = s_indptr[r]
            sb = s_indptr[r + 1]
        _user_ranking(rec_items[i], t_indices, a, b, t_gain, graded, s_indices, sa, sb, has_train,
                      ks, n_items, compat, disc, cum_disc, base, out[i])


@njit(cache=True, parallel=True)
def count_seen(rec_items, rows, s_indptr, s_indices, out):
    """``out[i]`` = how many items of list ``i`` are in TRAIN row ``rows[i]``."""
    for i in prange(rec_items.shape[0]):
        r = rows[i]
        sa = s_indptr[r]
        sb = s_indptr[r + 1]
        c = 0
        for j in range(rec_items.shape[1]):
            item = rec_items[i, j]
            if item < 0:
                break
            if slice_contains(s_indices, sa, sb, item):
                c += 1
        out[i] = c


@njit(cache=True)
def drop_seen(rec_items, rows, s_indptr, s_indices, out):
    """Copy each list into ``out`` without its TRAIN items, order kept, -1 padded.

    ``out`` may be narrower than ``rec_items``: the list is cut after ``out.shape[1]``
    kept items (so dropping happens before truncating to the largest k).
    """
    width = out.shape[1]
    for i in range(rec_items.shape[0]):
        r = rows[i]
        sa = s_indptr[r]
        sb = s_indptr[r + 1]
        w = 0
        for j in range(rec_items.shape[1]):
            item = rec_items[i, j]
            if item < 0 or w == width:
                break
            if not slice_contains(s_indices, sa, sb, item):
                out[i, w] = item
                w += 1
        for j in range(w, width):
            out[i, j] = -1


@njit(cache=True, parallel=True)
def check_lists(rec_items, n_items, bad):
    """``bad[i]``: 0 ok, 1 duplicate item, 2 item out of range, 3 item after padding."""
    for i in prange(rec_items.shape[0]):
        row = rec_items[i]
        length = 0
        status = 0
        for j in range(row.shape[0]):
            if row[j] < 0:
                break
            if row[j] >= n_items:
                status = 2
            length += 1
        for j in range(length, row.shape[0]):
            if row[j] >= 0:
                status = 3
        if status == 0 and length > 1:
            status = 1 if _has_repeat(row, 0, length) else 0
        bad[i] = status


@njit(cache=True)
def _has_repeat(items, lo, hi):
    """Whether ``items[lo:hi]`` holds a value twice (pairwise for short runs: no alloc)."""
    n = hi - lo
    if n <= 32:
        for a in range(lo, hi):
            for b in range(a + 1, hi):
                if items[a] == items[b]:
                    return True
        return False
    s = np.sort(items[lo:hi])
    for j in range(1, n):  # a plain loop: Numba compiles no generator expressions  # noqa: SIM110
        if s[j] == s[j - 1]:
            return True
    return False


@njit(cache=True)
def runs_to_matrix(run_rows, starts, items, mat, repeated):
    """Scatter runs of ``items`` (run ``r`` = ``items[starts[r]:starts[r + 1]]``, best
    first) into row ``run_rows[r]`` of ``mat`` (pre-filled with -1, cut at its width);
    ``repeated[r]`` is set when the run lists an item twice."""
    width = mat.shape[1]
    for r in range(run_rows.shape[0]):
        lo = starts[r]
        hi = starts[r + 1]
        repeated[r] = _has_repeat(items, lo, hi)
        row = run_rows[r]
        for j in range(min(hi - lo, width)):
            mat[row, j] = items[lo + j]


@njit(cache=True)
def rows_sorted_unique(indptr, indices, ok):
    """``ok[r]`` is False when CSR row ``r`` is not strictly increasing."""
    for r in range(indptr.shape[0] - 1):
        good = True
        for p in range(indptr[r] + 1, indptr[r + 1]):
            if indices[p] <= indices[p - 1]:
                good = False
                break
        ok[r] = good


@njit(cache=True)
def list_mean_kernel(rec_items, item_values, ks, out):
    """``out[i, q]`` = mean of ``item_values`` over the first min(k, L) listed items,
    NaN for an empty list (novelty: values are self-information; popularity: counts)."""
    for i in range(rec_items.shape[0]):
        acc = 0.0
        m = 0
        q = 0
        for j in range(rec_items.shape[1]):
            item = rec_items[i, j]
            if item >= 0:
                acc += item_values[item]
                m += 1
            while q < ks.shape[0] and ks[q] == j + 1:
                out[i, q] = acc / m if m > 0 else np.nan
                q += 1


@njit(cache=True, inline="always")
def _jaccard(f_indices, a0, a1, b0, b1):
    """|A ∩ B| / |A ∪ B| of two sorted index slices; 0 when both are empty."""
    inter = 0
    i = a0
    j = b0
    while i < a1 and j < b1:
        if f_indices[i] < f_indices[j]:
            i += 1
        elif f_indices[i] > f_indices[j]:
            j += 1
        else:
            inter += 1
            i += 1
            j += 1
    union = (a1 - a0) + (b1 - b0) - inter
    return inter / union if union > 0 else 0.0


@njit(cache=True, parallel=True)
def ild_kernel(rec_items, f_indptr, f_indices, ks, out):
    """Intra-list diversity ``out[i, q] = 1 - mean_{a<b<=m} jaccard(f_a, f_b)`` over the
    first m = min(k, L) items' feature sets; NaN when m < 2 (no pair to compare)."""
    for i in prange(rec_items.shape[0]):
        sim = 0.0
        m = 0
        q = 0
        for j in range(rec_items.shape[1]):
            item = rec_items[i, j]
            if item >= 0:
                for p in range(j):
                    other = rec_items[i, p]
                    sim += _jaccard(f_indices, f_indptr[item], f_indptr[item + 1],
                                    f_indptr[other], f_indptr[other + 1])
                m += 1
            while q < ks.shape[0] and ks[q] == j + 1:
                pairs = m * (m - 1) / 2.0
                out[i, q] = 1.0 - sim / pairs if m >= 2 else np.nan
                q += 1


@njit(cache=True)
def nan_column_sums(values, sums, counts):
    """Add each column's sum and count of non-NaN values into ``sums`` / ``counts``.

    Serial on purpose: one memory-bound pass, and the summation order (hence the last
    bits of the result) never depends on the thread count.
    """
    n, m = values.shape
    for i in range(n):
        for j in range(m):
            v = values[i, j]
            if not np.isnan(v):
                sums[j] += v
                counts[j] += 1


@njit(cache=True)
def run_starts(u):
    """Start offsets of the runs of equal values in ``u``, plus ``len(u)`` at the end."""
    n = u.shape[0]
    count = 1 if n else 0
    for p in range(1, n):
        if u[p] != u[p - 1]:
            count += 1
    out = np.empty(count + 1, dtype=np.int64)
    c = 0
    for p in range(n):
        if p == 0 or u[p] != u[p - 1]:
            out[c] = p
            c += 1
    out[count] = n
    return out


# rows longer than this are sorted with a merge sort; shorter ones by insertion
_SHORT_ROW = 32


@njit(cache=True)
def sorted_keys(rows, cols, data, n_rows, n_cols):
    """``(keys, values)``: ``keys = row * n_cols + col`` ascending, ``data`` (float64, or
    empty for none) moved along; the order of a stable sort of the keys. A counting sort by
    row (O(n), rows are short lists) then a stable sort of each row's columns."""
    n = rows.shape[0]
    has_data = data.shape[0] == n
    start = np.zeros(n_rows + 1, dtype=np.int64)
    for p in range(n):
        start[rows[p] + 1] += 1
    for r in range(n_rows):
        start[r + 1] += start[r]
    pos = start[:-1].copy()
    keys = np.empty(n, dtype=np.int64)
    values = np.empty(n if has_data else 0, dtype=np.float64)
    for p in range(n):
        q = pos[rows[p]]
        pos[rows[p]] += 1
        keys[q] = np.int64(rows[p]) * n_cols + cols[p]
        if has_data:
            values[q] = data[p]
    for r in range(n_rows):
        lo, hi = start[r], start[r + 1]
        if hi - lo > _SHORT_ROW:
            order = np.argsort(keys[lo:hi], kind="mergesort") + lo  # stable
            keys[lo:hi] = keys[order]
            if has_data:
                values[lo:hi] = values[order]
            continue
        for a in range(lo + 1, hi):
            k = keys[a]
            v = values[a] if has_data else 0.0
            b = a
            while b > lo and keys[b - 1] > k:
                keys[b] = keys[b - 1]
                if has_data:
                    values[b] = values[b - 1]
                b -= 1
            keys[b] = k
            if has_data:
                values[b] = v
    return keys, values


@njit(cache=True)
def csr_from_sorted_keys(keys, data, n_rows, n_cols):
    """``(indptr, indices, values, n_merged)`` from ascending ``keys = row * n_cols + col``
    (``data`` aligned, or empty for none); equal keys merge, keeping the largest value."""
    n = keys.shape[0]
    has_data = data.shape[0] == n
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    indices = np.empty(n, dtype=np.int32)
    values = np.empty(n if has_data else 0, dtype=np.float64)
    w = 0
    for p in range(n):
        if p > 0 and keys[p] == keys[p - 1]:
            if has_data and data[p] > values[w - 1]:
                values[w - 1] = data[p]
            continue
        indices[w] = keys[p] % n_cols
        if has_data:
            values[w] = data[p]
        indptr[keys[p] // n_cols + 1] += 1
        w += 1
    for r in range(n_rows):
        indptr[r + 1] += indptr[r]
    return indptr, indices[:w], values[:w] if has_data else values, n - w


@njit(cache=True)
def grouped_in_order(u, o, n_groups):
    """True when each value of ``u`` forms one contiguous run and ``o`` never decreases
    inside a run: rows are then already lists in rank order (no sort needed)."""
    seen = np.zeros(n_groups, dtype=np.bool_)
    for p in range(u.shape[0]):
        if p > 0 and u[p] == u[p - 1]:
            if o[p] < o[p - 1]:
                return False
        else:
            if seen[u[p]]:
                return False
            seen[u[p]] = True
    return True
