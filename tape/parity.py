"""Parity with PyTorch: run one function on torch and on tape, compare every named tensor.

    def forward(lib, W, x):          # lib is the torch module or the tape module
        h = lib.tanh(x @ W)
        loss = (h * h).mean()
        return locals()              # every tensor in here is compared, value and gradient

    report = compare(forward, params={"W": W}, data={"x": x})
    print(report)                    # name | exact | approximate | maxdiff, as the notebook prints
    assert report.ok

torch is imported only here, and only when ``compare`` runs: it is never a dependency of
``import tape``. The comparison reads the recorded tensors and never changes the tape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

import tape

# (rtol, atol as a fraction of the largest gradient magnitude anywhere in the graph): some
# gradients are analytically zero (b1 before a batchnorm) and hold only rounding noise.
TOLERANCES = {np.dtype(np.float32): (1e-4, 1e-5), np.dtype(np.float64): (1e-10, 1e-12)}


@dataclasses.dataclass(frozen=True)
class ParityRow:
    name: str
    shape: tuple[int, ...]
    value_maxdiff: float
    grad_exact: bool | None  # None: no gradient on either side
    grad_approx: bool | None  # |ours - torch| <= atol + rtol * |torch|, see TOLERANCES
    grad_maxdiff: float
    grad_scale: float  # largest |gradient| in torch, for relative errors

    @property
    def ok(self) -> bool:
        return self.grad_approx is not False


@dataclasses.dataclass
class ParityReport:
    rows: list[ParityRow]
    dtype: np.dtype

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    def __getitem__(self, name: str) -> ParityRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    def __iter__(self):
        return iter(self.rows)

    def __str__(self) -> str:
        width = max([15, *(len(r.name) for r in self.rows)])
        return "\n".join(
            f"{r.name:{width}s} | exact: {r.grad_exact!s:5} | approximate: {r.grad_approx!s:5} | "
            f"maxdiff: {r.grad_maxdiff}"
            for r in self.rows
            if r.grad_exact is not None
        )


def compare(
    fn: Callable[..., Mapping[str, Any]],
    params: Mapping[str, np.ndarray],
    data: Mapping[str, Any] | None = None,
    *,
    dtype: Any = np.float32,
    loss: str = "loss",
    order: Iterable[str] | None = None,
) -> ParityReport:
    """Run ``fn(lib, **params, **data)`` with lib = torch and lib = tape and compare.

    ``params`` are float arrays that require gradients (cast to ``dtype``); ``data`` are
    arrays passed as tensors without gradients (indices keep their dtype) and anything else
    passed as is. ``fn`` returns a mapping of names to tensors (``locals()`` works) that
    holds ``loss``; every tensor in it is compared, and rows are in ``order`` or else in
    reverse order of the mapping (the order a backward pass visits them).
    """
    import torch

    results = {}
    for lib, make in ((torch, _torch_tensor), (tape, _tape_tensor)):
        inputs = {k: make(lib, np.asarray(v, dtype=dtype), True) for k, v in params.items()}
        inputs |= {
            k: make(lib, v, False) if isinstance(v, np.ndarray) else v for k, v in (data or {}).items()
        }
        named = {k: v for k, v in fn(lib, **inputs).items() if isinstance(v, lib.Tensor)}
        if loss not in named:
            raise KeyError(f"parity: the function's result has no tensor named {loss!r}")
        for t in named.values():
            if t.requires_grad and not t.is_leaf:
                t.retain_grad()
        named[loss].backward()
        results[lib.__name__] = named

    theirs, ours = results["torch"], results["tape"]
    names = list(order) if order is not None else [n for n in reversed(list(ours)) if n in theirs]
    expected = {n: None if theirs[n].grad is None else theirs[n].grad.numpy() for n in names}
    scale = max((float(np.abs(g).max(initial=0.0)) for g in expected.values() if g is not None), default=0.0)
    rtol, atol = TOLERANCES.get(np.dtype(dtype), TOLERANCES[np.dtype(np.float32)])
    rows = [_row(n, theirs[n], ours[n], expected[n], rtol, atol * scale) for n in names]
    return ParityReport(rows, np.dtype(dtype))


def _torch_tensor(torch: Any, value: np.ndarray, requires_grad: bool) -> Any:
    return torch.tensor(value, requires_grad=requires_grad)


def _tape_tensor(lib: Any, value: np.ndarray, requires_grad: bool) -> tape.Tensor:
    return lib.tensor(value, requires_grad=requires_grad)


def _row(
    name: str, theirs: Any, ours: tape.Tensor, expected: np.ndarray | None, rtol: float, atol: float
) -> ParityRow:
    value_maxdiff = _maxdiff(ours.array, theirs.detach().numpy())
    got = ours.grad
    if expected is None and got is None:
        return ParityRow(name, ours.shape, value_maxdiff, None, None, 0.0, 0.0)
    if expected is None or got is None or np.shape(got) != tuple(expected.shape):
        return ParityRow(name, ours.shape, value_maxdiff, False, False, float("inf"), 0.0)
    return ParityRow(
        name,
        ours.shape,
        value_maxdiff,
        bool(np.array_equal(got, expected)),
        bool(np.all(np.abs(got - expected) <= atol + rtol * np.abs(expected))),
        _maxdiff(got, expected),
        float(np.abs(expected).max(initial=0.0)),
    )


def _maxdiff(a: np.ndarray, b: np.ndarray) -> float:
    if np.shape(a) != np.shape(b):
        return float("inf")
    return float(np.abs(np.asarray(a, np.float64) - b).max(initial=0.0))
