"""Matrix products: matmul in every form torch accepts (2-D, batched, vectors)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tape.elementwise import bind, keep, operands
from tape.op import primitive, unbroadcast
from tape.tensor import ShapeError, Tensor, run


@primitive("matmul", saves=("a", "b"))
def matmul_(a, b):
    """out = a @ b; da = dout @ b.T, db = a.T @ dout (batch dims summed back)"""
    return rows_times(a, b), (a, b)


def rows_times(a, b):
    """``a @ b``. A stack of matrices (..., n, k) times one matrix (k, m) is one product of every
    row: NumPy would call BLAS once per matrix of the stack (32 small products for a batch of 32)."""
    if a.ndim > 2 and b.ndim == 2:
        return (a.reshape(-1, a.shape[-1]) @ b).reshape(*a.shape[:-1], b.shape[-1])
    return a @ b


def dmatmul_a(dout, a, b):
    if b.ndim == 2 and a.ndim > 2:  # da = dout @ b.T, over every row at once (see rows_times)
        return rows_times(dout, b.swapaxes(-1, -2))
    if b.ndim == 1:  # (..., k) @ (k,): dout has lost the column axis
        return unbroadcast(dout[..., None] * b, a.shape)  # the outer product, on arrays or tensors
    if a.ndim == 1:  # (k,) @ (..., k, m): dout has lost the row axis
        return unbroadcast(b @ dout[..., None], a.shape + (1,)).reshape(a.shape)
    return unbroadcast(dout @ b.swapaxes(-1, -2), a.shape)


def dmatmul_b(dout, a, b):
    if a.ndim == 1:
        if b.ndim == 1:
            return dout * a
        return unbroadcast(a[:, None] * dout[..., None, :], b.shape)
    if b.ndim == 1:
        return unbroadcast(a.swapaxes(-1, -2) @ dout[..., None], b.shape + (1,)).reshape(b.shape)
    if b.ndim == 2 and a.ndim > 2:  # the sum over the stack of a.T @ dout: one product of every row
        return a.reshape(-1, a.shape[-1]).swapaxes(-1, -2) @ dout.reshape(-1, b.shape[-1])
    return unbroadcast(a.swapaxes(-1, -2) @ dout, b.shape)


matmul_.defvjp(dmatmul_a, dmatmul_b)


def matmul(a: Any, b: Any) -> Tensor:
    """``a @ b``; both operands need at least one dim."""
    a_data, b_data = operands("matmul", a, b)
    sa, sb = np.shape(a_data), np.shape(b_data)
    if not sa or not sb:
        raise ShapeError(f"matmul: both operands need at least one dimension, got shapes {sa} and {sb}")
    k_b = sb[-2] if len(sb) > 1 else sb[0]
    if sa[-1] != k_b:
        raise ShapeError(f"matmul: shapes {sa} and {sb} cannot be multiplied ({sa[-1]} != {k_b})")
    try:
        return run(matmul_, (keep(a, a_data), keep(b, b_data)), (a_data, b_data), ())
    except ValueError:
        raise ShapeError(
            f"matmul: the batch dimensions of shapes {sa} and {sb} cannot be broadcast together"
        ) from None


def mm(a: Tensor, b: Tensor) -> Tensor:
    if a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"mm: expects two matrices, got shapes {a.shape} and {b.shape}")
    return matmul(a, b)


def dot(a: Tensor, b: Tensor) -> Tensor:
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError(f"dot: expects two vectors, got shapes {a.shape} and {b.shape}")
    return matmul(a, b)


def outer(a: Tensor, b: Tensor) -> Tensor:
    return a.view(-1, 1) * b.view(1, -1)


bind(matmul, "__matmul__", "matmul")
bind(lambda self, other: matmul(other, self), "__rmatmul__")
bind(mm, "mm")
bind(lambda a, b: matmul(a, b), "bmm")
bind(dot, "dot")
bind(outer, "outer")
