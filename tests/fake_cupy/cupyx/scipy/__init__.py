"""Stand-in ``cupyx.scipy`` for the NumPy-backed ``cupy`` (see ``tests/fake_cupy/cupy``)."""
