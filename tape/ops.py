"""The primitive ops: each forward with its vector-Jacobian products right beside it.

Notation follows the backprop-ninja notebook: for ``out = f(x)`` the VJP maps ``dout``
(dloss/dout) to ``dx`` (dloss/dx). Everything here is plain NumPy; ``tape.tensor`` wraps
these ops for Tensors and records them on the Wengert list. The derivations are in
``docs/vjp.md``.
"""

from __future__ import annotations

import math

import numpy as np

from tape.op import primitive, shape_of, unbroadcast

# ---------------------------------------------------------------- elementwise, binary
# Binary ops broadcast like NumPy; ``unbroadcast`` sums each gradient back to its input's shape.


@primitive("add", saves=("a.shape", "b.shape"))
def add(a, b):
    return a + b, (shape_of(a), shape_of(b))


add.defvjp(
    lambda dout, a_shape, b_shape: unbroadcast(dout, a_shape),
    lambda dout, a_shape, b_shape: unbroadcast(dout, b_shape),
)


@primitive("sub", saves=("a.shape", "b.shape"))
def sub(a, b):
    return a - b, (shape_of(a), shape_of(b))


sub.defvjp(
    lambda dout, a_shape, b_shape: unbroadcast(dout, a_shape),
    lambda dout, a_shape, b_shape: unbroadcast(-dout, b_shape),
)


@primitive("mul", saves=("a", "b"))
def mul(a, b):
    return a * b, (a, b)


mul.defvjp(
    lambda dout, a, b: unbroadcast(dout * b, shape_of(a)),
    lambda dout, a, b: unbroadcast(dout * a, shape_of(b)),
)


@primitive("div", saves=("a", "b"))
def div(a, b):
    return a / b, (a, b)


div.defvjp(
    lambda dout, a, b: unbroadcast(dout / b, shape_of(a)),
    lambda dout, a, b: unbroadcast(-dout * a / (b * b), shape_of(b)),
)

# ---------------------------------------------------------------- elementwise, unary


@primitive("neg")
def neg(x):
    return -x, ()


neg.defvjp(lambda dout: -dout)


@primitive("pow", saves=("x", "p"))
def pow_(x, p):
    return x**p, (x, p)


def dpow(dout, x, p):
    if p == 0:  # d/dx x**0 = 0 everywhere, even at x = 0 where p * x**-1 would be nan
        return np.zeros_like(dout)
    return dout * (p * x ** (p - 1))


pow_.defvjp(dpow)


@primitive("exp", saves=("out",))
def exp(x):
    out = np.exp(x)
    return out, (out,)


exp.defvjp(lambda dout, out: dout * out)


@primitive("log", saves=("x",))
def log(x):
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) = -inf, as in torch
        return np.log(x), (x,)


def dlog(dout, x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return dout / x


log.defvjp(dlog)


@primitive("tanh", saves=("h",))
def tanh(x):
    h = np.tanh(x)
    return h, (h,)


tanh.defvjp(lambda dh, h: dh * (1.0 - h * h))

# ---------------------------------------------------------------- reductions
# ``dims`` is a tuple of non-negative axes, normalised by the caller.


def expand_reduced(dout, x_shape, dims, keepdim):
    """Broadcast the gradient of a reduction back over the axes it reduced."""
    if not keepdim:
        dout = np.expand_dims(dout, dims)
    return np.broadcast_to(dout, x_shape)


@primitive("sum", saves=("x.shape", "dims", "keepdim"))
def sum_(x, dims, keepdim):
    return x.sum(axis=dims, keepdims=keepdim), (x.shape, dims, keepdim)


sum_.defvjp(expand_reduced)


@primitive("mean", saves=("x.shape", "dims", "keepdim"))
def mean(x, dims, keepdim):
    return x.mean(axis=dims, keepdims=keepdim), (x.shape, dims, keepdim)


def dmean(dout, x_shape, dims, keepdim):
    n = 1
    for d in dims:
        n *= x_shape[d]
    return expand_reduced(dout / n, x_shape, dims, keepdim)


mean.defvjp(dmean)


@primitive("max", saves=("x", "m"))
def max_(x):
    m = x.max()
    return m, (x, m)


def dmax(dm, x, m):
    # ties share the gradient evenly, as in torch; a nan maximum marks the nans instead
    ties = np.isnan(x) if m != m else x == m
    return ties * (dm / ties.sum(dtype=x.dtype))


max_.defvjp(dmax)


@primitive("max_dim", saves=("x.shape", "argmax", "dim", "keepdim"))
def max_dim(x, argmax, dim, keepdim):
    """The maxima along ``dim`` at ``argmax`` (computed by the caller, kept dims)."""
    m = np.take_along_axis(x, argmax, axis=dim)
    if not keepdim:
        m = m.squeeze(dim)
    return m, (x.shape, argmax, dim, keepdim)


def dmax_dim(dm, x_shape, argmax, dim, keepdim):
    # only the returned index receives the gradient, as in torch (no splitting of ties)
    dx = np.zeros(x_shape, dtype=dm.dtype)
    np.put_along_axis(dx, argmax, dm if keepdim else np.expand_dims(dm, dim), axis=dim)
    return dx


max_dim.defvjp(dmax_dim)

# ---------------------------------------------------------------- shape and indexing


@primitive("view", saves=("x.shape",))
def view(x, shape):
    return x.reshape(shape), (x.shape,)


view.defvjp(lambda dout, x_shape: dout.reshape(x_shape))


@primitive("transpose", saves=("axes",))
def transpose(x, axes):
    return x.transpose(axes), (axes,)


transpose.defvjp(lambda dout, axes: dout.transpose(np.argsort(axes)))


@primitive("gather", saves=("index", "x.shape"))
def gather(x, index):
    return x[index], (index, x.shape)


def dgather(dout, index, x_shape):
    # repeated indices must accumulate: dx is a scatter-add of dout, never an assignment
    keys = integer_index_keys(index, x_shape)
    if keys is None:  # slices, masks, None: NumPy's general (slower) scatter-add
        dx = np.zeros(x_shape, dtype=dout.dtype)
        np.add.at(dx, index, dout)
        return dx
    # integer arrays only: a histogram of dout over the flat positions it came from
    rows = keys.size
    row_size = dout.size // rows if rows else 0
    if row_size != 1:
        keys = (keys.reshape(-1, 1) * row_size + np.arange(row_size)).ravel()
    dx = np.bincount(keys.ravel(), weights=dout.ravel(), minlength=math.prod(x_shape))
    return dx.reshape(x_shape).astype(dout.dtype, copy=False)


def integer_index_keys(index, x_shape):
    """Flat positions, over the leading dims of x, that an index of integer arrays picks.

    None when the index holds anything but integer arrays (then ``dgather`` falls back).
    """
    parts = index if type(index) is tuple else (index,)
    if len(parts) > len(x_shape) or any(type(p) is not np.ndarray or p.dtype.kind not in "iu" for p in parts):
        return None
    return np.ravel_multi_index(parts, x_shape[: len(parts)], mode="wrap")  # wrap: negative indices


gather.defvjp(dgather)

# ---------------------------------------------------------------- linear algebra


@primitive("matmul", saves=("a", "b"))
def matmul(a, b):
    return a @ b, (a, b)


def dmatmul_a(dout, a, b):
    if b.ndim == 1:  # (..., k) @ (k,): dout has lost the column axis
        return unbroadcast(np.multiply.outer(dout, b), a.shape)
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
    return unbroadcast(a.swapaxes(-1, -2) @ dout, b.shape)


matmul.defvjp(dmatmul_a, dmatmul_b)
