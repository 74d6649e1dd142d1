"""nn.optim against torch.optim: 20 steps on a small model from the same initial weights in
float64, every parameter equal after every step; parameter groups, learning-rate changes,
state dicts, zero_grad."""

import numpy as np
import pytest

import nn
import nn.functional as F
import tape

torch = pytest.importorskip("torch")

STEPS = 20
RTOL = 1e-12


def rng(seed=0):
    return np.random.default_rng(seed)


def initial_weights(seed=0):
    g = rng(seed)
    return {
        "W1": g.standard_normal((4, 8)),
        "b1": g.standard_normal(8) * 0.1,
        "W2": g.standard_normal((8, 3)),
        "b2": np.zeros(3),
    }


def batches(seed=1):
    g = rng(seed)
    return [(g.standard_normal((16, 4)), g.integers(0, 3, 16)) for _ in range(STEPS)]


def loss_of(lib, p, x, y):
    """A two-layer tanh network's cross-entropy, written once for both libraries."""
    functional = F if lib is tape else torch.nn.functional
    return functional.cross_entropy(lib.tanh(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"], y)


class Run:
    """One library's parameters and optimizer, stepping through the same batches."""

    def __init__(self, lib, optimizer, options, groups=None):
        self.lib = lib
        self.p = {name: lib.tensor(a, requires_grad=True) for name, a in initial_weights().items()}
        params = (
            [{"params": [self.p[n] for n in names], **extra} for names, extra in groups]
            if groups
            else self.p.values()
        )
        self.optimizer = optimizer(params, **options)

    def backward(self, x, y):
        self.optimizer.zero_grad()
        loss_of(self.lib, self.p, self.lib.tensor(x), self.lib.tensor(y)).backward()

    def step(self, x, y):
        self.backward(x, y)
        self.optimizer.step()

    def gradients(self):
        return {n: t.grad.numpy() for n, t in self.p.items()}

    def arrays(self):
        return {n: t.detach().numpy() for n, t in self.p.items()}


OPTIMIZERS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.1, "momentum": 0.8, "dampening": 0.5, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.02, "weight_decay": 0.5, "amsgrad": True}),
]


def assert_same_parameters(ours, theirs, step):
    for name, value in theirs.arrays().items():
        np.testing.assert_allclose(
            ours.arrays()[name], value, rtol=RTOL, atol=0, err_msg=f"{name} after step {step}"
        )


def step_with_torchs_gradients(ours, theirs, x, y):
    """Both backpropagate; tape's gradients must equal torch's, and are then replaced by them:
    rounding in the two autograds (~1e-16) must not be what decides the optimizers' comparison
    (Adam divides by sqrt of tiny second moments and would amplify it over 20 steps)."""
    ours.backward(x, y)
    theirs.backward(x, y)
    for name, grad in theirs.gradients().items():
        np.testing.assert_allclose(ours.p[name].grad.array, grad, rtol=1e-10, atol=1e-12 * np.abs(grad).max())
        ours.p[name].grad = grad.copy()
    ours.optimizer.step()
    theirs.optimizer.step()


@pytest.mark.parametrize(("name", "options"), OPTIMIZERS)
def test_each_step_equals_torch_optim(name, options):
    ours = Run(tape, getattr(nn.optim, name), options)
    theirs = Run(torch, getattr(torch.optim, name), options)
    for step, (x, y) in enumerate(batches(), 1):
        step_with_torchs_gradients(ours, theirs, x, y)
        assert_same_parameters(ours, theirs, step)
    assert ours.arrays()["W1"].dtype == np.float64


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_parameter_groups_and_learning_rate_changes_follow_torch(name):
    groups = [(["W1", "b1"], {"lr": 0.05}), (["W2", "b2"], {})]
    ours = Run(tape, getattr(nn.optim, name), {"lr": 0.01}, groups)
    theirs = Run(torch, getattr(torch.optim, name), {"lr": 0.01}, groups)
    assert [g["lr"] for g in ours.optimizer.param_groups] == [0.05, 0.01]
    for step, (x, y) in enumerate(batches(), 1):
        if step == STEPS // 2:
            for run in (ours, theirs):
                for g in run.optimizer.param_groups:  # the torch idiom for a learning-rate decay
                    g["lr"] = g["lr"] / 10
        step_with_torchs_gradients(ours, theirs, x, y)
        assert_same_parameters(ours, theirs, step)


@pytest.mark.parametrize(("name", "options"), OPTIMIZERS)
def test_the_state_kept_per_parameter_is_torchs(name, options):
    """Plain SGD keeps none (its state dict's state is empty); momentum and Adam keep torch's keys."""
    ours = Run(tape, getattr(nn.optim, name), options)
    theirs = Run(torch, getattr(torch.optim, name), options)
    for x, y in batches()[:2]:
        ours.step(x, y)
        theirs.step(x, y)
    expected = {i: sorted(s) for i, s in theirs.optimizer.state_dict()["state"].items()}
    assert {i: sorted(s) for i, s in ours.optimizer.state_dict()["state"].items()} == expected


@pytest.mark.parametrize(("name", "options"), [OPTIMIZERS[2], OPTIMIZERS[6]])
def test_a_state_dict_resumes_the_run_exactly(name, options):
    uninterrupted = Run(tape, getattr(nn.optim, name), options)
    first_half = Run(tape, getattr(nn.optim, name), options)
    data = batches()
    for x, y in data[: STEPS // 2]:
        uninterrupted.step(x, y)
        first_half.step(x, y)
    saved = first_half.optimizer.state_dict()
    assert sorted(saved) == ["param_groups", "state"] and saved["param_groups"][0]["params"] == [0, 1, 2, 3]
    # a different lr: the state dict brings the saved one back
    resumed = Run(tape, getattr(nn.optim, name), {**options, "lr": 123.0})
    for p, q in zip(resumed.p.values(), first_half.p.values()):
        p.array[...] = q.array
    resumed.optimizer.load_state_dict(saved)
    first_half.step(*data[0])  # the saved state is a copy: stepping the original does not change it
    for x, y in data[STEPS // 2 :]:
        uninterrupted.step(x, y)
        resumed.step(x, y)
    for n, value in uninterrupted.arrays().items():
        np.testing.assert_array_equal(resumed.arrays()[n], value, err_msg=n)


def test_load_state_dict_refuses_other_groups():
    optimizer = nn.optim.SGD([tape.tensor([1.0], requires_grad=True)], lr=0.1)
    other = nn.optim.SGD(
        [tape.tensor([1.0], requires_grad=True), tape.tensor([2.0], requires_grad=True)], lr=0.1
    )
    with pytest.raises(ValueError, match="parameter groups do not match"):
        optimizer.load_state_dict(other.state_dict())


@pytest.mark.parametrize("optimizer", [nn.optim.SGD, nn.optim.Adam, nn.optim.AdamW])
def test_parameters_without_a_gradient_are_left_alone(optimizer):
    used, unused = tape.tensor([1.0, -2.0], requires_grad=True), tape.tensor([5.0], requires_grad=True)
    opt = optimizer([used, unused], lr=0.1, weight_decay=0.1)
    (used * used).sum().backward()
    opt.step()
    np.testing.assert_array_equal(unused.array, [5.0])
    assert not np.array_equal(used.array, [1.0, -2.0])
    assert unused not in opt.state


def test_zero_grad_sets_none_or_zeroes_in_place():
    w = tape.tensor([1.0, 2.0], requires_grad=True)
    opt = nn.optim.Adam([w])
    (w * w).sum().backward()
    grad = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is grad and not grad.array.any()
    opt.zero_grad()
    assert w.grad is None


def test_the_lr_shorthand_sets_every_group():
    a, b = tape.tensor([1.0], requires_grad=True), tape.tensor([1.0], requires_grad=True)
    opt = nn.SGD([{"params": [a], "lr": 0.5}, {"params": [b]}], lr=0.1)
    assert opt.lr == 0.5
    opt.lr = 0.01
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.01]


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda p: nn.optim.SGD([], lr=0.1), ValueError, "empty parameter list"),
        (lambda p: nn.optim.SGD([p], lr=0.1, nesterov=True), ValueError, "Nesterov"),
        (lambda p: nn.optim.Adam([p], betas=(0.9, 1.0)), ValueError, "invalid"),
        (lambda p: nn.optim.SGD([p, p * 2], lr=0.1), ValueError, "leaf tensors that require grad"),
        (lambda p: nn.optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1), ValueError, "more than one"),
        (lambda p: nn.optim.SGD([{"params": [p], "betas": 1}], lr=0.1), TypeError, "unknown options"),
    ],
)
def test_bad_arguments_are_refused(make, error, message):
    with pytest.raises(error, match=message):
        make(tape.tensor([1.0], requires_grad=True))


def test_a_module_trains_with_adamw_from_its_parameters():
    """The torch loop on an nn model: parameters(), zero_grad, backward, step."""
    model = nn.Sequential(nn.Linear(4, 16, generator=rng(2)), nn.ReLU(), nn.Linear(16, 3, generator=rng(3)))
    optimizer = nn.optim.AdamW(model.parameters(), lr=0.05)
    x, y = batches()[0]
    x = x.astype(np.float32)
    losses = []
    for _ in range(50):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
