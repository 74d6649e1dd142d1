"""Elementwise ops: each forward with its vector-Jacobian products right beside it.

Notation follows the backprop-ninja notebook: for ``out = f(x)`` the VJP maps ``dout``
(dloss/dout) to ``dx`` (dloss/dx). Binary ops broadcast like NumPy and declare it
(``broadcasts=True``): the sweep sums each gradient back to its input's shape. Each op's Tensor
methods are bound right after it. The derivations are in ``docs/vjp.md``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from tape.dtypes import constant, float32, is_floating, promote
from tape.op import Op, primitive
from tape.tensor import ShapeError, Tensor, apply, run, wrap
from tape.tracing import replayable

# ---------------------------------------------------------------- how binary ops are called


def operands(name: str, a: Any, b: Any) -> tuple[Any, Any, Any, Any]:
    """``(a, b, a_data, b_data)``: the arrays (or Python scalars) promoted as torch promotes them."""
    a_data = a.array if isinstance(a, Tensor) else constant(name, a)
    b_data = b.array if isinstance(b, Tensor) else constant(name, b)
    a_data, b_data = promote(a_data, b_data)
    return a_data, b_data


def binary(op: Op, reflected: bool = False, true_division: bool = False) -> Callable[..., Tensor]:
    """The Tensor method of a binary op (``a.add(b)``, ``a + b``; reflected: ``b + a``)."""

    def method(self: Tensor, other: Any) -> Tensor:
        x = self.array
        if x.dtype.kind == "f" and (
            type(other) is float or (type(other) is Tensor and other.array.dtype is x.dtype)
        ):
            # the common cases need no promotion: float tensors of one dtype, or a float and a Python float
            arrays = (x, other if type(other) is float else other.array)
            try:
                return run(
                    op,
                    (other, self) if reflected else (self, other),
                    arrays[::-1] if reflected else arrays,
                    (),
                )
            except ValueError:
                pass  # shapes that do not broadcast: the general path below names them
        a, b = (other, self) if reflected else (self, other)
        a_data, b_data = operands(op.name, a, b)
        if true_division and not (is_floating(a_data) or is_floating(b_data)):
            a_data, b_data = to_float32(a_data), to_float32(b_data)  # ints divide into float32, as in torch
        inputs = (a if isinstance(a, Tensor) else a_data, b if isinstance(b, Tensor) else b_data)
        try:
            return run(op, inputs, (a_data, b_data), ())
        except ValueError:
            raise ShapeError(
                f"{op.name}: shapes {np.shape(a_data)} and {np.shape(b_data)} cannot be broadcast together"
            ) from None

    method.__name__ = op.name
    return method


def keep(x: Any, data: Any) -> Any:
    """The input to record for ``x``: the tensor itself (its gradient is cast back to its dtype
    by the sweep), or the converted constant."""
    return x if isinstance(x, Tensor) else data


def to_float32(x: Any) -> Any:
    return x.astype(float32) if isinstance(x, np.ndarray) else float(x)


def as_float(x: Tensor) -> Tensor:
    """Integer and bool tensors as float32, for the ops that only make sense on floats."""
    return x if x.array.dtype.kind == "f" else integer_cast(x, float32)


@replayable  # off the tape, yet a function of the inputs: a replayed step computes it again
def integer_cast(x: Tensor, dtype: np.dtype) -> Tensor:
    """``x`` in ``dtype`` where one side is not floating point: no gradient, as in torch."""
    return wrap(x.array.astype(dtype))


def unary(op: Op, floating: bool = True) -> Callable[[Tensor], Tensor]:
    """The Tensor method of a unary op (``x.exp()``); ``floating``: integers are cast to float32."""

    def method(self: Tensor) -> Tensor:
        return apply(op, (as_float(self) if floating else self,))

    method.__name__ = op.name
    return method


def bind(method: Callable, *names: str) -> None:
    """Make ``method`` the Tensor method (or operator) under each name."""
    for name in names:
        setattr(Tensor, name, method)


# ---------------------------------------------------------------- cast


@primitive("cast", saves=("x.dtype",))
def cast(x, dtype):
    """out = x.to(dtype); dx = dout.to(x.dtype)"""
    return x.astype(dtype), (x.dtype,)


cast.defvjp(lambda dout, x_dtype: dout.astype(x_dtype))
cast.defgraph(lambda dout, x_dtype: dout.to(x_dtype))

# ---------------------------------------------------------------- binary arithmetic


@primitive("add", saves=("a.shape", "b.shape"), broadcasts=True)
def add(a, b):
    """out = a + b; da = dout, db = dout"""
    return a + b, (np.shape(a), np.shape(b))


add.defvjp(lambda dout, *_: dout, lambda dout, *_: dout)


@primitive("sub", saves=("a.shape", "b.shape"), broadcasts=True)
def sub(a, b):
    """out = a - b; da = dout, db = -dout"""
    return a - b, (np.shape(a), np.shape(b))


sub.defvjp(lambda dout, *_: dout, lambda dout, *_: -dout)


@primitive("mul", saves=("a", "b"), broadcasts=True)
def mul(a, b):
    """out = a * b; da = dout * b, db = dout * a"""
    return a * b, (a, b)


mul.defvjp(lambda dout, a, b: dout * b, lambda dout, a, b: dout * a)


@primitive("div", saves=("a", "b"), broadcasts=True)
def div(a, b):
    """out = a / b; da = dout / b, db = -dout * (a / b) / b"""
    return a / b, (a, b)


# (a / b) / b rather than a / (b * b): b * b underflows to 0 long before the quotient does
div.defvjp(lambda dout, a, b: dout / b, lambda dout, a, b: -dout * ((a / b) / b))


@primitive("pow_tensor", saves=("a", "b", "out"), broadcasts=True)
def pow_tensor(a, b):
    """out = a ** b (tensor exponent or base); da = dout * b * a**(b-1), db = dout * out * log(a)"""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.power(a, b)
    return out, (a, b, out)


def dpow_tensor_b(dout, a, b, out):
    # torch: where a == 0 and b >= 0 the gradient is 0, not 0 * log(0) = nan
    with np.errstate(divide="ignore", invalid="ignore"):
        db = dout * (out * np.log(a))
    return select((np.asarray(a) == 0) & (np.asarray(b) >= 0), 0, db)


def dpow_tensor_a(dout, a, b, out):
    with np.errstate(divide="ignore", invalid="ignore"):
        da = dout * (b * np.power(a, b - 1))
    return select(np.asarray(b) == 0, 0, da)


pow_tensor.defvjp(dpow_tensor_a, dpow_tensor_b)


@primitive("maximum", saves=("a", "b"), broadcasts=True)
def maximum(a, b):
    """out = max(a, b); da = dout where a > b (half at ties), db likewise"""
    return np.maximum(a, b), (a, b)


@primitive("minimum", saves=("a", "b"), broadcasts=True)
def minimum(a, b):
    """out = min(a, b); da = dout where a < b (half at ties), db likewise"""
    return np.minimum(a, b), (a, b)


def tie_split(wins: Callable, first: bool) -> Callable:
    """The VJP of one side of maximum/minimum: the winner takes dout, a tie splits it (torch)."""

    def vjp(dout, a, b):
        mine, theirs = (a, b) if first else (b, a)
        return dout * (wins(mine, theirs) + 0.5 * (mine == theirs))

    return vjp


maximum.defvjp(tie_split(operator.gt, True), tie_split(operator.gt, False))
minimum.defvjp(tie_split(operator.lt, True), tie_split(operator.lt, False))


@primitive("remainder", saves=("a", "b"), broadcasts=True)
def remainder(a, b):
    """out = a % b (sign of b, as Python); da = dout, db = -dout * floor(a / b)"""
    return np.remainder(a, b), (a, b)


remainder.defvjp(lambda dout, a, b: dout, lambda dout, a, b: -dout * np.floor_divide(a, b))


@primitive("where", saves=("condition",), broadcasts=True)
def where_(a, b, condition):
    """out = a where condition else b; da = dout where condition, db = dout elsewhere"""
    return np.where(condition, a, b), (condition,)


where_.defvjp(
    lambda dout, condition: select(condition, dout, 0),
    lambda dout, condition: select(condition, 0, dout),
)


def where(condition: Any, input: Any, other: Any) -> Tensor:
    """``torch.where(condition, input, other)``: elementwise choice, broadcasting all three."""
    condition = np.asarray(condition.array if isinstance(condition, Tensor) else condition)
    if condition.dtype.kind != "b":
        raise TypeError(f"where: the condition must be a bool tensor, got {condition.dtype}")
    a_data, b_data = operands("where", input, other)
    try:
        np.broadcast_shapes(condition.shape, np.shape(a_data), np.shape(b_data))
    except ValueError:
        raise ShapeError(
            f"where: shapes {condition.shape}, {np.shape(a_data)} and {np.shape(b_data)} "
            "cannot be broadcast together"
        ) from None
    return run(where_, (keep(input, a_data), keep(other, b_data)), (a_data, b_data), (condition,))


def select(condition: Any, a: Any, b: Any) -> Any:
    """``np.where`` for VJPs: on arrays it is ``np.where``; when ``a`` or ``b`` is a tensor (a VJP
    run by create_graph) it is tape's ``where``, so the choice is recorded and differentiable."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return where(np.asarray(condition.array if isinstance(condition, Tensor) else condition), a, b)
    return np.where(condition, a, b)


bind(binary(add), "__add__", "add")
bind(binary(add, reflected=True), "__radd__")
bind(binary(sub), "__sub__", "sub", "subtract")
bind(binary(sub, reflected=True), "__rsub__")
bind(binary(mul), "__mul__", "mul", "multiply")
bind(binary(mul, reflected=True), "__rmul__")
bind(binary(div, true_division=True), "__truediv__", "div", "divide", "true_divide")
bind(binary(div, reflected=True, true_division=True), "__rtruediv__")
bind(binary(maximum), "maximum")
bind(binary(minimum), "minimum")
bind(binary(remainder), "__mod__", "remainder")
bind(binary(remainder, reflected=True), "__rmod__")

# ---------------------------------------------------------------- pow


@primitive("pow", saves=("x", "p"))
def pow_(x, p):
    """out = x ** p (p a number); dx = dout * p * x**(p - 1), and 0 where p == 0"""
    return x**p, (x, p)


def dpow(dout, x, p):
    if p == 0:  # d/dx x**0 = 0 everywhere, even at x = 0 where p * x**-1 would be nan
        return dout * 0
    return dout * (p * x ** (p - 1))


pow_.defvjp(dpow)


def power(self: Tensor, exponent: Any) -> Tensor:
    """``x ** p``: a number exponent records ``pow``, a tensor exponent ``pow_tensor``."""
    if isinstance(exponent, (np.generic, np.ndarray)) and np.ndim(exponent) == 0:
        exponent = exponent.item()
    if isinstance(exponent, bool) or not isinstance(exponent, (int, float)):
        return binary(pow_tensor)(self, exponent)
    if self.array.dtype.kind != "f" and (isinstance(exponent, float) or exponent < 0):
        if exponent < 0 and isinstance(exponent, int):
            raise RuntimeError("pow: integers to negative integer powers are not allowed")
        return apply(pow_, (as_float(self),), exponent)
    return apply(pow_, (self,), exponent)


bind(power, "__pow__", "pow")
bind(binary(pow_tensor, reflected=True), "__rpow__")

# ---------------------------------------------------------------- unary


@primitive("neg")
def neg(x):
    """out = -x; dx = -dout"""
    return -x, ()


neg.defvjp(lambda dout: -dout)


@primitive("exp", saves=("out",), domain=(-2.0, 2.0))
def exp(x):
    """out = e**x; dx = dout * out"""
    out = np.exp(x)
    return out, (out,)


exp.defvjp(lambda dout, out: dout * out)


@primitive("exp2", saves=("out",), domain=(-2.0, 2.0))
def exp2(x):
    """out = 2**x; dx = dout * out * ln 2"""
    out = np.exp2(x)
    return out, (out,)


exp2.defvjp(lambda dout, out: dout * (out * math.log(2.0)))


@primitive("log", saves=("x",), domain=(0.1, 3.0))
def log(x):
    """out = log(x); dx = (1.0 / x) * dout"""
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) = -inf, as in torch
        return np.log(x), (x,)


def quotient(scale: float) -> Callable:
    """``dout / (x * scale)``, quiet at x = 0 where it is +-inf as in torch."""

    def vjp(dout, x):
        with np.errstate(divide="ignore", invalid="ignore"):
            return dout / (x * scale) if scale != 1.0 else dout / x

    return vjp


log.defvjp(quotient(1.0))


@primitive("log2", saves=("x",), domain=(0.1, 3.0))
def log2(x):
    """out = log2(x); dx = dout / (x * ln 2)"""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log2(x), (x,)


log2.defvjp(quotient(math.log(2.0)))


@primitive("log10", saves=("x",), domain=(0.1, 3.0))
def log10(x):
    """out = log10(x); dx = dout / (x * ln 10)"""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(x), (x,)


log10.defvjp(quotient(math.log(10.0)))


@primitive("sqrt", saves=("out",), domain=(0.1, 3.0))
def sqrt(x):
    """out = sqrt(x); dx = dout / (2 * out)"""
    with np.errstate(invalid="ignore"):
        out = np.sqrt(x)
    return out, (out,)


def dsqrt(dout, out):
    with np.errstate(divide="ignore", invalid="ignore"):
        return dout / (2 * out)


sqrt.defvjp(dsqrt)


@primitive("rsqrt", saves=("out",), domain=(0.1, 3.0))
def rsqrt(x):
    """out = 1 / sqrt(x); dx = -0.5 * dout * out**3"""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 1 / np.sqrt(x)
    return out, (out,)


rsqrt.defvjp(lambda dout, out: -0.5 * dout * (out * out * out))


@primitive("tanh", saves=("h",), domain=(-3.0, 3.0))
def tanh(x):
    """h = tanh(x); dx = (1.0 - h**2) * dh"""
    h = np.tanh(x)
    return h, (h,)


tanh.defvjp(lambda dh, h: dh * (1.0 - h * h))


@primitive("sigmoid", saves=("s",), domain=(-4.0, 4.0))
def sigmoid(x):
    """s = 1 / (1 + e**-x); dx = ds * s * (1 - s)"""
    with np.errstate(over="ignore"):
        s = 1 / (1 + np.exp(-x))
    return s.astype(x.dtype, copy=False), (s,)


sigmoid.defvjp(lambda ds, s: ds * (s * (1 - s)))


@primitive("sin", saves=("x",), domain=(-3.0, 3.0))
def sin(x):
    """out = sin(x); dx = dout * cos(x)"""
    return np.sin(x), (x,)


sin.defvjp(lambda dout, x: dout * np.cos(x))


@primitive("cos", saves=("x",), domain=(-3.0, 3.0))
def cos(x):
    """out = cos(x); dx = -dout * sin(x)"""
    return np.cos(x), (x,)


cos.defvjp(lambda dout, x: -dout * np.sin(x))


@primitive("abs", saves=("x",), domain=(-2.0, 2.0))
def abs_(x):
    """out = |x|; dx = dout * sign(x) (0 at 0, as torch)"""
    return np.abs(x), (x,)


abs_.defvjp(lambda dout, x: dout * np.sign(x))


@primitive("relu", saves=("out",), domain=(-2.0, 2.0))
def relu(x):
    """out = max(x, 0); dx = dout where out > 0 (0 at 0, as torch)"""
    out = np.maximum(x, 0)
    return out, (out,)


relu.defvjp(lambda dout, out: dout * (out > 0))


@primitive("clamp", saves=("x", "min", "max"), broadcasts=True)
def clamp_(x, low, high):
    """out = min(max(x, low), high); dx = dout where low <= x <= high; dlow, dhigh = dout where they win"""
    return np.clip(x, low, high), (x, low, high)


def dclamp_x(dout, x, low, high):
    # x on a bound keeps the gradient (torch); maximum/minimum would split that tie in half
    inside = (x >= low) if high is None else (x <= high) if low is None else (x >= low) & (x <= high)
    return dout * inside


def dclamp_low(dout, x, low, high):
    # low wins where x < low < high: crossed bounds (low > high) give high everywhere (torch)
    return dout * ((x < low) if high is None else (x < low) & (low < high))


def dclamp_high(dout, x, low, high):
    # high wins where x > high, and everywhere if the bounds cross; equal bounds below x: nobody (torch)
    return dout * ((x > high) if low is None else (x > high) | (high < low))


clamp_.defvjp(dclamp_x, dclamp_low, dclamp_high)


def clamp(self: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """``x.clamp(min, max)``: numbers or tensors as bounds (broadcast with x), one entry either way."""
    if min is None and max is None:
        raise TypeError("clamp: at least one of min and max must be given")
    x = as_float(self) if isinstance(min, float) or isinstance(max, float) else self
    bounds = [
        None if b is None else b.array if isinstance(b, Tensor) else constant("clamp", b) for b in (min, max)
    ]
    x_data = x.array
    for b in bounds:  # torch's result type of all three: promote x with each bound, then each bound with x
        x_data = x_data if b is None else promote(x_data, b)[0]
    low, high = (None if b is None else promote(x_data, b)[1] for b in bounds)
    try:
        return run(clamp_, (x, keep(min, low), keep(max, high)), (x_data, low, high), ())
    except ValueError:
        shapes = ", ".join(str(np.shape(v)) for v in (x_data, low, high) if v is not None)
        raise ShapeError(f"clamp: shapes {shapes} cannot be broadcast together") from None


def zero_gradient(name: str, function: Callable) -> Op:
    """A piecewise-constant op: its gradient is zero almost everywhere, as torch defines it."""
    op = primitive(name, domain=(-2.0, 2.0))(lambda x: (function(x), ()))
    op.doc = f"out = {name}(x); dx = 0"
    return op.defvjp(lambda dout: dout * 0)


sign = zero_gradient("sign", np.sign)
floor = zero_gradient("floor", np.floor)
ceil = zero_gradient("ceil", np.ceil)
round_ = zero_gradient("round", np.round)
trunc = zero_gradient("trunc", np.trunc)

bind(unary(neg, floating=False), "__neg__", "neg", "negative")
for _op, _floating, _names in [
    (exp, True, ("exp",)),
    (exp2, True, ("exp2",)),
    (log, True, ("log",)),
    (log2, True, ("log2",)),
    (log10, True, ("log10",)),
    (sqrt, True, ("sqrt",)),
    (rsqrt, True, ("rsqrt",)),
    (tanh, True, ("tanh",)),
    (sigmoid, True, ("sigmoid",)),
    (sin, True, ("sin",)),
    (cos, True, ("cos",)),
    (abs_, False, ("abs", "__abs__", "absolute")),
    (relu, False, ("relu",)),
    (sign, False, ("sign",)),
    (floor, False, ("floor",)),
    (ceil, False, ("ceil",)),
    (round_, False, ("round",)),
    (trunc, False, ("trunc",)),
]:
    bind(unary(_op, _floating), *_names)
bind(clamp, "clamp", "clip")
bind(lambda self: self * self, "square")
bind(lambda self: self, "__pos__", "contiguous")

# ---------------------------------------------------------------- not differentiable


def compare(function: Callable, name: str, reflected: bool = False) -> Callable[..., Tensor]:
    """Comparisons, logic and floor division: a new tensor, never on the tape (as in torch)."""

    @replayable  # off the tape, yet a function of the inputs: a replayed step computes it again
    def method(self: Tensor, other: Any) -> Tensor:
        a, b = operands(name, other, self) if reflected else operands(name, self, other)
        try:
            return wrap(np.asarray(function(a, b)))
        except ValueError:
            raise ShapeError(
                f"{name}: shapes {np.shape(a)} and {np.shape(b)} cannot be broadcast together"
            ) from None

    method.__name__ = name
    return method


for _function, _names in [
    (np.equal, ("__eq__", "eq")),
    (np.not_equal, ("__ne__", "ne")),
    (np.less, ("__lt__", "lt")),
    (np.less_equal, ("__le__", "le")),
    (np.greater, ("__gt__", "gt")),
    (np.greater_equal, ("__ge__", "ge")),
    (np.bitwise_and, ("__and__", "logical_and_", "bitwise_and")),
    (np.bitwise_or, ("__or__", "bitwise_or")),
    (np.bitwise_xor, ("__xor__", "bitwise_xor")),
    (np.floor_divide, ("__floordiv__", "floor_divide")),
]:
    bind(compare(_function, _names[-1]), *_names)
bind(compare(np.bitwise_and, "bitwise_and", reflected=True), "__rand__")
bind(compare(np.bitwise_or, "bitwise_or", reflected=True), "__ror__")
bind(compare(np.bitwise_xor, "bitwise_xor", reflected=True), "__rxor__")
bind(compare(np.floor_divide, "floor_divide", reflected=True), "__rfloordiv__")
bind(compare(np.logical_and, "logical_and"), "logical_and")
bind(compare(np.logical_or, "logical_or"), "logical_or")


@replayable
def invert(self: Tensor) -> Tensor:
    if self.array.dtype.kind not in "biu":
        raise TypeError(f"bitwise_not: needs a bool or integer tensor, got {self.array.dtype}")
    return wrap(np.invert(self.array))


bind(invert, "__invert__", "bitwise_not")
for _function in (np.logical_not, np.isnan, np.isinf, np.isfinite):
    bind(replayable(lambda self, f=_function: wrap(f(self.array))), _function.__name__)
