"""recli: a fast command-line toolkit for recommender systems.

Importing the package is cheap on purpose: Numba, CuPy and Polars load lazily in
the modules that need them, so ``recli --help`` stays fast.

It does two things at import, each unless the user set the variable:

* point Numba's compile cache at a per-user directory, one folder per state of the
  kernel sources (:func:`kernel_sources_stamp`; ``NUMBA_CACHE_DIR``). This must happen
  before anything imports Numba, because Numba reads the variable once, when it is first
  imported; without it Numba writes ``__pycache__`` folders into the installed package,
  which breaks read-only installs and, after ``pip install -e``, leaves a stray
  ``recli/`` folder in site-packages that shadows the editable install;
* let OpenBLAS's worker threads sleep right after a call (``OPENBLAS_THREAD_TIMEOUT``,
  :data:`BLAS_THREAD_TIMEOUT`), read when NumPy loads its BLAS.
"""

import os
import sys
from pathlib import Path

__version__ = "0.4.0"


def user_cache_dir() -> Path:
    """recli's per-user cache directory: ``$XDG_CACHE_HOME/recli`` (default
    ``~/.cache/recli``) on Linux, ``~/Library/Caches/recli`` on macOS and
    ``%LOCALAPPDATA%\\recli`` on Windows."""
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "recli"
    if sys.platform == "darwin" and "XDG_CACHE_HOME" not in os.environ:
        return Path.home() / "Library" / "Caches" / "recli"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "recli"


def kernel_sources_stamp(root: Path | None = None) -> str:
    """Eight hex digits from the name, size and modification time of every source file
    under ``recli/kernels`` (or ``root``), naming the compile cache of these sources.

    Numba checks a cached function against the file that defines it only, but a compiled
    kernel also holds its own copy of every function it calls from other files (the ALS
    sweep calls the CG pieces of ``als_cg.py``): after an edit or a checkout that changes
    only those, the cached kernel would still run the old code. A cache per stamp never
    serves a kernel compiled from other sources."""
    import zlib

    root = root or Path(__file__).parent / "kernels"
    parts = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories.sort()
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(directory, name)
            stat = os.stat(path)
            parts.append(f"{os.path.relpath(path, root)}:{stat.st_size}:{stat.st_mtime_ns}")
    return f"{zlib.crc32(';'.join(parts).encode()):08x}"


def _configure_numba_cache() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    cache = str(user_cache_dir() / "numba" / kernel_sources_stamp())
    os.environ["NUMBA_CACHE_DIR"] = cache
    config = sys.modules.get("numba.core.config")
    if config is not None:  # Numba was imported first (by the caller): tell it directly
        config.CACHE_DIR = cache


_configure_numba_cache()

# OpenBLAS's worker threads keep spinning for 2^28 cycles (about 0.1 s) after a call that
# used them before they sleep. recli alternates BLAS products with Numba kernels on the
# same cores, and a spinning BLAS thread takes its core's share from the kernel that
# follows: an ALS user sweep right after a tall product on two threads (8192 × 64 by
# 64 × 64) took 0.18 s instead of 0.13. 2^4 cycles puts them to sleep at once; the next
# call wakes them (microseconds, against products of milliseconds). Child processes (the
# bench's, peers included) inherit the setting.
BLAS_THREAD_TIMEOUT = "4"
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", BLAS_THREAD_TIMEOUT)
