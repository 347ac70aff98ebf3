"""A NumPy-backed stand-in for CuPy (tests only): put ``tests/fake_cupy`` first on
``sys.path`` and ``import cupy`` gives NumPy's namespace plus the small CuPy surface
recli uses: ``asarray``/``asnumpy``, ``get_array_module``, a CUDA runtime that reports
one device (``cuda.runtime.getDeviceCount``) and its memory (``cuda.runtime.memGetInfo``
and ``cuda.Device().mem_info``, both ``(free, total)`` bytes), and ``cupyx.scipy.sparse``
mapped to SciPy. The real CLI then runs ``--device gpu`` end to end on a machine without
a GPU (the array-module path on NumPy), so the device seam, the memory planning and the
refusals are exercised in CI.

The reported memory is ``MEMORY`` (a mutable ``[free, total]``), or the environment
variable ``RECLI_FAKE_GPU_MEMORY`` (``free,total`` in bytes) when set, so a test can
stand in a small device.
"""

import os
from types import SimpleNamespace

import numpy as _np

# ``xp is np`` must be false, as it is for the real CuPy: the seam may not shortcut it.
asnumpy = _np.asarray
MEMORY = [16 << 30, 16 << 30]  # [free, total] bytes of the stand-in device


def get_array_module(*_arrays):
    return _np


def _mem_get_info():
    env = os.environ.get("RECLI_FAKE_GPU_MEMORY")
    if env:
        free, total = (int(x) for x in env.split(","))
        return free, total
    return MEMORY[0], MEMORY[1]


class _Device:
    def __init__(self, device=0):
        self.id = device

    @property
    def mem_info(self):
        return _mem_get_info()


cuda = SimpleNamespace(runtime=SimpleNamespace(getDeviceCount=lambda: 1, memGetInfo=_mem_get_info),
                       Device=_Device)


def __getattr__(name):
    return getattr(_np, name)
