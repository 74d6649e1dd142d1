"""Every primitive op against torch, float32 and float64: forward value, dtype and gradients."""

import numpy as np
import pytest
from cases import BINARY, CASES, Case, as_torch_scalar
from checks import check_torch, nonzero
from coverage import covers
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tape

torch = pytest.importorskip("torch")

DTYPES = [np.float32, np.float64]


@covers("torch", *CASES, each="name")
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_op_matches_torch(name, dtype, data):
    case = Case(*data.draw(CASES[name]))
    check_torch(case.fn, *case.inputs, dtype=dtype, requires_grad=case.requires_grad)


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


@covers("torch", "maximum", "minimum", each="name")
@pytest.mark.parametrize("dtype", DTYPES)
def test_maximum_and_minimum_split_a_tie_in_half_like_torch(name, dtype):
    a, b = np.array([[1.0, 2.0, 3.0, -0.5]]), np.array([[1.0], [3.0]])
    check_torch(lambda lib, a, b: getattr(lib, name)(a, b), a, b, dtype=dtype)


@covers("torch", "relu", "abs", "sign", "round", each="name")
@pytest.mark.parametrize("dtype", DTYPES)
def test_kinks_and_jumps_take_torchs_gradient(name, dtype):
    check_torch(lambda lib, x: getattr(x, name)(), np.array([-1.0, 0.0, 0.5, 1.5, -0.5]), dtype=dtype)


CLAMPS = {
    "numbers on the values": (lambda lib, x: x.clamp(-1.0, 0.0), ()),
    "crossed numbers": (lambda lib, x: x.clamp(1, -1), ()),
    "tensor min tied": (lambda lib, x, low: x.clamp(min=low), (np.zeros(5),)),
    "tensor max tied": (lambda lib, x, high: x.clamp(max=high), (np.zeros((2, 1)),)),
    "tensor bounds, crossed and equal": (
        lambda lib, x, low, high: x.clamp(low, high),
        (np.array([0.0, 0.0, 1.0, -1.0, 0.0]), np.array([1.0, 0.0, 0.0, -1.0, -1.0])),
    ),
}


@covers("torch", "clamp")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", CLAMPS)
def test_clamp_on_and_across_its_bounds_matches_torch(kind, dtype):
    fn, bounds = CLAMPS[kind]
    check_torch(fn, np.array([-1.0, 0.0, 1.0, np.nan, 0.5]), *bounds, dtype=dtype)


@covers("torch", "sqrt", "rsqrt", "log2", "log10", each="name")
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_infinite_slopes_at_zero_match_torch(name, dtype):
    check_torch(lambda lib, x: getattr(x, name)(), np.array([0.0, 4.0]), dtype=dtype)


VARIANCES = {
    "one element": (lambda lib, x: x.var(), [3.0]),
    "one element per column": (lambda lib, x: x.var(0, keepdim=True), [[3.0, 4.0]]),
    "0-d": (lambda lib, x: x.var(), 3.0),
    "one element, no correction": (lambda lib, x: x.var(correction=0), [3.0]),
}
STDS = {
    "one element": (lambda lib, x: x.std(), [3.0]),
    "constants": (lambda lib, x: x.std(), [2.0, 2.0, 2.0]),
    "a constant row": (lambda lib, x: x.std(1), [[2.0, 2.0], [1.0, 3.0]]),
}


@covers("torch", "var")
@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore:.*degrees of freedom:UserWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", VARIANCES)
def test_variance_of_too_few_elements_is_nan_like_torch(kind, dtype):
    fn, x = VARIANCES[kind]
    check_torch(fn, np.array(x), dtype=dtype)


@covers("torch", "std")
@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore:.*degrees of freedom:UserWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", STDS)
def test_std_of_constants_has_torchs_zero_gradient(kind, dtype):
    fn, x = STDS[kind]
    check_torch(fn, np.array(x), dtype=dtype)


@covers("torch", "softmax", "log_softmax", "logsumexp", each="name")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [[[-np.inf, 0.0, 1.0], [2.0, -np.inf, -np.inf]], [[-np.inf, -np.inf]]])
def test_minus_infinity_entries_match_torch(name, dtype, rows):
    check_torch(lambda lib, x: getattr(x, name)(1), np.array(rows), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cumsum_of_a_0d_tensor_matches_torch(dtype):
    out = check_torch(lambda lib, x: x.cumsum(0) * x, np.array(1.5), dtype=dtype).out
    assert out.shape == ()


@covers("torch", "pad")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("widths", [(0, 0), (0, 0, 0, 0), (0, 0, 1, 0), (-1, 0, 0, 0), (0, -3)])
def test_pad_with_zero_widths_and_full_crops_matches_torch(dtype, widths):
    def fn(lib, x):
        return (tape.pad if lib is tape else torch.nn.functional.pad)(x, widths, value=0.5)

    check_torch(fn, np.arange(6.0).reshape(2, 3), dtype=dtype)


@covers("torch", "cat")
@pytest.mark.parametrize("dtype", DTYPES)
def test_cat_gives_a_joined_1d_empty_tensor_its_empty_gradient_like_torch(dtype):
    checked = check_torch(
        lambda lib, a, b: lib.cat([a, b], dim=-1), np.zeros(0), np.ones((2, 3)), dtype=dtype
    )
    assert checked.inputs[0].grad.shape == (0,)


@covers("torch", "min")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("values", [[3.0, 1.0, 1.0], [[2.0, 2.0], [2.0, 2.0]], 7.0, [1.0, -np.inf]])
def test_min_splits_the_gradient_evenly_among_ties_like_torch(dtype, values):
    check_torch(lambda lib, x: x.min(), np.array(values), dtype=dtype)


@covers("torch", "min_dim")
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20, deadline=None)
@given(
    x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3), elements=st.sampled_from([0.0, 1.0])),
    data=st.data(),
)
def test_min_dim_returns_the_index_torch_returns_and_routes_ties_to_it(dtype, x, data):
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    keepdim = data.draw(st.booleans())
    checked = check_torch(lambda lib, x: x.min(dim, keepdim).values, x, dtype=dtype)
    np.testing.assert_array_equal(
        checked.inputs[0].min(dim, keepdim).indices.array, torch.tensor(x).min(dim, keepdim).indices.numpy()
    )


@covers("torch", "pow_tensor", "remainder", "where", each="name")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_ops_at_zeros_jumps_and_nans_match_torch(name, dtype):
    a, b = np.array([0.0, 0.0, 0.0, 2.0, -3.5, 3.5, -2.0]), np.array([0.0, 1.0, 2.0, 0.0, 2.0, -2.0, 2.0])
    fns = {
        "pow_tensor": lambda lib, a, b: a**b,  # 0 ** b: torch's 0 where the log would be -inf
        "remainder": lambda lib, a, b: a % (b + 1.0),  # a multiple of the divisor: on a jump
        "where": lambda lib, a, b: lib.where(a > 0, a.sqrt(), b),  # nan in the branch not taken
    }
    check_torch(fns[name], a, b, dtype=dtype)
