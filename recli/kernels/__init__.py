"""Pure functions over arrays. ``cpu`` holds Numba kernels; ``xp`` the array-module twins,
which launch the ``numba.cuda`` kernels of ``cuda`` where the array module is CuPy.

Kernels import only numpy/numba/cupy: no config objects, logging, I/O or Polars.
Every Numba function is ``njit(cache=True)``; the cache directory is set when the
``recli`` package is imported (see :mod:`recli`), before Numba can be.
"""

# fastmath flags come from one place so every kernel agrees.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
# A CG residual this small means the row has converged: stop before dividing by ~0
# (shared by the Numba and the array-module ALS solvers).
CG_EPS = 1e-20
