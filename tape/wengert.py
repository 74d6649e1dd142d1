"""The Wengert list: entries recorded in execution order, and backward as a reverse sweep.

Each op applied to a tensor that requires a gradient appends an ``Entry`` (op, inputs,
output, what its VJP saved). Entries hang off their output tensors rather than off a global
list, so a forward pass that is never backpropagated is freed with its tensors. The list for
a root is every entry it depends on, ordered by when it was recorded; ``backward`` walks that
list in reverse, so there is no recursion and chain length is unbounded.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from tape.op import Op, unbroadcast
from tape.tracing import RECORDING


class _Mode(threading.local):
    """Switches read on every op, per thread as torch's are (class defaults, instance overrides)."""

    grad = True
    anomaly = False
    scope: str | None = None  # stamped on each entry; nn sets it to the calling module's path


Mode = _Mode()
_counter = itertools.count()
# In-place changes, counted process-wide. A tensor's ``version`` (a one-element list shared
# with its views) holds the count at its last in-place change, so one comparison per entry
# tells whether anything it saved may have changed since it was recorded.
_mutations = [0]
FREED = -1  # an entry's epoch once backward has freed its arrays: never the current count


def mark_changed_in_place(version: list[int]) -> None:
    """Called by every in-place op on the version list of the tensor it changed."""
    _mutations[0] += 1
    version[0] = _mutations[0]


class Entry:
    """One line of the Wengert list: also what ``tensor.grad_fn`` holds."""

    __slots__ = ("edges", "epoch", "index", "inputs", "op", "output", "retain", "saved", "scope")

    def __init__(self, op: Op, inputs: tuple, saved: tuple, edges: tuple, output: Any) -> None:
        self.index = next(_counter)  # recording order: a topological order of the graph
        self.op = op
        self.inputs = inputs  # tensors and constants, as the op received them
        self.saved = saved  # what the VJPs read; after backward only the op's parameters, or None
        self.edges = edges  # (position, tensor, the entry that made it) per input needing a gradient
        self.output = weakref.ref(output)  # weak: the output owns its entry, not the reverse
        self.retain = False  # set by retain_grad(): keep this output's gradient
        self.scope = Mode.scope  # e.g. "Sequential/Linear 2" inside model[2]; for drawing clusters
        self.epoch = _mutations[0]  # in-place changes made before this entry (FREED after backward)

    def __repr__(self) -> str:
        return f"Entry({self.index}, {self.op.name})"

    def name(self) -> str:
        return f"{self.op.name}Backward"


BACKWARD_SCOPE = "backward of "  # scope of the entries a create_graph sweep records


def recorded_by_backward(entry: Entry) -> bool:
    """Whether ``entry`` was recorded by a backward (``create_graph=True``), not by the forward."""
    return entry.scope is not None and entry.scope.startswith(BACKWARD_SCOPE)


def record(op: Op, inputs: tuple, saved: tuple, edges: tuple, output: Any) -> Entry:
    """The one way an entry gets on the tape: called by ``tape.tensor.apply`` for every op."""
    entry = Entry(op, inputs, saved, edges, output)
    if Mode.anomaly:
        check_finite(output.array, op, entry, "its output")
    return entry


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

    def __call__(self, fn: Any) -> Any:
        """As a decorator: ``fn`` runs inside this switch (re-entrant, so recursion is fine)."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_Switch):
    """Context manager (and decorator) in which no op is recorded."""

    attribute = "grad"

    def value(self, previous: bool) -> bool:
        return False


class enable_grad(_Switch):
    """Context manager (and decorator) in which ops are recorded, even inside no_grad."""

    attribute = "grad"

    def value(self, previous: bool) -> bool:
        return True


class set_grad_enabled(_Switch):
    """``set_grad_enabled(False)`` switches recording off now; as a context manager, until exit."""

    attribute = "grad"

    def __init__(self, mode: bool) -> None:
        super().__init__()
        self.mode = bool(mode)
        self._before = Mode.grad
        Mode.grad = self.mode

    def value(self, previous: bool) -> bool:
        return self.mode

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        Mode.grad = self._before


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

    # entered on every module call: the generic switch's getattr/setattr by name, spelled out
    def __enter__(self) -> None:
        previous = Mode.scope
        self._restore.append(previous)
        Mode.scope = self.name if previous is None else f"{previous}/{self.name}"

    def __exit__(self, *exc: object) -> None:
        Mode.scope = self._restore.pop()


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
    found = [t.grad_fn for t in roots if t.grad_fn is not None]
    seen = set(found)
    for entry in found:  # grows while we walk it: a breadth-first search without a queue
        for _, _, parent in entry.edges:  # an input with an entry always requires grad, so has an edge
            if parent is not None and parent not in seen:
                seen.add(parent)
                found.append(parent)
    found.sort(key=_recording_order)
    return found


_recording_order = operator.attrgetter("index")


def backward(root: Any, gradient: np.ndarray, retain_graph: bool) -> None:
    """Reverse sweep from ``root`` with upstream gradient ``gradient`` (root's shape)."""
    if RECORDING:  # tape.replay is recording a call: it keeps this sweep as steps
        RECORDING[-1].backward(root, gradient)
    handed_out = {id(gradient)}  # arrays now owned by a tensor's .grad: never alias them twice
    grads = {root.grad_fn: gradient}
    anomaly = Mode.anomaly
    for entry in reversed(ancestors((root,))):
        dout = grads.pop(entry)  # every gradient that reaches this entry's output, summed
        if entry.epoch != _mutations[0]:
            check_saved(entry)  # freed, or something changed in place since it was recorded
        if entry.retain:
            _keep_retained(entry, dout, handed_out)
        vjps, saved = entry.op.vjps, entry.saved
        for k, inp, parent in entry.edges:
            g = vjps[k](dout, *saved)  # dinput = the input's VJP applied to dout
            x = inp.array
            if g.shape != x.shape or (g.dtype is not x.dtype and g.dtype != x.dtype) or anomaly:
                g = fit_gradient(entry, k, g, x)
            if parent is None:
                inp.accumulate_grad(g, handed_out)
            else:
                grads[parent] = grads[parent] + g if parent in grads else g  # fan-out adds up
        if not retain_graph:
            free_saved(entry)
    if RECORDING:  # the leaves' new .grad arrays are values later steps may read
        RECORDING[-1].backward_done()


def sweep(
    roots: list[Any], douts: list[Any], targets: list[Any] | None, retain_graph: bool, create_graph: bool
) -> dict[int, Any]:
    """The reverse sweep of ``tape.grad`` and ``backward(create_graph=True)``.

    ``douts`` are the roots' upstream gradients (tensors under ``create_graph``, else arrays).
    With ``targets`` the gradients of those tensors are returned by ``id`` and no ``.grad`` is
    touched; without, they are accumulated into the leaves' ``.grad`` as ``backward`` does.
    Under ``create_graph`` each VJP runs on tensors with recording on, so the gradients are
    themselves on the tape (stamped with the scope "backward of <op> (entry i)"), and can be
    differentiated again. ``backward`` stays the first-order hot path: this one pays for its
    generality (pruning, capture, tensors) only when asked.
    """
    if RECORDING:
        RECORDING[-1].unsupported("tape.grad, or backward with create_graph or inputs")
    entries = ancestors(roots)
    wanted = None if targets is None else {id(t) for t in targets}
    needed = _needed(entries, wanted)
    grads: dict[Entry, Any] = {}
    captured: dict[int, Any] = {}
    handed_out: set[int] = set()  # as in backward: arrays a .grad already holds are copied
    for root, dout in zip(roots, douts):
        if root.grad_fn is None:
            _deliver(root, dout, wanted, captured, create_graph, handed_out)
        else:
            grads[root.grad_fn] = grads[root.grad_fn] + dout if root.grad_fn in grads else dout
    with enable_grad() if create_graph else no_grad():
        for entry in reversed(entries):
            if entry not in grads:
                continue  # no gradient reaches it (pruned, or only through another root)
            dout = grads.pop(entry)
            if entry.epoch != _mutations[0]:
                check_saved(entry)
            out = entry.output()
            if out is not None and (entry.retain if wanted is None else id(out) in wanted):
                _deliver(out, dout, wanted, captured, create_graph, handed_out)
            with (
                scope(f"{BACKWARD_SCOPE}{entry.op.name} (entry {entry.index})") if create_graph else _nothing
            ):
                for parent, inp, g in _input_gradients(entry, dout, needed, wanted, create_graph):
                    if parent is None:
                        _deliver(inp, g, wanted, captured, create_graph, handed_out)
                    else:
                        grads[parent] = grads[parent] + g if parent in grads else g
            if not retain_graph:
                free_saved(entry)
    return captured


def _input_gradients(
    entry: Entry, dout: Any, needed: set[Entry], wanted: set[int] | None, create_graph: bool
) -> Iterator[tuple[Entry | None, Any, Any]]:
    """``(parent, input, its gradient)`` for each input of ``entry`` whose gradient is asked for."""
    vjps, saved = _vjps(entry, create_graph)
    for k, inp, parent in entry.edges:
        if parent in needed if parent is not None else wanted is None or id(inp) in wanted:
            g = vjps[k](dout, *saved)
            yield parent, inp, fit_gradient(entry, k, _as_gradient(g, create_graph), inp.array)


def _needed(entries: list[Entry], wanted: set[int] | None) -> set[Entry]:
    """The entries through which some wanted tensor gets a gradient (all of them if None)."""
    if wanted is None:
        return set(entries)
    needed: set[Entry] = set()
    for entry in entries:  # recording order: an entry's parents come before it
        out = entry.output()
        if (out is not None and id(out) in wanted) or any(
            (parent is None and id(inp) in wanted) or parent in needed for _, inp, parent in entry.edges
        ):
            needed.add(entry)
    return needed


def _vjps(entry: Entry, create_graph: bool) -> tuple[Any, tuple]:
    if not create_graph:
        return entry.op.vjps, entry.saved
    return entry.op.graph_vjps or entry.op.vjps, graph_saved(entry)


def graph_saved(entry: Entry) -> tuple:
    """The entry's saved values as a VJP must see them to be differentiated again.

    A saved array that is an input's or the output's array stands for that tensor: tanh's ``h``
    is its output, a function of ``x``, and d(dh * (1 - h*h))/dx needs it on the tape. An input
    the op promoted to another dtype is that tensor cast on the tape. Ops that save values
    derived inside their forward (batchnorm's ``bnraw``, var's ``xmu``) rebuild them from the
    inputs with tape ops (``op.graph_saved``). Everything else (indices, masks, shapes,
    parameters, constant operands) stays a constant.
    """
    out = entry.output()
    if out is None:
        raise RuntimeError(
            f"backward(create_graph=True): the output of tape entry {entry.index} ({entry.op.name}) "
            "is gone, and its VJP needs it"
        )
    if entry.op.graph_saved is not None:
        return entry.op.graph_saved(entry.inputs, out, entry.saved)
    return tuple(
        _connected(v, name, entry.inputs, out) if _is_float_array(v) else v
        for v, name in zip(entry.saved, entry.op.saves)
    )


# Saved names that mean the op's output (a 0-d result is a NumPy scalar, not the output's array),
# and those that mean input i (which may have been promoted to another dtype before the forward).
OUTPUT_NAMES = {"out", "h", "s", "m"}
INPUT_NAMES = {"a": 0, "b": 1, "x": 0, "W": 1, "min": 1, "max": 2}


def _is_float_array(v: Any) -> bool:
    return isinstance(v, (np.ndarray, np.generic)) and v.dtype.kind == "f"


def _connected(value: Any, name: str, inputs: tuple, out: Any) -> Any:
    if out.array is value or (name in OUTPUT_NAMES and np.shape(value) == out.array.shape):
        return out
    position = INPUT_NAMES.get(name)
    x = inputs[position] if position is not None and position < len(inputs) else None
    if not hasattr(x, "grad_fn"):
        return value  # a constant operand
    if x.array is value:
        return x
    if x.array.shape == np.shape(value) and np.array_equal(x.array.astype(value.dtype), value):
        return x.to(value.dtype)  # promoted by the op: the cast, on the tape
    return value


def _as_gradient(g: Any, create_graph: bool) -> Any:
    if not create_graph or hasattr(g, "grad_fn"):
        return g
    from tape.tensor import wrap  # a constant gradient (a VJP that used no tensor): a tensor too

    return wrap(np.asarray(g))


def _deliver(
    t: Any,
    g: Any,
    wanted: set[int] | None,
    captured: dict[int, Any],
    create_graph: bool,
    handed_out: set[int],
) -> None:
    """A gradient reaches ``t``: captured for tape.grad, else added to ``t.grad``."""
    if wanted is None:
        give_grad(t, g, create_graph, handed_out)
    elif id(t) in wanted:
        captured[id(t)] = captured[id(t)] + g if id(t) in captured else g


def give_grad(t: Any, g: Any, create_graph: bool, handed_out: set[int]) -> None:
    """Add ``g`` to ``t.grad``. Under create_graph out of place, as torch (the old ``.grad`` may be
    on someone's tape), and a clone: one tensor may be the gradient of two inputs (add's)."""
    if create_graph:
        t.grad = g.clone() if t.grad is None else t.grad + g
    else:
        t.accumulate_grad(g, handed_out)


class _Nothing:
    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        pass


_nothing = _Nothing()


def backward_from_leaf(leaf: Any, gradient: np.ndarray) -> None:
    if RECORDING:
        RECORDING[-1].unsupported("backward() of a leaf")
    leaf.accumulate_grad(gradient, set())


def check_saved(entry: Entry) -> None:
    """Raise if the entry was freed, or if an input it saved was changed in place since."""
    if entry.epoch == FREED:
        raise RuntimeError(
            f"backward: tape entry {entry.index} ({entry.op.name}) was already "
            "backpropagated and its saved values freed; pass retain_graph=True to the "
            "first backward() to backpropagate through the graph twice"
        )
    if entry.epoch == _mutations[0]:
        return  # nothing anywhere changed in place since this entry was recorded
    out = entry.output()
    for k, x in enumerate((*entry.inputs, out)):
        changed = hasattr(x, "version") and x.version[0] > entry.epoch
        if changed and _saves_memory_of(entry, x.array):
            what = "its output" if k == len(entry.inputs) else f"input {k}"
            raise RuntimeError(
                f"backward: one of the variables needed for gradient computation has been modified "
                f"by an inplace operation: {what} of '{entry.op.name}' (tape entry {entry.index}), "
                f"a tensor of shape {x.shape}, was changed in place after the entry saved it. "
                "Hint: use an out-of-place op (x = x + y, not x += y) or clone() it first"
            )


def _saves_memory_of(entry: Entry, array: np.ndarray) -> bool:
    return any(isinstance(s, np.ndarray) and np.shares_memory(s, array) for s in entry.saved)


def fit_gradient(entry: Entry, k: int, g: Any, like: np.ndarray) -> np.ndarray:
    """The gradient of input ``k`` in its input's shape and dtype, or a clear error."""
    if entry.op.broadcasts and g.shape != like.shape:
        g = unbroadcast(g, like.shape)
    if g.shape != like.shape:
        raise RuntimeError(
            f"backward: the VJP of '{entry.op.name}' (tape entry {entry.index}) returned a "
            f"gradient of shape {g.shape} for input {k} of shape {like.shape}"
        )
    if g.dtype != like.dtype:  # mixed-precision ops: each input gets its gradient in its own dtype
        g = g.to(like.dtype) if hasattr(g, "grad_fn") else g.astype(like.dtype)  # a tensor: create_graph
    if Mode.anomaly:
        check_finite(g, entry.op, entry, f"the gradient of input {k}")
    return g


def free_saved(entry: Entry) -> None:
    # Arrays are what is worth freeing. An op's parameters (exponent, dims, an index's shape) stay
    # for the printed list and the drawing, as torch keeps its saved scalars; an entry that saved
    # no array (a view, a sum) can even run again, as in torch.
    saved = entry.saved
    for value in saved:
        if type(value) is np.ndarray:
            entry.epoch = FREED
            entry.saved = _kept(saved) if entry.op.parameters else None
            return


def _kept(saved: tuple) -> tuple:
    return tuple([Freed((v.dtype, v.shape)) if type(v) is np.ndarray else v for v in saved])


class Freed(tuple):
    """``(dtype, shape)`` of a saved array that backward freed, in its place among the entry's
    saved values. A tuple subclass, so that making one runs no Python code."""

    __slots__ = ()
    dtype = property(operator.itemgetter(0))
    shape = property(operator.itemgetter(1))

    def __repr__(self) -> str:
        return f"{self.dtype}{list(self.shape)} (freed)"


def _keep_retained(entry: Entry, dout: np.ndarray, handed_out: set[int]) -> None:
    out = entry.output()
    if out is not None:
        out.accumulate_grad(dout, handed_out)


class WengertList:
    """The recorded entries a set of roots depends on, in execution order.

    ``print(wengert_list(loss))`` shows one numbered line per entry: the op, its inputs,
    its output and what its VJP saved. Pass ``names`` (e.g. ``locals()``) to label tensors.
    """

    def __init__(self, entries: list[Entry], names: Mapping[str, Any] | None = None) -> None:
        self.entries = entries
        self.names = {id(t): n for n, t in (names or {}).items() if hasattr(t, "grad_fn")}
        # held here because entries hold their outputs weakly: the root of
        # print(tape.wengert_list(x @ W)) is a temporary that would be gone before printing
        self.outputs = [entry.output() for entry in entries]
        self._position = {e: i for i, e in enumerate(entries)}

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __getitem__(self, i: int) -> Entry:
        return self.entries[i]

    def label(self, value: Any) -> str:
        """A tensor's name (from ``names``, then ``.name``), ``%i`` for entry i's output."""
        if not hasattr(value, "grad_fn"):
            return _describe(value)
        name = self.names.get(id(value)) or value.name
        if name:
            return name
        if value.grad_fn is not None and value.grad_fn in self._position:
            return f"%{self._position[value.grad_fn]}"
        return f"leaf{list(value.shape)}"

    def _backward_of(self, scope: str) -> str:
        """ "backward of tanh (entry 57)" as "backward of tanh %3" when entry 57 is line 3 here."""
        match = re.search(r"\(entry (\d+)\)$", scope)
        line = match and self._line.get(int(match.group(1)))
        return scope if line is None else f"{scope[: match.start()]}%{line}"

    def __str__(self) -> str:
        self._line = {e.index: i for i, e in enumerate(self.entries)}
        rows = [("#", "op", "inputs", "output", "saved for the VJP")]
        for i, (entry, out) in enumerate(zip(self.entries, self.outputs)):
            out_label = f"%{i}"
            if out is not None:
                named = self.names.get(id(out)) or out.name
                out_label = f"%{i} {named}" if named else out_label
                out_label += f" {_describe(out.array)}"
            saved = (
                "(freed)"
                if entry.saved is None
                else ", ".join(f"{n}={_describe(v)}" for n, v in zip(entry.op.saves, entry.saved))
            )
            inputs = ", ".join(self.label(x) for x in entry.inputs)
            if recorded_by_backward(entry):  # the second sweep, as a learner should see it
                saved += f"  <- {self._backward_of(entry.scope)}"
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
