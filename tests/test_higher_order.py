"""Second derivatives of every primitive (create_graph=True) against torch and against finite
differences of the first-order gradient, float64; the API of tape.grad and backward(create_graph)."""

import numpy as np
import pytest
from cases import CASES, Case
from checks import check_second_order_finite_differences, check_second_order_torch
from coverage import covers
from hypothesis import given, settings
from hypothesis import strategies as st

import tape

torch = pytest.importorskip("torch")


@covers("torch2", *CASES, each="name")
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_op_second_derivatives_match_torch(name, data):
    case = Case(*data.draw(CASES[name]))
    check_second_order_torch(case.fn, *case.inputs, requires_grad=case.requires_grad)


@covers("fd2", *CASES, each="name")
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_op_second_derivatives_match_finite_differences(name, data):
    case = Case(*data.draw(CASES[name]))
    check_second_order_finite_differences(
        case.fn, *case.inputs, requires_grad=case.requires_grad, eps=case.eps
    )


def leaf(values):
    return tape.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


def test_grad_returns_gradients_without_touching_dot_grad():
    x, y = leaf([0.5, -1.0]), leaf([2.0, 3.0])
    gx, gy = tape.grad((x * y).sum(), (x, y))
    np.testing.assert_array_equal(gx.array, [2.0, 3.0])
    np.testing.assert_array_equal(gy.array, [0.5, -1.0])
    assert x.grad is None and y.grad is None
    assert not gx.requires_grad and gx.grad_fn is None


def test_grad_of_a_non_leaf_and_grad_outputs():
    x = leaf([0.5, -1.0])
    h = x.tanh()
    (gh,) = tape.grad((h * h).sum(), h)
    np.testing.assert_allclose(gh.array, 2 * np.tanh([0.5, -1.0]))
    (gx,) = tape.grad(x * 3.0, x, grad_outputs=tape.tensor([1.0, 2.0], dtype=tape.float64))
    np.testing.assert_array_equal(gx.array, [3.0, 6.0])


def test_grad_errors_as_torch():
    x, unused = leaf([1.0, 2.0]), leaf([3.0])
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad"):
        tape.grad(tape.tensor([1.0]).sum(), x)
    with pytest.raises(RuntimeError, match="does not require grad"):
        tape.grad((x * 2).sum(), tape.tensor([1.0]))
    with pytest.raises(RuntimeError, match="appears to not have been used in the graph"):
        tape.grad((x * 2).sum(), (x, unused))
    assert tape.grad((x * 2).sum(), (x, unused), allow_unused=True)[1] is None
    with pytest.raises(RuntimeError, match="implicitly created only for scalar outputs"):
        tape.grad(x * 2, x)


def test_retain_graph_defaults_to_create_graph():
    x = leaf([0.3])
    y = (x.exp() * x).sum()
    tape.grad(y, x)  # frees the saved arrays
    with pytest.raises(RuntimeError, match="already backpropagated"):
        tape.grad(y, x)
    y = (x.exp() * x).sum()
    tape.grad(y, x, create_graph=True)
    tape.grad(y, x)  # retained by create_graph


def test_backward_create_graph_leaves_a_differentiable_grad():
    x = leaf([0.3, -0.4])
    (x**3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    np.testing.assert_allclose(x.grad.array, 3 * x.array**2)
    (g,) = tape.grad(x.grad.sum(), x)
    np.testing.assert_allclose(g.array, 6 * x.array)


def test_backward_inputs_touches_only_those():
    x, y = leaf([1.0]), leaf([2.0])
    (x * y).sum().backward(inputs=[x])
    assert y.grad is None
    np.testing.assert_array_equal(x.grad.array, [2.0])


def test_the_wengert_list_marks_the_entries_a_backward_recorded():
    x = leaf([0.3, -0.7])
    (g,) = tape.grad(x.tanh().sum(), x, create_graph=True)
    entries = tape.wengert_list(g)
    marked = [tape.recorded_by_backward(e) for e in entries]
    assert marked == [False, True, True, True]
    text = str(entries).splitlines()
    assert "backward of tanh" not in text[1] and all("<- backward of tanh" in line for line in text[2:])


def test_third_derivatives_of_a_scalar_chain_match_closed_forms():
    # f(x) = log(exp(tanh(x)) ** 3) = 3 tanh(x): f' = 3 (1 - t^2), f'' = -6 t (1 - t^2),
    # f''' = -6 (1 - t^2) (1 - 3 t^2)
    x = leaf([0.4, -1.2, 2.0])
    t = np.tanh(x.array)
    f = (x.tanh().exp() ** 3).log().sum()
    (d1,) = tape.grad(f, x, create_graph=True)
    (d2,) = tape.grad(d1.sum(), x, create_graph=True)
    (d3,) = tape.grad(d2.sum(), x)
    np.testing.assert_allclose(d1.array, 3 * (1 - t**2), rtol=1e-12)
    np.testing.assert_allclose(d2.array, -6 * t * (1 - t**2), rtol=1e-12)
    np.testing.assert_allclose(d3.array, -6 * (1 - t**2) * (1 - 3 * t**2), rtol=1e-10)


KINKS = {
    "relu": (lambda lib, x: x.relu(), (np.array([-1.0, 0.0, 0.5]),)),
    "abs": (lambda lib, x: x.abs(), (np.array([-1.0, 0.0, 0.5]),)),
    "clamp": (lambda lib, x: x.clamp(-0.5, 0.5), (np.array([-0.5, 0.0, 0.5, 0.7]),)),
    "max": (lambda lib, x: x.max(), (np.array([3.0, 1.0, 3.0]),)),
    "max_dim": (lambda lib, x: x.max(1).values, (np.array([[2.0, 2.0], [1.0, 2.0]]),)),
    "maximum": (lambda lib, a, b: lib.maximum(a, b), (np.array([1.0, 2.0, 0.0]), np.array([1.0, 1.0, 0.0]))),
    "minimum": (lambda lib, a, b: lib.minimum(a, b), (np.array([1.0, 2.0, 0.0]), np.array([1.0, 1.0, 0.0]))),
    "where": (
        lambda lib, a, b: lib.where(a > 0, a * a, b),
        (np.array([0.0, 1.0, -1.0]), np.array([2.0, 3.0, 4.0])),
    ),
}


@covers("torch2", "relu", "abs", "clamp", "max", "max_dim", "maximum", "minimum", "where", each="name")
def test_piecewise_second_derivatives_follow_torch_at_the_kinks(name):
    fn, inputs = KINKS[name]
    check_second_order_torch(fn, *inputs)


def test_create_graph_gives_each_input_its_own_grad_tensor():
    a, b = leaf([1.0]), leaf([2.0])
    (a * 3 + b).sum().backward(create_graph=True)
    assert a.grad is not b.grad
    b.grad.array[...] = 0  # as zero_grad(set_to_none=False) does
    np.testing.assert_array_equal(a.grad.array, [3.0])


def test_promoted_inputs_are_cast_on_the_tape_and_constant_operands_stay_constant():
    values = np.array([0.5, -1.5])
    x32 = tape.tensor(values.astype(np.float32), requires_grad=True)
    y = leaf([2.0, 3.0])
    (gx,) = tape.grad((x32 * y * x32).sum(), x32, create_graph=True)  # 2 x y, promoted to float64
    (hy,) = tape.grad(gx.sum(), y)
    np.testing.assert_allclose(hy.array, 2 * values)
    x = leaf(values)
    (g,) = tape.grad((x * values).sum(), x, create_graph=True)  # values equal x's, but a constant
    assert not g.requires_grad or tape.grad(g.sum(), x, allow_unused=True)[0] is None


@settings(max_examples=5, deadline=None)
@given(data=st.data())
@pytest.mark.parametrize("name", list(CASES))
def test_op_third_derivatives_match_torch(name, data):
    # the graph VJPs are themselves differentiable: backward of backward of backward
    case = Case(*data.draw(CASES[name]))
    check_second_order_torch(case.fn, *case.inputs, requires_grad=case.requires_grad, order=3)


def composite_cases():
    import nn.functional as NF

    TF = torch.nn.functional
    g = np.random.default_rng(0)

    def lib_of(lib, ours, theirs):
        return ours if lib is tape else theirs

    return {
        "conv2d": (
            lambda lib, x, w, b: lib_of(lib, tape.conv2d, TF.conv2d)(x, w, b, padding=1),
            (g.standard_normal((2, 3, 5, 5)), g.standard_normal((4, 3, 3, 3)), g.standard_normal(4)),
        ),
        "max_pool2d": (
            lambda lib, x: lib_of(lib, tape, TF).max_pool2d(x, 2).tanh(),
            (g.standard_normal((1, 2, 4, 4)),),
        ),
        "avg_pool2d": (
            lambda lib, x: lib_of(lib, tape, TF).avg_pool2d(x, 2).tanh(),
            (g.standard_normal((1, 2, 4, 4)),),
        ),
        "layer_norm": (
            lambda lib, x, w, b: lib_of(lib, NF, TF).layer_norm(x, (5,), w, b),
            (g.standard_normal((3, 5)), g.standard_normal(5), g.standard_normal(5)),
        ),
        "cross_entropy with label smoothing": (
            lambda lib, x, y: lib_of(lib, NF, TF).cross_entropy(x, y, label_smoothing=0.1),
            (g.standard_normal((4, 5)), g.integers(0, 5, 4)),
        ),
        "norm": (lambda lib, x: x.norm(), (g.standard_normal((4, 5)),)),
    }


@pytest.mark.parametrize("name", list(composite_cases()))
def test_composites_second_derivatives_match_torch(name):
    fn, inputs = composite_cases()[name]
    check_second_order_torch(fn, *inputs)


def test_create_graph_fills_retained_gradients_of_non_leaves():
    x = leaf([1.0, 2.0])
    h = x.tanh()
    h.retain_grad()
    (h * h).sum().backward(create_graph=True)
    np.testing.assert_allclose(h.grad.array, 2 * np.tanh(x.array))
    (d,) = tape.grad(h.grad.sum(), x)  # d/dx of 2 tanh(x)
    np.testing.assert_allclose(d.array, 2 * (1 - np.tanh(x.array) ** 2))
