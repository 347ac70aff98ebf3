"""Thread pools for training: Numba's pool gets ``threads``, BLAS gets one thread while
Numba runs, so the two pools never oversubscribe the cores."""

from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def numba_threads(threads: int) -> Iterator[int]:
    """Run the block with ``threads`` Numba threads (0 = every usable core, capped at
    Numba's pool size) and single-threaded BLAS; restores both afterwards."""
    import numba
    from threadpoolctl import threadpool_limits

    from recli.backend import resolve_threads

    n = max(1, min(resolve_threads(threads), numba.config.NUMBA_NUM_THREADS))
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield n
    finally:
        numba.set_num_threads(previous)
