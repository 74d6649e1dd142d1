"""In-place ops and index assignment: ``x += y``, ``x.mul_(2)``, ``x[idx] = v``, ``zero_()``.

Where no gradient is involved (grad mode off, or no tensor requires one) the tensor's array is
changed in place, views included, and its version is bumped so that backward can refuse an
entry whose saved value changed (torch's "modified by an inplace operation"). Where a
gradient is involved the op is recorded as torch records it: the tensor becomes the output
of the in-place op, keeping its Python identity, while a stand-in takes its old place on the
tape; a leaf that requires grad refuses, as in torch.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from tape.dtypes import constant
from tape.elementwise import bind, keep
from tape.op import primitive
from tape.shapes import index_parts, torch_order
from tape.tensor import ShapeError, Tensor, apply, run, wrap
from tape.tracing import RECORDING
from tape.wengert import Mode, mark_changed_in_place, no_grad


def gradient_involved(self: Tensor, args: tuple) -> bool:
    return Mode.grad and (self._rg or any(isinstance(a, Tensor) and a._rg for a in args))


def refuse_leaf(self: Tensor, name: str) -> None:
    if self.grad_fn is None and self._rg:
        raise RuntimeError(
            f"{name}: a leaf tensor that requires grad (shape {self.shape}) is being used in an in-place "
            "operation; do it under tape.no_grad(), on .data, or out of place"
        )


def become_carried(self: Tensor, result: Tensor, name: str) -> None:
    """``become``, and for a view taken by indexing (``z[0:2]``), torch's CopySlices: the base
    gets the view's new values (an index_put on the tape) and the view becomes the same
    indexing of the new base, so both, and their gradients, see the change. Other views
    (view, transpose, expand, ...) are refused: changing the view alone would be silently wrong."""
    entry = self.grad_fn
    if entry is not None and entry.op.view and self.version is entry.inputs[0].version:
        if entry.op.name != "gather":
            raise RuntimeError(
                f"{name}: this tensor (shape {self.shape}) is a view ({entry.op.name}) of another tensor "
                "and a gradient is involved; tape carries an in-place change back into the base only for "
                "views taken by indexing: clone() the view first, or write the base out of place"
            )
        base, key = entry.inputs[0], entry.saved[0]
        setitem(base, key, result)
        result = base[key]
    become(self, result, name)


def take_over(self: Tensor) -> Tensor:
    """A stand-in that takes ``self``'s place on the tape before ``self`` becomes a new op's output."""
    stand_in = wrap(self.array)
    stand_in.version, stand_in._rg, stand_in.grad_fn = self.version, self._rg, self.grad_fn
    stand_in.name = self.name
    if self.grad_fn is not None:
        self.grad_fn.output = weakref.ref(stand_in)
    return stand_in


def become(self: Tensor, result: Tensor, name: str) -> None:
    """``self`` is now ``result``: same values, and the output of result's entry."""
    if result.shape != self.shape:
        raise ShapeError(
            f"{name}: the result has shape {result.shape}, the tensor changed in place {self.shape}"
        )
    if result.dtype != self.dtype:
        result = result.to(self.dtype)
    self.array, self._rg, self.grad_fn = result.array, result._rg, result.grad_fn
    if result.grad_fn is not None:
        result.grad_fn.output = weakref.ref(self)


def write(self: Tensor, values: np.ndarray, name: str) -> None:
    """Copy ``values`` into ``self``'s array (and every view of it), as torch's in-place ops do."""
    if values.shape != self.shape:
        raise ShapeError(
            f"{name}: the result has shape {values.shape}, "
            f"but the tensor changed in place has shape {self.shape}"
        )
    if values.dtype != self.array.dtype and not np.can_cast(values.dtype, self.array.dtype, "same_kind"):
        raise RuntimeError(
            f"{name}: result type {values.dtype} can't be cast to the tensor's type {self.array.dtype}"
        )
    if not self.array.flags.writeable:
        raise RuntimeError(f"{name}: this tensor is a read-only (expanded) view; clone() it first")
    self.array[...] = values
    if RECORDING:  # tape.replay is recording a call: the write is one of its steps
        RECORDING[-1].write(self, values)
    mark_changed_in_place(self.version)


def inplace(name: str, function: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """The in-place form of an out-of-place ``function(x, *args)``."""

    def method(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        if gradient_involved(self, args):
            refuse_leaf(self, name)
            become_carried(self, function(take_over(self), *args, **kwargs), name)
        else:
            with no_grad():
                result = function(self.detach(), *args, **kwargs)
            write(self, result.array, name)
        return self

    method.__name__ = name
    return method


def with_alpha(function: Callable) -> Callable:
    """``add_(other, alpha=a)``: ``x + a * other``."""
    return lambda x, other, alpha=1: function(x, other if alpha == 1 else other * alpha)


for _names, _function in [
    (("__iadd__", "add_"), with_alpha(lambda x, y: x + y)),
    (("__isub__", "sub_"), with_alpha(lambda x, y: x - y)),
    (("__imul__", "mul_"), lambda x, y: x * y),
    (("__itruediv__", "div_"), lambda x, y: x / y),
    (("__ipow__", "pow_"), lambda x, y: x**y),
    (("__imod__",), lambda x, y: x % y),
    (("__ifloordiv__",), lambda x, y: x // y),
    (("__iand__",), lambda x, y: x & y),
    (("__ior__",), lambda x, y: x | y),
    (("clamp_", "clip_"), lambda x, min=None, max=None: x.clamp(min, max)),
    (("copy_",), lambda x, src: src.to(x.dtype).expand(x.shape) if isinstance(src, Tensor) else x * 0 + src),
    (("fill_",), lambda x, value: x * 0 + value),
]:
    for _name in _names:
        bind(inplace(_name, _function), _name)
for _unary in ("exp", "log", "tanh", "sigmoid", "relu", "sqrt", "neg", "abs", "floor", "ceil", "round"):
    bind(inplace(f"{_unary}_", getattr(Tensor, _unary)), f"{_unary}_")


def zero_(self: Tensor) -> Tensor:
    if gradient_involved(self, ()):
        return inplace("zero_", lambda x: x * 0)(self)
    write(self, np.zeros_like(self.array), "zero_")
    return self


bind(zero_, "zero_")

# ---------------------------------------------------------------- index assignment


@primitive("index_put", saves=("steps",), broadcasts=True)
def index_put(x, value, steps):
    """out = x with out[index] = value; dx = dout with dx[index] = 0, dvalue = dout[index]"""
    out = x.copy()
    select(out, steps)[steps[-1]] = value
    return out, (steps,)


def select(array: np.ndarray, steps: tuple) -> np.ndarray:
    """The view that the last index step writes into (torch's ints-first order, see torch_order)."""
    for step in steps[:-1]:
        array = array[step]
    return array


def dindex_put_x(dout, steps):
    dx = dout.copy()
    select(dx, steps)[steps[-1]] = 0
    return dx


index_put.defvjp(dindex_put_x, lambda dout, steps: select(dout, steps)[steps[-1]])
# create_graph: dx is dout with the written region set to 0, itself an index_put on the tape
index_put.defgraph(
    lambda dout, steps: apply(index_put, (dout, np.zeros((), dout.dtype)), steps),
    lambda dout, steps: select(dout, steps)[steps[-1]],
)


def setitem(self: Tensor, key: Any, value: Any) -> None:
    parts = index_parts(key)
    steps = tuple(s[0] if len(s) == 1 else s for s in (torch_order(parts) or (parts,)))
    if gradient_involved(self, (value,)):
        refuse_leaf(self, "index assignment")
        value_data = value.array if isinstance(value, Tensor) else constant("index assignment", value)
        value_data = np.asarray(value_data, dtype=self.array.dtype)  # the value takes the tensor's dtype
        stand_in = take_over(self)
        inputs = (stand_in, keep(value, value_data))
        become_carried(self, run(index_put, inputs, (self.array, value_data), (steps,)), "index assignment")
        return
    value_data = value.array if isinstance(value, Tensor) else value
    try:
        select(self.array, steps)[steps[-1]] = value_data
    except (ValueError, IndexError) as e:
        raise ShapeError(
            f"index assignment: cannot assign to a tensor of shape {self.shape} at {key!r}: {e}"
        ) from None
    if RECORDING:
        RECORDING[-1].setitem(self, steps, value_data)
    mark_changed_in_place(self.version)


bind(setitem, "__setitem__")
