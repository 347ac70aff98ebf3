"""Storage precision of factor matrices: float32 values to and from ``float16`` or
``bfloat16`` storage (``recli train --dtype``), for any array module ``xp``.

bfloat16 is the top 16 bits of a float32 (sign, 8 exponent bits, 7 mantissa bits). NumPy
has no bfloat16 type, so it is stored as its ``uint16`` bit pattern. Conversion rounds to
the nearest bfloat16, ties to even, on the float32 bit pattern ``b``:

    bf16 = (b + 0x7FFF + ((b >> 16) & 1)) >> 16

(NaN stays a quiet NaN; a value past the largest finite bfloat16 rounds to ±inf, as IEEE
rounding does). Back to float32 is exact: ``float32 bits = bf16 << 16``. float16 uses
the IEEE half type (``astype``, also round to nearest even). Arithmetic stays float32:
serving upcasts the rows it reads (:func:`to_float32`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The storage dtypes and the array dtype each is stored as.
STORAGE = {"float32": "float32", "float16": "float16", "bfloat16": "uint16"}


def to_storage(values: Any, dtype: str, xp: Any = np) -> Any:
    """``values`` (float32) in the storage form of ``dtype`` (see the module docstring)."""
    a = xp.ascontiguousarray(xp.asarray(values, dtype=xp.float32))
    if dtype == "float32":
        return a
    if dtype == "float16":
        return a.astype(xp.float16)
    bits = a.view(xp.uint32)
    rounded = (bits + xp.uint32(0x7FFF) + ((bits >> xp.uint32(16)) & xp.uint32(1))) >> xp.uint32(16)
    nan = xp.isnan(a)
    rounded = xp.where(nan, (bits >> xp.uint32(16)) | xp.uint32(0x40), rounded)
    return rounded.astype(xp.uint16)


def to_float32(stored: Any, dtype: str, xp: Any = np) -> Any:
    """The float32 values of an array in the storage form of ``dtype`` (exact)."""
    if dtype == "bfloat16":
        return (xp.asarray(stored).astype(xp.uint32) << xp.uint32(16)).view(xp.float32)
    return xp.asarray(stored, dtype=xp.float32)


def storage_of(array: Any) -> str:
    """The storage dtype whose form ``array`` is in (the inverse of ``STORAGE``: ``uint16``
    holds bfloat16 bits), so a kernel given factors in storage form knows how to read them."""
    kind = np.dtype(array.dtype).name
    for dtype, stored_as in STORAGE.items():
        if kind == stored_as:
            return dtype
    raise ValueError(f"factors of array dtype {kind} are in no storage form ({', '.join(STORAGE.values())})")


def reduced(array: Any) -> bool:
    """Whether ``array`` holds factors in a reduced storage form (float16, or bfloat16 bits)."""
    return np.dtype(array.dtype).name in ("float16", "uint16")


def storage_matches(array: Any, dtype: str) -> bool:
    """Whether ``array`` has the array dtype that ``dtype`` is stored as."""
    return np.dtype(array.dtype) == np.dtype(STORAGE[dtype])
