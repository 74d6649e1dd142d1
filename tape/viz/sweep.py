"""The reverse sweep, traced: what ``backward`` would compute at each entry, recorded for display.

``trace`` walks the same entries as ``tape.wengert.backward`` (``ancestors``, in reverse), calls
the same VJPs on the same saved values and fits each gradient with the same ``fit_gradient``, and
adds fan-out gradients in the same order with the same NumPy ``+``; so the sums it records are
bit for bit the gradients ``backward`` leaves in ``.grad``. It only reads the tape: nothing is
freed, no ``.grad`` is set. It must run before ``backward`` frees what the entries saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tape.tensor import Tensor
from tape.wengert import FREED, Entry, ancestors, check_saved, fit_gradient


@dataclass(frozen=True)
class Handed:
    """The gradient one entry's VJP hands to one input, and that input's running sum."""

    position: int  # the input's position among the entry's inputs
    tensor: Tensor
    gradient: np.ndarray  # the VJP's result, fitted to the input's shape and dtype
    before: np.ndarray | None  # the sum of the gradients that reached the tensor earlier
    after: np.ndarray  # before + gradient (gradient itself when it is the first)


@dataclass(frozen=True)
class Step:
    """One entry visited by the reverse sweep."""

    entry: Entry
    dout: np.ndarray  # every gradient that reached the entry's output, summed
    handed: tuple[Handed, ...]


@dataclass(frozen=True)
class Sweep:
    entries: list[Entry]  # the Wengert list, in recording order
    root: Tensor
    seed: np.ndarray  # the gradient backward starts from: ones, or the one passed
    steps: list[Step]  # in the order of the sweep: entries[-1] first


class FreedError(RuntimeError):
    """The entries' saved values were already freed by ``backward``."""


def trace(root: Tensor, gradient: Any = None) -> Sweep:
    """The reverse sweep from ``root`` (seeded with ``gradient``, as ``root.backward(gradient)``)."""
    if root.grad_fn is None:
        raise ValueError(
            f"explore: the root (shape {root.shape}) has no tape entry: pass a tensor computed from "
            "tensors that require grad"
        )
    entries = ancestors((root,))
    for entry in entries:
        _check_alive(entry)
    seed = _seed(root, gradient)
    # the gradient reached so far, keyed as backward keys it: by the entry that made an
    # intermediate (a tensor changed in place has had several), by the tensor for a leaf
    sums: dict[int, np.ndarray] = {id(root.grad_fn): seed}
    steps = []
    for entry in reversed(entries):
        dout = sums.pop(id(entry))
        handed = tuple(
            _hand(entry, dout, k, inp, id(inp if parent is None else parent), sums)
            for k, inp, parent in entry.edges
        )
        steps.append(Step(entry, dout, handed))
    return Sweep(entries, root, seed, steps)


def _hand(
    entry: Entry, dout: np.ndarray, k: int, inp: Tensor, key: int, sums: dict[int, np.ndarray]
) -> Handed:
    gradient = fit_gradient(entry, k, entry.op.vjps[k](dout, *entry.saved), inp.array)
    before = sums.get(key)
    after = gradient if before is None else np.asarray(before + gradient)  # as backward adds up
    sums[key] = after
    return Handed(k, inp, gradient, before, after)


def _check_alive(entry: Entry) -> None:
    """Raise as backward would: freed, or an input it saved changed in place since (check_saved)."""
    try:
        check_saved(entry)
    except RuntimeError as error:
        if entry.epoch != FREED:
            raise
        raise FreedError(
            f"explore: tape entry {entry.index} ({entry.op.name}) was already backpropagated and "
            "its saved values freed, so the sweep cannot be replayed. Call explore before "
            "backward(), or call backward(retain_graph=True)"
        ) from error


def _seed(root: Tensor, gradient: Any) -> np.ndarray:
    if gradient is None:
        if root.array.size != 1:
            raise RuntimeError(
                f"explore: a gradient can only be implied for a one-element output, this one has "
                f"shape {root.shape}; pass gradient=... of that shape"
            )
        return np.ones(root.array.shape, root.array.dtype)
    given = gradient.array if isinstance(gradient, Tensor) else gradient
    seed = np.array(given, dtype=root.array.dtype)
    if seed.shape != root.array.shape:
        raise ValueError(f"explore: gradient has shape {seed.shape} but the root has shape {root.shape}")
    return seed
