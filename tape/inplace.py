"""In-place ops and index assignment: ``x += y``, ``x.mul_(2)``, ``x[idx] = v``, ``zero_()``.

Where no gradient is involved (grad mode off, or no tensor requires one) the tensor's array is
changed in place, views included, and its version is bumped so that backward can refuse an
entry whose saved value changed (torch's "modified by an inplace operation"). Where a
gradient is involved the op is recorded as torch records it: the tensor becomes the output
of the in-place op, keeping its Python identity, while a stand-in takes its old place on the
tape; a leaf that requires grad refuses, as in torch. Its views are then taken again from its
new array, and an in-place op on a view is carried into the tensor it views (see "in place,
with views" below), so that every tensor sharing memory in torch sees the change here too.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from tape import shapes
from tape.dtypes import constant
from tape.elementwise import bind, keep
from tape.op import Op, primitive
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


def take_over(self: Tensor) -> Tensor:
    """A stand-in that takes ``self``'s place on the tape before ``self`` becomes a new op's output."""
    stand_in = wrap(self.array)
    stand_in.version, stand_in._rg, stand_in.grad_fn = self.version, self._rg, self.grad_fn
    stand_in.name = self.name
    if self.grad_fn is not None:
        self.grad_fn.output = weakref.ref(stand_in)
    return stand_in


def fitted(self: Tensor, result: Tensor, name: str) -> Tensor:
    """``result`` in ``self``'s dtype, once its shape is checked to be ``self``'s."""
    if result.shape != self.shape:
        raise ShapeError(
            f"{name}: the result has shape {result.shape}, the tensor changed in place {self.shape}"
        )
    return result if result.dtype == self.dtype else result.to(self.dtype)


def become(self: Tensor, result: Tensor, name: str) -> None:
    """``self`` is now ``result``: same values, and the output of result's entry. Its array is
    new, so it gets a version list of its own: a later change to it is none to the old array
    (which its stand-in, and entries, may still hold), and the reverse."""
    result = fitted(self, result, name)
    self.array, self._rg, self.grad_fn = result.array, result._rg, result.grad_fn
    self.version = [self.version[0]]
    if result.grad_fn is not None:
        result.grad_fn.output = weakref.ref(self)


# ---------------------------------------------------------------- in place, with views
# With a gradient involved an in-place op gives the tensor a new array (``become``). Its views
# (see ``tensor.link_view``) must then see the change, as they would share memory in torch:
# each live view is re-taken from the new array, by the same op, and so gets a gradient path
# through the in-place op (torch regenerates a view's grad_fn from its base). An in-place op on
# a view is first carried into the tensor it views (torch's CopySlices), up to the root, and then
# every view of the root, the changed one included, is re-taken.

# A view's ``_view_of``: (the tensor it views, the op and params that took it, taken in grad mode)
Link = tuple[Tensor, Op, tuple, bool]


def become_carried(self: Tensor, result: Tensor, name: str) -> None:
    """``self`` becomes ``result``, and every tensor sharing its array sees the change."""
    result = fitted(self, result, name)
    chain = view_chain(self, name)
    root = chain[-1][0] if chain else self
    if chain:
        result = carried(chain, result)
    old_array, old_version = root.array, root.version
    become(root, result, name)
    retake_views(root, old_array, old_version, name)


def viewing(t: Tensor) -> Link | None:
    """The link to the tensor ``t`` views, or None if ``t`` views none (any more): a copy
    (an index array, a reshape of a non-contiguous tensor) or a tensor given a new array."""
    link = getattr(t, "_view_of", None)
    if link is None or link[0].version is not t.version:
        return None
    return link if np.may_share_memory(t.array, link[0].array) else None


def view_chain(self: Tensor, name: str) -> list[Link]:
    """The links from ``self`` up to the root of the tensors it views (empty: it views none),
    refused before anything changes where torch refuses, or where tape cannot carry a change."""
    chain, t = [], self
    while (link := viewing(t)) is not None:
        if not link[3]:
            raise RuntimeError(
                f"{name}: this tensor (shape {self.shape}) is a view taken under no_grad (by "
                f"{link[1].name} of a tensor of shape {link[0].shape}) and is being changed in place with "
                "a gradient involved; which gradient is meant is ambiguous (torch forbids it): take the "
                "view and make the change both inside no_grad, or both outside"
            )
        check_carried(t, link, name)
        chain.append(link)
        t = link[0]
    entry = t.grad_fn  # views of a leaf that requires grad are not linked: it never changes
    if entry is not None and entry.op.view and t.version is entry.inputs[0].version:
        raise RuntimeError(
            f"{name}: a view ({entry.op.name}, shape {t.shape}) of a leaf tensor that requires grad "
            f"(shape {entry.inputs[0].shape}) is being used in an in-place operation; do it under "
            "tape.no_grad(), on .data, or out of place"
        )
    return chain


def check_carried(view: Tensor, link: Link, name: str) -> None:
    """Refuse, before anything changes, a change of ``view`` that cannot be carried into its base."""
    base, op = link[0], link[1]
    if op not in UNVIEW:
        raise RuntimeError(
            f"{name}: this tensor (shape {view.shape}) is a view ({op.name}) of a tensor of shape "
            f"{base.shape}, and tape cannot carry an in-place change of such a view into its base: "
            "clone() the view first, or write the base out of place"
        )
    if op is shapes.expand and view.array.size != base.array.size:
        raise RuntimeError(
            f"{name}: this tensor (shape {view.shape}) is an expanded view of a tensor of shape "
            f"{base.shape}: more than one of its elements refers to a single memory location; "
            "clone() it before changing it in place"
        )


def carried(chain: list[Link], value: Tensor) -> Tensor:
    """The root's new value once the view at the start of ``chain`` holds ``value``."""
    for base, op, params, _ in chain:
        value = UNVIEW[op](take_over(base), value, params)
    return value


def unindex(base: Tensor, value: Tensor, params: tuple) -> Tensor:
    """``base`` with ``base[index] = value``: an index_put entry (torch's CopySlices)."""
    return run(index_put, (base, value), (base.array, value.array), (params,))


UNVIEW: dict[Op, Callable[[Tensor, Tensor, tuple], Tensor]] = {
    shapes.gather: unindex,
    shapes.view: lambda base, value, params: value.view(base.shape),
    shapes.expand: lambda base, value, params: value.view(base.shape),  # only without repeats
    shapes.transpose: lambda base, value, params: value.permute(*np.argsort(params[0]).tolist()),
}


def retake_views(root: Tensor, old_array: np.ndarray, old_version: list, name: str) -> None:
    """Re-take each live view of ``root``'s old array from its new one. The old version list
    lists them in the order they were taken, so a view's base is re-taken before it."""
    for ref in old_version[1:]:
        view = ref()
        if view is None or view.version is not old_version or not np.may_share_memory(view.array, old_array):
            continue  # dead, given a new array already, or a copy (a reshape of a non-contiguous tensor)
        base, op, params, in_grad_mode = view._view_of
        if base.version is root.version:  # base is root, or a view of it already re-taken
            retake(view, base, op, params, in_grad_mode, name)


def retake(view: Tensor, base: Tensor, op: Op | None, params: tuple, in_grad_mode: bool, name: str) -> None:
    """``view`` is taken again, by ``op``, from ``base``'s new array."""
    if op is None:  # detach(): the new values, and still no gradient
        view.array, view.version = base.array, base.version
        base.version.append(weakref.ref(view))
        return
    old = view.grad_fn
    if old is not None and old.output() is view:
        take_over(view)  # the old entry keeps the old values
    if in_grad_mode:
        new = apply(op, (base,), *params)
    else:  # torch: such a view's grad_fn is "Invalid"; using it in a gradient raises
        with no_grad():
            values = apply(op, (base,), *params).array
        reason = (
            f"backward: a view ({op.name}, shape {view.shape}) taken under no_grad of a tensor of shape "
            f"{base.shape} is used where a gradient is needed, after that tensor was changed in place "
            f"({name}) with a gradient involved; which gradient is meant is ambiguous (torch forbids "
            "it): take the view and make the change both inside no_grad, or both outside"
        )
        new = run(invalid_view, (base,), (values,), (reason,))
    view.array, view._rg, view.grad_fn, view.version = new.array, new._rg, new.grad_fn, base.version
    base.version.append(weakref.ref(view))
    if new.grad_fn is not None:
        new.grad_fn.output = weakref.ref(view)
        new.grad_fn.retain = old is not None and old.retain


def refuse(dout: np.ndarray, reason: str) -> np.ndarray:
    """The VJP of invalid_view: there is none."""
    raise RuntimeError(reason)


# The entry of a view that no gradient may pass through (torch's "Invalid" grad_fn). Not a
# registered primitive: only ever recorded by retake.
invalid_view = Op("invalid_view", lambda x, reason: (x, (reason,)), ("reason",))
invalid_view.doc = "out = x; no gradient: the view was taken under no_grad, then its base changed"
invalid_view.defvjp(refuse)


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
