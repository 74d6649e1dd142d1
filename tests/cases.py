"""Random cases for every primitive op, shared by the torch and the finite-difference tests.

``CASES[op_name]`` is a hypothesis strategy of ``(fn, inputs)``: ``fn(lib, *inputs)`` applies
the op (with lib the tape or the torch module) in general position, away from kinks and ties,
so that both checks in ``tests/checks.py`` apply. The draws vary everything the op accepts:
broadcastable shapes, dims (int, negative, tuple, None), keepdim, index kinds, vector cases.

A strategy may draw a longer tuple, read as ``Case``: ``requires_grad`` (one bool per input)
leaves some floating inputs without a gradient, ``eps`` is the finite-difference step. Every
registered op with a ``domain`` (elementwise unary) gets a generated case, ``x.<op name>()``;
the other cases are written here by hand.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from checks import distinct, nonzero, uniform
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tape


class Case(NamedTuple):
    """A drawn case: ``fn(lib, *inputs)``, which floating inputs require a gradient (None: all)
    and the step of the central differences."""

    fn: Callable[..., Any]
    inputs: tuple
    requires_grad: tuple[bool, ...] | None = None
    eps: float = 1e-6


BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}
# ops without a domain (see ``elementwise`` below for the ones that have one)
UNARY = {"neg": (operator.neg, uniform)}
EXPONENTS = [0, 1, 2, 3, -1, -2, 0.5, 1.5, -0.5, 2.5, np.float64(2.0), np.array(-1.5)]

shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4)
nonempty_shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)


def as_torch_scalar(lib, value):
    """NumPy scalars and 0-d arrays as torch sees them: a Python number (tape takes them as is)."""
    if lib is tape or not isinstance(value, (np.generic, np.ndarray)):
        return value
    return value.item()


@st.composite
def binary(draw, name):
    (sa, sb), _ = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3))
    a = draw(uniform(sa))
    b = draw(nonzero(sb) if name == "div" else uniform(sb))
    op = BINARY[name]
    return (lambda lib, a, b: op(a, b)), (a, b)


@st.composite
def unary(draw, name):
    op, values = UNARY[name]
    return (lambda lib, x: op(x)), (draw(values(draw(shapes))),)


@st.composite
def power(draw):
    p = draw(st.sampled_from(EXPONENTS))
    shape = draw(shapes)
    integer = float(p).is_integer() and p >= 0
    x = draw(nonzero(shape) if integer else uniform(shape, 0.5, 2.0))  # fractional: x > 0
    return (lambda lib, x: x ** as_torch_scalar(lib, p)), (x,)


@st.composite
def dims(draw, ndim):
    """None, an int (maybe negative) or a non-empty tuple of distinct dims."""
    kinds = ["none", "int"] + (["tuple"] if ndim else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        return None
    if kind == "int":
        bound = max(ndim, 1)
        return draw(st.integers(-bound, bound - 1))
    return draw(hnp.valid_tuple_axes(ndim, min_size=1))


@st.composite
def reduction(draw, name):
    shape = draw(shapes)
    dim, keepdim = draw(dims(len(shape))), draw(st.booleans())
    numpy_names = draw(st.booleans())  # tape also takes axis= and keepdims=

    def fn(lib, x):
        reduce = getattr(x, name)
        if dim is None and not keepdim:
            return reduce()
        if lib is tape and numpy_names:
            return reduce(axis=dim, keepdims=keepdim)
        return reduce(dim=dim, keepdim=keepdim)

    return fn, (draw(uniform(shape)),)


@st.composite
def max_all(draw):
    return (lambda lib, x: x.max()), (draw(distinct(draw(shapes))),)


@st.composite
def max_dim(draw):
    shape = draw(shapes)
    bound = max(len(shape), 1)
    dim, keepdim = draw(st.integers(-bound, bound - 1)), draw(st.booleans())
    return (lambda lib, x: x.max(dim, keepdim=keepdim).values), (draw(distinct(shape)),)


@st.composite
def view(draw):
    """Regroup the shape's sides (and add ones) into a new shape, maybe with one -1."""
    shape = draw(shapes)
    sides = draw(st.permutations([*shape, *[1] * draw(st.integers(0, 2))]))
    cuts = sorted(draw(st.sets(st.integers(1, max(len(sides) - 1, 1)))))
    groups = np.split(np.array(sides, dtype=int), [c for c in cuts if c < len(sides)])
    target = [int(np.prod(g)) for g in groups if len(g)]
    if target and draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    method = draw(st.sampled_from(["view", "reshape"]))
    spread = target and draw(st.booleans())  # view(2, 3) or view((2, 3)); view(()) for 0-d
    args = tuple(target) if spread else (tuple(target),)
    return (lambda lib, x: getattr(x, method)(*args)), (draw(uniform(shape)),)


@st.composite
def transpose(draw):
    shape = draw(shapes)
    n = len(shape)
    kinds = ["permute"] + (["transpose"] if n else []) + (["T"] if n == 2 else [])  # torch: .T is 2-D
    kind = draw(st.sampled_from(kinds))
    if kind == "permute":
        perm = draw(st.permutations(range(n)))
        perm = [d - n if draw(st.booleans()) else d for d in perm]  # negative dims too

        def fn(lib, x):
            return x.permute(*perm) if perm else x.permute(())
    elif kind == "transpose":
        d0, d1 = draw(st.integers(-n, n - 1)), draw(st.integers(-n, n - 1))

        def fn(lib, x):
            return x.transpose(d0, d1)
    else:

        def fn(lib, x):
            return x.T

    return fn, (draw(uniform(shape)),)


ROWS, COLS = 4, 5


def _indices(draw, shape, bound):
    return draw(hnp.arrays(np.int64, shape, elements=st.integers(-bound, bound - 1)))


@st.composite
def gather(draw):
    """x of shape (4, 5) indexed every way the notebook and NumPy allow (repeats included)."""
    x = draw(uniform((ROWS, COLS)))
    kind = draw(st.sampled_from(GATHER_KINDS))
    index_shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=4))
    rows = _indices(draw, index_shape, ROWS)
    cols = _indices(draw, index_shape, COLS)
    if kind == "int array":  # passed as an input: a tape or torch int64 tensor
        return (lambda lib, x, i: x[i]), (x, rows)
    if kind == "ndarray":
        return (lambda lib, x: x[rows]), (x,)
    if kind == "list":  # flat: torch reads a nested list as a tuple of indices, NumPy as an array
        return (lambda lib, x: x[rows.ravel().tolist()]), (x,)
    if kind == "range and tensor":  # logprobs[range(n), Yb]
        y = _indices(draw, (ROWS,), COLS)
        return (lambda lib, x, y: x[range(ROWS), y]), (x, y)
    if kind == "two arrays":
        return (lambda lib, x, i, j: x[i, j]), (x, rows, cols)
    if kind == "array and slice":
        return (lambda lib, x, i: x[i, 1:4]), (x, rows)
    if kind == "slice and array":
        return (lambda lib, x, j: x[:, j]), (x, cols)
    if kind == "mask":
        mask = draw(hnp.arrays(np.bool_, (ROWS, COLS)))
        return (lambda lib, x: x[mask]), (x,)
    key = BASIC_KEYS[kind]
    return (lambda lib, x: x[key]), (x,)


BASIC_KEYS = {
    "int": 2,
    "negative int": -1,
    "two ints": (1, -2),  # a 0-d result
    "slice": slice(1, 3),
    "step": (slice(None), slice(None, None, 2)),
    "int and slice": (slice(1, None), 2),
    "ellipsis": (Ellipsis, -1),
    "new axis": (None, slice(None, 2)),
}
GATHER_KINDS = [
    "int array",
    "ndarray",
    "list",
    "range and tensor",
    "two arrays",
    "array and slice",
    "slice and array",
    "mask",
    *BASIC_KEYS,
]


@st.composite
def matmul(draw):
    """2-D, batched with broadcasting, and vectors on either side."""
    (batch_a, batch_b), _ = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2))
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    a_shape = (k,) if draw(st.booleans()) else (*batch_a, n, k)
    b_shape = (k,) if draw(st.booleans()) else (*batch_b, k, m)
    use_function = draw(st.booleans())  # tape.matmul / torch.matmul, else @

    def fn(lib, a, b):
        return lib.matmul(a, b) if use_function else a @ b

    return fn, (draw(uniform(a_shape)), draw(uniform(b_shape)))


# ---------------------------------------------------------------- values away from kinks and jumps


def _drawn(make: Callable[[np.random.Generator], np.ndarray]) -> st.SearchStrategy:
    return st.integers(0, 2**32 - 1).map(lambda seed: np.asarray(make(np.random.default_rng(seed))))


def off_grid(shape: tuple[int, ...], low: float = -2.0, high: float = 2.0) -> st.SearchStrategy:
    """Floats in [low, high], each at least 0.1 from every multiple of 0.5.

    Multiples of 0.5 are where the piecewise ops jump (sign at 0, floor, ceil and trunc at the
    integers, round at the halves) or bend (abs, relu, and clamp's bounds when taken from the
    grid): off it, each is smooth within any finite-difference step.
    """
    first, last = int(np.ceil(2 * (low - 0.1))), int(np.floor(2 * (high - 0.4)))
    if first > last:
        raise ValueError(f"off_grid: [{low}, {high}] holds no value 0.1 away from the multiples of 0.5")
    return _drawn(lambda rng: (rng.integers(first, last + 1, shape) + rng.uniform(0.2, 0.8, shape)) / 2)


def on_grid(
    shape: tuple[int, ...], step: float, low: float, high: float, offset: float = 0.0, signed: bool = False
) -> st.SearchStrategy:
    """Multiples of ``step`` in [low, high], plus ``offset`` (two draws offset by step / 2 never
    tie); ``signed``: with random signs."""
    n_low, n_high = int(np.ceil(low / step)), int(np.floor(high / step))

    def make(rng: np.random.Generator) -> np.ndarray:
        values = rng.integers(n_low, n_high + 1, shape) * step + offset
        return values * rng.choice([-1.0, 1.0], shape) if signed else values

    return _drawn(make)


def unique_indices(draw, n: int, size: int) -> np.ndarray:
    """``size`` distinct indices into a dim of length n, some negative (index_put: no repeats,
    whose winner torch leaves undefined)."""
    chosen = np.array(draw(st.permutations(range(n)))[:size], dtype=np.int64)
    negative = np.array(draw(st.lists(st.booleans(), min_size=size, max_size=size)), dtype=bool)
    return np.where(negative, chosen - n, chosen)


# ---------------------------------------------------------------- elementwise: generated from the ops


def elementwise(name: str, domain: tuple[float, float]) -> st.SearchStrategy:
    """``x.<name>()`` on any shape, with values from the op's domain, off the half-integer grid."""

    @st.composite
    def case(draw):
        x = draw(off_grid(draw(shapes), *domain))
        return (lambda lib, x: getattr(x, name)()), (x,)

    return case()


ELEMENTWISE = {
    name: elementwise(name, op.domain) for name, op in tape.REGISTRY.items() if op.domain is not None
}


# ---------------------------------------------------------------- binary ops beyond arithmetic


def broadcastable(draw, n: int = 2) -> tuple[tuple[int, ...], ...]:
    shapes_, _ = draw(hnp.mutually_broadcastable_shapes(num_shapes=n, min_dims=0, max_dims=3, max_side=3))
    return shapes_


EXTREMUM_FORMS = {
    "maximum": {
        "function": lambda lib, a, b: lib.maximum(a, b),
        "method": lambda lib, a, b: a.maximum(b),
        "max(other)": lambda lib, a, b: a.max(b),
    },
    "minimum": {
        "function": lambda lib, a, b: lib.minimum(a, b),
        "method": lambda lib, a, b: a.minimum(b),
        "min(other)": lambda lib, a, b: a.min(b),
    },
}


@st.composite
def extremum_pair(draw, name):
    """maximum/minimum of tensors that never tie: a on the 0.1 grid, b half a step off it."""
    sa, sb = broadcastable(draw)
    a, b = draw(on_grid(sa, 0.1, -2.0, 2.0)), draw(on_grid(sb, 0.1, -2.0, 2.0, offset=0.05))
    forms = EXTREMUM_FORMS[name]
    return forms[draw(st.sampled_from(sorted(forms)))], (a, b)


@st.composite
def remainder(draw):
    """a % b with |b| a multiple of 0.5 (so every multiple of b is one too) and a off the 0.5
    grid: a / b stays away from the integers, where remainder jumps."""
    sa, sb = broadcastable(draw)
    a = draw(off_grid(sa))
    b = draw(on_grid(sb, 0.5, 0.5, 2.5, signed=True))
    kind = draw(st.sampled_from(["tensors", "method", "number divisor", "number dividend"]))
    if kind == "tensors":
        return (lambda lib, a, b: a % b), (a, b)
    if kind == "method":
        return (lambda lib, a, b: a.remainder(b)), (a, b)
    if kind == "number divisor":
        divisor = draw(st.sampled_from([1.5, -2.0, 1]))
        return (lambda lib, a: a % divisor), (a,)
    dividend = draw(st.sampled_from([1.75, -1.25, 3.3]))

    def fn(lib, b):  # torch has no gradient for a number dividend: there it is a 0-d tensor
        return dividend % b if lib is tape else lib.tensor(dividend, dtype=b.dtype) % b

    return fn, (b,)


@st.composite
def pow_tensor(draw):
    """A tensor exponent or a number base: positive bases, where a ** b is smooth in both."""
    sa, sb = broadcastable(draw)
    a, b = draw(uniform(sa, 0.5, 2.0)), draw(uniform(sb))
    kind = draw(st.sampled_from(["**", "pow", "function", "number base", "integer exponent"]))
    if kind == "**":
        return (lambda lib, a, b: a**b), (a, b)
    if kind == "pow":
        return (lambda lib, a, b: a.pow(b)), (a, b)
    if kind == "function":
        return (lambda lib, a, b: lib.pow(a, b)), (a, b)
    if kind == "number base":  # 2 ** x
        base = draw(st.sampled_from([2, 2.5, 0.5]))
        return (lambda lib, b: base**b), (b,)
    k = draw(hnp.arrays(np.int64, sb, elements=st.integers(-2, 3)))  # an int64 tensor, no gradient
    return (lambda lib, a, k: a**k), (a, k)


@st.composite
def where(draw):
    """where(condition, a, b): a bool condition broadcast with both sides, or a number on one."""
    sc, sa, sb = broadcastable(draw, 3)
    condition = draw(hnp.arrays(np.bool_, sc))
    a, b = draw(uniform(sa)), draw(uniform(sb))
    kind = draw(st.sampled_from(["tensors", "number other", "number input"]))
    if kind == "tensors":
        return (lambda lib, c, a, b: lib.where(c, a, b)), (condition, a, b)
    if kind == "number other":
        return (lambda lib, c, a: lib.where(c, a, 0.5)), (condition, a)
    return (lambda lib, c, b: lib.where(c, -1.5, b)), (condition, b)


@st.composite
def clamp(draw):
    """Number or tensor bounds (one or both, maybe crossed) on the 0.5 grid, x off it: no value
    sits on a bound. Two tensor bounds never tie with each other (high = low + a nonzero step)."""
    if draw(st.booleans()):
        sx, sl = broadcastable(draw)
        x, low = draw(off_grid(sx)), draw(on_grid(sl, 0.5, -1.5, 1.5))
        high = np.asarray(low + draw(on_grid(sl, 0.5, 0.5, 1.5, signed=True)))
        kind = draw(st.sampled_from(["min", "max", "both", "function"]))
        if kind == "min":
            return (lambda lib, x, low: x.clamp(min=low)), (x, low)
        if kind == "max":
            return (lambda lib, x, high: x.clamp(max=high)), (x, high)
        if kind == "both":
            return (lambda lib, x, low, high: x.clamp(low, high)), (x, low, high)
        return (lambda lib, x, low, high: lib.clamp(x, min=low, max=high)), (x, low, high)
    x = draw(off_grid(draw(shapes)))
    bounds = st.sampled_from([-1.5, -1.0, -0.5, 0, 0.5, 1, 1.5])
    low, high = draw(bounds), draw(bounds)
    kind = draw(st.sampled_from(["both", "min", "max", "function", "clip", "positional"]))
    if kind == "both":
        return (lambda lib, x: x.clamp(min=low, max=high)), (x,)
    if kind == "min":
        return (lambda lib, x: x.clamp(min=low)), (x,)
    if kind == "max":
        return (lambda lib, x: x.clamp(max=high)), (x,)
    if kind == "function":
        return (lambda lib, x: lib.clamp(x, low, high)), (x,)
    if kind == "clip":
        return (lambda lib, x: x.clip(low, high)), (x,)
    return (lambda lib, x: x.clamp(low)), (x,)


@st.composite
def cast(draw):
    """A round trip through the other float dtype, every spelling of the cast.

    The values and the finite-difference step are multiples of 2**-10: float32 holds them, so
    the round trip is exactly the identity that its gradient claims.
    """
    x = draw(on_grid(draw(shapes), 2.0**-6, -2.0, 2.0))
    there, back = (
        draw(st.sampled_from(["to", "to(dtype=)", "type", "method"])),
        draw(st.sampled_from(["to", "method"])),
    )

    def convert(lib, x, dtype, spelling):
        if spelling == "to":
            return x.to(dtype)
        if spelling == "to(dtype=)":
            return x.to(dtype=dtype)
        if spelling == "type":
            return x.type(dtype)
        return x.double() if dtype == lib.float64 else x.float()

    def fn(lib, x):
        other = lib.float32 if x.dtype == lib.float64 else lib.float64
        return convert(lib, convert(lib, x, other, there), x.dtype, back)

    return fn, (x,), None, 2.0**-10


# ---------------------------------------------------------------- reductions and ops along a dim


@st.composite
def variance(draw, name):
    """var or std over dims (int, tuple, None), keepdim, unbiased or correction 0/1/2.

    The reduced elements number at least 3, so n - correction > 0 and the variance is positive
    (std's sqrt is smooth there); the one-element case is an edge test.
    """
    shape = list(draw(nonempty_shapes))
    dim, keepdim = draw(dims(len(shape))), draw(st.booleans())
    reduced = range(len(shape)) if dim is None else [dim] if isinstance(dim, int) else dim
    first = min(d % len(shape) for d in reduced)
    shape[first] = max(shape[first], 3)
    kind = draw(st.sampled_from(["default", "unbiased", "correction", "function"]))
    unbiased, correction = draw(st.booleans()), draw(st.sampled_from([0, 1, 2]))

    def fn(lib, x):
        reduce = getattr(x, name)
        if kind == "default":
            return reduce() if dim is None and not keepdim else reduce(dim, keepdim=keepdim)
        if kind == "unbiased":
            return (
                reduce(unbiased=unbiased) if dim is None else reduce(dim, unbiased=unbiased, keepdim=keepdim)
            )
        if kind == "correction":
            return reduce(dim=dim, correction=correction, keepdim=keepdim)
        return getattr(lib, name)(x, dim, correction=correction, keepdim=keepdim)

    return fn, (draw(uniform(tuple(shape))),)


@st.composite
def min_all(draw):
    return (lambda lib, x: x.min()), (draw(distinct(draw(shapes))),)


@st.composite
def min_dim(draw):
    shape = draw(shapes)
    bound = max(len(shape), 1)
    dim, keepdim = draw(st.integers(-bound, bound - 1)), draw(st.booleans())
    function = draw(st.booleans())  # torch.min(x, dim) too

    def fn(lib, x):
        return (lib.min(x, dim, keepdim=keepdim) if function else x.min(dim, keepdim=keepdim)).values

    return fn, (draw(distinct(shape)),)


def one_dim(draw, shape: tuple[int, ...]) -> int:
    bound = max(len(shape), 1)
    return draw(st.integers(-bound, bound - 1))


@st.composite
def cumsum(draw):
    shape = draw(nonempty_shapes)  # a 0-d cumsum is a copy, not a cumsum entry: an edge test
    dim, function = one_dim(draw, shape), draw(st.booleans())
    return (lambda lib, x: lib.cumsum(x, dim) if function else x.cumsum(dim=dim)), (draw(uniform(shape)),)


@st.composite
def along_dim(draw, name):
    """softmax and log_softmax along one dim (0-d too), as a method or a function."""
    shape = draw(shapes)
    dim, function = one_dim(draw, shape), draw(st.booleans())
    return (lambda lib, x: getattr(lib, name)(x, dim) if function else getattr(x, name)(dim)), (
        draw(uniform(shape)),
    )


@st.composite
def logsumexp(draw):
    shape = draw(shapes)
    dim = draw(dims(len(shape)).filter(lambda d: d is not None))  # torch needs a dim
    keepdim, function = draw(st.booleans()), draw(st.booleans())

    def fn(lib, x):
        return lib.logsumexp(x, dim, keepdim) if function else x.logsumexp(dim, keepdim=keepdim)

    return fn, (draw(uniform(shape)),)


# ---------------------------------------------------------------- shapes


@st.composite
def expand(draw):
    """New leading dims, sides of 1 stretched, -1 keeping a side; as sizes or one tuple."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3))
    lead = draw(st.lists(st.integers(1, 3), max_size=2))
    target = list(lead)
    for side in shape:
        choices = [1, 2, 3, -1] if side == 1 else [side, -1]
        target.append(draw(st.sampled_from(choices)))
    spread = target and draw(st.booleans())  # expand(2, 3) or expand((2, 3)); expand(()) for 0-d
    return (lambda lib, x: x.expand(*target) if spread else x.expand(tuple(target))), (draw(uniform(shape)),)


@st.composite
def clone(draw):
    function = draw(st.booleans())
    return (lambda lib, x: lib.clone(x) if function else x.clone()), (draw(uniform(draw(shapes))),)


@st.composite
def join(draw):
    """cat and stack of 1 to 4 tensors, some not requiring grad, dims negative too."""
    stacked = draw(st.booleans())
    base = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3))
    n = draw(st.integers(1, 4))
    if stacked:
        dim = draw(st.integers(-len(base) - 1, len(base)))
        inputs = tuple(draw(uniform(base)) for _ in range(n))
    else:
        dim = draw(st.integers(-len(base), len(base) - 1))
        sides = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
        shapes_ = [(*base[: dim % len(base)], side, *base[dim % len(base) + 1 :]) for side in sides]
        inputs = tuple(draw(uniform(s)) for s in shapes_)
    requires_grad = draw(st.lists(st.booleans(), min_size=n, max_size=n).filter(any))
    legacy_empty = not stacked and draw(st.booleans())  # torch.cat skips a 1-D empty tensor

    def fn(lib, *xs):
        if stacked:
            return lib.stack(xs, dim)
        extra = [lib.zeros(0, dtype=xs[0].dtype)] if legacy_empty else []
        return lib.cat([*xs, *extra], dim=dim)

    return fn, inputs, tuple(requires_grad)


@st.composite
def flip(draw):
    shape = draw(nonempty_shapes)
    n = len(shape)
    chosen = draw(hnp.valid_tuple_axes(n, min_size=1))
    flips = tuple(d % n - n if draw(st.booleans()) else d % n for d in chosen)
    kind = draw(st.sampled_from(["tuple", "spread", "function"]))
    if kind == "tuple":
        return (lambda lib, x: x.flip(flips)), (draw(uniform(shape)),)
    if kind == "spread":
        return (lambda lib, x: x.flip(*flips)), (draw(uniform(shape)),)
    return (lambda lib, x: lib.flip(x, flips)), (draw(uniform(shape)),)


@st.composite
def repeat(draw):
    """As many repeats as dims or more (new leading dims), as sizes or one tuple."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3))
    extra = draw(st.integers(0 if shape else 1, 2))
    repeats = tuple(
        draw(st.lists(st.integers(1, 3), min_size=len(shape) + extra, max_size=len(shape) + extra))
    )
    spread = draw(st.booleans())
    return (lambda lib, x: x.repeat(*repeats) if spread else x.repeat(repeats)), (draw(uniform(shape)),)


@st.composite
def triangle(draw, name):
    """tril/triu of matrices and batches of them, diagonal -2..2 (default 0 too)."""
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4))
    diagonal = draw(st.integers(-2, 2))
    kind = draw(st.sampled_from(["default", "positional", "keyword", "function"]))

    def fn(lib, x):
        method = getattr(x, name)
        if kind == "default":
            return method()
        if kind == "positional":
            return method(diagonal)
        if kind == "keyword":
            return method(diagonal=diagonal)
        return getattr(lib, name)(x, diagonal)

    return fn, (draw(uniform(shape)),)


@st.composite
def pad(draw):
    """F.pad with (before, after) pairs for the last dims, negative ones cropping (at least one
    element is left), zero widths too, and a fill value."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    n_pairs = draw(st.integers(1, len(shape)))
    widths = []
    for side in reversed(shape[-n_pairs:]):  # torch's order: the last dim first
        before = draw(st.integers(-min(2, side - 1), 2))
        after = draw(st.integers(-min(2, side - 1 + min(before, 0)), 2))
        widths += [before, after]
    value = draw(st.sampled_from([0.0, 0.5, -1.0]))
    keyword = draw(st.booleans())

    def fn(lib, x):
        function = tape.pad if lib is tape else lib.nn.functional.pad
        return (
            function(x, tuple(widths), mode="constant", value=value)
            if keyword
            else function(x, widths, "constant", value)
        )

    return fn, (draw(uniform(shape)),)


# ---------------------------------------------------------------- index assignment

PUT_SHAPE = (3, 4, 5)


@st.composite
def index_put(draw):
    """``y[idx] = v`` on a non-leaf y: every kind of index torch takes, no repeated position,
    v broadcast to the selection (or a number), y made from x or from zeros."""
    kind = draw(st.sampled_from(PUT_KINDS))
    index_inputs: tuple = ()
    if kind == "int":
        key = draw(st.sampled_from([1, -1, (0, 2), (2, -1, 3)]))
    elif kind == "slices":
        key = draw(
            st.sampled_from([slice(1, 3), (slice(None), slice(None, None, 2)), (Ellipsis, slice(1, 4))])
        )
    elif kind == "int array":
        key = unique_indices(draw, 4, draw(st.integers(1, 4)))
        key = (slice(None), key)
    elif kind == "int tensor":  # an input: a tape or torch int64 tensor
        index_inputs = (unique_indices(draw, 3, draw(st.integers(1, 3))),)
    elif kind == "list":
        key = unique_indices(draw, 3, draw(st.integers(1, 3))).tolist()
    elif kind == "two arrays":
        flat = draw(st.permutations(range(20)))[: draw(st.integers(1, 6))]
        key = (slice(None), *np.unravel_index(np.array(flat), (4, 5)))
    elif kind == "int and array":  # x[0, :, [0, 1]]: torch indexes the int first
        key = (draw(st.integers(-3, 2)), slice(None), unique_indices(draw, 5, draw(st.integers(1, 3))))
    elif kind == "mask":
        key = draw(hnp.arrays(np.bool_, draw(st.sampled_from([(3,), (3, 4), PUT_SHAPE]))))
    else:  # "range and tensor": y[range(n), Y] = v, one position per row
        index_inputs = (draw(hnp.arrays(np.int64, (3,), elements=st.integers(-4, 3))),)

    def put(lib, y, v, *index):
        if kind == "int tensor":
            y[index[0]] = v
        elif kind == "range and tensor":
            y[range(3), index[0]] = v
        else:
            y[key] = v
        return y

    selected = tape.tensor(np.zeros(PUT_SHAPE))
    selection = (
        selected[index_inputs[0] if kind == "int tensor" else (range(3), index_inputs[0])]
        if index_inputs
        else selected[key]
    )
    number = draw(st.booleans()) and draw(st.booleans())  # a quarter of the cases: y[idx] = 0.5
    dropped = draw(st.integers(0, selection.ndim))
    v_shape = tuple(1 if draw(st.booleans()) else side for side in selection.shape[dropped:])
    base = draw(st.sampled_from(["clone", "product", "zeros"]))
    x, v = draw(uniform(PUT_SHAPE)), draw(uniform(v_shape))

    if number:
        base = "clone" if base == "zeros" else base  # something must require grad

        def fn(lib, x, *index):
            return put(lib, x.clone() if base == "clone" else x * 2.0, 0.5, *index)

        return fn, (x, *index_inputs)
    if base == "zeros":  # logits = zeros(...); logits[idx] = v: only v requires grad

        def fn(lib, v, *index):
            return put(lib, lib.zeros(PUT_SHAPE, dtype=v.dtype), v, *index)

        return fn, (v, *index_inputs)

    def fn(lib, x, v, *index):
        return put(lib, x.clone() if base == "clone" else x * 2.0, v, *index)

    return fn, (x, v, *index_inputs)


PUT_KINDS = [
    "int",
    "slices",
    "int array",
    "int tensor",
    "list",
    "two arrays",
    "int and array",
    "mask",
    "range and tensor",
]


CASES = {
    **{name: binary(name) for name in BINARY},
    **{name: unary(name) for name in UNARY},
    **ELEMENTWISE,
    "pow": power(),
    "pow_tensor": pow_tensor(),
    "maximum": extremum_pair("maximum"),
    "minimum": extremum_pair("minimum"),
    "remainder": remainder(),
    "where": where(),
    "clamp": clamp(),
    "cast": cast(),
    "sum": reduction("sum"),
    "mean": reduction("mean"),
    "var": variance("var"),
    "std": variance("std"),
    "max": max_all(),
    "max_dim": max_dim(),
    "min": min_all(),
    "min_dim": min_dim(),
    "cumsum": cumsum(),
    "softmax": along_dim("softmax"),
    "log_softmax": along_dim("log_softmax"),
    "logsumexp": logsumexp(),
    "view": view(),
    "transpose": transpose(),
    "expand": expand(),
    "clone": clone(),
    "gather": gather(),
    "cat": join(),
    "flip": flip(),
    "repeat": repeat(),
    "tril": triangle("tril"),
    "triu": triangle("triu"),
    "pad": pad(),
    "index_put": index_put(),
    "matmul": matmul(),
}
