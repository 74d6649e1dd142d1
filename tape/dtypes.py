"""Dtypes and torch's promotion rules.

Python floats become float32 and ints int64, as in torch; float32 stays float32 next to
Python or NumPy scalars; a 0-d tensor only decides the dtype within a higher category.
"""

from __future__ import annotations

from typing import Any

import numpy as np

float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int8 = np.dtype(np.int8)
int16 = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)

CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}
PYTHON_SCALARS = {bool, int, float}


def dtype_of(value: Any) -> np.dtype:
    """A dtype argument as NumPy's (``tape.float32``, ``np.float32``, ``"float32"``, ``float``)."""
    if value is float:
        return float32  # torch reads Python's float as its default float dtype
    if value is int:
        return int64
    try:
        return np.dtype(value)
    except TypeError:
        raise TypeError(f"dtype: {value!r} is not a dtype") from None


def result_type(a: np.ndarray, b: np.ndarray) -> np.dtype:
    """torch's promotion of two tensors: a 0-d tensor only decides within a higher category."""
    ca, cb = CATEGORY[a.dtype.kind], CATEGORY[b.dtype.kind]
    if (a.ndim == 0) != (b.ndim == 0):
        dimensioned, zero_d = (a, b) if b.ndim == 0 else (b, a)
        if CATEGORY[zero_d.dtype.kind] <= CATEGORY[dimensioned.dtype.kind]:
            return dimensioned.dtype
        return zero_d.dtype
    if ca == cb:
        return np.promote_types(a.dtype, b.dtype)
    return a.dtype if ca > cb else b.dtype


def promote(a: Any, b: Any) -> tuple[Any, Any]:
    """Two operands (arrays or Python scalars) converted to the dtype torch gives their result."""
    a_array, b_array = type(a) is np.ndarray, type(b) is np.ndarray
    if a_array and b_array:
        if a.dtype is not b.dtype and a.dtype != b.dtype:
            dtype = result_type(a, b)
            a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
    elif a_array:  # an array and a Python scalar: the array's dtype wins within its category
        a = scalar_promotion(a, b)
    elif b_array:
        b = scalar_promotion(b, a)
    return a, b


def scalar_promotion(array: np.ndarray, scalar: Any) -> np.ndarray:
    kind = array.dtype.kind
    if kind == "f":
        return array
    if isinstance(scalar, float):
        return array.astype(float32)
    if kind == "b" and not isinstance(scalar, bool):
        return array.astype(int64)
    return array


def constant(op_name: str, value: Any) -> Any:
    """A non-tensor operand as an array or a Python scalar (NumPy scalars count as Python's)."""
    if type(value) in PYTHON_SCALARS:
        return value
    if isinstance(value, (np.generic, np.ndarray)):  # before float: np.float64 subclasses it
        if value.ndim == 0:
            return value.item()
        if value.dtype.kind in CATEGORY:
            return value
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        array = np.asarray(value)
        if array.dtype.kind in CATEGORY:
            return array.astype(float32) if array.dtype == float64 else array
    raise TypeError(f"{op_name}: unsupported operand of type {type(value).__name__}")


def is_floating(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return x.dtype.kind == "f"
    return isinstance(x, float)
