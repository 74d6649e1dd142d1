"""The ``Recorder``: watches one eager call through the hooks of ``tape.tracing`` and writes
its ``Program``."""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from tape import tracing
from tape.op import Op
from tape.replay.program import (
    Fit,
    Program,
    accumulate_step,
    as_array_step,
    call_step,
    forward_built_step,
    forward_one_step,
    forward_step,
    setitem_step,
    vjp_add_step,
    vjp_step,
    write_step,
)
from tape.tensor import Tensor
from tape.wengert import Mode, ancestors


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
                self.guards[id(x)] = (x, x.array, x.requires_grad)

    def watching(self) -> bool:
        return threading.get_ident() == self.thread  # another thread's ops are not this call's

    # ------------------------------------------------------------ hooks (tape.tracing)
    def forward(
        self, op: Op, inputs: tuple, arrays: Any, params: tuple, out: Any, saved: tuple, kept: np.ndarray
    ) -> None:
        if not self.watching():
            return
        if op.name == "gather" and any(masks(p) for p in params):
            return self.refuse(
                "it indexes with a boolean mask (x[mask]): the result's shape depends on the mask's "
                "values, which a record cannot follow; use tape.where, or multiply by the mask"
            )
        self.guard(inputs)
        arguments = tuple(self.spec(a) for a in (*arrays, *params))
        out_slot = self.result(out)
        self.saved_slot[id(saved)] = self.result(saved)
        steps = self.program.steps
        if not all(type(a) is int for a in arguments):
            steps.append((forward_built_step, op.forward, arguments, out_slot))
        elif len(arguments) == 1:
            steps.append((forward_one_step, op.forward, arguments[0], out_slot))
        else:
            steps.append((forward_step, op.forward, operator.itemgetter(*arguments), out_slot))
        if kept is not out:  # a NumPy scalar, which the tensor holds as a 0-d array
            self.slot_of[id(kept)] = out_slot
            self.alive.append(kept)
            steps.append((as_array_step, out_slot))

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
        self.program.steps.append((call_step, fn, spec, self.results(result)))
        self.changes_recorded()
        return result

    def write(self, tensor: Tensor, values: np.ndarray) -> None:
        if self.watching():
            self.program.steps.append((write_step, self.spec(tensor.array), self.spec(values)))
            self.changes_recorded()

    def setitem(self, tensor: Tensor, steps: tuple, values: Any) -> None:
        if self.watching():
            self.program.steps.append(
                (setitem_step, self.spec(tensor.array), self.spec(steps), self.spec(values))
            )
            self.changes_recorded()

    def read(self, tensor: Tensor) -> None:
        if self.watching() and id(tensor.array) in self.slot_of:
            self.refuse("it reads a tensor's value (item(), bool(), float(), ...) while it runs")

    def unsupported(self, what: str) -> None:
        if self.watching():
            self.refuse(f"it uses {what}")

    def backward(self, root: Tensor, gradient: np.ndarray) -> None:
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
                    steps.append((vjp_add_step, vjp, dout, saved, fit, grad_slot[parent]))
                    continue
                into = self.result(None)
                steps.append((vjp_step, vjp, dout, saved, fit, into))
                if parent is None:
                    leaves.append((inp, into, self.result(None)))
                else:
                    grad_slot[parent] = into
        steps.append((accumulate_step, tuple(leaves), root_gradient))
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
