"""Compute backends: an array module ``xp`` plus a ``kernels`` namespace.

``get_backend("cpu")`` gives NumPy, and models call their Numba kernels
(:mod:`recli.kernels`). ``get_backend("xp-numpy")`` gives NumPy driving the
*GPU-shaped* vectorised code path (the same orchestration CuPy will run), so CI
exercises it without a GPU.
``get_backend("gpu")`` gives CuPy, or raises :class:`DeviceUnavailable` with the install
hint. ``auto`` picks gpu when usable, else cpu, and logs its choice.

Importing this module never imports CuPy or Numba; both load on first use.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from recli.console import log
from recli.errors import ConfigError, DeviceUnavailable

DEVICES = ("cpu", "gpu", "auto")


@dataclass
class Backend:
    """``name`` is what is recorded in model metadata; ``xp`` is numpy or cupy."""

    name: str
    xp: Any
    threads: int = 0

    @property
    def is_gpu(self) -> bool:
        return self.name == "gpu"

    def to_host(self, array: Any) -> np.ndarray:
        """Device arrays never escape a model: convert to NumPy."""
        if self.xp is np:
            return np.asarray(array)
        return self.xp.asnumpy(array)


def gpu_available() -> bool:
    try:
        cupy = importlib.import_module("cupy")
        return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:
        return False


def get_backend(device: str = "cpu", threads: int = 0) -> Backend:
    """Return the backend for ``device`` (cpu, gpu, auto; xp-numpy for tests)."""
    device = (device or "cpu").lower()
    if device == "cpu":
        return Backend("cpu", np, threads)
    if device == "xp-numpy":
        return Backend("xp-numpy", np, threads)
    if device == "gpu":
        if not gpu_available():
            raise DeviceUnavailable(
                "--device gpu needs CuPy and a CUDA GPU, and none is usable here",
                hint="install the extra that matches your CUDA ('pip install recli[cuda12]'), or use --device cpu",
            )
        return Backend("gpu", importlib.import_module("cupy"), threads)
    if device == "auto":
        chosen = "gpu" if gpu_available() else "cpu"
        log.info(f"device auto: using {chosen}")
        return get_backend(chosen, threads)
    raise ConfigError(f"unknown device {device!r}", hint=f"use one of: {', '.join(DEVICES)}")


def resolve_threads(threads: int) -> int:
    """0 means every core this process may use."""
    if threads and threads > 0:
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def threads_context(threads: int = 0, numba: bool = True) -> Iterator[int]:
    """Run a block with ``threads`` Numba threads and at most ``threads`` BLAS threads.

    ``--threads`` sets both pools. recli never runs a Numba kernel and a BLAS call at the
    same time (batches alternate: BLAS scores, then the Numba top-k), so capping each pool
    at ``threads`` means the two never oversubscribe the cores. ``0`` means every core
    this process may use (capped at Numba's pool size). Both settings are restored after.
    ``numba=False`` leaves Numba unimported (work too small for any kernel: serving one
    user must not pay Numba's import time).
    """
    from threadpoolctl import threadpool_limits

    n = max(1, resolve_threads(threads))
    previous = None
    if numba:
        import numba as nb

        n = min(n, nb.config.NUMBA_NUM_THREADS)
        previous = nb.get_num_threads()
        nb.set_num_threads(n)
    try:
        with threadpool_limits(limits=n, user_api="blas"):
            yield n
    finally:
        if previous is not None:
            nb.set_num_threads(previous)
