"""The fused ops (notebook exercises 2 and 3) against torch, finite differences and the tape
graphs they replace."""

import numpy as np
import pytest
from checks import assert_close, check_finite_differences, check_torch
from coverage import covers

import tape
from experiments.notebook_parity import cross_entropy

torch = pytest.importorskip("torch")
F = torch.nn.functional

DTYPES = [np.float32, np.float64]


def rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- linear


def linear(lib, x, W, b):
    return tape.linear(x, W, b) if lib is tape else x @ W + b


@covers("torch", "linear")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape", [(32, 30), (30,), (4, 5, 30)])
def test_linear_matches_torch(dtype, x_shape):
    g = rng()
    check_torch(
        linear, g.standard_normal(x_shape), g.standard_normal((30, 20)), g.standard_normal(20), dtype=dtype
    )


@covers("fd", "linear")
@pytest.mark.parametrize("x_shape", [(6, 4), (4,), (2, 3, 4)])
def test_linear_finite_differences(x_shape):
    g = rng(1)
    check_finite_differences(
        linear, g.standard_normal(x_shape), g.standard_normal((4, 3)), g.standard_normal(3)
    )


def test_linear_is_one_entry_equal_to_matmul_plus_bias():
    g = rng(2)
    x, W, b = (
        tape.tensor(a, requires_grad=True)
        for a in (g.standard_normal((8, 5)), g.standard_normal((5, 3)), g.standard_normal(3))
    )
    fused = tape.linear(x, W, b)
    assert [e.op.name for e in tape.wengert_list(fused)] == ["linear"]
    assert_close(fused.array, (x @ W + b).array, "linear")
    assert tape.linear(x, W).shape == (8, 3)


def test_linear_rejects_mismatched_shapes():
    x, W = tape.tensor(np.zeros((8, 5))), tape.tensor(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"linear: .*\(8, 5\), \(4, 3\) and \(3,\)"):
        tape.linear(x, W, tape.tensor(np.zeros(3)))


# ---------------------------------------------------------------- cross-entropy


def decomposed_cross_entropy(logits, Yb):
    """The notebook's exercise-1 chain of primitives that the fused op replaces."""
    n = logits.shape[0]
    logit_maxes = logits.max(1, keepdim=True).values
    counts = (logits - logit_maxes).exp()
    probs = counts * counts.sum(1, keepdim=True) ** -1
    return -probs.log()[range(n), Yb].mean()


@covers("torch", "cross_entropy")
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_matches_torch(dtype):
    g = rng()
    check_torch(cross_entropy, g.standard_normal((32, 27)) * 3, g.integers(0, 27, 32), dtype=dtype)


@covers("fd", "cross_entropy")
def test_cross_entropy_finite_differences():
    g = rng(1)
    check_finite_differences(cross_entropy, g.standard_normal((6, 5)), g.integers(0, 5, 6))


@pytest.mark.parametrize("scale", [1e2, 1e4, 1e30])
def test_cross_entropy_is_stable_for_large_logits(scale):
    g = rng(2)
    logits = g.standard_normal((8, 27)) * scale
    Yb = g.integers(0, 27, 8)
    ours = tape.tensor(logits, requires_grad=True)
    theirs = torch.tensor(logits, requires_grad=True)
    loss, expected = tape.cross_entropy(ours, Yb), F.cross_entropy(theirs, torch.tensor(Yb))
    loss.backward()
    expected.backward()
    assert np.isfinite(loss.item()) and np.all(np.isfinite(ours.grad))
    assert_close(loss.array, expected.detach().numpy(), "loss")
    assert_close(ours.grad, theirs.grad.numpy(), "dlogits")


def test_cross_entropy_equals_the_decomposed_graph_it_replaces():
    g = rng(3)
    logits, Yb = g.standard_normal((32, 27)), g.integers(0, 27, 32)
    fused, decomposed = tape.tensor(logits, requires_grad=True), tape.tensor(logits, requires_grad=True)
    loss = tape.cross_entropy(fused, Yb)
    reference = decomposed_cross_entropy(decomposed, Yb)
    loss.backward()
    reference.backward()
    assert_close(loss.array, reference.array, "loss")
    assert_close(fused.grad, decomposed.grad, "dlogits")
    assert [e.op.name for e in tape.wengert_list(loss)] == ["cross_entropy"]


def test_cross_entropy_accepts_tensor_targets_and_rejects_bad_shapes():
    logits = tape.tensor(np.zeros((4, 3)), requires_grad=True)
    assert np.isclose(tape.cross_entropy(logits, tape.tensor([0, 1, 2, 0])).item(), np.log(3))
    with pytest.raises(ValueError, match=r"logits \(n, classes\) and targets \(n,\)"):
        tape.cross_entropy(logits, np.zeros(3, dtype=np.int64))
    for bad in ([0, 1, 3, 0], [0, -1, 2, 0]):  # a negative target must not wrap around
        with pytest.raises(IndexError, match=r"cross_entropy: targets must be integers in \[0, 3\)"):
            tape.cross_entropy(logits, np.array(bad))


# ---------------------------------------------------------------- batchnorm


def batchnorm(unbiased):
    def fn(lib, hprebn, bngain, bnbias):
        if lib is tape:
            return tape.batchnorm(hprebn, bngain, bnbias, unbiased=unbiased)
        if not unbiased:  # what torch.nn.BatchNorm1d computes in training mode
            return F.batch_norm(hprebn, None, None, bngain.reshape(-1), bnbias.reshape(-1), training=True)
        return decomposed_batchnorm(hprebn, bngain, bnbias, unbiased)

    return fn


def decomposed_batchnorm(hprebn, bngain, bnbias, unbiased=True):
    """The notebook's exercise-1 batchnorm chain, runs on tape and torch alike."""
    n = hprebn.shape[0]
    bnmeani = 1 / n * hprebn.sum(0, keepdim=True)
    bndiff = hprebn - bnmeani
    bnvar = 1 / (n - int(unbiased)) * (bndiff**2).sum(0, keepdim=True)
    bnraw = bndiff * (bnvar + 1e-5) ** -0.5
    return bngain * bnraw + bnbias


def batchnorm_inputs(seed, n=32, dim=64, gain_shape=None):
    g = rng(seed)
    gain_shape = gain_shape or (dim,)
    return (
        g.standard_normal((n, dim)) * 2 + 1,
        g.standard_normal(gain_shape) * 0.1 + 1,
        g.standard_normal(gain_shape) * 0.1,
    )


@covers("torch", "batchnorm")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("gain_shape", [(64,), (1, 64)])
def test_batchnorm_matches_torch(dtype, unbiased, gain_shape):
    check_torch(batchnorm(unbiased), *batchnorm_inputs(4, gain_shape=gain_shape), dtype=dtype)


@covers("fd", "batchnorm")
@pytest.mark.parametrize("unbiased", [True, False])
def test_batchnorm_finite_differences(unbiased):
    check_finite_differences(batchnorm(unbiased), *batchnorm_inputs(5, n=6, dim=3))


@pytest.mark.parametrize("unbiased", [True, False])
def test_batchnorm_equals_the_decomposed_graph_it_replaces(unbiased):
    arrays = batchnorm_inputs(6, gain_shape=(1, 64))
    fused = [tape.tensor(a, requires_grad=True) for a in arrays]
    decomposed = [tape.tensor(a, requires_grad=True) for a in arrays]
    out = tape.batchnorm(*fused, unbiased=unbiased)
    reference = decomposed_batchnorm(*decomposed, unbiased=unbiased)
    upstream = rng(7).standard_normal(out.shape)
    out.backward(upstream)
    reference.backward(upstream)
    assert_close(out.array, reference.array, "hpreact")
    for name, a, b in zip(["dhprebn", "dbngain", "dbnbias"], fused, decomposed):
        assert_close(a.grad, b.grad, name)
    assert [e.op.name for e in tape.wengert_list(out)] == ["batchnorm"]


def test_batchnorm_of_one_example_raises_like_torch():
    one = [tape.tensor(a, requires_grad=True) for a in batchnorm_inputs(8, n=1, dim=4)]
    with pytest.raises(ValueError, match="more than 1 value per feature"):
        tape.batchnorm(*one)
    with pytest.raises(ValueError, match=r"shape \(n, features\)"):
        tape.batchnorm(tape.tensor(np.zeros((2, 3, 4))), *one[1:])
