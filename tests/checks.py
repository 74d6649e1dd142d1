"""Shared checks: an op's forward and gradient against torch, or against finite differences.

A checked function takes the library first, ``fn(lib, *inputs)`` with lib the ``tape`` or the
``torch`` module, and returns one tensor::

    check_torch(lambda lib, x, W: lib.tanh(x @ W), x, W, dtype=np.float32)
    check_finite_differences(lambda lib, x: x.max(1).values, x)

Inputs: floating NumPy arrays become tensors that require a gradient (cast to ``dtype``
unless it is None); integer and bool arrays become tensors without one (indices keep their
dtype); anything else (Python scalars, ranges, tuples) is passed as is. ``requires_grad``
(one bool per input) overrides which floating arrays require a gradient. The output is
backpropagated with a random upstream gradient, never ones.

Both checks also prove coverage declarations (``tests/coverage.py``): inside a test decorated
with ``covers(kind, *ops)`` they assert that every declared op is in the Wengert list of the
checked output.

API (stable; other test files use it):
    TOLERANCES                          dtype -> (rtol, atol as a fraction of the largest |value|)
    assert_close(actual, expected, what="")   within TOLERANCES[expected dtype]
    check_torch(fn, *inputs, dtype=np.float64, torch_fn=None, requires_grad=None, seed=0) -> Checked
    check_finite_differences(fn, *inputs, requires_grad=None, eps=1e-6, rtol=1e-5, seed=0) -> Checked
    check_second_order_torch(fn, *inputs, torch_fn=None, requires_grad=None, seed=0, order=2)
                                        (kind "torch2"; order 3 and up too)
    check_second_order_finite_differences(fn, *inputs, requires_grad=None, eps=1e-6, rtol=1e-5, seed=0)
                                        (kind "fd2"): d/d(inputs, upstream) of sum(w * gradient),
                                        the gradient taken with create_graph=True
    Checked: out (the tape output), inputs (tape tensors and constants), upstream (the gradient)
    op_names(out) -> set[str]           the ops recorded on out's Wengert list

Hypothesis strategies for op inputs (arrays come from a drawn seed: fast, reproducible):
    uniform(shape, low=-2, high=2)      floats in [low, high)
    nonzero(shape, low=0.5, high=2)     magnitudes in [low, high), random signs
    distinct(shape)                     values at least 0.05 apart: no ties, no kinks
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from coverage import record_check
from hypothesis import strategies as st

import tape

# (rtol, atol as a fraction of the largest magnitude of the expected array)
TOLERANCES = {np.dtype(np.float32): (1e-4, 1e-5), np.dtype(np.float64): (1e-10, 1e-12)}


@dataclass
class Checked:
    out: tape.Tensor
    inputs: list[Any]  # tape tensors for array inputs, the other inputs unchanged
    upstream: np.ndarray | None  # the random gradient backpropagated from out


def op_names(out: tape.Tensor) -> set[str]:
    return {entry.op.name for entry in tape.wengert_list(out)}


def assert_close(actual: Any, expected: Any, what: str = "") -> None:
    """Equal shapes and dtypes, values within the tolerance of the expected dtype."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if expected.dtype.kind != "f":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    rtol, atol = TOLERANCES[expected.dtype]
    finite = np.isfinite(expected)
    scale = float(np.abs(expected[finite]).max(initial=0.0))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)


def check_torch(
    fn: Callable[..., Any],
    *inputs: Any,
    dtype: Any = np.float64,
    torch_fn: Callable[..., Any] | None = None,
    requires_grad: Sequence[bool] | None = None,
    seed: int = 0,
) -> Checked:
    """``fn`` on tape equals ``torch_fn`` (default ``fn``) on torch: value, dtype, gradients."""
    import torch

    arrays = _arrays(inputs, dtype, requires_grad)
    ours = [_tensor(tape, a, rg) for a, rg in arrays]
    theirs = [_tensor(torch, a, rg) for a, rg in arrays]
    out = fn(tape, *ours)
    expected = (torch_fn or fn)(torch, *theirs)
    assert_close(out.array, expected.detach().numpy(), "forward")
    assert out.requires_grad == expected.requires_grad, "requires_grad of the output"
    upstream = None
    if out.requires_grad:
        record_check("torch", op_names(out))
        upstream = _upstream(out, seed)
        out.backward(gradient=upstream)
        expected.backward(gradient=torch.from_numpy(upstream.copy()))
        for i, (t, e) in enumerate(zip(ours, theirs)):
            if isinstance(t, tape.Tensor) and t.requires_grad:
                assert (t.grad is None) == (e.grad is None), f"gradient of input {i}"
                if e.grad is not None:
                    assert_close(t.grad, e.grad.numpy(), f"gradient of input {i}")
    return Checked(out, ours, upstream)


def check_finite_differences(
    fn: Callable[..., Any],
    *inputs: Any,
    requires_grad: Sequence[bool] | None = None,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    seed: int = 0,
) -> Checked:
    """tape's gradient of ``sum(upstream * fn(tape, *inputs))`` equals central differences.

    Always float64 (floating inputs are cast). ``atol`` is ``rtol`` times the largest
    gradient magnitude, so near-zero entries are judged by the gradient's scale. Keep inputs
    away from kinks and ties: there the derivative is one-sided and differences average it.
    """
    arrays = _arrays(inputs, np.float64, requires_grad)
    ours = [_tensor(tape, a, rg) for a, rg in arrays]
    out = fn(tape, *ours)
    assert out.dtype == np.float64, f"finite differences need a float64 output, got {out.dtype}"
    record_check("fd", op_names(out))
    upstream = _upstream(out, seed)
    out.backward(gradient=upstream)

    def objective(values: list[Any]) -> float:
        with tape.no_grad():
            return float(np.sum(upstream * fn(tape, *values).array))

    constants = [t.array if isinstance(t, tape.Tensor) else t for t in ours]
    for i, t in enumerate(ours):
        if not (isinstance(t, tape.Tensor) and t.requires_grad):
            continue
        numeric = np.zeros(t.shape)
        for k in np.ndindex(t.shape):
            values = [tape.tensor(c) if isinstance(c, np.ndarray) else c for c in constants]
            point = values[i].array
            point[k] += eps
            up = objective(values)
            point[k] -= 2 * eps
            down = objective(values)
            numeric[k] = (up - down) / (2 * eps)
        scale = float(np.abs(numeric).max(initial=0.0))
        assert t.grad is not None, f"input {i} got no gradient"
        np.testing.assert_allclose(
            t.grad, numeric, rtol=rtol, atol=rtol * scale, err_msg=f"gradient of input {i}"
        )
    return Checked(out, ours, upstream)


def higher_order(out: tape.Tensor, ours: list[Any], upstream: Any, ws: list[list], lib: Any) -> list:
    """Derivatives of order ``len(ws) + 1``: the gradients of ``sum(upstream * out)`` with respect
    to the inputs, then, once per ``w`` in ``ws``, the derivative of ``sum(w_k * gradient_k)``
    with respect to the inputs and the upstream, each taken with create_graph. Order 2 gives the
    Hessian-vector products of the op and the derivative of its VJP with respect to ``dout``.
    ``lib`` is tape or torch.autograd; a gradient that does not depend on a variable is zeros."""
    wrt = [t for t in ours if _requires(t)]
    variables = [*wrt, upstream]
    grads = lib.grad([out], wrt, [upstream], create_graph=True, allow_unused=True)
    for w in ws:
        terms = [(g * wk).sum() for g, wk in zip(grads, w) if g is not None and g.requires_grad]
        if not terms:
            return [np.zeros(v.shape) for v in variables]
        grads = lib.grad(
            [functools.reduce(operator.add, terms)], variables, create_graph=True, allow_unused=True
        )
    return [np.zeros(v.shape) if g is None else _numpy(g) for g, v in zip(grads, variables)]


def _requires(t: Any) -> bool:
    return hasattr(t, "requires_grad") and t.requires_grad


def _numpy(t: Any) -> np.ndarray:
    if not hasattr(t, "detach"):
        return np.asarray(t)
    try:
        return t.detach().numpy()
    except RuntimeError:  # torch's ZeroTensor (a gradient known to be zero) will not convert
        return np.zeros(tuple(t.shape))


def check_second_order_torch(
    fn: Callable[..., Any],
    *inputs: Any,
    torch_fn: Callable[..., Any] | None = None,
    requires_grad: Sequence[bool] | None = None,
    seed: int = 0,
    order: int = 2,
) -> list[np.ndarray]:
    """Derivatives of ``fn`` of ``order`` 2 or more (see ``higher_order``) equal torch's, float64."""
    import torch

    arrays = _arrays(inputs, np.float64, requires_grad)
    ours = [_tensor(tape, a, rg) for a, rg in arrays]
    theirs = [_tensor(torch, a, rg) for a, rg in arrays]
    out = fn(tape, *ours)
    expected = (torch_fn or fn)(torch, *theirs)
    record_check("torch2", op_names(out))
    upstream = _upstream(out, seed)
    wrt = [t for t in ours if _requires(t)]
    shapes = [[t.shape for t in wrt]] + [[*[t.shape for t in wrt], out.shape]] * (order - 2)
    ws = [[_random(shape, seed + 10 * i + k + 1) for k, shape in enumerate(s)] for i, s in enumerate(shapes)]
    actual = higher_order(out, ours, tape.tensor(upstream, requires_grad=True), ws, tape)
    reference = higher_order(
        expected,
        theirs,
        torch.tensor(upstream, requires_grad=True),
        [[torch.from_numpy(wk) for wk in w] for w in ws],
        torch.autograd,
    )
    for i, (a, e) in enumerate(zip(actual, reference)):
        assert_close(a, e, f"derivative of order {order} {i}")
    return actual


def check_second_order_finite_differences(
    fn: Callable[..., Any],
    *inputs: Any,
    requires_grad: Sequence[bool] | None = None,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    seed: int = 0,
) -> list[np.ndarray]:
    """Second derivatives of ``fn`` (create_graph) equal central differences of its first-order
    gradient (the plain sweep), in float64."""
    arrays = _arrays(inputs, np.float64, requires_grad)
    ours = [_tensor(tape, a, rg) for a, rg in arrays]
    out = fn(tape, *ours)
    record_check("fd2", op_names(out))
    upstream = _upstream(out, seed)
    wrt = [k for k, t in enumerate(ours) if _requires(t)]
    w = [_upstream(ours[k], seed + 1 + j) for j, k in enumerate(wrt)]
    actual = higher_order(out, ours, tape.tensor(upstream, requires_grad=True), [w], tape)
    constants = [t.array if isinstance(t, tape.Tensor) else t for t in ours]

    def objective(values: list[Any], u: np.ndarray) -> float:
        tensors = [tape.tensor(v, requires_grad=True) if k in wrt else v for k, v in enumerate(values)]
        grads = tape.grad([fn(tape, *tensors)], [tensors[k] for k in wrt], [u], allow_unused=True)
        return float(sum(np.sum(g.array * wk) for g, wk in zip(grads, w) if g is not None))

    points = [*[constants[k] for k in wrt], upstream]
    for i, numeric_at in enumerate(points):
        numeric = np.zeros(np.shape(numeric_at))
        for k in np.ndindex(numeric.shape):
            values = [np.array(c) if isinstance(c, np.ndarray) else c for c in constants]
            u = upstream.copy()
            point = u if i == len(wrt) else values[wrt[i]]
            point[k] += eps
            up = objective(values, u)
            point[k] -= 2 * eps
            numeric[k] = (up - objective(values, u)) / (2 * eps)
        scale = float(np.abs(numeric).max(initial=0.0))
        np.testing.assert_allclose(
            actual[i], numeric, rtol=rtol, atol=rtol * scale, err_msg=f"second derivative {i}"
        )
    return actual


def _arrays(inputs: Sequence[Any], dtype: Any, requires_grad: Sequence[bool] | None) -> list[tuple]:
    """(value, requires_grad) per input; floating arrays cast to ``dtype`` when it is given."""
    if requires_grad is not None and len(requires_grad) != len(inputs):
        raise ValueError("requires_grad needs one bool per input")
    arrays = []
    for i, x in enumerate(inputs):
        if isinstance(x, np.ndarray):
            floating = x.dtype.kind == "f"
            if floating and dtype is not None:
                x = x.astype(dtype)
            rg = floating if requires_grad is None else requires_grad[i]
            arrays.append((x, rg))
        else:
            arrays.append((x, None))
    return arrays


def _tensor(lib: Any, value: Any, requires_grad: bool | None) -> Any:
    if requires_grad is None:
        return value
    return lib.tensor(value, requires_grad=requires_grad)


def _random(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def _upstream(out: tape.Tensor, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(out.shape).astype(out.dtype)


# ---------------------------------------------------------------- strategies

_seeds = st.integers(0, 2**32 - 1)


def uniform(shape: tuple[int, ...], low: float = -2.0, high: float = 2.0) -> st.SearchStrategy:
    return _seeds.map(lambda seed: np.asarray(np.random.default_rng(seed).uniform(low, high, shape)))


def nonzero(shape: tuple[int, ...], low: float = 0.5, high: float = 2.0) -> st.SearchStrategy:
    def draw(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return np.asarray(rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape))

    return _seeds.map(draw)


def distinct(shape: tuple[int, ...]) -> st.SearchStrategy:
    """A shuffled grid with jitter: gaps of at least 0.05, so max has no ties."""

    def draw(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        n = int(np.prod(shape))
        grid = (rng.permutation(n) - n / 2) * 0.1 + rng.uniform(0.0, 0.05, n)
        return grid.reshape(shape)

    return _seeds.map(draw)
