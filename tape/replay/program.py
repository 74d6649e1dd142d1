"""A recorded call: the ``Program`` of steps over numbered slots, and the steps themselves.

Each step is a tuple ``(run, *fields)``; ``run(values, *fields)`` performs it on the slot list
``values``. Forward steps call an op's own forward, VJP steps its own VJPs.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from tape.tensor import Tensor, wrap
from tape.wengert import fit_gradient


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
            if tensor.array is not array or tensor.requires_grad is not requires_grad:
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


def forward_step(values: list, forward: Callable, getter: Callable, out: int) -> None:
    values[out], values[out + 1] = forward(*getter(values))


def forward_one_step(values: list, forward: Callable, argument: int, out: int) -> None:
    values[out], values[out + 1] = forward(values[argument])


def forward_built_step(values: list, forward: Callable, arguments: tuple, out: int) -> None:
    values[out], values[out + 1] = forward(*[build(a, values) for a in arguments])


def as_array_step(values: list, slot: int) -> None:
    values[slot] = np.asarray(values[slot])


def vjp_step(values: list, vjp: Callable, dout: int, saved: int, fit: Fit, into: int) -> None:
    g = vjp(values[dout], *values[saved])
    values[into] = g if g.shape == fit.shape and g.dtype == fit.dtype else fitted(g, fit)


def vjp_add_step(values: list, vjp: Callable, dout: int, saved: int, fit: Fit, into: int) -> None:
    g = vjp(values[dout], *values[saved])
    values[into] = values[into] + (g if g.shape == fit.shape and g.dtype == fit.dtype else fitted(g, fit))


def fitted(g: Any, fit: Fit) -> Any:
    """The gradient in its input's shape and dtype, exactly as the eager sweep fits it."""
    return fit_gradient(fit, fit.k, g, np.empty(fit.shape, fit.dtype))


def accumulate_step(values: list, leaves: tuple, root_gradient: int) -> None:
    handed_out = {id(values[root_gradient])}  # as the eager sweep: never alias one array twice
    for leaf, g, grad in leaves:
        leaf.accumulate_grad(values[g], handed_out)
        values[grad] = leaf.grad.array


def call_step(values: list, fn: Callable, spec: tuple, results: Any) -> None:
    args, kwargs = spec
    store(results, fn(*build(args, values), **build(kwargs, values)), values)


def write_step(values: list, target: int, source: Any) -> None:
    values[target][...] = build(source, values)


def setitem_step(values: list, target: int, steps: Any, source: Any) -> None:
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


def call_compiled_step(values: list, fn: Callable, args: Callable, kwargs: Callable, results: Any) -> None:
    store(results, fn(*args(values), **kwargs(values)), values)


def forward_compiled_step(values: list, forward: Callable, arguments: tuple, out: int) -> None:
    values[out], values[out + 1] = forward(*[argument(values) for argument in arguments])


def compiled(step: tuple) -> tuple:
    """A step of an accepted record with its arguments' specs turned into builders."""
    if step[0] is call_step:
        _, fn, (args, kwargs), results = step
        return (call_compiled_step, fn, builder(args), builder(kwargs), results)
    if step[0] is forward_built_step:
        _, forward, arguments, out = step
        return (forward_compiled_step, forward, tuple(builder(a) for a in arguments), out)
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


def describe(step: tuple) -> str:
    fn = step[1] if len(step) > 1 and callable(step[1]) else step[0]
    return getattr(fn, "__qualname__", repr(fn))
