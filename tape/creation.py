"""Making tensors: from data, filled, ranges, identity, random (torch's stream), and the ``_like`` forms.

Each is ``replayable``: a tensor made inside a replayed step is made anew on every replay (fresh
random numbers, a copy of the new input), not kept from the recorded call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tape import random
from tape.dtypes import CATEGORY, dtype_of, float32, float64, int64
from tape.inplace import refuse_leaf, write
from tape.tensor import Tensor
from tape.tracing import replayable
from tape.wengert import Mode


@replayable
def tensor(
    data: Any, dtype: Any = None, requires_grad: bool = False, name: str | None = None, device: Any = None
) -> Tensor:
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


@replayable
def _filled(shape: tuple, value: Any, dtype: Any, requires_grad: bool) -> Tensor:
    return Tensor(np.full(shape, value, dtype=dtype_of(dtype)), requires_grad=requires_grad)


def zeros(*shape: Any, dtype: Any = float32, requires_grad: bool = False, device: Any = None) -> Tensor:
    return _filled(shape_args(shape), 0, dtype, requires_grad)


def ones(*shape: Any, dtype: Any = float32, requires_grad: bool = False, device: Any = None) -> Tensor:
    return _filled(shape_args(shape), 1, dtype, requires_grad)


def empty(*shape: Any, dtype: Any = float32, requires_grad: bool = False, device: Any = None) -> Tensor:
    return _filled(shape_args(shape), 0, dtype, requires_grad)  # zeros: never uninitialised memory


def full(
    size: Sequence[int], fill_value: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None
) -> Tensor:
    if dtype is None:
        dtype = (
            np.bool_ if isinstance(fill_value, bool) else int64 if isinstance(fill_value, int) else float32
        )
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


@replayable
def eye(n: int, m: int | None = None, dtype: Any = float32, requires_grad: bool = False) -> Tensor:
    return Tensor(np.eye(n, m, dtype=dtype_of(dtype)), requires_grad=requires_grad)


@replayable
def arange(
    start: Any, end: Any = None, step: Any = 1, dtype: Any = None, requires_grad: bool = False
) -> Tensor:
    """``arange(end)`` or ``arange(start, end, step)``: int64 for integer arguments, else float32."""
    if end is None:
        start, end = 0, start
    numbers = [x.item() if isinstance(x, Tensor) else x for x in (start, end, step)]
    if dtype is None:
        dtype = int64 if all(isinstance(x, (int, np.integer)) for x in numbers) else float32
    if numbers[2] == 0:
        raise ValueError("arange: step must be nonzero")
    return Tensor(np.arange(*numbers).astype(dtype_of(dtype)), requires_grad=requires_grad)


@replayable
def linspace(
    start: float, end: float, steps: int, dtype: Any = float32, requires_grad: bool = False
) -> Tensor:
    return Tensor(np.linspace(start, end, steps).astype(dtype_of(dtype)), requires_grad=requires_grad)


# ---------------------------------------------------------------- random (torch's stream, see tape/random.py)


def _source(generator: random.Generator | None) -> random.Generator:
    if generator is not None and not isinstance(generator, random.Generator):
        raise TypeError(
            f"generator must be a tape.Generator, got {type(generator).__name__} "
            "(tape reproduces torch's random stream, not NumPy's)"
        )
    return random.default_generator if generator is None else generator


def _float_dtype(dtype: Any) -> np.dtype:
    return float32 if dtype is None else dtype_of(dtype)


def sampler(draw: str, doc: str) -> Callable[..., Tensor]:
    """``tape.randn``/``tape.rand``: floats drawn by the generator's sampler of that name."""

    @replayable
    def sample(
        *size: Any,
        generator: random.Generator | None = None,
        dtype: Any = None,
        requires_grad: bool = False,
        device: Any = None,
    ) -> Tensor:
        array = getattr(_source(generator), draw)(shape_args(size), dtype=_float_dtype(dtype))
        return Tensor(array, requires_grad=requires_grad)

    sample.__name__, sample.__doc__ = draw, doc
    return sample


randn = sampler(
    "randn", "Standard normal samples, the numbers torch.randn draws from an equally seeded generator."
)
rand = sampler("rand", "Uniform samples in [0, 1), as torch.rand.")


@replayable
def randint(
    low: int,
    high: Any = None,
    size: Any = None,
    *,
    generator: random.Generator | None = None,
    dtype: Any = int64,
    requires_grad: bool = False,
    device: Any = None,
) -> Tensor:
    """``randint(high, size)`` or ``randint(low, high, size)``: integers in [low, high), as torch.randint."""
    if size is None:
        low, high, size = 0, low, high
    array = _source(generator).randint(int(low), int(high), tuple(size))
    return Tensor(array.astype(dtype_of(dtype), copy=False), requires_grad=requires_grad)


@replayable
def randperm(
    n: int, *, generator: random.Generator | None = None, dtype: Any = int64, device: Any = None
) -> Tensor:
    return Tensor(_source(generator).randperm(int(n)).astype(dtype_of(dtype), copy=False))


@replayable
def multinomial(
    input: Tensor, num_samples: int, replacement: bool = False, *, generator: random.Generator | None = None
) -> Tensor:
    """Indices drawn from the rows of ``input`` (unnormalised probabilities), as torch.multinomial."""
    probs = input.array if isinstance(input, Tensor) else np.asarray(input)
    return Tensor(_source(generator).multinomial(probs, int(num_samples), replacement))


@replayable
def normal(
    mean: float,
    std: float,
    size: Any,
    *,
    generator: random.Generator | None = None,
    dtype: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    array = _source(generator).normal(float(mean), float(std), shape_args((size,)), dtype=_float_dtype(dtype))
    return Tensor(array, requires_grad=requires_grad)


def randn_like(
    x: Tensor, dtype: Any = None, requires_grad: bool = False, generator: random.Generator | None = None
) -> Tensor:
    return randn(x.shape, generator=generator, dtype=dtype or x.dtype, requires_grad=requires_grad)


def rand_like(
    x: Tensor, dtype: Any = None, requires_grad: bool = False, generator: random.Generator | None = None
) -> Tensor:
    return rand(x.shape, generator=generator, dtype=dtype or x.dtype, requires_grad=requires_grad)


def fill_randomly(name: str, draw: Any) -> Any:
    """An in-place sampler method (``w.normal_(0, 0.02)``): refuses a leaf that requires grad, as torch."""

    @replayable
    def method(self: Tensor, *args: Any, generator: random.Generator | None = None) -> Tensor:
        if Mode.grad and self.requires_grad and self.is_leaf:
            refuse_leaf(self, name)
        write(self, draw(_source(generator), self, *args), name)
        return self

    method.__name__ = name
    return method


Tensor.normal_ = fill_randomly(
    "normal_", lambda g, x, mean=0.0, std=1.0: g.normal(mean, std, x.shape, dtype=x.dtype)
)
Tensor.uniform_ = fill_randomly(
    "uniform_", lambda g, x, low=0.0, high=1.0: g.uniform(low, high, x.shape, dtype=x.dtype)
)
Tensor.exponential_ = fill_randomly(
    "exponential_", lambda g, x, lambd=1.0: g.exponential(x.shape, lambd=lambd, dtype=x.dtype)
)
Tensor.multinomial = multinomial
