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

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from tape import tracing
from tape.replay.compare import differences
from tape.replay.program import Program
from tape.replay.record import Recorder
from tape.tensor import Tensor
from tape.wengert import Mode

CACHE_SIZE = 8  # records kept per replayed function, one per input signature


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
