"""The Wengert list: entries recorded in execution order, and backward as a reverse sweep.

Each op applied to a tensor that requires a gradient appends an ``Entry`` (op, inputs,
output, what its VJP saved). Entries hang off their output tensors rather than off a global
list, so a forward pass that is never backpropagated is freed with its tensors. The list for
a root is every entry it depends on, ordered by when it was recorded; ``backward`` walks that
list in reverse, so there is no recursion and chain length is unbounded.
"""

from __future__ import annotations

import itertools
import operator
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from tape.op import Op


class Mode:
    """Process-wide switches read on every op: keep them plain attributes."""

    grad = True
    anomaly = False
    scope: str | None = None  # stamped on each entry; nn sets it to the calling module's path


_counter = itertools.count()


class Entry:
    """One line of the Wengert list."""

    __slots__ = ("edges", "index", "inputs", "op", "output", "retain", "saved", "scope")

    def __init__(self, op: Op, inputs: tuple, saved: tuple, edges: tuple, output: Any) -> None:
        self.index = next(_counter)  # recording order: a topological order of the graph
        self.op = op
        self.inputs = inputs  # tensors and constants, as the op received them
        self.saved = saved  # what the VJPs read; None once backward has freed it
        self.edges = edges  # (vjp, tensor) for each input that requires a gradient
        self.output = weakref.ref(output)  # weak: the output owns its entry, not the reverse
        self.retain = False  # set by retain_grad(): keep this output's gradient
        self.scope = Mode.scope  # e.g. "Sequential/Linear 2" inside model[2]; for drawing clusters

    def __repr__(self) -> str:
        return f"Entry({self.index}, {self.op.name})"


class _Switch:
    """Sets one ``Mode`` attribute inside a with block and restores it after (re-entrant)."""

    attribute = ""

    def __init__(self) -> None:
        self._restore: list[Any] = []

    def value(self, previous: Any) -> Any:
        raise NotImplementedError

    def __enter__(self) -> None:
        previous = getattr(Mode, self.attribute)
        self._restore.append(previous)
        setattr(Mode, self.attribute, self.value(previous))

    def __exit__(self, *exc: object) -> None:
        setattr(Mode, self.attribute, self._restore.pop())


class no_grad(_Switch):
    """Context manager (and decorator) in which no op is recorded."""

    attribute = "grad"

    def value(self, previous: bool) -> bool:
        return False

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)

        return wrapper


def is_grad_enabled() -> bool:
    return Mode.grad


class scope(_Switch):
    """Context manager: entries recorded inside are stamped with ``name``.

    Nested scopes join with "/" ("Sequential/Linear 2"); the graph exporter draws each
    scope as a cluster. nn enters one per module call.
    """

    attribute = "scope"

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def value(self, previous: str | None) -> str:
        return self.name if previous is None else f"{previous}/{self.name}"


class detect_anomaly(_Switch):
    """Context manager: the first nan or inf made by an op, forward or backward, raises."""

    attribute = "anomaly"

    def value(self, previous: bool) -> bool:
        return True


class AnomalyError(FloatingPointError):
    pass


def check_finite(array: Any, op: Op, entry: Entry | None, what: str) -> None:
    if not np.all(np.isfinite(array)):
        where = f"tape entry {entry.index}" if entry is not None else "not recorded"
        raise AnomalyError(
            f"detect_anomaly: op '{op.name}' ({where}) produced nan/inf in {what} of shape {np.shape(array)}"
        )


def ancestors(roots: Iterable[Any]) -> list[Entry]:
    """Every entry the roots depend on, in recording order."""
    found = [t._entry for t in roots if t._entry is not None]
    seen = set(found)
    for entry in found:  # grows while we walk it: a breadth-first search without a queue
        for _, inp in entry.edges:  # an input with an entry always requires grad, so has an edge
            parent = inp._entry
            if parent is not None and parent not in seen:
                seen.add(parent)
                found.append(parent)
    found.sort(key=_recording_order)
    return found


_recording_order = operator.attrgetter("index")


def backward(root: Any, gradient: np.ndarray, retain_graph: bool) -> None:
    """Reverse sweep from ``root`` with upstream gradient ``gradient`` (root's shape)."""
    handed_out = {id(gradient)}  # arrays now owned by a tensor's .grad: never alias them twice
    if root._entry is None:
        _accumulate(root, gradient, handed_out)
        return
    grads = {root._entry: gradient}
    anomaly = Mode.anomaly
    for entry in reversed(ancestors((root,))):
        dout = grads.pop(entry)
        saved = entry.saved
        if saved is None:
            raise RuntimeError(
                f"backward: tape entry {entry.index} ({entry.op.name}) was already "
                "backpropagated and its saved values freed; pass retain_graph=True to the "
                "first backward() to backpropagate through the graph twice"
            )
        if entry.retain:
            out = entry.output()
            if out is not None:
                _accumulate(out, dout, handed_out)
        for vjp, inp in entry.edges:
            g = vjp(dout, *saved)
            data = inp.data
            if g.shape != data.shape:
                raise RuntimeError(
                    f"backward: the VJP of '{entry.op.name}' (tape entry {entry.index}) "
                    f"returned a gradient of shape {g.shape} for an input of shape {data.shape}"
                )
            if g.dtype is not data.dtype and g.dtype != data.dtype:  # mixed-precision ops
                g = g.astype(data.dtype)
            if anomaly:
                k = next(i for i, x in enumerate(entry.inputs) if x is inp)
                check_finite(g, entry.op, entry, f"the gradient of input {k}")
            parent = inp._entry
            if parent is None:
                _accumulate(inp, g, handed_out)
            elif parent in grads:
                grads[parent] = grads[parent] + g
            else:
                grads[parent] = g
        if not retain_graph:
            entry.saved = None


def _accumulate(tensor: Any, g: Any, handed_out: set[int]) -> None:
    """Add ``g`` to ``tensor.grad``, copying it first if some other tensor may share it."""
    if tensor.grad is not None:
        tensor.grad = tensor.grad + g
        return
    if type(g) is not np.ndarray or g.base is not None or id(g) in handed_out:
        g = np.array(g)
    handed_out.add(id(g))
    tensor.grad = g


class WengertList:
    """The recorded entries a set of roots depends on, in execution order.

    ``print(wengert_list(loss))`` shows one numbered line per entry: the op, its inputs,
    its output and what its VJP saved. Pass ``names`` (e.g. ``locals()``) to label tensors.
    """

    def __init__(self, entries: list[Entry], names: Mapping[str, Any] | None = None) -> None:
        self.entries = entries
        self.names = {id(t): n for n, t in (names or {}).items() if hasattr(t, "_entry")}

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __getitem__(self, i: int) -> Entry:
        return self.entries[i]

    def label(self, value: Any) -> str:
        """A tensor's name (from ``names``, then ``.name``), ``%i`` for entry i's output."""
        if not hasattr(value, "_entry"):
            return _describe(value)
        name = self.names.get(id(value)) or value.name
        if name:
            return name
        if value._entry is not None and value._entry in self._position:
            return f"%{self._position[value._entry]}"
        return f"leaf{list(value.data.shape)}"

    def __str__(self) -> str:
        self._position = {e: i for i, e in enumerate(self.entries)}
        rows = [("#", "op", "inputs", "output", "saved for the VJP")]
        for i, entry in enumerate(self.entries):
            out = entry.output()
            out_label = f"%{i}"
            if out is not None:
                named = self.names.get(id(out)) or out.name
                out_label = f"%{i} {named}" if named else out_label
                out_label += f" {_describe(out.data)}"
            saved = (
                "(freed)"
                if entry.saved is None
                else ", ".join(f"{n}={_describe(v)}" for n, v in zip(entry.op.saves, entry.saved))
            )
            inputs = ", ".join(self.label(x) for x in entry.inputs)
            rows.append((str(i), entry.op.name, inputs, out_label, saved))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths)) + "  " + r[4] for r in rows
        )


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{list(value.shape)}"
    if isinstance(value, tuple) and any(isinstance(v, np.ndarray) for v in value):
        return "(" + ", ".join(_describe(v) for v in value) + ")"
    if isinstance(value, slice):
        return f"{'' if value.start is None else value.start}:{'' if value.stop is None else value.stop}"
    return repr(value)
