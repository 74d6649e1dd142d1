"""A primitive op: a forward on NumPy arrays and one vector-Jacobian product per input.

The forward returns ``(out, saved)``; ``saved`` is everything the VJPs need, named by
``saves`` so that the Wengert list can print it. Each VJP maps ``(dout, *saved)`` to the
gradient of one input. Only the VJPs of inputs that require a gradient are ever called,
so ``x @ W`` with data ``x`` never computes ``dx``.

Broadcasting is declared once, with ``broadcasts=True``: the reverse sweep then sums each
input's gradient back to the input's shape (``unbroadcast``), so no VJP repeats it.

A VJP may return ``dout`` itself (add does) but must never write into ``dout`` or a saved
value: the sweep hands the same array to several inputs and to ``.grad``. VJPs use only
operators and methods that tensors share with arrays (``*``, ``/``, ``.sum``, ``.reshape``),
so that they can later run on tensors and record their own entries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Forward = Callable[..., tuple[Any, tuple]]
Vjp = Callable[..., np.ndarray]

REGISTRY: dict[str, Op] = {}
# Saved values that are an op's parameters, not values it computed, by the name it saves them
# under, with the keyword the drawing shows them by ("": positional, as in pow(•, -0.5)).
# Backward keeps them when it frees the arrays.
PARAMETERS = {
    "p": "",
    "dims": "dim",
    "dim": "dim",
    "keepdim": "keepdim",
    "index": "index",
    "axes": "axes",
    "repeats": "repeats",
    "diagonal": "diagonal",
    "correction": "correction",
}


class Op:
    """A registered primitive: ``forward``, its ``vjps``, and how to read and test it.

    ``doc`` is the forward's docstring (the op's line in ``docs/vjp.md``); ``domain`` is the
    input range in general position for the generated tests of elementwise unary ops
    (None: the op's cases are written by hand in ``tests/cases.py``).
    """

    __slots__ = (
        "broadcasts",
        "doc",
        "domain",
        "forward",
        "graph_saved",
        "graph_vjps",
        "name",
        "parameters",
        "saves",
        "view",
        "vjps",
    )

    def __init__(
        self,
        name: str,
        forward: Forward,
        saves: tuple[str, ...],
        broadcasts: bool = False,
        domain: tuple[float, float] | None = None,
        view: bool = False,
    ) -> None:
        self.name = name
        self.view = view  # the output may share memory with input 0 (and so its version)
        self.forward = forward
        self.saves = saves
        self.parameters = any(name in PARAMETERS for name in saves)  # some saved value is kept by backward
        self.broadcasts = broadcasts
        self.domain = domain
        self.doc = (forward.__doc__ or "").strip().split("\n")[0]
        self.vjps: tuple[Vjp, ...] = ()
        # create_graph only (tape.grad, backward(create_graph=True)): VJPs written with tape ops,
        # for the ops whose array VJPs use NumPy functions that tensors do not route (None: vjps)
        self.graph_vjps: tuple[Vjp, ...] | None = None
        # create_graph only: (inputs, out, saved) -> the saved values as the graph VJPs must see
        # them, each a function of the inputs (None: arrays that are an input or the output
        # become that tensor, the rest stay constants; see ``wengert.graph_saved``)
        self.graph_saved: Callable[[tuple, Any, tuple], tuple] | None = None

    def defvjp(self, *vjps: Vjp) -> Op:
        self.vjps = vjps
        return self

    def defgraph(self, *vjps: Vjp, saved: Callable[[tuple, Any, tuple], tuple] | None = None) -> Op:
        """VJPs (and saved values) for create_graph: built from tape ops, so they record entries."""
        self.graph_vjps = vjps or None
        self.graph_saved = saved
        return self

    def __repr__(self) -> str:
        return f"Op({self.name})"


def primitive(
    name: str,
    saves: tuple[str, ...] = (),
    *,
    broadcasts: bool = False,
    domain: tuple[float, float] | None = None,
    view: bool = False,
) -> Callable[[Forward], Op]:
    """Register ``forward`` as the primitive ``name``; attach its VJPs with ``defvjp``."""

    def register(forward: Forward) -> Op:
        if name in REGISTRY:
            raise ValueError(f"op {name!r} is already registered")
        op = REGISTRY[name] = Op(name, forward, saves, broadcasts, domain, view)
        return op

    return register


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
