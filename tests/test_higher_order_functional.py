"""tape.functional (vjp, hvp, jacobian, hessian) against torch.autograd.functional, and the Hessian
of the makemore MLP's loss with respect to the batchnorm gain."""

import numpy as np
import pytest
from checks import assert_close

import tape
from experiments.notebook import batch, parameters
from experiments.notebook_parity import exercise_3

torch = pytest.importorskip("torch")
TF = torch.autograd.functional


def scalar(lib, x, y):
    return (x.tanh() * y).sum() + (x * x * y.exp()).sum()


def vector(lib, x, y):
    return (x.sigmoid() * y.sum()).cumsum(0) / (1 + x * x)


def inputs(lib, *arrays):
    return tuple(lib.tensor(a, dtype=lib.float64) for a in arrays)


X, Y = np.array([0.3, -0.5, 1.1]), np.array([1.0, 2.0, -0.5])


def assert_same(actual, expected, what=""):
    """Equal structure (tensors, nested tuples) and values."""
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected), what
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{what}[{i}]")
        return
    assert isinstance(actual, tape.Tensor), what
    assert actual.requires_grad == expected.requires_grad, f"{what}: requires_grad"
    assert_close(actual.array, expected.detach().numpy(), what)


def run(name, fn, arrays, single, **kwargs):
    def on(lib):
        xs = inputs(lib, *arrays)
        return xs[0] if single else xs

    ours = getattr(tape.functional, name)(lambda *xs: fn(tape, *xs), on(tape), **kwargs)
    theirs = getattr(TF, name)(lambda *xs: fn(torch, *xs), on(torch), **kwargs)
    assert_same(ours, theirs, name)


@pytest.mark.parametrize("single", [True, False], ids=["one input", "a tuple of inputs"])
def test_jacobian_and_hessian_match_torch(single):
    arrays = (X,) if single else (X, Y)
    fx = (lambda lib, x: vector(lib, x, lib.tensor(Y, dtype=lib.float64))) if single else vector
    sx = (lambda lib, x: scalar(lib, x, lib.tensor(Y, dtype=lib.float64))) if single else scalar
    run("jacobian", fx, arrays, single)
    run("hessian", sx, arrays, single)


def test_vjp_and_hvp_match_torch():
    v = np.array([0.5, -2.0, 1.5])
    for name, fn, w in [("vjp", vector, (v,)), ("hvp", scalar, (v, -v))]:
        ours = getattr(tape.functional, name)(
            lambda *xs, fn=fn: fn(tape, *xs),
            inputs(tape, X, Y),
            inputs(tape, *w) if len(w) > 1 else inputs(tape, *w)[0],
        )
        theirs = getattr(TF, name)(
            lambda *xs, fn=fn: fn(torch, *xs),
            inputs(torch, X, Y),
            inputs(torch, *w) if len(w) > 1 else inputs(torch, *w)[0],
        )
        assert_same(ours, theirs, name)


def test_create_graph_keeps_the_results_differentiable():
    x = tape.tensor(X, requires_grad=True)
    _, hv = tape.functional.hvp(lambda x: (x**4).sum(), x, tape.tensor(np.ones(3)), create_graph=True)
    assert hv.requires_grad
    (g,) = tape.grad(hv.sum(), x)  # d/dx sum(12 x^2) = 24 x
    assert_close(g.array, 24 * X)


def test_hessian_of_the_makemore_mlp_loss_wrt_the_batchnorm_gain_matches_torch():
    params = parameters(n_hidden=8, n_embd=4)
    data = batch(n=16)

    def loss(lib):
        fixed = {k: lib.tensor(v, dtype=lib.float64) for k, v in params.items() if k != "bngain"}
        indices = {k: lib.tensor(v) if isinstance(v, np.ndarray) else v for k, v in data.items()}
        return lambda bngain: exercise_3(lib, bngain=bngain, **fixed, **indices)["loss_fast"]

    ours = tape.functional.hessian(loss(tape), tape.tensor(params["bngain"]))
    theirs = TF.hessian(loss(torch), torch.tensor(params["bngain"]))
    assert ours.shape == (1, 8, 1, 8)
    # fused batchnorm and cross-entropy against torch's decomposed batchnorm and F.cross_entropy:
    # the same function summed in another order, so entries near 0 are judged by the largest
    np.testing.assert_allclose(
        ours.array, theirs.numpy(), rtol=1e-9, atol=1e-12 * np.abs(theirs.numpy()).max()
    )


def test_unsupported_options_and_a_missing_v_raise():
    x = tape.tensor(X)
    with pytest.raises(RuntimeError, match="v can only be None"):
        tape.functional.hvp(lambda x: (x**3).sum(), x)
    with pytest.raises(NotImplementedError, match="strict=True"):
        tape.functional.jacobian(lambda x: x * 2, x, strict=True)
    assert tape.autograd.functional.hessian is tape.functional.hessian and tape.autograd.grad is tape.grad


def test_a_v_of_another_shape_and_empty_inputs_are_refused_as_torch_refuses_them():
    x = tape.tensor([1.0, 2.0, 3.0], dtype=tape.float64)
    with pytest.raises(RuntimeError, match=r"hvp: v has invalid size: should be \(3,\) but got \(1,\)"):
        tape.functional.hvp(lambda a: (a**3).sum(), x, tape.ones(1, dtype=tape.float64))  # would broadcast
    with pytest.raises(RuntimeError, match="v has invalid size"):
        torch.autograd.functional.hvp(lambda a: (a**3).sum(), torch.tensor([1.0, 2.0, 3.0]), torch.ones(1))
    w = tape.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="inputs argument cannot be empty"):
        tape.grad((w * 2).sum(), [])
    with pytest.raises(RuntimeError, match="cannot be empty"):
        torch.autograd.grad((torch.ones(1, requires_grad=True) * 2).sum(), [])
