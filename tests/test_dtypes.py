"""dtypes follow torch: tensor() defaults, promotion of tensors, scalars that never upcast."""

import itertools
import operator

import numpy as np
import pytest

import tape

torch = pytest.importorskip("torch")

DTYPES = ["bool", "uint8", "int8", "int32", "int64", "float16", "float32", "float64"]
SHAPES = [(), (2,)]  # a 0-d tensor only decides the dtype within a higher category


def torch_dtype(name):
    return getattr(torch, name)


def numpy_dtype(torch_dtype):
    return np.dtype(str(torch_dtype).removeprefix("torch."))


@pytest.mark.parametrize(("a_dtype", "b_dtype"), itertools.product(DTYPES, DTYPES))
@pytest.mark.parametrize(("a_shape", "b_shape"), itertools.product(SHAPES, SHAPES))
def test_result_type_is_torchs(a_dtype, b_dtype, a_shape, b_shape):
    a, b = np.zeros(a_shape, a_dtype), np.zeros(b_shape, b_dtype)
    expected = torch.result_type(torch.from_numpy(a), torch.from_numpy(b))
    assert tape.result_type(a, b) == numpy_dtype(expected)


@pytest.mark.parametrize("op", [operator.add, operator.mul, operator.truediv], ids=lambda op: op.__name__)
@pytest.mark.parametrize(("a_dtype", "b_dtype"), itertools.product(["int64", "float32", "float64"], repeat=2))
@pytest.mark.parametrize(("a_shape", "b_shape"), itertools.product(SHAPES, SHAPES))
def test_binary_ops_on_two_tensors_promote_like_torch(op, a_dtype, b_dtype, a_shape, b_shape):
    a, b = np.ones(a_shape, a_dtype), np.ones(b_shape, b_dtype)
    expected = op(torch.from_numpy(a), torch.from_numpy(b)).dtype
    assert op(tape.tensor(a), tape.tensor(b)).dtype == numpy_dtype(expected)


SCALARS = [1.5, 2, True, np.float64(1.5), np.float32(1.5), np.int64(2), np.array(1.5), np.array(2)]


# torch refuses to subtract a bool, so that pair has no oracle
OPS_AND_SCALARS = [
    (op, scalar)
    for op in (operator.add, operator.sub, operator.mul, operator.truediv)
    for scalar in SCALARS
    if not (op is operator.sub and isinstance(scalar, bool))
]


@pytest.mark.parametrize(("op", "scalar"), OPS_AND_SCALARS, ids=repr)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
@pytest.mark.parametrize("shape", SHAPES)
def test_scalars_on_either_side_never_upcast_the_tensor(op, scalar, dtype, shape):
    x = np.ones(shape, dtype)
    # torch reads NumPy scalars and 0-d arrays given to an op as Python numbers
    number = scalar.item() if isinstance(scalar, (np.generic, np.ndarray)) else scalar
    for args, torch_args in (((x, scalar), (x, number)), ((scalar, x), (number, x))):
        ours = op(*(tape.tensor(v) if v is x else v for v in args))
        expected = op(*(torch.from_numpy(v) if v is x else v for v in torch_args))
        assert ours.dtype == numpy_dtype(expected.dtype)
        np.testing.assert_allclose(ours.array, expected.numpy(), rtol=1e-6)


@pytest.mark.parametrize("exponent", [2, 0.5, -1.0, np.float64(2.0), np.array(0.5)], ids=repr)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pow_keeps_the_base_dtype(exponent, dtype):
    assert (tape.tensor(np.ones(2, dtype)) ** exponent).dtype == dtype


@pytest.mark.parametrize(
    "fn",
    [lambda x: x / 2, lambda x: x**0.5, lambda x: x.exp(), lambda x: x.log(), lambda x: x.tanh()],
    ids=["div", "fractional pow", "exp", "log", "tanh"],
)
def test_integer_tensors_become_float32_where_torch_makes_them_float(fn):
    assert fn(tape.tensor([1, 2])).dtype == numpy_dtype(fn(torch.tensor([1, 2])).dtype) == np.float32


@pytest.mark.parametrize("dtype", ["bool", "int32", "int64"])
def test_integer_sums_are_int64_like_torch(dtype):
    x = np.ones(3, dtype)
    assert tape.tensor(x).sum().dtype == numpy_dtype(torch.from_numpy(x).sum().dtype)


@pytest.mark.parametrize(
    "data",
    [1.5, 2, True, [1.0, 2.0], [1, 2.5], [[1, 2], [3, 4]], [True, False], np.float64(1.0), np.int32(3)]
    + [np.array([1, 2], np.int32), np.array(2.0), np.ones(2, np.float16), np.ones((2, 2), np.float32)],
    ids=repr,
)
def test_tensor_picks_the_dtype_torch_tensor_picks(data):
    assert tape.tensor(data).dtype == numpy_dtype(torch.tensor(data).dtype)


@pytest.mark.parametrize("dtype", [tape.float64, np.float32, "float64", tape.int64])
def test_an_explicit_dtype_wins(dtype):
    assert tape.tensor([1.5, 2.5] if np.dtype(dtype).kind == "f" else [1, 2], dtype=dtype).dtype == dtype


def test_tensor_copies_its_data():
    data = np.ones(2)
    t = tape.tensor(data)
    data[0] = 5.0
    assert t.array[0] == 1.0


def test_constructors_default_to_float32():
    assert tape.zeros(2, 3).dtype == tape.ones((2,)).dtype == tape.randn(2).dtype == np.float32
    assert tape.zeros_like(tape.tensor([1, 2])).dtype == np.int64
