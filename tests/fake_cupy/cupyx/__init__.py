"""Stand-in ``cupyx`` for the NumPy-backed ``cupy`` (see ``tests/fake_cupy/cupy``)."""
