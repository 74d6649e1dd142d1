"""What each node and edge says, as plain text: numbers, op parameters, gradients, tooltips.

Nothing here knows DOT or escaping (``tape.viz.dot`` does both). Tooltips are lists of lines.

Numbers are rounded so that a drawing is the same on every machine: a BLAS picks different
kernels on different CPUs, and float32 results differ in their last bits. Numbers show
``digits`` significant digits, except that a mean is rounded to ``digits`` digits of the
array's largest magnitude (the mean of a gradient that cancels out prints as 0, not as noise)
and a gradient too small to change its tensor's values in its dtype prints as ``≈ 0``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from tape.op import PARAMETERS, Op
from tape.tensor import Tensor
from tape.wengert import Entry, Freed

OPERAND = "•"  # a tensor operand, in an op label such as mul(0.03125, •)
CONSTANT_DIGITS = 4  # constants are exact Python numbers: no noise to round away
LONGEST_PARAMETER = 40  # characters; a longer description is cut with an ellipsis

# the saved values worth showing on an op are its PARAMETERS (tape.op); the rest are arrays the
# VJP reads, or shapes and dtypes already drawn on the input's node. Arrays are shown (by dtype
# and shape) only where the user gave them: gather's index, not the argmax that max_dim saves
# under the same name
SHOWN_ARRAYS = {("gather", "index")}


# ---------------------------------------------------------------- numbers


def number(x: float, digits: int) -> str:
    text = f"{float(x):.{digits}g}"
    return "0" if text == "-0" else text


def rounded(x: float, scale: float, digits: int) -> str:
    """``x`` to ``digits`` significant digits of ``scale`` (so values far below it print as 0)."""
    if not math.isfinite(x) or not math.isfinite(scale) or scale == 0:
        return number(x, digits)
    quantum = 10.0 ** (math.floor(math.log10(scale)) - digits + 1)
    return number(round(x / quantum) * quantum, digits)


def statistics(array: Any, digits: int) -> str:
    values = np.asarray(array, dtype=np.float64)
    if values.size == 0:
        return "empty"
    # the mean of a sum that cancels is noise of the size of ε times the largest element, so it
    # is rounded against that; the others are each to their own significant digits
    mean = rounded(float(values.mean()), float(np.abs(values).max()), digits)
    spread = (
        f"{key} {number(v, digits)}"
        for key, v in [("std", values.std()), ("min", values.min()), ("max", values.max())]
    )
    return ", ".join([f"mean {mean}", *spread])


def norm(array: Any) -> float:
    return float(np.linalg.norm(np.asarray(array, dtype=np.float64).ravel()))


def resolution(t: Tensor) -> float:
    """The smallest gradient norm that is more than rounding against ``t``'s own values: ε‖t‖."""
    if t.dtype.kind != "f":
        return 0.0
    return float(np.finfo(t.dtype).eps) * norm(t.array)


def below_resolution(t: Tensor) -> bool:
    return t.grad is not None and norm(t.grad.array) < resolution(t)


def shape(dims: Iterable[int]) -> str:
    return str(tuple(int(n) for n in dims))


# ---------------------------------------------------------------- tensors


def tensor_lines(t: Tensor, digits: int) -> list[str]:
    """The lines under a tensor's name: dtype and shape, and a 0-d tensor's value."""
    lines = [f"{t.dtype} {shape(t.shape)}"]
    if t.ndim == 0 and t.dtype.kind == "f":
        lines.append(f"= {number(t.item(), digits)}")
    elif t.ndim == 0 and t.dtype.kind in "iub":
        lines.append(f"= {t.item()}")  # exact: integers carry no rounding noise
    return lines


def gradient_line(t: Tensor, digits: int) -> str | None:
    if t.grad is None:
        return None
    size = "≈ 0" if below_resolution(t) else number(norm(t.grad.array), digits)
    return f"∇ {shape(t.grad.shape)} ‖∇‖ {size}"


def gradient_statistics(t: Tensor, digits: int) -> str:
    if below_resolution(t):
        return (
            f"‖∇‖ < {number(resolution(t), 2)} ({t.dtype} ε × ‖value‖): too small to change the "
            "values (it cancelled out or vanished); not shown, as at this size its digits may differ "
            "between machines"
        )
    return statistics(t.grad.array, digits)


def tensor_tooltip(t: Tensor, name: str | None, kind: str, parity: Any, digits: int) -> list[str]:
    made_by = f"output of {t.grad_fn.op.name}" if t.grad_fn is not None else kind
    lines = [f"{name or 'unnamed'}: {t.dtype} {shape(t.shape)} ({made_by})"]
    lines.append("value: " + statistics(t.array, digits))
    if t.grad is not None:
        lines.append("grad: " + gradient_statistics(t, digits))
    elif t.requires_grad:
        lines.append("grad: not kept (call retain_grad() before backward for intermediates)")
    if parity is not None:
        verdict = "matches torch" if parity.ok else "DOES NOT match torch"
        lines.append(f"parity: gradient {verdict}, maxdiff {number(parity.grad_maxdiff, digits)}")
    return lines


# ---------------------------------------------------------------- ops


def op_label(entry: Entry) -> str:
    """The op's name, with its constant operands in place and its parameters: ``pow(•, -0.5)``."""
    arguments = [OPERAND if isinstance(x, Tensor) else describe(x) for x in entry.inputs]
    parameters = op_parameters(entry)
    if not parameters and all(a == OPERAND for a in arguments):
        return entry.op.name
    return f"{entry.op.name}({', '.join(arguments + parameters)})"


def op_parameters(entry: Entry) -> list[str]:
    """``dim=1``, ``keepdim=True``, ``index=int64[32]`` ...: kept by the entry after backward too."""
    if entry.saved is None:  # freed, and the op has no parameters
        return []
    shown = []
    for saved_as, value in zip(entry.op.saves, entry.saved):
        keyword = PARAMETERS.get(saved_as)
        if keyword is None or value is None or value is False:
            continue
        if _holds_array(value) and (entry.op.name, saved_as) not in SHOWN_ARRAYS:
            continue
        text = _truncated(describe(value))
        shown.append(f"{keyword}={text}" if keyword else text)
    return shown


def _holds_array(value: Any) -> bool:
    return isinstance(value, (np.ndarray, Freed)) or (
        isinstance(value, tuple) and any(map(_holds_array, value))
    )


def op_tooltip(entry: Entry, position: int) -> list[str]:
    scope = f" in {entry.scope}" if entry.scope else ""
    return [f"tape entry {position}: {entry.op.name}{scope}"]


def describe(value: Any) -> str:
    """A constant or parameter as the Wengert list prints it: arrays by dtype and shape."""
    if isinstance(value, (np.ndarray, Freed)):  # an array, or what stands for it once backward freed it
        return f"{value.dtype}{list(value.shape)}"
    if isinstance(value, tuple):
        if len(value) == 1 and isinstance(value[0], (int, np.integer)):
            return str(int(value[0]))  # dims=(0,) reads as dim=0
        return "(" + ", ".join(describe(v) for v in value) + ")"
    if isinstance(value, slice):
        parts = ["" if p is None else str(p) for p in (value.start, value.stop)]
        return ":".join(parts + ([str(value.step)] if value.step is not None else []))
    return _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return number(value, CONSTANT_DIGITS)
    if value is Ellipsis:
        return "..."
    return _truncated(repr(value))


def _truncated(text: str) -> str:
    return text if len(text) <= LONGEST_PARAMETER else text[: LONGEST_PARAMETER - 1] + "…"


def gradient_label(op: Op, input_shape: tuple, output_shape: tuple) -> tuple[str, str]:
    """Edge label and tooltip for the gradient into an input, from the shapes alone."""
    shape_in, shape_out = shape(input_shape), shape(output_shape)
    if input_shape == output_shape:
        return f"∇ {shape_in}", f"gradient {shape_in}"
    if op.broadcasts:  # declared by the op: the sweep sums its gradient over the broadcast axes
        return (
            f"∇ {shape_in} = Σ {shape_out}",
            f"gradient {shape_in}: the {shape_out} gradient of the output summed over the broadcast axes",
        )
    return (
        f"∇ {shape_in} from {shape_out}",
        f"gradient {shape_in}, computed from the {shape_out} output gradient",
    )


# ---------------------------------------------------------------- collapsed modules


def op_summary(op_names: Iterable[str]) -> str:
    """``4 ops: 2× matmul, add, tanh``, in the order the ops were first recorded."""
    names = list(op_names)
    listed = ", ".join(name if n == 1 else f"{n}× {name}" for name, n in Counter(names).items())
    return f"{op_count(len(names))}: {listed}"


def op_count(n: int) -> str:
    return f"{n} op{'s' if n > 1 else ''}"


def leaf_line(leaf: Tensor, name: str | None) -> str:
    grad = f", ∇ {shape(leaf.grad.shape)}" if leaf.grad is not None else ""
    return f"{name or 'unnamed'} {shape(leaf.shape)}{grad}"


def leaf_tooltip(leaf: Tensor, name: str | None, digits: int) -> list[str]:
    name = name or "unnamed"
    lines = [f"{name} value: {statistics(leaf.array, digits)}"]
    if leaf.grad is not None:
        lines.append(f"{name} grad: {gradient_statistics(leaf, digits)}")
    return lines
