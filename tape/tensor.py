"""Tensor: a NumPy array that records the ops applied to it on the Wengert list.

The API mirrors PyTorch's (``dim``/``keepdim``, ``.max(dim).values``, ``.view``,
``retain_grad``), so the backprop-ninja notebook runs with ``torch`` replaced by ``tape``.
Dtypes follow torch: Python floats become float32, and float32 stays float32 next to
Python or NumPy scalars.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from tape import ops, wengert
from tape.op import Op
from tape.wengert import Entry, Mode, check_finite

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}
_PYTHON_SCALARS = {bool, int, float}


class Tensor:
    """An ndarray ``data``, its gradient ``grad`` and, for op outputs, its tape entry."""

    __slots__ = ("__weakref__", "_entry", "_rg", "data", "grad", "name")
    __array_ufunc__ = None  # make NumPy defer: ndarray * Tensor calls Tensor.__rmul__

    def __init__(self, data: Any, requires_grad: bool = False, name: str | None = None) -> None:
        self.data = np.asarray(data)
        self.grad: np.ndarray | None = None
        self._rg = False
        self._entry: Entry | None = None
        self.name = name
        self.requires_grad = requires_grad

    # ------------------------------------------------------------ attributes
    @property
    def requires_grad(self) -> bool:
        return self._rg

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value and self.data.dtype.kind != "f":
            raise RuntimeError(
                f"requires_grad: only floating point tensors can require gradients, "
                f"this one is {self.data.dtype} of shape {self.data.shape}"
            )
        if self._entry is not None and not value:
            raise RuntimeError("requires_grad: an op's output cannot stop requiring grad; use detach()")
        self._rg = bool(value)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        return self._entry is None

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.data.ndim)))

    def dim(self) -> int:
        return self.data.ndim

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self) -> int:
        return self.data.size

    nelement = numel

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def item(self) -> float | int | bool:
        if self.data.size != 1:
            raise ValueError(f"item: only a one-element tensor converts to a number, got shape {self.shape}")
        return self.data.item()

    def numpy(self) -> np.ndarray:
        return self.data

    def detach(self) -> Tensor:
        return _wrap(self.data)

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward."""
        if not self._rg:
            raise RuntimeError("retain_grad: this tensor does not require grad")
        if self._entry is not None:
            self._entry.retain = True

    def backward(self, gradient: Any = None, retain_graph: bool = False) -> None:
        """Backpropagate from this tensor: a reverse sweep over its Wengert list."""
        if not self._rg:
            raise RuntimeError(
                f"backward: this tensor (shape {self.shape}) does not require grad and has no "
                "tape entry; did you set requires_grad=True on the parameters?"
            )
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: a gradient can only be implied for a one-element output, this "
                    f"one has shape {self.shape}; pass backward(gradient=...) of that shape"
                )
            gradient = np.ones(self.data.shape, self.data.dtype)
        else:
            given = gradient.data if isinstance(gradient, Tensor) else gradient
            gradient = np.asarray(given, dtype=self.data.dtype)
            if gradient.shape != self.data.shape:
                raise ValueError(
                    f"backward: gradient has shape {gradient.shape} but the output has shape {self.shape}"
                )
        wengert.backward(self, gradient, retain_graph)

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(", threshold=20)
        extras = ""
        if self.data.dtype != float32 and self.data.dtype != int64:
            extras += f", dtype={self.data.dtype}"
        if self._rg:
            extras += ", requires_grad=True"
        if self.name:
            extras += f", name={self.name!r}"
        return f"tensor({body}{extras})"

    # ------------------------------------------------------------ arithmetic
    def __add__(self, other: Any) -> Tensor:
        return _binary(ops.add, self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _binary(ops.add, other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _binary(ops.sub, self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _binary(ops.sub, other, self)

    def __mul__(self, other: Any) -> Tensor:
        return _binary(ops.mul, self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _binary(ops.mul, other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return _binary(ops.div, *_true_division(self, other))

    def __rtruediv__(self, other: Any) -> Tensor:
        return _binary(ops.div, *_true_division(other, self))

    def __matmul__(self, other: Any) -> Tensor:
        return _binary(ops.matmul, self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _binary(ops.matmul, other, self)

    def __neg__(self) -> Tensor:
        return _unary(ops.neg, self)

    def __pow__(self, exponent: float) -> Tensor:
        if isinstance(exponent, (np.generic, np.ndarray)) and np.ndim(exponent) == 0:
            exponent = exponent.item()
        if not isinstance(exponent, (int, float)) or isinstance(exponent, bool):
            raise TypeError(f"pow: the exponent must be a number, got {type(exponent).__name__}")
        if self.data.dtype.kind != "f" and (isinstance(exponent, float) or exponent < 0):
            return _unary(ops.pow_, _as_float(self), exponent)
        return _unary(ops.pow_, self, exponent)

    def exp(self) -> Tensor:
        return _unary(ops.exp, _as_float(self))

    def log(self) -> Tensor:
        return _unary(ops.log, _as_float(self))

    def tanh(self) -> Tensor:
        return _unary(ops.tanh, _as_float(self))

    def matmul(self, other: Any) -> Tensor:
        return _binary(ops.matmul, self, other)

    # ------------------------------------------------------------ reductions
    def sum(
        self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
    ) -> Tensor:
        dim, keepdim = _reduction_args("sum", dim, keepdim, axis, keepdims)
        return _unary(ops.sum_, self, _dims("sum", self, dim), keepdim)

    def mean(
        self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
    ) -> Tensor:
        dim, keepdim = _reduction_args("mean", dim, keepdim, axis, keepdims)
        if self.data.dtype.kind != "f":
            raise TypeError(f"mean: needs a floating point tensor, got {self.data.dtype}")
        return _unary(ops.mean, self, _dims("mean", self, dim), keepdim)

    def max(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None) -> Any:
        """``max()``: the largest element. ``max(dim, keepdim)``: ``(values, indices)``."""
        dim, keepdim = _reduction_args("max", dim, keepdim, axis, keepdims)
        if self.data.size == 0:
            raise RuntimeError(f"max: cannot take the max of an empty tensor of shape {self.shape}")
        if dim is None:
            return _unary(ops.max_, self)
        if not isinstance(dim, (int, np.integer)):
            raise TypeError(f"max: dim must be an int, got {dim!r}")
        (d,) = _dims("max", self, dim) or (0,)
        data = self.data if self.data.ndim else self.data.reshape(1)
        argmax = data.argmax(axis=d, keepdims=True)
        values = _unary(ops.max_dim, self if self.data.ndim else self.view(1), argmax, d, keepdim)
        indices = argmax if keepdim else argmax.squeeze(d)
        if self.data.ndim == 0:
            values, indices = values.view(()), indices.reshape(())
        return MaxResult(values, _wrap(indices))

    # ------------------------------------------------------------ shape and indexing
    def view(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            return _unary(ops.view, self, shape)
        except (ValueError, TypeError):
            raise ValueError(
                f"view: cannot view a tensor of shape {self.shape} ({self.data.size} elements) "
                f"as shape {tuple(shape)}"
            ) from None

    reshape = view

    def permute(self, *dims: int) -> Tensor:
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        n = self.data.ndim
        axes = tuple(_dims("permute", self, d)[0] if n else 0 for d in dims)
        if sorted(axes) != list(range(n)):
            raise ValueError(
                f"permute: {dims} is not a permutation of the dims of a tensor of shape {self.shape}"
            )
        return _unary(ops.transpose, self, axes)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        axes = list(range(self.data.ndim))
        d0, d1 = (_dims("transpose", self, d)[0] for d in (dim0, dim1))
        axes[d0], axes[d1] = axes[d1], axes[d0]
        return _unary(ops.transpose, self, tuple(axes))

    def __getitem__(self, key: Any) -> Tensor:
        index = _index(key)
        try:
            return _unary(ops.gather, self, index)
        except IndexError as e:
            raise IndexError(
                f"gather: cannot index a tensor of shape {self.shape} with {_describe_index(index)}: {e}"
            ) from None


class MaxResult(NamedTuple):
    values: Tensor
    indices: Tensor


# ---------------------------------------------------------------- applying an op


def _wrap(data: Any) -> Tensor:
    """A new tensor around an op's result, without the checks of the public constructor."""
    t = Tensor.__new__(Tensor)
    t.data = data if type(data) is np.ndarray else np.asarray(data)
    t.grad = None
    t._rg = False
    t._entry = None
    t.name = None
    return t


def _unary(op: Op, x: Tensor, *params: Any) -> Tensor:
    out_data, saved = op.forward(x.data, *params)
    edges = ((op.vjps[0], x),) if x._rg and Mode.grad else ()
    return _result(op, out_data, (x,), saved, edges)


def _binary(op: Op, a: Any, b: Any) -> Tensor:
    a_data, b_data = _operands(op, a, b)
    try:
        out_data, saved = op.forward(a_data, b_data)
    except ValueError:
        raise ValueError(_shape_error(op, a_data, b_data)) from None
    edges = ()
    if Mode.grad:
        da, db = op.vjps
        if isinstance(a, Tensor) and a._rg:
            edges = ((da, a), (db, b)) if isinstance(b, Tensor) and b._rg else ((da, a),)
        elif isinstance(b, Tensor) and b._rg:
            edges = ((db, b),)
    return _result(op, out_data, (a, b), saved, edges)


def apply(op: Op, inputs: Sequence[Any], *params: Any) -> Tensor:
    """Apply ``op`` to any number of inputs (tensors or constants) and record it.

    The general path, for ops of three or more inputs such as fused layers; the arithmetic
    above uses the leaner unary and binary forms.
    """
    out_data, saved = op.forward(*[x.data if isinstance(x, Tensor) else x for x in inputs], *params)
    edges = ()
    if Mode.grad:
        edges = [(vjp, x) for vjp, x in zip(op.vjps, inputs) if isinstance(x, Tensor) and x._rg]
    return _result(op, out_data, tuple(inputs), saved, edges)


def _result(op: Op, out_data: Any, inputs: tuple, saved: tuple, edges: Sequence) -> Tensor:
    """The op's output as a tensor, recorded on the tape when some input requires a gradient."""
    out = _wrap(out_data)
    entry = None
    if edges:
        out._rg = True
        out._entry = entry = Entry(op, inputs, saved, edges, out)
    if Mode.anomaly:
        check_finite(out.data, op, entry, "its output")
    return out


def _operands(op: Op, a: Any, b: Any) -> tuple[Any, Any]:
    """The two operands as arrays or Python scalars, promoted as torch promotes them."""
    a_data = a.data if isinstance(a, Tensor) else _constant(op, a)
    b_data = b.data if isinstance(b, Tensor) else _constant(op, b)
    a_array, b_array = type(a_data) is np.ndarray, type(b_data) is np.ndarray
    if a_array and b_array:
        if a_data.dtype is not b_data.dtype and a_data.dtype != b_data.dtype:
            dtype = result_type(a_data, b_data)
            a_data, b_data = a_data.astype(dtype, copy=False), b_data.astype(dtype, copy=False)
    elif a_array:  # an array and a Python scalar: the array's dtype wins within its category
        a_data = _scalar_promotion(a_data, b_data)
    else:
        b_data = _scalar_promotion(b_data, a_data)
    return a_data, b_data


def _true_division(a: Any, b: Any) -> tuple[Any, Any]:
    """Integers divide into float32, as in torch (NumPy would give float64)."""
    if _is_floating(a) or _is_floating(b):
        return a, b
    return (_as_float(a) if isinstance(a, Tensor) else float(a)), (
        _as_float(b) if isinstance(b, Tensor) else float(b)
    )


def _is_floating(x: Any) -> bool:
    if isinstance(x, Tensor):
        return x.data.dtype.kind == "f"
    return isinstance(x, float) or np.asarray(x).dtype.kind == "f"


def _constant(op: Op, value: Any) -> Any:
    if type(value) in _PYTHON_SCALARS:
        return value
    if isinstance(value, (np.generic, np.ndarray)):  # before float: np.float64 subclasses it
        if value.ndim == 0:  # numpy scalars count as Python scalars, as in torch
            return value.item()
        if value.dtype.kind in _CATEGORY:
            return value
    if isinstance(value, (bool, int, float)):
        return value
    raise TypeError(f"{op.name}: unsupported operand of type {type(value).__name__}")


def _scalar_promotion(array: np.ndarray, scalar: Any) -> np.ndarray:
    kind = array.dtype.kind
    if kind == "f":
        return array
    if isinstance(scalar, float):
        return array.astype(float32)
    if kind == "b" and not isinstance(scalar, bool):
        return array.astype(int64)
    return array


def result_type(a: np.ndarray, b: np.ndarray) -> np.dtype:
    """torch's promotion of two tensors: a 0-d tensor only decides within a higher category."""
    ca, cb = _CATEGORY[a.dtype.kind], _CATEGORY[b.dtype.kind]
    if (a.ndim == 0) != (b.ndim == 0):
        dimensioned, zero_d = (a, b) if b.ndim == 0 else (b, a)
        if _CATEGORY[zero_d.dtype.kind] <= _CATEGORY[dimensioned.dtype.kind]:
            return dimensioned.dtype
        return zero_d.dtype
    if ca == cb:
        return np.promote_types(a.dtype, b.dtype)
    return a.dtype if ca > cb else b.dtype


def _as_float(x: Tensor) -> Tensor:
    return x if x.data.dtype.kind == "f" else _wrap(x.data.astype(float32))


def _shape_error(op: Op, a: Any, b: Any) -> str:
    sa, sb = np.shape(a), np.shape(b)
    if op is ops.matmul:
        if not sa or not sb:
            return f"matmul: both operands need at least one dimension, got shapes {sa} and {sb}"
        k_b = sb[-2] if len(sb) > 1 else sb[0]
        if sa[-1] != k_b:
            return f"matmul: shapes {sa} and {sb} cannot be multiplied ({sa[-1]} != {k_b})"
        return f"matmul: the batch dimensions of shapes {sa} and {sb} cannot be broadcast together"
    return f"{op.name}: shapes {sa} and {sb} cannot be broadcast together"


def _reduction_args(op: str, dim: Any, keepdim: bool, axis: Any, keepdims: Any) -> tuple[Any, bool]:
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: pass dim or axis, not both")
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    return dim, bool(keepdim)


def _dims(op: str, x: Tensor, dim: Any) -> tuple[int, ...]:
    """``dim`` (None, an int or a sequence; None and () mean all) as distinct non-negative axes."""
    n = x.data.ndim
    if dim is None:
        return tuple(range(n))
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    if not dims:  # torch reads an empty dim list as "all dims", not as "none"
        return tuple(range(n))
    bound = max(n, 1)  # a 0-d tensor accepts dim 0 and -1, as in torch
    for d in dims:
        if not isinstance(d, (int, np.integer)) or not -bound <= d < bound:
            raise IndexError(f"{op}: dim {d!r} is out of range for a tensor of shape {x.shape}")
    axes = tuple(int(d) % bound for d in dims) if n else ()
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: dim {dim!r} repeats a dimension")
    return axes


def _index(key: Any) -> Any:
    if isinstance(key, tuple):
        return tuple(_index_part(k) for k in key)
    return _index_part(key)


def _index_part(k: Any) -> Any:
    if isinstance(k, Tensor):
        k = k.data
    elif isinstance(k, range):
        return np.arange(k.start, k.stop, k.step)
    elif isinstance(k, list):
        k = np.asarray(k)
        if k.size == 0:
            k = k.astype(np.intp)
    if isinstance(k, np.ndarray) and k.dtype.kind not in "iub":
        raise IndexError(f"gather: indices must be integers or booleans, got {k.dtype}")
    return k


def _describe_index(index: Any) -> str:
    parts = index if isinstance(index, tuple) else (index,)
    return (
        "["
        + ", ".join(
            f"{p.dtype} array of shape {p.shape}" if isinstance(p, np.ndarray) else repr(p) for p in parts
        )
        + "]"
    )


# ---------------------------------------------------------------- constructors


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    """A new leaf tensor (a copy of ``data``). Python floats give float32, ints int64."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        array = np.array(data, dtype=dtype)
    elif isinstance(data, (np.ndarray, np.generic)):
        array = np.array(data)
    else:
        array = np.array(data)
        if array.dtype == float64:
            array = array.astype(float32)
        elif array.dtype.kind not in _CATEGORY:
            raise TypeError(f"tensor: cannot make a tensor of {array.dtype} from {type(data).__name__}")
    return Tensor(array, requires_grad=requires_grad, name=name)


def _shape(shape: Sequence[Any]) -> tuple[int, ...]:
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def zeros(*shape: Any, dtype: Any = float32, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def ones(*shape: Any, dtype: Any = float32, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def randn(
    *shape: Any,
    generator: np.random.Generator | None = None,
    dtype: Any = float32,
    requires_grad: bool = False,
) -> Tensor:
    """Standard normal samples from a NumPy Generator (a fresh one when None)."""
    rng = generator if generator is not None else np.random.default_rng()
    return Tensor(rng.standard_normal(_shape(shape)).astype(dtype), requires_grad=requires_grad)


def zeros_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros_like(x.data, dtype=dtype), requires_grad=requires_grad)


def ones_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones_like(x.data, dtype=dtype), requires_grad=requires_grad)


# ---------------------------------------------------------------- functions


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def exp(x: Tensor) -> Tensor:
    return x.exp()


def log(x: Tensor) -> Tensor:
    return x.log()


def matmul(a: Any, b: Any) -> Tensor:
    return _binary(ops.matmul, a, b)
