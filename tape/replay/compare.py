"""Two records of one call compared: a function is replayed only if its first two records agree."""

from __future__ import annotations

import operator
import types
from typing import Any

import numpy as np

from tape.replay.program import Program, describe
from tape.tensor import Tensor


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


def describe_value(value: Any) -> str:
    if isinstance(value, (np.ndarray, np.generic)):
        return f"an array {value.dtype}{list(np.shape(value))}"
    return f"{type(value).__name__} {value!r}"[:80]
