"""Binary search in a sorted slice of a CSR ``indices`` array, for njit kernels (is item
``j`` in user ``u``'s row? where?)."""

from __future__ import annotations

from numba import njit


@njit(cache=True, inline="always")
def slice_find(indices, lo, hi, value):
    """Position of ``value`` in the sorted slice ``indices[lo:hi]``, or -1."""
    while lo < hi:
        mid = (lo + hi) >> 1
        v = indices[mid]
        if v < value:
            lo = mid + 1
        elif v > value:
            hi = mid
        else:
            return mid
    return -1


@njit(cache=True, inline="always")
def slice_contains(indices, lo, hi, value):
    """Whether ``value`` is in the sorted slice ``indices[lo:hi]``."""
    return slice_find(indices, lo, hi, value) >= 0
