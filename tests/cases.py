"""Random cases for every primitive op, shared by the torch and the finite-difference tests.

``CASES[op_name]`` is a hypothesis strategy of ``(fn, inputs)``: ``fn(lib, *inputs)`` applies
the op (with lib the tape or the torch module) in general position, away from kinks and ties,
so that both checks in ``tests/checks.py`` apply. The draws vary everything the op accepts:
broadcastable shapes, dims (int, negative, tuple, None), keepdim, index kinds, vector cases.
"""

from __future__ import annotations

import operator

import numpy as np
from checks import distinct, nonzero, uniform
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tape

BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}
UNARY = {
    "neg": (operator.neg, uniform),
    "exp": (lambda x: x.exp(), uniform),
    "log": (lambda x: x.log(), lambda shape: uniform(shape, 0.1, 3.0)),
    "tanh": (lambda x: x.tanh(), lambda shape: uniform(shape, -3.0, 3.0)),
}
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


CASES = {
    **{name: binary(name) for name in BINARY},
    **{name: unary(name) for name in UNARY},
    "pow": power(),
    "sum": reduction("sum"),
    "mean": reduction("mean"),
    "max": max_all(),
    "max_dim": max_dim(),
    "view": view(),
    "transpose": transpose(),
    "gather": gather(),
    "matmul": matmul(),
}
