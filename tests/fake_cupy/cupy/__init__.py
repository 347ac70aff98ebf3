"""A NumPy-backed stand-in for CuPy (tests only): put ``tests/fake_cupy`` first on
``sys.path`` and ``import cupy`` gives NumPy's namespace plus ``asnumpy`` and a CUDA
runtime that reports one device. The real CLI then runs ``--device gpu`` end to end
on a machine without a GPU (the array-module path on NumPy), so the device seam and
the refusals are exercised in CI."""

from types import SimpleNamespace

import numpy as _np

# ``xp is np`` must be false, as it is for the real CuPy: the seam may not shortcut it.
asnumpy = _np.asarray
cuda = SimpleNamespace(runtime=SimpleNamespace(getDeviceCount=lambda: 1))


def __getattr__(name):
    return getattr(_np, name)
