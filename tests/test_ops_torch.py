"""Every primitive op against torch, float32 and float64: forward value, dtype and gradients."""

import numpy as np
import pytest
from cases import BINARY, CASES, as_torch_scalar
from checks import check_torch, nonzero
from coverage import covers
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

torch = pytest.importorskip("torch")

DTYPES = [np.float32, np.float64]


@covers("torch", *CASES, each="name")
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_op_matches_torch(name, dtype, data):
    fn, inputs = data.draw(CASES[name])
    check_torch(fn, *inputs, dtype=dtype)


CONSTANTS = [2.5, -3, np.float64(0.75), np.float32(-1.25), np.int64(2), np.array(1.5), np.array(4)]


@covers("torch", *BINARY, each="name")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("constant", CONSTANTS, ids=repr)
@pytest.mark.parametrize("constant_first", [True, False], ids=["constant op x", "x op constant"])
@settings(max_examples=5, deadline=None)
@given(x=hnp.array_shapes(min_dims=0, max_dims=3).flatmap(nonzero))
def test_scalar_on_either_side_keeps_the_tensor_dtype(name, dtype, constant, constant_first, x):
    op = BINARY[name]

    def fn(lib, x):
        c = as_torch_scalar(lib, constant)
        return op(c, x) if constant_first else op(x, c)

    out = check_torch(fn, x, dtype=dtype).out
    assert out.dtype == dtype


@covers("torch", "max_dim")
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30, deadline=None)
@given(
    x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3), elements=st.sampled_from([0.0, 1.0])),
    data=st.data(),
)
def test_max_dim_returns_the_index_torch_returns_and_routes_ties_to_it(dtype, x, data):
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    keepdim = data.draw(st.booleans())
    checked = check_torch(lambda lib, x: x.max(dim, keepdim).values, x, dtype=dtype)
    indices = checked.inputs[0].max(dim, keepdim).indices
    expected = torch.tensor(x).max(dim, keepdim).indices.numpy()
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices.array, expected)


@covers("torch", "max")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("values", [[3.0, 1.0, 3.0], [[2.0, 2.0], [2.0, 2.0]], [5.0], 7.0, [-1.0, np.inf]])
def test_max_splits_the_gradient_evenly_among_ties_like_torch(dtype, values):
    check_torch(lambda lib, x: x.max(), np.array(values), dtype=dtype)


@covers("torch", "gather")
@pytest.mark.parametrize("dtype", DTYPES)
def test_repeated_gather_indices_accumulate_like_torch(dtype):
    C = np.arange(12.0).reshape(6, 2)
    Xb = np.array([[0, 0, 5], [5, 0, 1]])
    check_torch(lambda lib, C, Xb: C[Xb], C, Xb, dtype=dtype)


@covers("torch", "log")
@pytest.mark.parametrize("dtype", DTYPES)
def test_log_of_zero_is_minus_inf_with_torchs_gradient(dtype):
    x = np.array([0.0, 0.5, 2.0])
    out = check_torch(lambda lib, x: x.log(), x, dtype=dtype).out
    assert out.array[0] == -np.inf


@covers("torch", "pow")
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0, 0.5, 2, -1, 3])
def test_pow_at_zero_matches_torch(dtype, p):
    check_torch(lambda lib, x: x**p, np.array([0.0, 1.5]), dtype=dtype)


@covers("torch", "mul", "add", "sum")
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_tensor_used_twice_accumulates_like_torch(dtype):
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    check_torch(lambda lib, x: (x * x + x).sum(0), x, dtype=dtype)


@covers("torch", "sum", "mean")
@pytest.mark.parametrize("reduce", ["sum", "mean"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (3,), (2, 3)])
def test_reducing_over_an_empty_dim_tuple_reduces_everything_like_torch(reduce, dtype, shape):
    x = np.arange(1.0, 1.0 + np.prod(shape, dtype=int)).reshape(shape)
    check_torch(lambda lib, x: (getattr(x, reduce)(dim=()) * x).sum().mean(), x, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mixed_precision_ops_promote_and_return_each_gradient_in_its_inputs_dtype(dtype):
    a = np.linspace(-1.0, 1.0, 6).reshape(2, 3).astype(dtype)
    b = np.linspace(0.5, 2.0, 3).astype(np.float64 if dtype is np.float32 else np.float32)
    checked = check_torch(lambda lib, a, b: a * b + a / b, a, b, dtype=None)
    assert checked.out.dtype == np.float64
    assert [t.grad.dtype for t in checked.inputs] == [a.dtype, b.dtype]
