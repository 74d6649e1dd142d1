"""Making tensors: from data, filled, ranges, identity, and the ``_like`` forms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tape.dtypes import CATEGORY, dtype_of, float32, float64, int64
from tape.tensor import Tensor


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False, name: str | None = None, device: Any = None) -> Tensor:
    """A new leaf tensor (a copy of ``data``). Python floats give float32, ints int64."""
    if isinstance(data, Tensor):
        data = data.array
    elif isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in _flatten(data)):
        data = _nested_arrays(data)
    if dtype is not None:
        array = np.array(data, dtype=dtype_of(dtype))
    elif isinstance(data, (np.ndarray, np.generic)):
        array = np.array(data)
    else:
        array = np.array(data)
        if array.dtype == float64:
            array = array.astype(float32)
        elif array.dtype.kind not in CATEGORY:
            raise TypeError(f"tensor: cannot make a tensor of {array.dtype} from {type(data).__name__}")
    return Tensor(array, requires_grad=requires_grad, name=name)


def _flatten(data: Any) -> list:
    if isinstance(data, (list, tuple)):
        return [y for x in data for y in _flatten(x)]
    return [data]


def _nested_arrays(data: Any) -> Any:
    if isinstance(data, (list, tuple)):
        return [_nested_arrays(x) for x in data]
    return data.array if isinstance(data, Tensor) else data


def as_tensor(data: Any, dtype: Any = None) -> Tensor:
    if isinstance(data, Tensor) and (dtype is None or dtype_of(dtype) == data.dtype):
        return data
    return tensor(data, dtype=dtype)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing ``array``'s memory, as torch.from_numpy."""
    return Tensor(array)


def shape_args(shape: Sequence[Any]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _filled(shape: tuple, value: Any, dtype: Any, requires_grad: bool) -> Tensor:
    return Tensor(np.full(shape, value, dtype=dtype_of(dtype)), requires_grad=requires_grad)


def zeros(*shape: Any, dtype: Any = float32, requires_grad: bool = False, device: Any = None) -> Tensor:
    return _filled(shape_args(shape), 0, dtype, requires_grad)


def ones(*shape: Any, dtype: Any = float32, requires_grad: bool = False, device: Any = None) -> Tensor:
    return _filled(shape_args(shape), 1, dtype, requires_grad)


def empty(*shape: Any, dtype: Any = float32, requires_grad: bool = False, device: Any = None) -> Tensor:
    return _filled(shape_args(shape), 0, dtype, requires_grad)  # zeros: never uninitialised memory


def full(size: Sequence[int], fill_value: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    if dtype is None:
        dtype = np.bool_ if isinstance(fill_value, bool) else int64 if isinstance(fill_value, int) else float32
    return _filled(shape_args((size,)), fill_value, dtype, requires_grad)


def like(name: str, fill: Any) -> Any:
    def make(x: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
        return _filled(x.shape, fill, x.dtype if dtype is None else dtype, requires_grad)

    make.__name__ = name
    return make


zeros_like = like("zeros_like", 0)
ones_like = like("ones_like", 1)
empty_like = like("empty_like", 0)


def full_like(x: Tensor, fill_value: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _filled(x.shape, fill_value, x.dtype if dtype is None else dtype, requires_grad)


def eye(n: int, m: int | None = None, dtype: Any = float32, requires_grad: bool = False) -> Tensor:
    return Tensor(np.eye(n, m, dtype=dtype_of(dtype)), requires_grad=requires_grad)


def arange(start: Any, end: Any = None, step: Any = 1, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """``arange(end)`` or ``arange(start, end, step)``: int64 for integer arguments, else float32."""
    if end is None:
        start, end = 0, start
    numbers = [x.item() if isinstance(x, Tensor) else x for x in (start, end, step)]
    if dtype is None:
        dtype = int64 if all(isinstance(x, (int, np.integer)) for x in numbers) else float32
    if numbers[2] == 0:
        raise ValueError("arange: step must be nonzero")
    return Tensor(np.arange(*numbers).astype(dtype_of(dtype)), requires_grad=requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = float32, requires_grad: bool = False) -> Tensor:
    return Tensor(np.linspace(start, end, steps).astype(dtype_of(dtype)), requires_grad=requires_grad)
