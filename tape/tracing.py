"""The hook by which ``tape.replay`` sees a call while it records it.

While a replay records, ``RECORDING`` holds its recorder; every op run (``tensor.run``), every
in-place write, every backward sweep and every call of a function marked ``replayable`` reports
to it. Otherwise ``RECORDING`` is empty and each hook costs one test of an empty list.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

RECORDING: list[Any] = []  # the active recorder (tape.replay's), or nothing


def replayable(fn: Callable) -> Callable:
    """Mark ``fn`` as one step of a replayed call: while a replay records, the call is kept whole
    (the ops inside it are not recorded one by one), and a replay calls ``fn`` again on the new
    values. For work done in Python around the ops that must run on every step: batch statistics,
    running averages, an optimiser's update, zeroing gradients, drawing random numbers."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if RECORDING:
            return RECORDING[-1].call(fn, args, kwargs)
        return fn(*args, **kwargs)

    return wrapper
