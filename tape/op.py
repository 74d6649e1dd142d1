"""A primitive op: a forward on NumPy arrays and one vector-Jacobian product per input.

The forward returns ``(out, saved)``; ``saved`` is everything the VJPs need, named by
``saves`` so that the Wengert list can print it. Each VJP maps ``(dout, *saved)`` to the
gradient of one input. Only the VJPs of inputs that require a gradient are ever called,
so ``x @ W`` with data ``x`` never computes ``dx``.

A VJP may return ``dout`` itself (add does) but must never write into ``dout`` or a saved
value: the sweep hands the same array to several inputs and to ``.grad``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Forward = Callable[..., tuple[Any, tuple]]
Vjp = Callable[..., np.ndarray]

REGISTRY: dict[str, Op] = {}


class Op:
    __slots__ = ("forward", "name", "saves", "vjps")

    def __init__(self, name: str, forward: Forward, saves: tuple[str, ...]) -> None:
        self.name = name
        self.forward = forward
        self.saves = saves
        self.vjps: tuple[Vjp, ...] = ()

    def defvjp(self, *vjps: Vjp) -> Op:
        self.vjps = vjps
        return self

    def __repr__(self) -> str:
        return f"Op({self.name})"


def primitive(name: str, saves: tuple[str, ...] = ()) -> Callable[[Forward], Op]:
    """Register ``forward`` as the primitive ``name``; attach its VJPs with ``defvjp``."""

    def register(forward: Forward) -> Op:
        if name in REGISTRY:
            raise ValueError(f"op {name!r} is already registered")
        op = REGISTRY[name] = Op(name, forward, saves)
        return op

    return register


def shape_of(x: Any) -> tuple[int, ...]:
    """Shape of an operand: an array's shape, or () for a Python scalar."""
    return x.shape if isinstance(x, np.ndarray) else ()


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Undo NumPy broadcasting: sum ``grad`` down to ``shape``.

    Broadcasting copies an input along new leading axes and along axes of size 1, so its
    gradient is the sum over exactly those axes.
    """
    if grad.shape == shape:
        return grad
    leading = grad.ndim - len(shape)
    if leading:
        grad = grad.sum(axis=tuple(range(leading)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad
