"""The njit helpers the kernels share: atomic work claiming and prefetching."""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from recli.kernels._atomics import fetch_add
from recli.kernels._prefetch import prefetch_at


@njit(parallel=True)
def _claim_all(counter, claims, parts):
    for t in prange(parts):
        while True:
            c = fetch_add(counter, 0, 1)
            if c >= claims.shape[0]:
                break
            claims[c] += 1


def test_fetch_add_hands_out_every_index_exactly_once():
    old = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        claims = np.zeros(200_000, np.int64)
        counter = np.zeros(1, np.int64)
        _claim_all(counter, claims, 2)
    finally:
        numba.set_num_threads(old)
    assert claims.min() == 1 and claims.max() == 1
    assert counter[0] == claims.size + 2  # each thread's last, failed claim counts too


@njit
def _prefetch_then_sum(a):
    s = 0.0
    for i in range(a.shape[0]):
        prefetch_at(a, i + 64)  # past the end: a prefetch never faults
        s += a[i]
    return s


def test_prefetch_at_never_changes_results():
    a = np.arange(1000, dtype=np.float64)
    assert _prefetch_then_sum(a) == a.sum()
