"""Device functions shared by the CUDA kernels: the counter-based draws of
:mod:`recli.kernels.counter_random` and the sorted-row membership test of
:mod:`recli.kernels._search`, compiled from the same Python source as their host twins;
and :func:`launch`, how every kernel here is configured for its threads."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numba import config, cuda

from recli.kernels._search import slice_find
from recli.kernels.counter_random import below, counter_bits_with
from recli.kernels.random_streams import splitmix64

THREADS = 128  # threads per block

# Numba warns (NumbaPerformanceWarning) when a launch has fewer than 128 blocks; its
# message may begin with terminal colour codes, hence the leading ".*".
_LOW_OCCUPANCY = r".*Grid size \d+ will likely result in GPU under-utilization"


def launch(kernel: Any, n: int) -> Any:
    """``kernel`` configured for ``n`` threads (one per row or sample): ``⌈n / THREADS⌉``
    blocks (at least one) of ``THREADS``. A small batch, or one user, gets a small grid by
    design, so Numba's low-occupancy warning is dropped here instead of reaching users as
    a ``warning:`` line."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_LOW_OCCUPANCY)
        return kernel[max(1, (n + THREADS - 1) // THREADS), THREADS]


def _wrapping(fn):
    """``fn``, with NumPy's overflow warning off on the simulator: it runs device code on
    NumPy scalars, which warn when uint64 arithmetic wraps (as it must, here)."""
    if not config.ENABLE_CUDASIM:
        return fn

    def quiet(*args):
        with np.errstate(over="ignore"):
            return fn(*args)

    return quiet


mix = cuda.jit(device=True)(_wrapping(splitmix64.py_func))
counter_bits = cuda.jit(device=True)(_wrapping(counter_bits_with(mix)))
uniform_below = cuda.jit(device=True)(below)
find = cuda.jit(device=True)(slice_find.py_func)


@cuda.jit(device=True)
def draw_item(key, sample, draw, n_items):
    """Item draw ``draw`` of sample ``sample``: uniform in ``[0, n_items)``."""
    return np.int64(uniform_below(counter_bits(key, np.uint64(sample), np.uint64(draw)), np.uint64(n_items)))


@cuda.jit(device=True)
def first_negative(indices, start, end, key, sample, first, count, n_items):
    """The first of draws ``first .. first + count - 1`` not in the sorted row
    ``indices[start:end]``, or -1."""
    for d in range(first, first + count):
        item = draw_item(key, sample, d, n_items)
        if find(indices, start, end, item) < 0:
            return item
    return np.int64(-1)
