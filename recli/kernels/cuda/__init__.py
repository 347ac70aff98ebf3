"""Custom GPU kernels written with ``numba.cuda``: the SGD samplers of ``bpr``, ``warp`` and
``mf`` (:mod:`.sgd`), a per-row top-k with seen items masked (:mod:`.topk`) and a batched
conjugate-gradient ALS row solve (:mod:`.cg`).

They are launched on CuPy arrays (through ``__cuda_array_interface__``) by the
array-module orchestration (:mod:`recli.kernels.sgd_xp`), and in CI on NumPy arrays by
Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set before Numba is imported), where
each is compared with the slow NumPy reference its Numba CPU twin is tested against.
Importing a module here imports ``numba.cuda``; nothing else in recli does.

The top-k and CG kernels replace the array-module code only where they pay off: on a
real GPU (:func:`launchable`). On NumPy, on the stand-in ``cupy`` of the tests and on the
simulator, the ``xp`` code runs instead (the simulator costs about half a millisecond per
simulated thread); tests drive them there by forcing ``XPKernels(xp, cuda=True)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# numba-cuda 0.30 (the last release; upstream fixes no more NumPy versions) registers an
# overload of ``np.row_stack`` the first time it compiles a kernel, and NumPy 2.5 removed
# that alias of ``np.vstack``: every kernel compile then fails with AttributeError. The
# alias is restored, as NumPy < 2.5 had it, before any kernel here is compiled.
if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack


def launchable(xp: Any) -> bool:
    """Whether the custom kernels run on a real GPU for arrays of ``xp``: ``xp`` makes arrays
    of its own type (CuPy; not NumPy or a NumPy stand-in), ``numba.cuda`` imports, the CUDA
    simulator is off, and Numba sees a CUDA device."""
    if getattr(xp, "ndarray", np.ndarray) is np.ndarray:
        return False
    try:
        from numba import config, cuda
    except ImportError:  # numba-cuda missing: the array-module code runs
        return False
    return not config.ENABLE_CUDASIM and bool(cuda.is_available())
