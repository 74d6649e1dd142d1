"""Whole-tensor questions with Python answers (``allclose``, ``equal``) and counting (``histogram``):
nothing here is differentiable, so nothing is recorded."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from tape.tensor import Tensor, wrap


def _array(x: Any) -> np.ndarray:
    return x.array if isinstance(x, Tensor) else np.asarray(x)


def allclose(input: Any, other: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> bool:
    """``|input - other| <= atol + rtol * |other|`` everywhere, as torch.allclose."""
    return bool(np.allclose(_array(input), _array(other), rtol=rtol, atol=atol, equal_nan=equal_nan))


def isclose(
    input: Any, other: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False
) -> Tensor:
    return wrap(np.isclose(_array(input), _array(other), rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(input: Any, other: Any) -> bool:
    """Same shape and the same values, as torch.equal."""
    return bool(np.array_equal(_array(input), _array(other)))


def is_tensor(x: object) -> bool:
    return isinstance(x, Tensor)


def numel(x: Tensor) -> int:
    return x.numel()


class Histogram(NamedTuple):
    hist: Tensor
    bin_edges: Tensor


def histogram(
    input: Tensor,
    bins: Any = 100,
    *,
    range: tuple[float, float] | None = None,
    weight: Any = None,
    density: bool = False,
) -> Histogram:
    """``torch.histogram``: counts (or a density) in ``bins`` equal bins over the data's range."""
    values = _array(input)
    if values.dtype.kind != "f":
        raise TypeError(f"histogram: needs a floating point tensor, got {values.dtype}")
    weights = None if weight is None else _array(weight)
    edges_in = _array(bins) if isinstance(bins, Tensor) else bins
    hist, edges = np.histogram(values, bins=edges_in, range=range, weights=weights, density=density)
    return Histogram(wrap(hist.astype(values.dtype)), wrap(edges.astype(values.dtype)))


def histc(input: Tensor, bins: int = 100, min: float = 0.0, max: float = 0.0) -> Tensor:
    """``torch.histc``: counts in ``bins`` bins over [min, max] (the data's range when both are 0)."""
    values = _array(input)
    low, high = (float(values.min()), float(values.max())) if min == max == 0 else (min, max)
    return wrap(np.histogram(values, bins=bins, range=(low, high))[0].astype(values.dtype))


def bincount(input: Tensor, weights: Any = None, minlength: int = 0) -> Tensor:
    counts = np.bincount(_array(input), None if weights is None else _array(weights), minlength)
    return wrap(counts if weights is not None else counts.astype(np.int64))
