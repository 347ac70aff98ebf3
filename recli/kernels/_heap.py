"""A fixed-size heap of ``(score, index)`` pairs for njit kernels: the best ``k`` seen so
far, kept in two caller-owned arrays (``vals``, ``idx``) of capacity ``k``.

The order is total: a higher score is better, and on equal scores the lower index is
better. The root holds the *worst* kept pair, so a new pair is compared with the root
only. After :func:`heap_sort` the first ``n`` entries are best first. Callers never offer
NaN: it compares neither better nor worse, so it would break the order.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, inline="always")
def worse(s_a, i_a, s_b, i_b):
    """``(s_a, i_a)`` ranks below ``(s_b, i_b)``: lower score, or equal score and higher index."""
    return s_a < s_b or (s_a == s_b and i_a > i_b)


@njit(cache=True, inline="always")
def _sift_down(vals, idx, pos, n, s, j):
    """Place ``(s, j)`` in the hole at ``pos`` of the heap ``[:n]``, moving better children up."""
    while True:
        c = 2 * pos + 1
        if c >= n:
            break
        if c + 1 < n and worse(vals[c + 1], idx[c + 1], vals[c], idx[c]):
            c += 1
        if worse(vals[c], idx[c], s, j):
            vals[pos] = vals[c]
            idx[pos] = idx[c]
            pos = c
        else:
            break
    vals[pos] = s
    idx[pos] = j


@njit(cache=True)
def heap_push(vals, idx, n, s, j):
    """Offer ``(s, j)`` to the heap holding ``n`` entries; returns the new count. Below
    capacity the pair is added; a full heap replaces its root when the pair is better."""
    k = vals.shape[0]
    if n < k:
        pos = n
        while pos > 0:
            parent = (pos - 1) >> 1
            if worse(s, j, vals[parent], idx[parent]):
                vals[pos] = vals[parent]
                idx[pos] = idx[parent]
                pos = parent
            else:
                break
        vals[pos] = s
        idx[pos] = j
        return n + 1
    if not worse(vals[0], idx[0], s, j):
        return n
    _sift_down(vals, idx, 0, k, s, j)
    return n


@njit(cache=True)
def heap_sort(vals, idx, n):
    """Sort the first ``n`` heap entries in place, best first (repeatedly move the worst
    to the end)."""
    for end in range(n - 1, 0, -1):
        s, j = vals[end], idx[end]
        vals[end], idx[end] = vals[0], idx[0]
        _sift_down(vals, idx, 0, end, s, j)


@njit(cache=True, inline="always")
def insert_descending(vals, idx, n, s, j):
    """Insert ``(s, j)`` into the first ``n`` entries of ``vals`` (descending) and ``idx``,
    so that the first ``n + 1`` are sorted; an equal score goes after the ones already
    there (the earlier insert stays first). The k-OS draws of ``warp`` and ``hybrid``."""
    p = n
    while p > 0 and vals[p - 1] < s:
        vals[p] = vals[p - 1]
        idx[p] = idx[p - 1]
        p -= 1
    vals[p] = s
    idx[p] = j
