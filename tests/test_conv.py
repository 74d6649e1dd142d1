"""conv1d, conv2d, max_pool2d and avg_pool2d (composites of gather and matmul) against torch."""

import numpy as np
import pytest
import torch
from checks import check_finite_differences, check_torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tape
from tape.conv import avg_pool2d, conv1d, conv2d, max_pool2d

DTYPES = [np.float32, np.float64]


def functional(lib):
    return torch.nn.functional if lib is torch else tape.conv


@st.composite
def conv2d_case(draw):
    groups = draw(st.sampled_from([1, 2]))
    c, o = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    k, stride, padding, dilation = (draw(st.integers(lo, hi)) for lo, hi in [(1, 3), (1, 2), (0, 2), (1, 2)])
    size = dilation * (k - 1) + 1 + draw(st.integers(0, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((draw(st.integers(1, 2)), c, size, size + draw(st.integers(0, 2))))
    w, b = rng.standard_normal((o, c // groups, k, k)), rng.standard_normal(o)
    inputs = (x, w, b) if draw(st.booleans()) else (x, w)

    def fn(lib, x, w, b=None):
        return functional(lib).conv2d(x, w, b, stride, padding, dilation, groups)

    return fn, inputs


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(case=conv2d_case())
def test_conv2d_matches_torch(dtype, case):
    fn, inputs = case
    check_torch(fn, *inputs, dtype=dtype)


@settings(max_examples=5, deadline=None)
@given(case=conv2d_case())
def test_conv2d_gradient_matches_finite_differences(case):
    fn, inputs = case
    check_finite_differences(fn, *inputs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (2, 1), (3, 2)])
def test_conv1d_matches_torch(dtype, stride, padding):
    rng = np.random.default_rng(stride)
    x, w, b = rng.standard_normal((2, 3, 11)), rng.standard_normal((4, 3, 3)), rng.standard_normal(4)
    check_torch(lambda lib, x, w, b: functional(lib).conv1d(x, w, b, stride, padding), x, w, b, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pool", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize(("kernel", "stride", "padding"), [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 0))])
def test_pooling_matches_torch(dtype, pool, kernel, stride, padding):
    x = np.random.default_rng(0).permutation(2 * 3 * 7 * 8).reshape(2, 3, 7, 8) * 0.1  # no ties
    check_torch(lambda lib, x: getattr(functional(lib), pool)(x, kernel, stride, padding), x, dtype=dtype)


def test_overlapping_max_pool_windows_add_their_gradients_like_torch():
    x = np.arange(16.0).reshape(1, 1, 4, 4)  # the maximum of overlapping windows is shared
    check_torch(lambda lib, x: functional(lib).max_pool2d(x, 3, 1), x)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: conv2d(tape.zeros(1, 3, 5, 5), tape.zeros(2, 2, 3, 3)),
            r"conv2d: input \(1, 3, 5, 5\) and weight",
        ),
        (lambda: conv2d(tape.zeros(1, 3, 2, 2), tape.zeros(2, 3, 3, 3)), r"conv: a \(3, 3\) kernel"),
        (lambda: conv1d(tape.zeros(3, 5), tape.zeros(2, 3, 3)), r"conv1d: expected input \(N, C, L\)"),
        (
            lambda: max_pool2d(tape.zeros(1, 1, 4, 4), 2, padding=2),
            "pool2d: padding 2 should be at most half",
        ),
        (lambda: avg_pool2d(tape.zeros(4, 4), 2), r"pool2d: expected input \(N, C, H, W\)"),
    ],
)
def test_bad_shapes_raise_errors_that_name_the_op_and_the_shapes(call, message):
    with pytest.raises((ValueError, RuntimeError), match=message):
        call()
