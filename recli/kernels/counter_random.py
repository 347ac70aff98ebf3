"""Counter-based random draws for the mini-batch SGD of the array-module and CUDA paths.

Draw ``d`` of sample ``s`` in an epoch is a pure function of ``(key, s, d)``::

    bits(key, s, d) = mix(mix(key ^ s·K₁) ^ d·K₂)        mix = SplitMix64's finaliser
    key            = epoch_key(seed, epoch, purpose)

so any thread (a CUDA thread, or one element of a vectorised NumPy/CuPy expression) makes
its draws without shared state, and the NumPy mini-batch path and the CUDA kernels draw
exactly the same samples. ``mix`` is a bijection of 64-bit words and K₁ is odd, so the
``bits(key, s, 0)`` of distinct ``s`` are distinct: sorting them gives a permutation.

The formula is written once (:func:`counter_bits_with`); :data:`counter_bits` applies it
to NumPy/CuPy ``uint64`` arrays or scalars, :mod:`recli.kernels.cuda.device` compiles it
for CUDA. All arithmetic is ``uint64`` and wraps modulo 2⁶⁴.
"""

from __future__ import annotations

import numpy as np

from recli.kernels.random_streams import splitmix64

SAMPLE_KEY = np.uint64(0x8CB92BA72F3D8DD7)
DRAW_KEY = np.uint64(0xD1B54A32D192ED03)
# epoch_key purposes: the epoch's visiting order, the per-sample item draws, k-OS positives
ORDER, DRAWS, POSITIVES = 1, 2, 3


def counter_bits_with(mix):
    """``bits(key, s, d)`` built on the 64-bit mixer ``mix`` (host or device)."""

    def counter_bits(key, sample, draw):
        # arrays on the left: a NumPy scalar key must not try to convert a CuPy array
        return mix(mix((sample * SAMPLE_KEY) ^ key) ^ (draw * DRAW_KEY))

    return counter_bits


counter_bits = counter_bits_with(splitmix64.py_func)


def below(bits, n):
    """A uniform integer in ``[0, n)`` from 64 random bits (Lemire's multiply-shift on the
    high 32 bits; ``n < 2³²``, bias below ``n / 2³²``), as ``uint64``."""
    return ((bits >> np.uint64(32)) * n) >> np.uint64(32)


def epoch_key(seed: int, epoch: int, purpose: int) -> np.uint64:
    """The key of ``(seed, epoch, purpose)``: Python integers mixed modulo 2⁶⁴."""
    with np.errstate(over="ignore"):
        k = splitmix64.py_func(np.uint64(seed % 2**64))
        k = splitmix64.py_func(k ^ np.uint64(epoch % 2**64) * DRAW_KEY)
        return np.uint64(splitmix64.py_func(k ^ np.uint64(purpose) * SAMPLE_KEY))
