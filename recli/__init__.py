"""recli: a fast command-line toolkit for recommender systems.

Importing the package is cheap on purpose: Numba, CuPy and Polars load lazily in
the modules that need them, so ``recli --help`` stays fast.
"""

__version__ = "0.1.0"
