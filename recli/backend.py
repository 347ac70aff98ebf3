"""Compute backends: the single device seam.

A :class:`Backend` carries an array module ``xp`` and a ``kernels`` namespace:
:mod:`recli.kernels.cpu` (Numba) for ``cpu``, :class:`recli.kernels.xp.XPKernels` bound to
``xp`` for the array-module path: CuPy on ``gpu``, NumPy on the internal ``xp-numpy``
device (the GPU-shaped code run without a GPU, for tests). Both namespaces offer the same
functions with the same signatures, so models and stages ask ``backend.kernels`` and
never branch on the device.

Each registered model declares the devices it runs on (``Model.devices``). Only a model
that lists ``"gpu"`` may get a GPU-shaped backend; it then reaches its kernels only
through ``backend.kernels``. A CPU-only model may call its Numba kernels directly: the
model constructor (:meth:`Backend.for_model`) guarantees its backend is the CPU one.

* ``cpu``: NumPy + Numba.
* ``gpu``: refused (:class:`ConfigError`) for a model without GPU kernels, listing those
  that have them; else CuPy, or :class:`DeviceUnavailable` with the install hint.
* ``auto``: the GPU when one is usable *and* the model supports it, else the CPU; the
  choice is logged as an info line.

``Backend.name`` is the device that really runs, and what ``meta.json`` records.
Importing this module never imports CuPy or Numba; both load on first use.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from recli.console import log
from recli.errors import ConfigError, DeviceUnavailable

DEVICES = ("cpu", "gpu", "auto")
_TEST_DEVICE = "xp-numpy"  # internal: the GPU-shaped path on NumPy (not advertised)


@dataclass
class Backend:
    """``name``: the device that runs (``cpu``, ``gpu``, ``xp-numpy``), recorded in model
    metadata; ``xp``: numpy or cupy; ``requested``: the ``--device`` value it came from
    (``auto`` may still fall back to the CPU for a CPU-only model)."""

    name: str
    xp: Any
    threads: int = 0
    requested: str = ""
    _kernels: Any = field(default=None, repr=False, compare=False)

    @property
    def device(self) -> str:
        """The device class a model must support to run here: ``cpu`` or ``gpu``."""
        return "cpu" if self.name == "cpu" else "gpu"

    @property
    def kernels(self) -> Any:
        """The kernel namespace of this device (same functions on every device)."""
        if self._kernels is None:
            if self.name == "cpu":
                self._kernels = importlib.import_module("recli.kernels.cpu")
            else:
                from recli.kernels.xp import XPKernels

                self._kernels = XPKernels(self.xp)
        return self._kernels

    def to_host(self, array: Any) -> np.ndarray:
        """Device arrays never escape a model: convert to NumPy."""
        from recli.kernels.als_xp import to_host

        return to_host(self.xp, array)

    def for_model(self, model_cls: type) -> "Backend":
        """This backend if ``model_cls`` supports its device; the CPU backend when the
        device was ``auto``; otherwise the model's ``device_refusal`` error (a
        :class:`ConfigError` naming the models that can)."""
        if self.device in getattr(model_cls, "devices", ("cpu",)):
            return self
        if self.requested == "auto":
            return _auto_cpu(model_cls, self.threads)
        raise model_cls.device_refusal(self.device)


def _auto_cpu(model_cls: type, threads: int) -> Backend:
    log.info(f"device auto: {model_cls.name} has no GPU kernels; using cpu")
    return Backend("cpu", np, threads, "auto")


# What to install for --device gpu (the extras carry CuPy and numba-cuda).
GPU_INSTALL = 'pip install "recli[cuda12]" (CUDA 12) or "recli[cuda13]" (CUDA 13)'


def gpu_problem() -> str:
    """Why no GPU is usable ("" when CuPy imports and reports at least one CUDA device)."""
    try:
        cupy = importlib.import_module("cupy")
    except Exception:  # ImportError, or a broken CUDA install failing at import
        return "CuPy is not installed"
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # no driver, or a driver too old for this CuPy
        return f"CuPy finds no usable CUDA driver ({type(exc).__name__})"
    return "" if count > 0 else "CuPy sees no CUDA device"


def gpu_available() -> bool:
    """Whether CuPy imports and reports at least one CUDA device."""
    return not gpu_problem()


def gpu_unavailable(alternative: str = "use --device cpu") -> DeviceUnavailable:
    """The error for ``--device gpu`` where no GPU is usable, with the reason and the install hint."""
    reason = gpu_problem() or "no usable GPU"
    return DeviceUnavailable(f"--device gpu needs CuPy and a CUDA GPU, and none is usable here: {reason}",
                             hint=f"{GPU_INSTALL}, or {alternative}")


def get_backend(device: str = "cpu", threads: int = 0, model: type | None = None) -> Backend:
    """The backend for ``device`` (cpu, gpu, auto; xp-numpy for tests).

    With ``model`` (a model class), its declared ``devices`` are checked first, so a
    model without GPU kernels is refused on ``gpu`` whether or not a GPU is usable, and
    ``auto`` considers the GPU only for models that support it.
    """
    requested = (device or "cpu").lower()
    if requested not in DEVICES + (_TEST_DEVICE,):
        raise ConfigError(f"unknown device {device!r}", hint=f"use one of: {', '.join(DEVICES)}")
    if model is not None and "gpu" not in getattr(model, "devices", ("cpu",)):
        if requested in ("gpu", _TEST_DEVICE):
            raise model.device_refusal("gpu")
        if requested == "auto":
            return _auto_cpu(model, threads)
    if requested == "auto":
        chosen = "gpu" if gpu_available() else "cpu"
        log.info(f"device auto: using {chosen}" + ("" if chosen == "gpu" else " (no usable GPU)"))
        return Backend(chosen, importlib.import_module("cupy") if chosen == "gpu" else np, threads, requested)
    if requested == "gpu" and not gpu_available():
        raise gpu_unavailable()
    xp = importlib.import_module("cupy") if requested == "gpu" else np
    return Backend(requested, xp, threads, requested)


def model_kernels(model: Any) -> Any:
    """The kernel namespace of the backend ``model`` runs on; the CPU one for ``None`` or
    an object built without a backend."""
    backend = getattr(model, "backend", None)
    return (backend if backend is not None else get_backend("cpu")).kernels


def device_batch_rows(kernels: Any, batch_size: int, n_items: int) -> int:
    """``batch_size``, or fewer rows on a device whose kernels have a memory budget
    (``batch_bytes``, see :mod:`recli.device_memory`): a batch's top-k over ``n_items``
    must fit it. Rankings do not depend on the batch size."""
    budget = getattr(kernels, "batch_bytes", None)
    if budget is None:
        return batch_size
    from recli.kernels.topk_xp import rows_within

    return min(batch_size, rows_within(budget, n_items))


def resolve_threads(threads: int) -> int:
    """0 means every core this process may use."""
    if threads and threads > 0:
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


_CONTROLLER: dict[str, Any] = {}


def _blas_controller() -> Any:
    """threadpoolctl's view of the loaded BLAS libraries, built once per set of imported
    modules. Why: building it scans every shared library of the process (about 3 ms),
    and ``recli tune`` enters :func:`threads_context` several times per trial; a BLAS is
    only loaded by an import, so the view is rebuilt when the module count changes."""
    import sys

    from threadpoolctl import ThreadpoolController

    if _CONTROLLER.get("modules") != len(sys.modules):
        _CONTROLLER.update(controller=ThreadpoolController(), modules=len(sys.modules))
    return _CONTROLLER["controller"]


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[bool]:
    """Run a block with BLAS limited to one thread: for a kernel that runs its own
    threads, each calling BLAS on its share (:func:`recli.kernels.dot_screen.screened_topk`),
    so that the cores are not oversubscribed. The previous limit is restored after.

    Yields whether the limit holds: set from a thread other than the main one, after the
    main thread set a limit of its own, OpenBLAS (0.3.31) keeps the main thread's count,
    so such a caller must not run BLAS on several threads at once; a stage that scores in
    a worker thread sets the limit from the main thread instead."""
    controller = _blas_controller()
    with controller.limit(limits=1, user_api="blas"):
        yield all(lib.num_threads == 1 for lib in controller.select(user_api="blas").lib_controllers)


@contextlib.contextmanager
def numba_warmup() -> Iterator[None]:
    """Run a block while a background thread prepares Numba's CPU target.

    The first kernel call of a process (even one loaded from the on-disk cache) first
    builds Numba's CPU target: a few hundred ms of imports that hold the GIL. A block
    whose first part runs with the GIL released (Polars reading files and mapping ids)
    hides that cost. The thread takes Numba's compiler lock, as a compilation would, so a kernel
    called meanwhile waits for it; the block's exit waits for the thread too.
    """
    thread = threading.Thread(target=_prepare_numba_target, name="recli-numba-warmup", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def _prepare_numba_target() -> None:
    try:
        from numba.core.compiler_lock import global_compiler_lock
        from numba.core.registry import cpu_target
    except ImportError:  # a Numba without these internals: the first kernel call does the work
        return
    with global_compiler_lock:
        cpu_target.target_context.refresh()


@contextlib.contextmanager
def threads_context(threads: int = 0, numba: bool = True) -> Iterator[int]:
    """Run a block with ``threads`` Numba threads and at most ``threads`` BLAS threads.

    ``--threads`` sets both pools. recli never runs a Numba kernel and a BLAS call at the
    same time (batches alternate: BLAS scores, then the Numba top-k), so capping each pool
    at ``threads`` means the two never oversubscribe the cores, provided OpenBLAS's
    workers sleep after a call instead of spinning (``OPENBLAS_THREAD_TIMEOUT``, set when
    ``recli`` is imported). ``0`` means every core
    this process may use (capped at Numba's pool size). Both settings are restored after.
    ``numba=False`` leaves Numba unimported (work too small for any kernel: serving one
    user must not pay Numba's import time).
    """
    n = max(1, resolve_threads(threads))
    previous = None
    if numba:
        import numba as nb

        n = min(n, nb.config.NUMBA_NUM_THREADS)
        previous = nb.get_num_threads()
        nb.set_num_threads(n)
    try:
        with _blas_controller().limit(limits=n, user_api="blas"):
            yield n
    finally:
        if previous is not None:
            nb.set_num_threads(previous)
