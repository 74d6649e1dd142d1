"""Every primitive op's gradient against central finite differences (float64), and the kinks.

Differences only see a smooth function: at ties and kinks the derivative is one-sided and a
central difference averages it, so there the expected gradients are written out exactly.
"""

import numpy as np
import pytest
from cases import CASES
from checks import check_finite_differences
from coverage import covers
from hypothesis import given, settings
from hypothesis import strategies as st

import tape


@covers("fd", *CASES, each="name")
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_op_gradient_matches_finite_differences(name, data):
    fn, inputs = data.draw(CASES[name])
    check_finite_differences(fn, *inputs)


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
