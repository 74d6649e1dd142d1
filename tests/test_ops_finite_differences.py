"""Every primitive op's gradient against central finite differences (float64), and the kinks.

Differences only see a smooth function: at ties and kinks the derivative is one-sided and a
central difference averages it, so there the expected gradients are written out exactly.
"""

import numpy as np
import pytest
from cases import CASES, Case
from checks import check_finite_differences
from coverage import covers
from hypothesis import given, settings
from hypothesis import strategies as st

import tape


@covers("fd", *CASES, each="name")
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_op_gradient_matches_finite_differences(name, data):
    case = Case(*data.draw(CASES[name]))
    check_finite_differences(case.fn, *case.inputs, requires_grad=case.requires_grad, eps=case.eps)


@covers("fd", "tanh", "mul", "sum", "matmul", "add", "gather", "log", "exp", "max_dim", "sub", "mean")
def test_a_small_network_matches_finite_differences():
    rng = np.random.default_rng(1)
    C, W, b = rng.standard_normal((5, 3)), rng.standard_normal((6, 4)), rng.standard_normal(4)
    X, Y = rng.integers(0, 5, (7, 2)), rng.integers(0, 4, 7)

    def loss(lib, C, W, b, X, Y):
        logits = lib.tanh(C[X].view(-1, 6) @ W + b) * 2.0
        logits = logits - logits.max(1, keepdim=True).values  # a tie-free shift, but on the tape
        logprobs = logits - logits.exp().sum(1, keepdim=True).log()
        return -logprobs[range(7), Y].mean()

    check_finite_differences(loss, C, W, b, X, Y)


def grad(fn, x, upstream=None):
    """The gradient of ``sum(upstream * fn(x))`` at x, by tape."""
    x = tape.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    out = fn(x)
    out.backward(gradient=np.ones(out.shape) if upstream is None else np.asarray(upstream, np.float64))
    return x.grad


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        ([3.0, 1.0, 3.0], [0.5, 0.0, 0.5]),
        ([[2.0, 2.0], [2.0, 2.0]], [[0.25, 0.25], [0.25, 0.25]]),
        ([1.0, np.nan, 5.0, np.nan], [0.0, 0.5, 0.0, 0.5]),  # a nan maximum: the nans share it
    ],
)
def test_full_max_splits_the_gradient_evenly_among_ties(x, expected):
    np.testing.assert_array_equal(grad(lambda x: x.max(), x), expected)


@pytest.mark.parametrize("keepdim", [False, True])
def test_max_along_a_dim_sends_the_whole_gradient_to_the_first_maximum(keepdim):
    x = [[1.0, 4.0, 4.0], [2.0, 2.0, 2.0], [0.0, -1.0, 0.0]]
    upstream = np.array([10.0, 20.0, 30.0])
    g = grad(lambda x: x.max(1, keepdim).values, x, upstream[:, None] if keepdim else upstream)
    np.testing.assert_array_equal(g, [[0.0, 10.0, 0.0], [20.0, 0.0, 0.0], [30.0, 0.0, 0.0]])


def test_repeated_gather_indices_accumulate():
    g = grad(lambda C: C[[0, 2, 0, 0]], [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]], [[1.0, 2.0]] * 4)
    np.testing.assert_array_equal(g, [[3.0, 6.0], [0.0, 0.0], [1.0, 2.0]])


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0, [0.0, 0.0, 0.0]),  # x**0 = 1 everywhere: flat, even at 0
        (1, [1.0, 1.0, 1.0]),
        (2, [-4.0, 0.0, 6.0]),
        (3, [12.0, 0.0, 27.0]),
        (0.5, [np.nan, np.inf, 0.5 / np.sqrt(3.0)]),  # torch: nan below zero, inf at the cusp
        (-1, [-0.25, -np.inf, -1.0 / 9.0]),
    ],
)
def test_pow_at_and_around_zero(p, expected):
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_allclose(grad(lambda x: x**p, [-2.0, 0.0, 3.0]), expected, rtol=1e-15)


def test_log_of_zero_is_minus_inf_and_its_gradient_is_upstream_over_zero():
    x = tape.tensor([0.0, 0.0, 2.0], dtype=tape.float64, requires_grad=True)
    out = x.log()
    np.testing.assert_array_equal(out.array, [-np.inf, -np.inf, np.log(2.0)])
    out.backward(gradient=np.array([1.0, -1.0, 1.0]))
    np.testing.assert_array_equal(x.grad, [np.inf, -np.inf, 0.5])


def grads(fn, *xs, upstream=None):
    """The gradients of ``sum(upstream * fn(*xs))`` with respect to each x, by tape."""
    tensors = [tape.tensor(np.asarray(x, dtype=np.float64), requires_grad=True) for x in xs]
    out = fn(*tensors)
    out.backward(gradient=np.ones(out.shape) if upstream is None else np.asarray(upstream, np.float64))
    return [t.grad.array for t in tensors]


@pytest.mark.parametrize(
    ("name", "expected_a", "expected_b"),
    [
        ("maximum", [1.0, 4.0, 3.0, 0.0], [1.0, 0.0, 3.0, 8.0]),
        ("minimum", [1.0, 0.0, 3.0, 8.0], [1.0, 4.0, 3.0, 0.0]),
    ],
)
def test_maximum_and_minimum_split_a_tie_in_half(name, expected_a, expected_b):
    a, b = [1.0, 2.0, 3.0, -0.5], [1.0, 1.0, 3.0, 0.5]  # ties at 0 and 2
    da, db = grads(lambda a, b: getattr(a, name)(b), a, b, upstream=[2.0, 4.0, 6.0, 8.0])
    np.testing.assert_array_equal(da, expected_a)
    np.testing.assert_array_equal(db, expected_b)


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (lambda x: x.relu(), [0.0, 0.0, 1.0]),  # torch: the kink belongs to the flat side
        (lambda x: x.abs(), [-1.0, 0.0, 1.0]),  # sign(0) = 0
        (lambda x: x.clamp(-1.0, 0.0), [1.0, 1.0, 0.0]),  # on a bound counts as inside
        (lambda x: x.clamp(min=0.0), [0.0, 1.0, 1.0]),
        (lambda x: x.clamp(max=-1.0), [1.0, 0.0, 0.0]),
        (lambda x: x.clamp(1.0, -1.0), [0.0, 0.0, 0.0]),  # crossed bounds: -1 everywhere
    ],
    ids=["relu", "abs", "clamp", "clamp min", "clamp max", "clamp crossed"],
)
def test_kinks_take_torchs_one_sided_choice(fn, expected):
    (dx,) = grads(fn, [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(dx, expected)


def test_clamp_with_tensor_bounds_gives_a_tie_to_x_and_crossed_bounds_to_max():
    x, low, high = (
        [0.0, 1.0, -1.0, 0.5, 3.0, 0.0],
        [0.0, 0.0, 0.0, 1.0, 1.0, 1.0],
        [1.0, 1.0, 1.0, 0.0, 2.0, 1.0],
    )
    dx, dlow, dhigh = grads(lambda x, low, high: x.clamp(low, high), x, low, high)
    np.testing.assert_array_equal(dx, [1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(dlow, [0.0, 0.0, 1.0, 0.0, 0.0, 0.0])  # x == low: x's, not half each
    # low > high: high's; low == high above x: nobody's (torch: x < low < high, x > high or high < low)
    np.testing.assert_array_equal(dhigh, [0.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    dx, dlow = grads(lambda x, low: x.clamp(min=low), [np.nan, 0.0], [0.0, 0.0])
    np.testing.assert_array_equal(dx, [0.0, 1.0])  # nan is neither inside nor below: no gradient
    np.testing.assert_array_equal(dlow, [0.0, 0.0])


def test_sqrt_and_rsqrt_at_zero_have_infinite_slopes():
    with np.errstate(divide="ignore"):
        (dsqrt,) = grads(lambda x: x.sqrt(), [0.0, 4.0])
        (drsqrt,) = grads(lambda x: x.rsqrt(), [0.0, 4.0])
    np.testing.assert_array_equal(dsqrt, [np.inf, 0.25])
    np.testing.assert_array_equal(drsqrt, [-np.inf, -1.0 / 16.0])


@pytest.mark.parametrize(
    ("fn", "x", "value", "expected"),
    [
        (lambda x: x.var(), [3.0], np.nan, [np.nan]),  # n - 1 = 0: 0 / 0, as torch
        (lambda x: x.std(), [3.0], np.nan, [np.nan]),
        (lambda x: x.var(0), [[3.0, 4.0]], [np.nan, np.nan], [[np.nan, np.nan]]),  # one element per column
        (lambda x: x.var(correction=0), [3.0], 0.0, [0.0]),
        (lambda x: x.var(), 3.0, np.nan, np.nan),  # a 0-d tensor is one element
        (lambda x: x.std(), [2.0, 2.0, 2.0], 0.0, [0.0, 0.0, 0.0]),  # torch: 0, not 0 * inf = nan
        (
            lambda x: x.std(1),
            [[2.0, 2.0], [1.0, 3.0]],
            [0.0, np.sqrt(2.0)],
            [[0.0, 0.0], [-(0.5**0.5), 0.5**0.5]],
        ),
        # n <= correction with distinct values: torch says inf or a finite number depending on
        # whether dim was given; tape says nan either way
        (lambda x: x.var(correction=3), [3.0, 1.0], np.inf, [np.nan, np.nan]),
    ],
)
def test_variance_of_too_few_elements_and_std_of_constants(fn, x, value, expected):
    with np.errstate(divide="ignore", invalid="ignore"):
        x = tape.tensor(np.asarray(x, np.float64), requires_grad=True)
        out = fn(x)
        out.backward(gradient=np.ones(out.shape))
    np.testing.assert_allclose(out.array, value, rtol=1e-15)
    np.testing.assert_allclose(x.grad, expected, rtol=1e-15)


@pytest.mark.parametrize(
    ("fn", "value", "expected"),
    [
        (lambda x: x.softmax(0), [0.0, 0.5, 0.5], [0.0, -0.25, 0.25]),
        (lambda x: x.log_softmax(0), [-np.inf, -np.log(2.0), -np.log(2.0)], [1.0, -1.0, 0.0]),
        (lambda x: x.logsumexp(0), np.log(2.0), [0.0, 0.5, 0.5]),
    ],
    ids=["softmax", "log_softmax", "logsumexp"],
)
def test_minus_infinity_entries_take_no_probability_and_keep_finite_gradients(fn, value, expected):
    x = tape.tensor([-np.inf, 0.0, 0.0], dtype=tape.float64, requires_grad=True)
    out = fn(x)
    out.backward(gradient=np.array([1.0, 2.0, 3.0]) if out.ndim else np.array(1.0))
    np.testing.assert_allclose(out.array, value, rtol=1e-15)
    np.testing.assert_allclose(x.grad, expected, rtol=1e-15, atol=1e-15)


def test_cumsum_of_a_0d_tensor_is_the_tensor():
    x = tape.tensor(3.0, dtype=tape.float64, requires_grad=True)
    out = x.cumsum(0)
    out.backward(gradient=np.array(2.0))
    assert out.shape == () and out.item() == 3.0
    assert x.grad.item() == 2.0


@pytest.mark.parametrize("widths", [(0, 0), (0, 0, 0, 0), (0, 0, 1, 0), (0, -1, 0, 0)])
def test_pad_with_zero_widths_passes_the_gradient_of_the_kept_region(widths):
    x = np.arange(6.0).reshape(2, 3)
    out_shape = tape.pad(tape.tensor(x), widths).shape
    upstream = np.arange(1.0, 1.0 + np.prod(out_shape)).reshape(out_shape)
    (dx,) = grads(lambda x: tape.pad(x, widths), x, upstream=upstream)
    top, right = (widths[2] if len(widths) > 2 else 0), widths[1]
    expected = np.zeros((2, 3))
    kept = 3 + min(right, 0)
    expected[:, :kept] = upstream[top : top + 2, :kept]
    np.testing.assert_array_equal(dx, expected)


def test_full_min_splits_the_gradient_evenly_among_ties_and_min_dim_picks_the_first():
    np.testing.assert_array_equal(grad(lambda x: x.min(), [1.0, 3.0, 1.0]), [0.5, 0.0, 0.5])
    g = grad(lambda x: x.min(1).values, [[1.0, 1.0, 3.0], [2.0, 0.0, 0.0]], [10.0, 20.0])
    np.testing.assert_array_equal(g, [[10.0, 0.0, 0.0], [0.0, 20.0, 0.0]])
