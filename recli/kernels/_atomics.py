"""``fetch_add(a, i, v)``: atomically add ``v`` to ``a[i]`` (a 1-D int64 array) and return
the old value, for njit kernels that hand out work dynamically.

Numba's OpenMP layer splits a ``prange`` into contiguous static blocks, and
``parallel_chunksize`` does not change that, so a loop whose iterations differ in cost
(the similarity kernel's rows: early rows carry far more pairs) leaves threads idle.
A kernel can instead run one ``prange`` iteration per thread and let each thread claim
the next chunk of work from a shared counter with ``fetch_add``. Under
``NUMBA_DISABLE_JIT=1`` it is a plain (single-threaded) add.
"""

from __future__ import annotations

from numba import config, types

if config.DISABLE_JIT:  # pragma: no cover - coverage runs only

    def fetch_add(arr, index, value):
        old = arr[index]
        arr[index] += value
        return old

else:
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def fetch_add(typingctx, arr, index, value):
        if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.dtype == types.int64
                and isinstance(index, types.Integer) and isinstance(value, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            aryty = sig.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            pos = context.cast(builder, args[1], sig.args[1], types.intp)
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [pos])
            val = context.cast(builder, args[2], sig.args[2], types.int64)
            return builder.atomic_rmw("add", ptr, val, "monotonic")

        return types.int64(arr, index, value), codegen
