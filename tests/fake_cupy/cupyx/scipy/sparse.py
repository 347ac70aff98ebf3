"""Stand-in ``cupyx.scipy.sparse``: SciPy's sparse module (see ``tests/fake_cupy/cupy``)."""

from scipy.sparse import *  # noqa: F401,F403
