"""Gradients as functions: ``tape.grad`` and torch.autograd.functional's ``vjp``, ``hvp``,
``jacobian`` and ``hessian``.

All of them are one reverse sweep (``wengert.sweep``) or a few. With ``create_graph=True`` the
sweep runs every VJP on tensors with recording on, so a gradient is a tensor on the tape like
any other and can be differentiated again: the Hessian-vector product is the gradient of
``(grad f . v)``, a second sweep over entries the first sweep recorded.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tape import wengert
from tape.tensor import ShapeError, Tensor, wrap

Tensors = Tensor | Sequence[Tensor]


def _as_tuple(x: Any) -> tuple:
    return (x,) if isinstance(x, Tensor) or x is None else tuple(x)


def _upstream(out: Tensor, g: Any, create_graph: bool, what: str) -> Any:
    """The upstream gradient of ``out``: ones for a one-element output, else ``g`` checked."""
    if g is None:
        if out.array.size != 1:
            raise RuntimeError(
                f"{what}: grad can be implicitly created only for scalar outputs (shape {out.shape})"
            )
        g = np.ones(out.array.shape, out.array.dtype)
    elif isinstance(g, Tensor):
        if g.shape != out.shape:
            raise ShapeError(f"{what}: gradient has shape {g.shape} but the output has shape {out.shape}")
        return g if create_graph else g.array.astype(out.array.dtype, copy=False)
    else:
        g = np.array(g, dtype=out.array.dtype)
        if g.shape != out.array.shape:
            raise ShapeError(f"{what}: gradient has shape {g.shape} but the output has shape {out.shape}")
    return wrap(g) if create_graph else g


def grad(
    outputs: Tensors,
    inputs: Tensors,
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """``torch.autograd.grad``: the gradients of ``sum(grad_outputs * outputs)`` with respect to
    ``inputs``, returned (``.grad`` is not touched). ``create_graph=True`` puts them on the tape."""
    outputs, inputs = _as_tuple(outputs), _as_tuple(inputs)
    if not inputs:
        raise RuntimeError("grad: the inputs argument cannot be empty")
    grad_outputs = _as_tuple(grad_outputs) if grad_outputs is not None else (None,) * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"grad: got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for i, out in enumerate(outputs):
        if not out.requires_grad:
            raise RuntimeError(
                f"grad: element {i} of tensors does not require grad and does not have a grad_fn"
            )
    for x in inputs:
        if not x.requires_grad:
            raise RuntimeError("grad: one of the differentiated Tensors does not require grad")
    douts = [_upstream(o, g, create_graph, "grad") for o, g in zip(outputs, grad_outputs)]
    retain = create_graph if retain_graph is None else retain_graph
    captured = wengert.sweep(list(outputs), douts, list(inputs), retain, create_graph)
    result = []
    for x in inputs:
        g = captured.get(id(x))
        if g is None and not allow_unused:
            raise RuntimeError(
                "grad: one of the differentiated Tensors appears to not have been used in the graph. "
                "Set allow_unused=True if this is the desired behavior."
            )
        result.append(None if g is None else g if create_graph else wrap(np.array(g)))
    return tuple(result)


def backward_graph(
    root: Tensor, gradient: Any, retain_graph: bool | None, create_graph: bool, inputs: Any
) -> None:
    """``root.backward(create_graph=True)`` or ``backward(inputs=...)``: the general sweep."""
    if not root.requires_grad:
        raise RuntimeError(
            f"backward: this tensor (shape {root.shape}) does not require grad and has no tape entry"
        )
    retain = create_graph if retain_graph is None else retain_graph
    dout = _upstream(root, gradient, create_graph, "backward")
    targets = None if inputs is None else list(_as_tuple(inputs))
    captured = wengert.sweep([root], [dout], targets, retain, create_graph)
    handed_out: set[int] = set()
    for t in targets or ():
        g = captured.get(id(t))
        if g is not None:
            wengert.give_grad(t, g, create_graph, handed_out)


# ---------------------------------------------------------------- torch.autograd.functional


def _prepare(inputs: Tensors, create_graph: bool) -> tuple[tuple[Tensor, ...], bool]:
    """Fresh leaves requiring grad (connected to the caller's graph under create_graph)."""
    single = isinstance(inputs, Tensor)
    prepared = []
    for x in _as_tuple(inputs):
        x = x if isinstance(x, Tensor) else wrap(np.asarray(x))
        prepared.append(x.view_as(x) if create_graph and x.requires_grad else x.detach().requires_grad_(True))
    return tuple(prepared), single


def _call(func: Callable, inputs: tuple[Tensor, ...]) -> tuple[tuple[Tensor, ...], bool]:
    with wengert.enable_grad():
        out = func(*inputs)
    return _as_tuple(out), isinstance(out, Tensor)


def _grads(outputs, inputs, grad_outputs, create_graph: bool) -> tuple[Tensor, ...]:
    """Gradients with zeros for inputs the outputs do not use (torch.autograd.functional's rule)."""
    outputs_rg = [(o, g) for o, g in zip(outputs, grad_outputs) if o.requires_grad]
    if not outputs_rg:
        found = (None,) * len(inputs)
    else:
        outs, gs = zip(*outputs_rg)
        found = grad(outs, inputs, gs, retain_graph=True, create_graph=create_graph, allow_unused=True)
    return tuple(wrap(np.zeros_like(x.array)) if g is None else g for g, x in zip(found, inputs))


def _supported(strict: bool, vectorize: bool = False, strategy: str = "reverse-mode") -> None:
    """torch's options that tape does not implement raise rather than being ignored."""
    if strict or vectorize or strategy != "reverse-mode":
        raise NotImplementedError(
            "tape.functional: strict=True, vectorize=True and forward-mode strategies are not implemented"
        )


def _result(values: tuple, single: bool, create_graph: bool) -> Any:
    values = tuple(v if create_graph else v.detach() for v in values)
    return values[0] if single else values


def vjp(
    func: Callable,
    inputs: Tensors,
    v: Tensors | None = None,
    create_graph: bool = False,
    strict: bool = False,
) -> tuple[Any, Any]:
    """``torch.autograd.functional.vjp``: ``(func(inputs), v^T J)``."""
    _supported(strict)
    xs, single = _prepare(inputs, create_graph)
    outs, out_single = _call(func, xs)
    vs = _as_tuple(v) if v is not None else (None,) * len(outs)
    grads = _grads(outs, xs, vs, create_graph)
    return _result(outs, out_single, create_graph), _result(grads, single, create_graph)


def hvp(
    func: Callable,
    inputs: Tensors,
    v: Tensors | None = None,
    create_graph: bool = False,
    strict: bool = False,
) -> tuple[Any, Any]:
    """``torch.autograd.functional.hvp``: ``(func(inputs), H v)`` for a scalar ``func``, by
    differentiating ``grad f . v`` (H is symmetric, so v^T H = H v)."""
    _supported(strict)
    xs, single = _prepare(inputs, create_graph)
    if v is None and not (single and xs[0].array.size == 1):
        raise RuntimeError("hvp: v can only be None if the input is a single tensor with a single element")
    (out,), _ = _call(func, xs)
    if out.array.size != 1:
        raise RuntimeError(f"hvp: the function must return a single-element tensor, got shape {out.shape}")
    gs = _grads((out,), xs, (None,), create_graph=True)
    vs = _as_tuple(v) if v is not None else (wrap(np.ones_like(xs[0].array)),)
    for x, w in zip(xs, vs):  # not broadcast: H v needs one v per input element, as torch checks
        if tuple(np.shape(w)) != x.array.shape:
            raise RuntimeError(f"hvp: v has invalid size: should be {x.shape} but got {tuple(np.shape(w))}")
    terms = [(g * w).sum() for g, w in zip(gs, vs) if g.requires_grad]  # grad f . v
    if terms:
        hv = _grads((functools.reduce(operator.add, terms),), xs, (None,), create_graph)
    else:  # f is linear in the inputs: H = 0
        hv = tuple(wrap(np.zeros_like(x.array)) for x in xs)
    return _result((out,), True, create_graph), _result(hv, single, create_graph)


def jacobian(
    func: Callable,
    inputs: Tensors,
    create_graph: bool = False,
    strict: bool = False,
    vectorize: bool = False,
    strategy: str = "reverse-mode",
) -> Any:
    """``torch.autograd.functional.jacobian``: one sweep per output element, each row the
    gradient of that element; shapes ``out.shape + in.shape`` (tuples mirror tuples)."""
    _supported(strict, vectorize, strategy)
    xs, single = _prepare(inputs, create_graph)
    outs, out_single = _call(func, xs)
    blocks = [_jacobian_of(o, xs, create_graph) for o in outs]
    if out_single:
        return blocks[0][0] if single else blocks[0]
    return tuple(b[0] for b in blocks) if single else tuple(blocks)


def _jacobian_of(out: Tensor, xs: tuple[Tensor, ...], create_graph: bool) -> tuple[Tensor, ...]:
    from tape.shapes import stack

    rows: list[tuple[Tensor, ...]] = []
    flat = out.reshape(-1)
    for i in range(flat.shape[0]):
        rows.append(_grads((flat[i],), xs, (None,), create_graph))
    columns = []
    for k, x in enumerate(xs):
        if rows:
            block = stack([r[k] for r in rows]).reshape(*out.shape, *x.shape)
        else:
            block = wrap(np.zeros((*out.shape, *x.shape), x.array.dtype))
        columns.append(block if create_graph else block.detach())
    return tuple(columns)


def hessian(
    func: Callable,
    inputs: Tensors,
    create_graph: bool = False,
    strict: bool = False,
    vectorize: bool = False,
    outer_jacobian_strategy: str = "reverse-mode",
) -> Any:
    """``torch.autograd.functional.hessian``: the Jacobian of the gradient of a scalar ``func``."""
    _supported(strict, vectorize, outer_jacobian_strategy)
    single = isinstance(inputs, Tensor)

    def gradient(*xs: Tensor) -> Any:
        (out,), _ = _call(func, xs)
        if out.array.size != 1:
            raise RuntimeError(
                f"hessian: the function must return a single-element tensor, got shape {out.shape}"
            )
        gs = _grads((out,), xs, (None,), create_graph=True)
        return gs[0] if single else gs

    return jacobian(gradient, inputs, create_graph=create_graph)
