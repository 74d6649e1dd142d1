"""Tensor: a NumPy array that records the ops applied to it on the Wengert list.

The API mirrors PyTorch's, so torch code runs with ``torch`` renamed to ``tape``. This file
holds what every tensor is (its array, gradient, tape entry, version, conversions, printing)
and ``apply``, the one path by which any op runs and is recorded. The ops themselves, with
their Tensor methods, live beside their VJPs in ``elementwise.py``, ``reductions.py``,
``shapes.py``, ``fused.py`` and ``inplace.py``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

import numpy as np

from tape import wengert
from tape.dtypes import float32, float64, int64
from tape.op import Op
from tape.tracing import RECORDING, replayable
from tape.wengert import Entry, Mode, check_finite, record


class ShapeError(RuntimeError, ValueError):
    """Operand shapes that do not fit: a RuntimeError as in torch, a ValueError as tape raised before."""


class Size(tuple):
    """A shape: a tuple of ints that prints as torch's does (``tape.Size([32, 3])``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"tape.Size({list(self)})"

    def __str__(self) -> str:  # inside messages, the plain tuple: "shapes (3, 4) and (5, 2)"
        return tuple.__repr__(self)

    def numel(self) -> int:
        n = 1
        for side in self:
            n *= side
        return n


class Tensor:
    """An ndarray ``array``, its gradient ``grad`` and, for op outputs, its tape entry ``grad_fn``.

    ``.data`` is a tensor sharing ``array`` that autograd does not see (torch's ``.data``);
    ``version`` counts in-place changes (shared with views) so backward can refuse stale values.
    """

    # _view_of, set on views only (never by wrap): (the tensor viewed, op, params, taken in grad
    # mode), by which tape.inplace re-takes a view once an in-place op gave its base a new array
    __slots__ = ("__weakref__", "_grad", "_rg", "_view_of", "array", "grad_fn", "name", "version")
    __hash__ = object.__hash__  # == is elementwise, as in torch; hash stays identity

    def __init__(self, data: Any, requires_grad: bool = False, name: str | None = None) -> None:
        self.array = data.array if isinstance(data, Tensor) else np.asarray(data)
        self._grad: Tensor | None = None
        self._rg = False
        self.grad_fn: Entry | None = None
        self.name = name
        self.version = [0]
        self.requires_grad = requires_grad

    # ------------------------------------------------------------ autograd attributes
    @property
    def requires_grad(self) -> bool:
        return self._rg

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value and self.array.dtype.kind != "f":
            raise RuntimeError(
                f"requires_grad: only floating point tensors can require gradients, "
                f"this one is {self.array.dtype} of shape {self.shape}"
            )
        if self.grad_fn is not None and not value:
            raise RuntimeError("requires_grad: an op's output cannot stop requiring grad; use detach()")
        self._rg = bool(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    @property
    def grad(self) -> Tensor | None:
        return self._grad

    @grad.setter
    @replayable  # ``p.grad = None`` inside a replayed step happens on every replay
    def grad(self, value: Any) -> None:
        if value is None or isinstance(value, Tensor):
            self._grad = value
            return
        self._grad = wrap(np.asarray(value))

    def accumulate_grad(self, g: np.ndarray, handed_out: set[int]) -> None:
        """Add ``g`` to ``.grad``: the reverse sweep's last step. ``handed_out`` holds the ids of
        arrays already kept by some tensor's ``.grad``: ``g`` is copied rather than shared."""
        grad = self._grad
        if grad is None:
            if (
                type(g) is not np.ndarray
                or g.base is not None
                or id(g) in handed_out
                or not g.flags.writeable
            ):
                g = np.array(g)
            handed_out.add(id(g))
            self._grad = wrap(g)
        else:  # the same grad tensor, as torch accumulates into it
            grad.array = np.asarray(grad.array + g)  # asarray: 0-d sums come back as NumPy scalars

    @property
    def data(self) -> Tensor:
        """This tensor's values as a tensor autograd does not see: changes to it are not checked."""
        return wrap(self.array)

    @data.setter
    def data(self, value: Any) -> None:
        self.array = value.array if isinstance(value, Tensor) else np.asarray(value)

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward."""
        if not self._rg:
            raise RuntimeError("retain_grad: this tensor does not require grad")
        if self.grad_fn is not None:
            self.grad_fn.retain = True

    def detach(self) -> Tensor:
        """The same values, sharing memory and version, cut from the tape."""
        out = wrap(self.array)
        out.version = self.version
        if not (self._rg and self.grad_fn is None):  # else this tensor is never given a new array
            link_view(self, out, None, ())  # a view with no op: see tape.inplace.retake
        return out

    def backward(
        self,
        gradient: Any = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Any = None,
    ) -> None:
        """Backpropagate from this tensor: a reverse sweep over its Wengert list.

        ``create_graph=True`` records the sweep itself on the tape, so the ``.grad`` it leaves
        can be differentiated again (``retain_graph`` then defaults to True, as in torch);
        ``inputs`` limits which tensors' ``.grad`` is touched."""
        if create_graph or inputs is not None:
            from tape.functional import backward_graph  # the general sweep: only when asked for

            backward_graph(self, gradient, retain_graph, create_graph, inputs)
            return
        if not self._rg:
            raise RuntimeError(
                f"backward: this tensor (shape {self.shape}) does not require grad and has no "
                "tape entry; did you set requires_grad=True on the parameters?"
            )
        if gradient is None:
            if self.array.size != 1:
                raise RuntimeError(
                    f"backward: a gradient can only be implied for a one-element output, this "
                    f"one has shape {self.shape}; pass backward(gradient=...) of that shape"
                )
            gradient = np.ones(self.array.shape, self.array.dtype)
        else:
            given = gradient.array if isinstance(gradient, Tensor) else gradient
            gradient = np.array(given, dtype=self.array.dtype)
            if gradient.shape != self.array.shape:
                raise ShapeError(
                    f"backward: gradient has shape {gradient.shape} but the output has shape {self.shape}"
                )
        if self.grad_fn is None:
            wengert.backward_from_leaf(self, gradient)
        else:
            wengert.backward(self, gradient, retain_graph)

    # ------------------------------------------------------------ shape and type
    @property
    def shape(self) -> Size:
        return Size(self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def device(self) -> str:
        return "cpu"

    def is_floating_point(self) -> bool:
        return self.array.dtype.kind == "f"

    def dim(self) -> int:
        return self.array.ndim

    def size(self, dim: int | None = None) -> Size | int:
        return Size(self.array.shape) if dim is None else self.array.shape[dim]

    def numel(self) -> int:
        return self.array.size

    nelement = numel

    def element_size(self) -> int:
        return self.array.itemsize

    def __len__(self) -> int:
        if self.array.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.array.shape[0]

    # ------------------------------------------------------------ conversions
    def item(self) -> float | int | bool:
        if RECORDING:  # a Python value read from a tensor: a replay could not repeat what follows
            RECORDING[-1].read(self)
        if self.array.size != 1:
            raise RuntimeError(
                f"item: only a one-element tensor converts to a Python number, got shape {self.shape}"
            )
        return self.array.item()

    def tolist(self) -> Any:
        if RECORDING:
            RECORDING[-1].read(self)
        return self.array.tolist()

    def numpy(self) -> np.ndarray:
        return self.array

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.array if dtype is None else self.array.astype(dtype, copy=False)

    def __float__(self) -> float:
        return float(self._scalar("float"))

    def __int__(self) -> int:
        return int(self._scalar("int"))

    def _scalar(self, what: str) -> Any:
        if RECORDING:
            RECORDING[-1].read(self)
        if self.array.size != 1:
            raise ValueError(
                f"{what}(): only one-element tensors can be converted to Python scalars, "
                f"got shape {self.shape}"
            )
        return self.array.item()

    def __index__(self) -> int:
        if RECORDING:
            RECORDING[-1].read(self)
        if self.array.dtype.kind not in "iu" or self.array.size != 1:
            raise TypeError(
                f"only integer tensors of a single element can be converted to an index, "
                f"got {self.array.dtype} of shape {self.shape}"
            )
        return int(self.array.item())

    def __bool__(self) -> bool:
        if RECORDING:
            RECORDING[-1].read(self)
        if self.array.size != 1:
            raise RuntimeError(
                f"Boolean value of Tensor with more than one value is ambiguous (shape {self.shape}); "
                "use .any() or .all()"
            )
        return bool(self.array.item())

    def __format__(self, spec: str) -> str:
        if self.array.ndim == 0:
            return format(self.array.item(), spec)
        if spec:  # torch formats only 0-d tensors as numbers
            raise TypeError(
                f"unsupported format string {spec!r} for a tensor of shape {self.shape}; use .item()"
            )
        return str(self)

    def __iter__(self) -> Any:
        if self.array.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.array.shape[0]))

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """``ndarray * t`` and ``np.exp(t)`` run tape's op; other ufuncs run on the arrays."""
        names = UFUNC_METHODS.get(ufunc.__name__) if method == "__call__" and not kwargs else None
        if names is not None:
            if isinstance(inputs[0], Tensor):
                return getattr(inputs[0], names[0])(*inputs[1:])
            return getattr(inputs[1], names[1])(inputs[0])
        arrays = [x.array if isinstance(x, Tensor) else x for x in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(x.array if isinstance(x, Tensor) else x for x in kwargs["out"])
        return getattr(ufunc, method)(*arrays, **kwargs)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (Tensor, (self.array, self._rg, self.name))

    # ------------------------------------------------------------ printing
    def __repr__(self) -> str:
        body = format_array(self.array)
        extras = ""
        if self.array.dtype not in (float32, int64, np.dtype(np.bool_)):
            extras += f", dtype=tape.{self.array.dtype}"
        if self.grad_fn is not None:
            extras += f", grad_fn=<{self.grad_fn.name()}>"
        elif self._rg:
            extras += ", requires_grad=True"
        if self.name:
            extras += f", name={self.name!r}"
        return f"tensor({body}{extras})"


# NumPy ufuncs that are tape ops: (method when the tensor comes first, method when it comes second)
UFUNC_METHODS = {
    "add": ("__add__", "__radd__"),
    "subtract": ("__sub__", "__rsub__"),
    "multiply": ("__mul__", "__rmul__"),
    "divide": ("__truediv__", "__rtruediv__"),
    "power": ("__pow__", "__rpow__"),
    "matmul": ("__matmul__", "__rmatmul__"),
    "remainder": ("__mod__", "__rmod__"),
    "maximum": ("maximum", "maximum"),
    "minimum": ("minimum", "minimum"),
    "equal": ("__eq__", "__eq__"),
    "not_equal": ("__ne__", "__ne__"),
    "less": ("__lt__", "__gt__"),
    "less_equal": ("__le__", "__ge__"),
    "greater": ("__gt__", "__lt__"),
    "greater_equal": ("__ge__", "__le__"),
    **{name: (name, name) for name in ("exp", "exp2", "log", "log2", "log10", "sqrt", "tanh", "sin", "cos")},
    "negative": ("__neg__", "__neg__"),
    "absolute": ("abs", "abs"),
}


def format_array(array: np.ndarray) -> str:
    """torch's layout: four decimals, or ``1.`` for whole numbers, or scientific for wide ranges,
    every element right-aligned to the widest."""
    options = {
        "separator": ", ",
        "prefix": "tensor(",
        "threshold": 1000,
        "edgeitems": 3,
        "max_line_width": 81,  # torch wraps at 80 columns after the opening bracket
    }
    if array.dtype.kind != "f" or array.size == 0:
        return np.array2string(array, **options)
    shown = summarized(array) if array.size > 1000 else array  # torch picks the layout from what it prints
    finite = np.abs(shown[np.isfinite(shown)]).astype(float64)
    nonzero = finite[finite != 0]
    if finite.size and np.all(finite == np.round(finite)) and finite.max(initial=0) < 1e8:
        spec = "{:.0f}."
    elif nonzero.size and (
        nonzero.max() / nonzero.min() > 1000 or nonzero.max() > 1e8 or nonzero.min() < 1e-4
    ):
        spec = "{:.4e}"
    else:
        spec = "{:.4f}"
    width = max(len(_number(v, spec)) for v in shown.ravel())
    return np.array2string(
        array, formatter={"float_kind": lambda v: _number(v, spec).rjust(width)}, **options
    )


def summarized(array: np.ndarray, edge: int = 3) -> np.ndarray:
    """The elements a summarised print shows: the first and last ``edge`` along every long axis."""
    for axis, n in enumerate(array.shape):
        if n > 2 * edge:
            array = np.concatenate(
                [array.take(range(edge), axis), array.take(range(n - edge, n), axis)], axis
            )
    return array


def _number(v: float, spec: str) -> str:
    if not np.isfinite(v):
        return "nan" if v != v else ("inf" if v > 0 else "-inf")
    return spec.format(v)


# ---------------------------------------------------------------- applying an op


def gradients(tensors: Iterable[Tensor]) -> list[tuple[Tensor, np.ndarray]]:
    """``(tensor, its gradient's array)`` for each tensor that has a gradient: what an optimiser
    steps with, read without a property call per parameter on every step."""
    return [(t, t._grad.array) for t in tensors if t._grad is not None]


@replayable
def zero_gradients(tensors: Iterable[Tensor], set_to_none: bool = True) -> None:
    """``optimizer.zero_grad()``: each gradient set to None (torch's default) or zeroed in place."""
    if set_to_none:
        for t in tensors:
            t._grad = None  # not through the setter: this runs for every parameter on every step
        return
    for t in tensors:
        if t._grad is not None:
            t._grad.array[...] = 0


def wrap(array: Any) -> Tensor:
    """A new tensor around an op's result, without the checks of the public constructor."""
    t = Tensor.__new__(Tensor)
    t.array = array if type(array) is np.ndarray else np.asarray(array)
    t._grad = None
    t._rg = False
    t.grad_fn = None
    t.name = None
    t.version = [0]
    return t


def apply(op: Op, inputs: tuple, *params: Any) -> Tensor:
    """Run ``op`` on ``inputs`` (tensors and constants) and record it when a gradient can flow."""
    if len(inputs) == 1 and isinstance(inputs[0], Tensor):  # most ops: skip the comprehension
        return run(op, inputs, (inputs[0].array,), params)
    return run(op, inputs, [x.array if isinstance(x, Tensor) else x for x in inputs], params)


def run(op: Op, inputs: tuple, arrays: Any, params: tuple) -> Tensor:
    """The one path every op takes: the forward on ``arrays`` (the inputs' values, promoted to
    a common dtype where the op needs one), then, if some input requires a gradient and grad
    mode is on, one entry on the Wengert list with an edge per such input. The sweep hands
    each input its gradient in its own dtype."""
    out_array, saved = op.forward(*arrays, *params) if params else op.forward(*arrays)
    out = wrap(out_array)
    if RECORDING:  # tape.replay is recording a call: it keeps this op as a step
        RECORDING[-1].forward(op, inputs, arrays, params, out_array, saved, out.array)
    if op.view:
        x = inputs[0]
        out.version = x.version  # a view: an in-place change to either is a change to both
        if not (x._rg and x.grad_fn is None and Mode.grad):  # else x is never given a new array
            link_view(x, out, op, params)
    if Mode.grad:
        edges = gradient_edges(inputs)
        if edges:
            out._rg = True
            out.grad_fn = record(op, inputs, saved, edges, out)
            return out
    if Mode.anomaly:
        check_finite(out.array, op, None, "its output")
    return out


def link_view(x: Tensor, out: Tensor, op: Op | None, params: tuple) -> None:
    """Note that ``out`` views ``x``, for ``tape.inplace``: an in-place op with a gradient
    involved gives a tensor a new array, then re-takes its live views from it, as torch
    regenerates a view's grad_fn from its base. The version list, which all views of one array
    share, lists them (weakly) after its count; dead ones are dropped now and then."""
    out._view_of = (x, op, params, Mode.grad)
    views = x.version
    views.append(weakref.ref(out))
    n = len(views)
    if n > 64 and not n & (n - 1):  # at each power of two: amortised O(1) per view
        views[1:] = [view for view in views[1:] if view() is not None]


def gradient_edges(inputs: tuple) -> tuple:
    """``(position, tensor, its entry now)`` for each input that requires a gradient.

    The entry is taken now, not at backward: an in-place op may later make the same tensor
    the output of another entry, and this op's gradient belongs to the value it read.
    Unrolled for one and two inputs, the common cases.
    """
    n = len(inputs)
    if n == 1:
        x = inputs[0]
        return ((0, x, x.grad_fn),) if isinstance(x, Tensor) and x._rg else ()
    if n == 2:
        a, b = inputs
        a_rg = isinstance(a, Tensor) and a._rg
        if isinstance(b, Tensor) and b._rg:
            return ((0, a, a.grad_fn), (1, b, b.grad_fn)) if a_rg else ((1, b, b.grad_fn),)
        return ((0, a, a.grad_fn),) if a_rg else ()
    edges = []
    for k, x in enumerate(inputs):
        if isinstance(x, Tensor) and x._rg:
            edges.append((k, x, x.grad_fn))
    return tuple(edges)
