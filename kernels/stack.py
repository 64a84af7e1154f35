"""Small scratch arrays on the stack of a compiled function.

An array from `np.empty` lives on the heap, and the compiler must assume it may overlap any
other array, so every value written to it is stored and loaded back. On the stack, it provably
overlaps nothing: values stay in registers and loops over it vectorise without overlap checks
(docs/kernels.md#stack). Only for a few kilobytes: the stack is small.
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

MAX_BYTES = 64 * 1024  # what the generated code may put on the stack in all


@intrinsic
def stack_empty(typingctx, rows, cols, like):
    """An uninitialised C-ordered (rows, cols) array of `like`'s dtype on the caller's stack,
    valid until the caller returns; rows and cols must be integer literals."""
    if not isinstance(rows, types.IntegerLiteral) or not isinstance(cols, types.IntegerLiteral):
        return None
    n_rows, n_cols, dtype = rows.literal_value, cols.literal_value, like.dtype
    array_type = types.Array(dtype, 2, "C")

    def codegen(context, builder, signature, args):
        element = context.get_data_type(dtype)
        itemsize = context.get_abi_sizeof(element)
        intp = context.get_value_type(types.intp)
        array = make_array(array_type)(context, builder)
        populate_array(array, data=cgutils.alloca_once(builder, element, size=n_rows * n_cols),
                       shape=cgutils.pack_array(builder, [intp(n_rows), intp(n_cols)]),
                       strides=cgutils.pack_array(builder, [intp(n_cols * itemsize), intp(itemsize)]),
                       itemsize=intp(itemsize), meminfo=None)
        return array._getvalue()

    return array_type(rows, cols, like), codegen
