"""Pure functions over arrays. ``cpu`` holds Numba kernels; ``xp`` the array-module twins.

Kernels import only numpy/numba/cupy: no config objects, logging, I/O or Polars.
Every Numba function is ``njit(cache=True)``; set ``NUMBA_CACHE_DIR`` before import.
"""

import os
from pathlib import Path

if "NUMBA_CACHE_DIR" not in os.environ:
    # A per-user cache so a CLI call does not pay the JIT compile each time, even when
    # the package directory is read-only.
    os.environ["NUMBA_CACHE_DIR"] = str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "recli" / "numba")

# fastmath flags come from one place so every kernel agrees.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
# A CG residual this small means the row has converged: stop before dividing by ~0
# (shared by the Numba and the array-module ALS solvers).
CG_EPS = 1e-20
