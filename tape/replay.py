"""``tape.replay(fn)``: record a training step once, then re-run its ops straight from the record.

A call of ``fn`` runs eagerly while a ``Recorder`` watches it (``tape.tracing`` hooks): every op's
forward, every in-place write, the backward sweep (one step per VJP) and every ``replayable``
Python step (batch statistics, running averages, zeroing gradients, the optimiser's update,
random draws). Each array gets a numbered slot; the record is a ``Program``, a flat list of steps
that read and write slots. Replaying it calls the same forwards and VJPs on the new inputs'
values, with no Tensor, no tape entry and no graph walk per op, so the result is the eager
result bit for bit.

What a record cannot see is what ``fn`` does in Python with values it does not pass through tape:
a NumPy computation on an input, a Python number read from a tensor, a branch on either. So
``fn`` is recorded twice, on its first two calls with the same input shapes, and replayed from the
third only if both records agree: the same steps, and every constant either the very same object
(a parameter, a running average) or equal in value. A function that reads a tensor's value
(``item()``, ``bool()``, ...) while recording, or whose records differ, runs eagerly on every
call, with one warning saying why.
"""

from __future__ import annotations

import functools
import operator
import sys
import threading
import types
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from tape import tracing
from tape.op import Op
from tape.tensor import Tensor, wrap
from tape.wengert import Mode, ancestors, fit_gradient

CACHE_SIZE = 8  # records kept per replayed function, one per input signature


class Program:
    """The steps of one recorded call, and the slots they read and write.

    ``values[i]`` is slot i: the inputs first, then constants (filled once) and results (written
    by the steps). ``constant`` says which slots are constants, for comparing two records.
    """

    def __init__(self, inputs: tuple[np.ndarray, ...]) -> None:
        self.values: list[Any] = list(inputs)
        self.constant: list[bool] = [False] * len(inputs)
        self.steps: list[tuple] = []  # (run, *fields): run(values, *fields) performs the step
        self.output: Any = ("fixed", None)  # how to build fn's return value from the slots
        self.computed: list[int] = []  # the slots a replay fills (inputs and results), emptied after it
        # (tensor, its array, whether it required grad) for each leaf tensor of the graph whose
        # array is a constant: a parameter given a new array (``p.data = ...``) or frozen since
        # makes the record stale
        self.guards: tuple[tuple[Tensor, np.ndarray, bool], ...] = ()

    def current(self) -> bool:
        """Whether the leaves it was recorded with still hold the same arrays and flags."""
        for tensor, array, requires_grad in self.guards:
            if tensor.array is not array or tensor._rg is not requires_grad:
                return False
        return True

    def compile(self) -> Program:
        """Ready to replay: each argument's spec decided once (after two records were compared)."""
        self.steps = [compiled(step) for step in self.steps]
        self.computed = [i for i, constant in enumerate(self.constant) if not constant]
        return self

    def run(self, inputs: tuple[np.ndarray, ...]) -> Any:
        values = self.values
        values[: len(inputs)] = inputs
        step: tuple = ()
        try:
            for step in self.steps:
                step[0](values, *step[1:])
            return build(self.output, values)
        except Exception as error:  # NumPy's message, without tape's checks around the op: say where
            error.add_note(
                f"raised by tape.replay, replaying the recorded step {describe(step)!r}: a replay runs "
                "the recorded ops without tape's checks around them; the function itself, called "
                "eagerly, says more"
            )
            raise
        finally:
            for i in self.computed:  # let go of the step's arrays: the next call's reuse their memory
                values[i] = None


class Recorder:
    """Watches one eager call of ``fn`` and writes its ``Program`` (the hooks of ``tape.tracing``).

    A hook that meets something a replay could not repeat sets ``refused`` and stops watching:
    the call itself goes on eagerly, unchanged.
    """

    def __init__(self, inputs: tuple[np.ndarray, ...]) -> None:
        self.program = Program(inputs)
        self.slot_of: dict[int, int] = {id(a): i for i, a in enumerate(inputs)}
        self.alive: list[Any] = list(inputs)  # keeps every slotted array alive, so ids stay unique
        self.saved_slot: dict[int, int] = {}  # id(an entry's saved tuple) -> its slot
        self.thread = threading.get_ident()
        self.refused: str | None = None
        self.leaves: list[tuple] = []  # (leaf, its gradient's slot, its .grad array's slot) of the last sweep
        self.guards: dict[int, tuple[Tensor, np.ndarray, bool]] = {}  # see Program.guards
        # (array, a copy of its bytes) for each input and constant array: a change to one that no
        # recorded step made (NumPy on an input, ``p.array -= ...``) is one a replay would not make
        self.tracked: list[tuple[np.ndarray, bytes]] = []
        for a in inputs:
            self.track(a)

    def refuse(self, why: str) -> None:
        self.refused = self.refused or why
        if self in tracing.RECORDING:
            tracing.RECORDING.remove(self)

    # ------------------------------------------------------------ slots
    def result(self, value: Any) -> int:
        """A new slot for a value a step computes."""
        if type(value) is np.ndarray:  # NumPy may change it in place too (``h.numpy()[...] = 0``)
            self.track(value)
        self.program.values.append(None)
        self.program.constant.append(False)
        self.alive.append(value)
        self.slot_of[id(value)] = len(self.program.values) - 1
        return len(self.program.values) - 1

    def constant(self, value: Any) -> int:
        if type(value) is np.ndarray:
            self.track(value)
        self.program.values.append(value)
        self.program.constant.append(True)
        self.alive.append(value)
        return len(self.program.values) - 1

    def spec(self, value: Any) -> Any:
        """How a step finds an argument: a slot number, or a structure holding slots (a tuple or
        dict of arrays, a tensor made in the call)."""
        if isinstance(value, (np.ndarray, np.generic)):
            slot = self.slot_of.get(id(value))
            return slot if slot is not None else self.constant(value)
        if isinstance(value, Tensor):
            slot = self.slot_of.get(id(value.array))
            return ("tensor", slot) if slot is not None else self.constant(value)
        if type(value) in (tuple, list) or (isinstance(value, tuple) and hasattr(value, "_fields")):
            return ("tuple", type(value), tuple(self.spec(v) for v in value))
        if type(value) is dict:
            return ("dict", tuple(value), tuple(self.spec(v) for v in value.values()))
        return self.constant(value)

    def results(self, value: Any) -> Any:
        """Slots for what a step returned: arrays, tensors' arrays, tuples of them."""
        if isinstance(value, (np.ndarray, np.generic)):
            return self.result(value)
        if isinstance(value, Tensor):
            return ("tensor", self.result(value.array))
        if isinstance(value, tuple):
            return ("tuple", type(value), tuple(self.results(v) for v in value))
        return ("fixed", value)  # None, a number: nothing to keep

    # ------------------------------------------------------------ changes made outside the record
    def track(self, array: np.ndarray) -> None:
        self.tracked.append((array, array.tobytes()))

    def check_unchanged(self) -> None:
        """Refuse if an input or constant array changed since the last recorded step that may
        change one: a change made in NumPy, which a replay would not repeat."""
        if any(a.tobytes() != before for a, before in self.tracked):
            self.refuse(
                "it changes an array in place outside tape's ops (NumPy on an input, a "
                "parameter's or a gradient's .array, a tensor's .numpy()), which a replay would not "
                "repeat; use tape's in-place ops"
            )

    def changes_recorded(self) -> None:
        """A recorded step (a write, a ``replayable`` call) may have changed tracked arrays."""
        self.tracked = [(a, a.tobytes()) for a, _ in self.tracked]

    def guard(self, inputs: Any) -> None:
        """Keep each leaf tensor among an op's inputs whose array is a constant (a parameter):
        the record is stale once it holds another array, or requires grad or not anew."""
        for x in inputs:
            if isinstance(x, Tensor) and x.grad_fn is None and id(x.array) not in self.slot_of:
                self.guards[id(x)] = (x, x.array, x._rg)

    def watching(self) -> bool:
        return threading.get_ident() == self.thread  # another thread's ops are not this call's

    # ------------------------------------------------------------ hooks (tape.tracing)
    def forward(self, op: Op, arrays: Any, params: tuple, out: Any, saved: tuple, kept: np.ndarray) -> None:
        if not self.watching():
            return
        if op.name == "gather" and any(masks(p) for p in params):
            return self.refuse(
                "it indexes with a boolean mask (x[mask]): the result's shape depends on the mask's "
                "values, which a record cannot follow; use tape.where, or multiply by the mask"
            )
        self.guard(sys._getframe(1).f_locals.get("inputs", ()))  # tensor.run's: the op's tensors
        arguments = tuple(self.spec(a) for a in (*arrays, *params))
        out_slot = self.result(out)
        self.saved_slot[id(saved)] = self.result(saved)
        steps = self.program.steps
        if not all(type(a) is int for a in arguments):
            steps.append((_forward_built, op.forward, arguments, out_slot))
        elif len(arguments) == 1:
            steps.append((_forward_one, op.forward, arguments[0], out_slot))
        else:
            steps.append((_forward, op.forward, operator.itemgetter(*arguments), out_slot))
        if kept is not out:  # a NumPy scalar, which the tensor holds as a 0-d array
            self.slot_of[id(kept)] = out_slot
            self.alive.append(kept)
            steps.append((_as_array, out_slot))

    def call(self, fn: Callable, args: tuple, kwargs: dict) -> Any:
        """A ``replayable`` step: run whole (its ops unrecorded), kept as one call."""
        if not self.watching():
            return fn(*args, **kwargs)
        self.check_unchanged()
        if self.refused is not None:
            return fn(*args, **kwargs)
        spec = (self.spec(args), self.spec(kwargs))
        tracing.RECORDING.remove(self)
        try:
            result = fn(*args, **kwargs)
        finally:
            if self.refused is None:
                tracing.RECORDING.append(self)
        self.program.steps.append((_call, fn, spec, self.results(result)))
        self.changes_recorded()
        return result

    def write(self, tensor: Tensor, values: np.ndarray) -> None:
        if self.watching():
            self.program.steps.append((_write, self.spec(tensor.array), self.spec(values)))
            self.changes_recorded()

    def setitem(self, tensor: Tensor, steps: tuple, values: Any) -> None:
        if self.watching():
            self.program.steps.append(
                (_setitem, self.spec(tensor.array), self.spec(steps), self.spec(values))
            )
            self.changes_recorded()

    def read(self, tensor: Tensor) -> None:
        if self.watching() and id(tensor.array) in self.slot_of:
            self.refuse("it reads a tensor's value (item(), bool(), float(), ...) while it runs")

    def unsupported(self, what: str) -> None:
        if self.watching():
            self.refuse(f"it uses {what}")

    def backward(self, root: Tensor, gradient: np.ndarray, retain_graph: bool) -> None:
        """The reverse sweep, as ``wengert.backward`` runs it next: one step per VJP."""
        if not self.watching():
            return
        if Mode.anomaly:
            return self.refuse("it runs under detect_anomaly")
        entries = ancestors((root,))
        if any(e.retain for e in entries):
            return self.refuse("it keeps a non-leaf gradient (retain_grad)")
        if any(id(e.saved) not in self.saved_slot for e in entries):
            return self.refuse("its graph holds entries recorded before the call")
        for entry in entries:
            self.guard(entry.inputs)
        steps, root_gradient = self.program.steps, self.constant(gradient)
        grad_slot, leaves = {root.grad_fn: root_gradient}, []
        for entry in reversed(entries):
            dout, saved = grad_slot.pop(entry), self.saved_slot[id(entry.saved)]
            for k, inp, parent in entry.edges:
                fit, vjp = Fit(entry, k, inp.array), entry.op.vjps[k]
                if parent is not None and parent in grad_slot:  # fan-out: the gradients add up
                    steps.append((_vjp_add, vjp, dout, saved, fit, grad_slot[parent]))
                    continue
                into = self.result(None)
                steps.append((_vjp, vjp, dout, saved, fit, into))
                if parent is None:
                    leaves.append((inp, into, self.result(None)))
                else:
                    grad_slot[parent] = into
        steps.append((_accumulate, tuple(leaves), root_gradient))
        self.leaves = leaves

    def backward_done(self) -> None:
        """After the eager sweep: each leaf's ``.grad`` array is the slot its replay will fill."""
        if self.watching():
            for leaf, _, grad in self.leaves:
                self.slot_of[id(leaf.grad.array)] = grad
                self.alive.append(leaf.grad.array)
                self.track(leaf.grad.array)


def masks(index: Any) -> bool:
    """Whether an index holds a boolean array (with a dim: a 0-d one only adds one)."""
    if type(index) is tuple:
        return any(masks(part) for part in index)
    return isinstance(index, np.ndarray) and index.dtype == np.bool_ and index.ndim > 0


class Fit:
    """What the sweep needs to fit input ``k``'s gradient to the input (``wengert.fit_gradient``)."""

    __slots__ = ("dtype", "index", "k", "op", "shape")

    def __init__(self, entry: Any, k: int, like: np.ndarray) -> None:
        self.op, self.index, self.k, self.shape, self.dtype = entry.op, entry.index, k, like.shape, like.dtype

    def __eq__(self, other: object) -> bool:  # two records fit alike (entry numbers differ)
        return isinstance(other, Fit) and (self.op, self.k, self.shape, self.dtype) == (
            other.op,
            other.k,
            other.shape,
            other.dtype,
        )

    __hash__ = None  # type: ignore[assignment]


# ---------------------------------------------------------------- steps: run(values, *fields)


def _forward(values: list, forward: Callable, getter: Callable, out: int) -> None:
    values[out], values[out + 1] = forward(*getter(values))


def _forward_one(values: list, forward: Callable, argument: int, out: int) -> None:
    values[out], values[out + 1] = forward(values[argument])


def _forward_built(values: list, forward: Callable, arguments: tuple, out: int) -> None:
    values[out], values[out + 1] = forward(*[build(a, values) for a in arguments])


def _as_array(values: list, slot: int) -> None:
    values[slot] = np.asarray(values[slot])


def _vjp(values: list, vjp: Callable, dout: int, saved: int, fit: Fit, into: int) -> None:
    g = vjp(values[dout], *values[saved])
    values[into] = g if g.shape == fit.shape and g.dtype == fit.dtype else fitted(g, fit)


def _vjp_add(values: list, vjp: Callable, dout: int, saved: int, fit: Fit, into: int) -> None:
    g = vjp(values[dout], *values[saved])
    values[into] = values[into] + (g if g.shape == fit.shape and g.dtype == fit.dtype else fitted(g, fit))


def fitted(g: Any, fit: Fit) -> Any:
    """The gradient in its input's shape and dtype, exactly as the eager sweep fits it."""
    return fit_gradient(fit, fit.k, g, np.empty(fit.shape, fit.dtype))


def _accumulate(values: list, leaves: tuple, root_gradient: int) -> None:
    handed_out = {id(values[root_gradient])}  # as the eager sweep: never alias one array twice
    for leaf, g, grad in leaves:
        leaf.accumulate_grad(values[g], handed_out)
        values[grad] = leaf.grad.array


def _call(values: list, fn: Callable, spec: tuple, results: Any) -> None:
    args, kwargs = spec
    store(results, fn(*build(args, values), **build(kwargs, values)), values)


def _write(values: list, target: int, source: Any) -> None:
    values[target][...] = build(source, values)


def _setitem(values: list, target: int, steps: Any, source: Any) -> None:
    steps = build(steps, values)
    array = values[target]
    for step in steps[:-1]:
        array = array[step]
    array[steps[-1]] = build(source, values)


def build(spec: Any, values: list) -> Any:
    """A step's argument from its spec (see ``Recorder.spec``)."""
    if type(spec) is int:
        return values[spec]
    kind = spec[0]
    if kind == "tensor":
        return wrap(values[spec[1]])
    if kind == "tuple":
        parts = [build(s, values) for s in spec[2]]
        return spec[1](*parts) if hasattr(spec[1], "_fields") else spec[1](parts)
    if kind == "dict":
        return {k: build(s, values) for k, s in zip(spec[1], spec[2])}
    return spec[1]  # "fixed"


def builder(spec: Any) -> Callable[[list], Any]:
    """``build`` for one spec, decided once: what a replay calls for a step's argument."""
    if type(spec) is int:
        return operator.itemgetter(spec)
    kind = spec[0]
    if kind == "tensor":
        slot = spec[1]
        return lambda values: wrap(values[slot])
    if kind == "tuple" and spec[1] is tuple and all(type(s) is int for s in spec[2]):
        if len(spec[2]) > 1:
            return operator.itemgetter(*spec[2])  # a tuple of those slots
        return lambda values, parts=spec[2]: tuple([values[i] for i in parts])
    return functools.partial(build, spec)


def _call_compiled(values: list, fn: Callable, args: Callable, kwargs: Callable, results: Any) -> None:
    store(results, fn(*args(values), **kwargs(values)), values)


def _forward_compiled(values: list, forward: Callable, arguments: tuple, out: int) -> None:
    values[out], values[out + 1] = forward(*[argument(values) for argument in arguments])


def compiled(step: tuple) -> tuple:
    """A step of an accepted record with its arguments' specs turned into builders."""
    if step[0] is _call:
        _, fn, (args, kwargs), results = step
        return (_call_compiled, fn, builder(args), builder(kwargs), results)
    if step[0] is _forward_built:
        _, forward, arguments, out = step
        return (_forward_compiled, forward, tuple(builder(a) for a in arguments), out)
    return step


def store(spec: Any, value: Any, values: list) -> None:
    """Put what a step returned into its result slots."""
    if type(spec) is int:
        values[spec] = value
    elif spec[0] == "tensor":
        values[spec[1]] = value.array
    elif spec[0] == "tuple":
        for part, v in zip(spec[2], value):
            store(part, v, values)


# ---------------------------------------------------------------- comparing two records


def differences(first: Program, second: Program) -> str | None:
    """Why two records of the same call disagree, or None: the same steps reading the same
    slots, and every constant the same object or equal in value."""
    if len(first.steps) != len(second.steps) or len(first.values) != len(second.values):
        return "its first two calls ran different ops (Python control flow on values?)"
    for a, b in zip(first.steps, second.steps):
        if not same(a, b):
            return f"its first two calls differ at {describe(a)} (Python control flow on values?)"
    for i, (a, b) in enumerate(zip(first.values, second.values)):
        if first.constant[i] != second.constant[i] or (first.constant[i] and not same(a, b)):
            return (
                f"a value it passes to an op changed between its first two calls ({describe_value(b)}): "
                "computed in Python from the inputs, or drawn at random, outside tape's ops"
            )
        if first.constant[i] and a is not b and type(a) is np.ndarray and a.ndim > 0:
            return (
                f"an op reads an array computed in NumPy during the call ({describe_value(b)}): equal in "
                "its first two calls, but it may follow state that changes later (running statistics, "
                "parameters), and a replay would keep its first value; make it with tape's ops"
            )
    return None


def same(a: Any, b: Any) -> bool:
    """Two records' fields or constants: the same object, or equal values of the same kind."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, (np.ndarray, np.generic)):
        return (
            a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        )
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, operator.itemgetter):
        return repr(a) == repr(b)
    if isinstance(a, Tensor):
        return False  # a tensor made anew by each call, not by a step: replaying it would be stale
    if isinstance(a, types.FunctionType):  # a VJP made per call (cat's, stack's): the same code and cells
        try:
            return (
                a.__code__ is b.__code__
                and same(a.__defaults__, b.__defaults__)
                and same(
                    tuple(c.cell_contents for c in a.__closure__ or ()),
                    tuple(c.cell_contents for c in b.__closure__ or ()),
                )
            )
        except ValueError:  # an empty cell
            return False
    try:
        return bool(a == b)
    except (ValueError, TypeError):
        return False


def describe(step: tuple) -> str:
    fn = step[1] if len(step) > 1 and callable(step[1]) else step[0]
    return getattr(fn, "__qualname__", repr(fn))


def describe_value(value: Any) -> str:
    if isinstance(value, (np.ndarray, np.generic)):
        return f"an array {value.dtype}{list(np.shape(value))}"
    return f"{type(value).__name__} {value!r}"[:80]


# ---------------------------------------------------------------- the public wrapper


class Replay:
    """``tape.replay(fn)``: call it as ``fn``; see the module's docstring for what it does."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.records: dict[tuple, Any] = {}  # signature -> [first Program] | Program | reason (str)
        self.warned: set[str] = set()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if tracing.RECORDING:  # inside another replayed step's recording: eagerly, so it sees every op
            return self.fn(*args, **kwargs)
        flat = (*args, *kwargs.values()) if kwargs else args
        key = signature(flat, tuple(kwargs) if kwargs else ())
        try:
            record = self.records.get(key)
        except TypeError:  # an unhashable argument (a list, a dict, a tuple of arrays): no record is kept
            self.remember(None, "an argument is not hashable (a list, a dict, ...): pass arrays and numbers")
            return self.fn(*args, **kwargs)
        if type(record) is Program:
            if record.current():
                return record.run(arrays_of(flat))
            del self.records[key]  # a parameter given a new array, or frozen: record again
            record = None
        if isinstance(record, str):  # not replayable: eagerly, as fn itself
            return self.fn(*args, **kwargs)
        program, result = self.record(args, kwargs)
        if isinstance(program, str):
            self.remember(key, program)
            return result
        if record is None:
            self.remember(key, [program])
        else:
            why = differences(record[0], program)
            self.remember(key, program.compile() if why is None else why)
        return result

    def record(self, args: tuple, kwargs: dict | None = None) -> tuple[Program | str, Any]:
        """Run ``fn`` eagerly while a recorder watches: its program, or why it cannot replay."""
        kwargs = kwargs or {}
        recorder = Recorder(arrays_of((*args, *kwargs.values())))
        tracing.RECORDING.append(recorder)
        try:
            result = self.fn(*args, **kwargs)
        finally:
            if recorder in tracing.RECORDING:
                tracing.RECORDING.remove(recorder)
        if recorder.refused is None:
            recorder.check_unchanged()
        if recorder.refused is not None:
            return recorder.refused, result
        recorder.program.output = recorder.spec(result)
        recorder.program.guards = tuple(recorder.guards.values())
        return recorder.program, result

    def remember(self, key: tuple, record: Any) -> None:
        if isinstance(record, str) and record not in self.warned:
            self.warned.add(record)
            warnings.warn(
                f"tape.replay({getattr(self.fn, '__name__', 'fn')}): runs eagerly: {record}", stacklevel=3
            )
        if key is None:
            return
        if len(self.records) >= CACHE_SIZE and key not in self.records:
            self.records.pop(next(iter(self.records)))
        self.records[key] = record

    def reason(self, *args: Any, **kwargs: Any) -> str | None:
        """Why calls with these inputs run eagerly (None: they replay, or are still recording)."""
        key = signature((*args, *kwargs.values()), tuple(kwargs))
        try:
            record = self.records.get(key)
        except TypeError:
            return "an argument is not hashable (a list, a dict, ...): pass arrays and numbers"
        return record if isinstance(record, str) else None

    def clear(self) -> None:
        """Forget every record: the next calls record again (after changing what ``fn`` reads in
        Python, such as a module's training flag)."""
        self.records.clear()


def replay(fn: Callable[..., Any]) -> Replay:
    """``fn`` recorded on its first calls and replayed after: see ``tape.replay``'s module docs."""
    return Replay(fn)


def arrays_of(args: tuple) -> tuple:
    return tuple(a for a in args if isinstance(a, np.ndarray))


class Same:
    """A key part equal only to the very same object (kept alive, so its id is not reused)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Same) and other.value is self.value


def signature(args: tuple, names: tuple = ()) -> tuple:
    """What a record is kept for: each array's shape and dtype (and a 0-d array's value, which
    ``fn`` may keep as a number, a learning rate), which arrays are the very same one, a
    tensor's identity and its array's, every other argument's value, the keyword arguments'
    names, and whether grad mode is on."""
    key = [Mode.grad, names]
    ids = []
    for a in args:
        if isinstance(a, np.ndarray):
            key.append((a.shape, a.dtype.str, a.item()) if a.ndim == 0 else (a.shape, a.dtype.str))
            ids.append(id(a))
        elif isinstance(a, Tensor):  # its array is a constant of the record: a new one records again
            key.append((Tensor, a, Same(a.array)))
        else:
            key.append((type(a), a))
    if len(set(ids)) < len(ids):  # one array passed twice: a record reads it from one slot
        key.append(tuple(ids.index(i) for i in ids))
    return tuple(key)
