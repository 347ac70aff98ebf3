"""``prefetch_row(A, i)``: ask the CPU to start loading row ``i`` of a 2-D C-contiguous
array into cache (``llvm.prefetch``), for use inside njit kernels; ``prefetch_at(a, i)``
does the same for the cache line holding element ``i`` of a 1-D array.

ALS and SGD read factor rows at random (one per non-zero); issuing the loads a few
non-zeros ahead overlaps their memory latency with the arithmetic on the current row.
A prefetch never faults and never changes results. Under ``NUMBA_DISABLE_JIT=1`` it is
a Python no-op.
"""

from __future__ import annotations

from numba import config, types

if config.DISABLE_JIT:  # pragma: no cover - coverage runs only

    def prefetch_row(arr, row):
        return None

    def prefetch_at(arr, index):
        return None

else:
    from llvmlite import ir
    from numba.core import cgutils
    from numba.extending import intrinsic

    _LINE = 64  # bytes per cache line
    _MAX_LINES = 16  # rows up to 1 KiB (256 float32 factors) are prefetched whole

    def _prefetcher(builder):
        """``emit(ptr)``: an ``llvm.prefetch`` of the i8* ``ptr`` (read, keep in all cache
        levels, data cache)."""
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer(), i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        return lambda ptr: builder.call(fn, [ptr, i32(0), i32(3), i32(1)])

    @intrinsic
    def prefetch_row(typingctx, arr, row):
        if not (isinstance(arr, types.Array) and arr.ndim == 2 and isinstance(row, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            aryty = sig.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            zero = context.get_constant(types.intp, 0)
            row_index = context.cast(builder, args[1], sig.args[1], types.intp)
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [row_index, zero])
            emit = _prefetcher(builder)
            base = builder.bitcast(ptr, ir.IntType(8).as_pointer())
            nbytes = builder.mul(builder.extract_value(ary.shape, 1),
                                 context.get_constant(types.intp, aryty.dtype.bitwidth // 8))
            for line in range(_MAX_LINES):
                off = context.get_constant(types.intp, _LINE * line)
                with builder.if_then(builder.icmp_signed("<", off, nbytes)):
                    emit(builder.gep(base, [off]))
            return context.get_dummy_value()

        return types.void(arr, row), codegen

    @intrinsic
    def prefetch_at(typingctx, arr, index):
        if not (isinstance(arr, types.Array) and arr.ndim == 1 and isinstance(index, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            ary = context.make_array(sig.args[0])(context, builder, args[0])
            pos = context.cast(builder, args[1], sig.args[1], types.intp)
            # no bounds check: a prefetch of any address is harmless (it never faults)
            ptr = builder.gep(ary.data, [pos])
            _prefetcher(builder)(builder.bitcast(ptr, ir.IntType(8).as_pointer()))
            return context.get_dummy_value()

        return types.void(arr, index), codegen
