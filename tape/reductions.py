"""Reductions and ops along a dim: sums, means, extrema, variance, cumsum, softmax.

``dims`` is always a tuple of distinct non-negative axes, normalised by ``reduction_dims`` in
the Tensor method; the VJPs broadcast ``dout`` back over the reduced axes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from tape.elementwise import as_float, bind, select
from tape.op import primitive
from tape.tensor import Tensor, apply, wrap
from tape.tracing import replayable

# ---------------------------------------------------------------- arguments


def reduction_dims(op: str, x: Tensor, dim: Any) -> tuple[int, ...]:
    """``dim`` (None, an int or a sequence; None and () mean all) as distinct non-negative axes."""
    n = x.array.ndim
    if dim is None:
        return tuple(range(n))
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    if not dims:  # torch reads an empty dim list as "all dims", not as "none"
        return tuple(range(n))
    return tuple(normalise_dim(op, x, d) for d in dims) if n else ()


def normalise_dim(op: str, x: Tensor, d: Any, extra: int = 0) -> int:
    """One dim as a non-negative axis; ``extra`` admits the new positions of unsqueeze/stack."""
    bound = max(x.array.ndim + extra, 1)  # a 0-d tensor accepts dim 0 and -1, as in torch
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not -bound <= d < bound:
        raise IndexError(f"{op}: dim {d!r} is out of range for a tensor of shape {x.shape}")
    return int(d) % bound


def distinct(op: str, dims: tuple[int, ...], dim: Any) -> tuple[int, ...]:
    if len(set(dims)) != len(dims):
        raise ValueError(f"{op}: dim {dim!r} repeats a dimension")
    return dims


def reduction_args(
    op: str, dim: Any, keepdim: bool, axis: Any, keepdims: Any, out: None = None
) -> tuple[Any, bool]:
    """torch's ``dim``/``keepdim`` or NumPy's ``axis``/``keepdims`` (so ``np.sum(t)`` works too)."""
    if out is not None:
        raise TypeError(f"{op}: out= is not supported")
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: pass dim or axis, not both")
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    return dim, bool(keepdim)


def expand_reduced(dout, x_shape, dims, keepdim):
    """Broadcast the gradient of a reduction back over the axes it reduced (arrays or tensors)."""
    if isinstance(dout, Tensor):  # a VJP run by create_graph: view and expand on the tape
        return dout.reshape(kept_shape(x_shape, dims)).expand(*x_shape)
    if not keepdim:
        dout = np.expand_dims(dout, dims)
    return np.broadcast_to(dout, x_shape)


def kept_shape(x_shape: tuple[int, ...], dims: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of a reduction over ``dims`` with keepdim: reduced sides become 1."""
    return tuple(1 if i in dims else n for i, n in enumerate(x_shape))


def count(x_shape: tuple[int, ...], dims: tuple[int, ...]) -> int:
    n = 1
    for d in dims:
        n *= x_shape[d]
    return n


# ---------------------------------------------------------------- sum and mean


@primitive("sum", saves=("x.shape", "dims", "keepdim"))
def sum_(x, dims, keepdim):
    """out = x.sum(dims); dx = dout broadcast back over dims"""
    return x.sum(axis=dims, keepdims=keepdim), (x.shape, dims, keepdim)


sum_.defvjp(expand_reduced)


@primitive("mean", saves=("x.shape", "dims", "keepdim"))
def mean(x, dims, keepdim):
    """out = x.mean(dims); dx = dout / n broadcast back over dims"""
    return x.mean(axis=dims, keepdims=keepdim), (x.shape, dims, keepdim)


def dmean(dout, x_shape, dims, keepdim):
    # 1/n first: n itself may not fit a float16 (65,504 is its largest finite value)
    return expand_reduced(dout * (1.0 / count(x_shape, dims)), x_shape, dims, keepdim)


mean.defvjp(dmean)


def summing(op: Any, prepare: Callable[[Tensor], Tensor]) -> Callable[..., Tensor]:
    """The Tensor method of sum or mean: torch's and NumPy's argument names, dims normalised."""

    def method(
        self: Tensor,
        dim: Any = None,
        keepdim: bool = False,
        *,
        axis: Any = None,
        keepdims: Any = None,
        dtype: Any = None,
        out: None = None,
    ) -> Tensor:
        dim, keepdim = reduction_args(op.name, dim, keepdim, axis, keepdims, out)
        x = prepare(self if dtype is None else self.to(dtype))
        return apply(op, (x,), distinct(op.name, reduction_dims(op.name, x, dim), dim), keepdim)

    method.__name__ = op.name
    return method


def bools_as_integers(x: Tensor) -> Tensor:
    return x.long() if x.array.dtype.kind == "b" else x  # torch sums bools into int64


def floats_only(x: Tensor) -> Tensor:
    if x.array.dtype.kind != "f":
        raise TypeError(f"mean: needs a floating point tensor, got {x.array.dtype}; use .float() first")
    return x


bind(summing(sum_, bools_as_integers), "sum")
bind(summing(mean, floats_only), "mean")

# ---------------------------------------------------------------- variance


@primitive("var", saves=("xmu", "n", "dims", "keepdim"))
def var(x, dims, keepdim, correction):
    """out = ((x - mean)**2).sum(dims) / (n - correction); dx = dout * 2 * (x - mean) / (n - correction)"""
    xmu = x - x.mean(axis=dims, keepdims=True)
    n = count(x.shape, dims) - correction
    with np.errstate(divide="ignore", invalid="ignore"):  # n <= correction: inf or nan, as in torch
        # divide in float64: n itself may not fit a float16 (65,504 is its largest finite value)
        out = np.asarray((xmu * xmu).sum(axis=dims, keepdims=keepdim) / np.float64(max(n, 0)))
    return out.astype(x.dtype, copy=False), (xmu, n, dims, keepdim)


def dvar(dout, xmu, n, dims, keepdim):
    scale = 2.0 / n if n > 0 else math.nan  # a Python float: keeps float32 float32
    return expand_reduced(dout, xmu.shape, dims, keepdim) * (xmu * scale)


var.defvjp(dvar)


def centred(inputs: tuple, out: Tensor, saved: tuple) -> tuple:
    """create_graph: ``xmu = x - x.mean(dims)`` rebuilt on the tape (the forward's is an array), so
    that the second derivative sees the mean move with every ``x[i]``; std's ``out`` is its output."""
    (x,) = inputs
    xmu = x - x.mean(saved[-2], keepdim=True) if x.array.ndim else x * 0.0
    return (xmu, out, *saved[2:]) if len(saved) == 5 else (xmu, *saved[1:])


var.defgraph(saved=centred)


def variance_args(op: str, x: Tensor, dim: Any, unbiased: Any, correction: Any, keepdim: bool) -> tuple:
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}: pass unbiased or correction, not both")
    if isinstance(dim, bool):  # x.var(False): torch's old positional unbiased
        dim, unbiased = None, dim
    if correction is None:
        correction = 0 if unbiased is False else 1
    if x.array.dtype.kind != "f":
        raise TypeError(f"{op}: needs a floating point tensor, got {x.array.dtype}")
    return distinct(op, reduction_dims(op, x, dim), dim), bool(keepdim), correction


def var_method(
    self: Tensor, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *, correction: Any = None
) -> Tensor:
    """``x.var(dim, unbiased=True, keepdim=False, correction=None)``: n - 1 by default, as torch."""
    return apply(var, (self,), *variance_args("var", self, dim, unbiased, correction, keepdim))


@primitive("std", saves=("xmu", "out", "n", "dims", "keepdim"))
def std(x, dims, keepdim, correction):
    """out = sqrt(var); dx = dvar's formula applied to dout / (2 * out), with 0 where out == 0"""
    variance, (xmu, n, _, _) = var.forward(x, dims, keepdim, correction)
    out = np.sqrt(variance)
    return out, (xmu, out, n, dims, keepdim)


def dstd(dout, xmu, out, n, dims, keepdim):
    # constant values have std 0: torch sends them no gradient, where var().sqrt() would give 0 * inf = nan
    with np.errstate(divide="ignore", invalid="ignore"):
        dvariance = select(np.asarray(out) == 0, 0, dout / (2 * out))
    return dvar(dvariance, xmu, n, dims, keepdim)


std.defvjp(dstd)
std.defgraph(saved=centred)


def std_method(
    self: Tensor, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *, correction: Any = None
) -> Tensor:
    """``x.std(dim, unbiased=True, keepdim=False, correction=None)``: the square root of ``var``."""
    return apply(std, (self,), *variance_args("std", self, dim, unbiased, correction, keepdim))


bind(var_method, "var")
bind(std_method, "std")

# ---------------------------------------------------------------- extrema


class MaxResult(NamedTuple):
    values: Tensor
    indices: Tensor


def extremum(name: str, pick: Callable) -> Any:
    """The full max/min: ties share the gradient evenly, as in torch; nans win."""

    @primitive(name, saves=("x", "m"))
    def forward(x):
        m = pick(x)
        return m, (x, m)

    forward.doc = f"m = x.{name}(); dx = dm / (number of ties) at each element equal to m"

    def vjp(dm, x, m):
        ties = np.isnan(x) if m != m else x == m
        # divide in float64, then cast: a float16 count overflows to inf past 65,504 ties
        return ties * (dm.astype(np.float64) / ties.sum()).astype(x.dtype)

    def graph_vjp(dm, x, m):
        x, m = np.asarray(x), np.asarray(m)  # which elements tie is a constant of the sweep
        ties = np.isnan(x) if m != m else x == m
        return dm * (ties / ties.sum())

    return forward.defvjp(vjp).defgraph(graph_vjp)


max_ = extremum("max", np.max)
min_ = extremum("min", np.min)


def extremum_dim(name: str) -> Any:
    @primitive(f"{name}_dim", saves=("x.shape", "index", "dim", "keepdim"))
    def forward(x, index, dim, keepdim):
        m = np.take_along_axis(x, index, axis=dim)
        return (m if keepdim else m.squeeze(dim)), (x.shape, index, dim, keepdim)

    forward.doc = f"m = x.{name}(dim).values; dx = dm at the returned index, 0 elsewhere"

    def vjp(dm, x_shape, index, dim, keepdim):
        # only the returned index receives the gradient, as in torch (no splitting of ties)
        dx = np.zeros(x_shape, dtype=dm.dtype)
        np.put_along_axis(dx, index, dm if keepdim else np.expand_dims(dm, dim), axis=dim)
        return dx

    def graph_vjp(dm, x_shape, index, dim, keepdim):
        # where(returned index, dm, 0): a choice on the tape, whose own VJP gathers dm back
        picked = np.zeros(x_shape, dtype=bool)
        np.put_along_axis(picked, index, True, axis=dim)
        return select(picked, dm if keepdim else dm.unsqueeze(dim), 0.0)

    return forward.defvjp(vjp).defgraph(graph_vjp)


max_dim = extremum_dim("max")
min_dim = extremum_dim("min")


def extremum_method(name: str, whole: Any, along: Any, arg: Callable) -> Callable:
    def method(
        self: Tensor,
        dim: Any = None,
        keepdim: Any = None,
        *,
        axis: Any = None,
        keepdims: Any = None,
        out: None = None,
    ) -> Any:
        if isinstance(dim, Tensor):  # x.max(y): torch's elementwise maximum
            return self.maximum(dim) if name == "max" else self.minimum(dim)
        dim, keep = reduction_args(name, dim, keepdim or False, axis, keepdims, out)
        if dim is None:
            if keepdim is not None or keepdims is not None:
                raise TypeError(f"{name}: keepdim needs a dim")
            if self.array.size == 0:
                raise RuntimeError(f"{name}: cannot take the {name} of an empty tensor of shape {self.shape}")
            return apply(whole, (self,))
        if not isinstance(dim, (int, np.integer)):
            raise TypeError(f"{name}: dim must be an int, got {dim!r}")
        (d,) = reduction_dims(name, self, [dim]) or (0,)
        x = self if self.array.ndim else self.view(1)
        if x.array.shape[d] == 0:
            raise IndexError(f"{name}: dim {dim} of a tensor of shape {self.shape} is empty")
        index = arg_index(arg, x.array, d)
        values = apply(along, (x,), index, d, keep)
        indices = index if keep else index.squeeze(d)
        if self.array.ndim == 0:
            values, indices = values.view(()), indices.reshape(())
        return MaxResult(values, wrap(indices))

    method.__name__ = name
    return method


bind(extremum_method("max", max_, max_dim, np.argmax), "max")
bind(extremum_method("min", min_, min_dim, np.argmin), "min")


def amax(self: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return self.max() if dim is None else self.max(dim, keepdim).values


def amin(self: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return self.min() if dim is None else self.min(dim, keepdim).values


@replayable  # an index the gather reads, computed on every replay
def arg_index(arg: Callable, array: np.ndarray, d: int) -> np.ndarray:
    return arg(array, axis=d, keepdims=True)


@replayable
def off_tape(function: Callable, x: Tensor, dims: Any, keepdim: bool) -> Tensor:
    """``any``/``all``: a tensor off the tape, computed again by a replayed step."""
    return wrap(np.asarray(function(x.array, axis=dims, keepdims=keepdim)))


def arg_method(name: str, function: Callable) -> Callable:
    @replayable  # off the tape, yet a function of the inputs: a replayed step computes it again
    def method(self: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
        if dim is None:
            return wrap(np.asarray(function(self.array), dtype=np.int64))
        (d,) = reduction_dims(name, self, [dim]) or (0,)
        data = self.array if self.array.ndim else self.array.reshape(1)
        out = function(data, axis=d, keepdims=keepdim).astype(np.int64)
        return wrap(out if self.array.ndim else out.reshape(()))

    return method


bind(amax, "amax")
bind(amin, "amin")
bind(arg_method("argmax", np.argmax), "argmax")
bind(arg_method("argmin", np.argmin), "argmin")


def logical_reduction(name: str, function: Callable) -> Callable:
    def method(
        self: Tensor,
        dim: Any = None,
        keepdim: bool = False,
        *,
        axis: Any = None,
        keepdims: Any = None,
        out: None = None,
    ) -> Tensor:
        dim, keepdim = reduction_args(name, dim, keepdim, axis, keepdims, out)
        dims = reduction_dims(name, self, dim)
        return off_tape(function, self, dims, keepdim)

    return method


bind(logical_reduction("all", np.all), "all")
bind(logical_reduction("any", np.any), "any")

# ---------------------------------------------------------------- along one dim


@primitive("cumsum", saves=("dim",))
def cumsum(x, dim):
    """out[i] = x[0] + ... + x[i] along dim; dx[i] = dout[i] + ... + dout[-1] (a reversed cumsum)"""
    return np.cumsum(x, axis=dim), (dim,)


cumsum.defvjp(lambda dout, dim: np.flip(np.cumsum(np.flip(dout, dim), axis=dim), dim))
cumsum.defgraph(lambda dout, dim: dout.flip(dim).cumsum(dim).flip(dim))


def cumsum_method(self: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    x = self if dtype is None else self.to(dtype)
    if x.array.dtype.kind == "b":
        x = x.long()
    if x.array.ndim == 0:
        return x.clone()
    return apply(cumsum, (x,), normalise_dim("cumsum", x, dim))


bind(cumsum_method, "cumsum")


@primitive("softmax", saves=("out", "dim"))
def softmax(x, dim):
    """out = e**x / (e**x).sum(dim); dx = out * (dout - (dout * out).sum(dim))"""
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    e /= e.sum(axis=dim, keepdims=True)
    return e, (e, dim)


softmax.defvjp(lambda dout, out, dim: out * (dout - (dout * out).sum(axis=dim, keepdims=True)))


@primitive("log_softmax", saves=("out", "dim"))
def log_softmax(x, dim):
    """out = x - log((e**x).sum(dim)); dx = dout - e**out * dout.sum(dim)"""
    shifted = x - x.max(axis=dim, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
    return out, (out, dim)


log_softmax.defvjp(lambda dout, out, dim: dout - np.exp(out) * dout.sum(axis=dim, keepdims=True))


@primitive("logsumexp", saves=("x", "out", "dims", "keepdim"))
def logsumexp(x, dims, keepdim):
    """out = log((e**x).sum(dims)); dx = dout * e**(x - out)"""
    m = x.max(axis=dims, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.exp(x - m).sum(axis=dims, keepdims=True)) + m
    return (out if keepdim else out.squeeze(dims)), (x, out, dims, keepdim)


logsumexp.defvjp(
    lambda dout, x, out, dims, keepdim: expand_reduced(dout, x.shape, dims, keepdim) * np.exp(x - out)
)
# create_graph: the saved out (keepdim) is the output viewed with the reduced dims kept
logsumexp.defgraph(
    saved=lambda inputs, out, saved: (
        inputs[0],
        out.reshape(kept_shape(inputs[0].shape, saved[2])),
        *saved[2:],
    )
)


def along_dim(op: Any, name: str) -> Callable:
    def method(self: Tensor, dim: Any = None, dtype: Any = None) -> Tensor:
        x = as_float(self if dtype is None else self.to(dtype))
        if dim is None:
            raise TypeError(f"{name}: pass dim (torch's implicit dim is deprecated)")
        if x.array.ndim == 0:
            return apply(op, (x.view(1),), 0).view(())
        return apply(op, (x,), normalise_dim(name, x, dim))

    method.__name__ = name
    return method


def logsumexp_method(self: Tensor, dim: Any, keepdim: bool = False) -> Tensor:
    x = as_float(self)
    return apply(logsumexp, (x,), distinct("logsumexp", reduction_dims("logsumexp", x, dim), dim), keepdim)


bind(along_dim(softmax, "softmax"), "softmax")
bind(along_dim(log_softmax, "log_softmax"), "log_softmax")
bind(logsumexp_method, "logsumexp")


def norm(self: Tensor, p: Any = 2, dim: Any = None, keepdim: bool = False) -> Tensor:
    """``x.norm()``: the 2-norm (``p="fro"`` too) as a composite; other p as ``(|x|**p).sum()**(1/p)``."""
    if p in (2, "fro"):
        return (self * self).sum(dim, keepdim).sqrt()
    if p == 1:
        return self.abs().sum(dim, keepdim)
    return (self.abs() ** p).sum(dim, keepdim) ** (1.0 / p)


bind(norm, "norm")
