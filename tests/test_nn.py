"""nn modules against torch, parameter naming and scopes, state dicts, SGD, and a training
trajectory that follows torch step by step."""

import numpy as np
import pytest
from checks import assert_close

import nn
import tape

torch = pytest.importorskip("torch")
F = torch.nn.functional

DTYPES = [np.float32, np.float64]


def rng(seed=0):
    return np.random.default_rng(seed)


def torch_parameters(module):
    return {name: torch.tensor(p.array, requires_grad=True) for name, p in module.named_parameters()}


def assert_matches_torch(module, torch_forward, x, seed=0, theirs=None):
    """``module(x)`` equals ``torch_forward(theirs, x)``: the output, and after backpropagating
    one random gradient, every parameter's and x's gradient. ``theirs`` maps parameter names to
    torch tensors, by default copies of the module's."""
    theirs = torch_parameters(module) if theirs is None else theirs
    floating = x.dtype.kind == "f"
    ours_x = tape.tensor(x, requires_grad=floating)
    theirs_x = torch.tensor(x, requires_grad=floating)
    out, expected = module(ours_x), torch_forward(theirs, theirs_x)
    assert_close(out.array, expected.detach().numpy(), "output")
    upstream = rng(seed).standard_normal(out.shape).astype(out.dtype)
    out.backward(upstream)
    expected.backward(torch.from_numpy(upstream))
    for name, p in module.named_parameters():
        assert_close(p.grad, theirs[name].grad.numpy(), f"d{name}")
    if floating:
        assert_close(ours_x.grad, theirs_x.grad.numpy(), "dx")


# ---------------------------------------------------------------- modules against torch


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_matches_torch(dtype):
    layer = nn.Linear(30, 20, generator=rng(1), dtype=dtype)
    layer.bias.array[:] = rng(2).standard_normal(20)
    assert layer.weight.shape == (30, 20) and layer.weight.dtype == dtype
    x = rng(3).standard_normal((8, 30)).astype(dtype)
    assert_matches_torch(layer, lambda p, x: F.linear(x, p["weight"].T, p["bias"]), x)


def test_linear_without_bias_and_its_init():
    layer = nn.Linear(400, 300, bias=False, generator=rng(4))
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    assert abs(layer.weight.array.std() - 400**-0.5) < 0.05 * 400**-0.5  # randn / sqrt(fan_in)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("as_tensor", [False, True])
def test_embedding_and_flatten_match_torch(dtype, as_tensor):
    model = nn.Sequential(nn.Embedding(27, 10, generator=rng(5), dtype=dtype), nn.Flatten())
    index = rng(6).integers(0, 27, (16, 3))
    out = model(tape.tensor(index) if as_tensor else index)
    assert out.shape == (16, 30)
    assert_matches_torch(model, lambda p, x: F.embedding(x, p["0.weight"]).view(16, -1), index)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_matches_torch(dtype):
    assert_matches_torch(nn.Tanh(), lambda p, x: torch.tanh(x), rng(7).standard_normal((4, 5)).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm1d_biased_matches_torch_in_training_evaluation_and_running_statistics(dtype):
    ours = nn.BatchNorm1d(64, unbiased=False, dtype=dtype)
    theirs = torch.nn.BatchNorm1d(64, dtype=torch.float64 if dtype == np.float64 else torch.float32)
    g = rng(8)
    for step in range(5):
        ours.weight.array[:] = g.standard_normal(64)
        ours.bias.array[:] = g.standard_normal(64)
        with torch.no_grad():
            theirs.weight.copy_(torch.from_numpy(ours.weight.array))
            theirs.bias.copy_(torch.from_numpy(ours.bias.array))
        ours.zero_grad(), theirs.zero_grad()
        x = (g.standard_normal((32, 64)) * 3 + 2).astype(dtype)
        assert_matches_torch(
            ours, lambda p, x: theirs(x), x, seed=step, theirs=dict(theirs.named_parameters())
        )
        assert_close(ours.running_mean, theirs.running_mean.numpy(), "running_mean")
        assert_close(ours.running_var, theirs.running_var.numpy(), "running_var")
    ours.eval()
    theirs.eval()
    ours.zero_grad(), theirs.zero_grad()
    x = (g.standard_normal((7, 64)) + 1).astype(dtype)
    assert_matches_torch(ours, lambda p, x: theirs(x), x, theirs=dict(theirs.named_parameters()))


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm1d_unbiased_is_the_notebooks_batchnorm(dtype):
    layer = nn.BatchNorm1d(64, momentum=0.1, dtype=dtype)  # unbiased=True by default, as the notebook
    x = (rng(9).standard_normal((32, 64)) * 3 + 2).astype(dtype)

    def notebook(p, x):
        bnmean, bnvar = x.mean(0, keepdim=True), x.var(0, keepdim=True, unbiased=True)
        return p["weight"] * (x - bnmean) / torch.sqrt(bnvar + 1e-5) + p["bias"]

    assert_matches_torch(layer, notebook, x)
    expected_var = 0.9 * 1 + 0.1 * x.astype(np.float64).var(0, ddof=1)
    assert_close(layer.running_mean, (0.1 * x.astype(np.float64).mean(0)).astype(dtype), "running_mean")
    assert_close(layer.running_var, expected_var.astype(dtype), "running_var")


def test_batchnorm1d_of_one_example_raises_in_training_but_not_in_evaluation():
    layer = nn.BatchNorm1d(4)
    x = tape.tensor(np.ones((1, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="more than 1 value per feature when training"):
        layer(x)
    assert layer.eval()(x).shape == (1, 4)


# ---------------------------------------------------------------- names, scopes, modes


def mlp(seed=0, dtype=np.float32, n_hidden=16, unbiased=True):
    g = rng(seed)
    return nn.Sequential(
        nn.Embedding(27, 10, generator=g, dtype=dtype),
        nn.Flatten(),
        nn.Linear(30, n_hidden, generator=g, dtype=dtype),
        nn.BatchNorm1d(n_hidden, unbiased=unbiased, dtype=dtype),
        nn.Tanh(),
        nn.Linear(n_hidden, 27, generator=g, dtype=dtype),
    )


def test_parameters_are_named_by_their_path_from_the_outermost_module():
    model = mlp()
    names = ["0.weight", "2.weight", "2.bias", "3.weight", "3.bias", "5.weight", "5.bias"]
    assert [n for n, _ in model.named_parameters()] == names
    assert [p.name for p in model.parameters()] == names
    assert all(p.requires_grad and isinstance(p, tape.Tensor) for p in model.parameters())
    assert [n for n, _ in model.named_buffers()] == ["3.running_mean", "3.running_var"]
    assert model[2] is model.layers[2] and len(model) == 6 and list(model)[5] is model[5]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = mlp()
            self.head = nn.Linear(27, 2)

        def forward(self, x):
            return self.head(self.body(x))

    net = Net()  # attaching renames everything below, however deep
    assert net.body[2].weight.name == "body.2.weight" and net.head.bias.name == "head.bias"
    assert [n for n, _ in net.body.named_parameters()][:2] == ["0.weight", "2.weight"]


def test_each_module_call_records_its_entries_in_a_scope():
    model = mlp()
    loss = nn.cross_entropy(model(rng().integers(0, 27, (8, 3))), rng().integers(0, 27, 8))
    scopes = {e.op.name: e.scope for e in tape.wengert_list(loss)}
    assert scopes == {
        "gather": "Sequential/Embedding 0",
        "view": "Sequential/Flatten 1",
        "linear": "Sequential/Linear 5",
        "batchnorm": "Sequential/BatchNorm1d 3",
        "tanh": "Sequential/Tanh 4",
        "cross_entropy": None,
    }
    first_linear = next(e.scope for e in tape.wengert_list(loss) if e.op.name == "linear")
    assert first_linear == "Sequential/Linear 2"
    with tape.scope("outer"):
        entry = tape.wengert_list(nn.Tanh()(tape.tensor([1.0], requires_grad=True)))[0]
    assert entry.scope == "outer/Tanh"


def test_train_and_eval_reach_every_module():
    model = mlp()
    assert model.eval() is model and not any(m.training for m in model.modules())
    assert all(m.training for m in model.train().modules())


def test_repr_shows_the_layers():
    text = repr(mlp())
    assert "(2): Linear(30, 16, bias=True)" in text and "(3): BatchNorm1d(16" in text


# ---------------------------------------------------------------- state dicts


def test_state_dict_round_trip():
    trained, fresh = mlp(seed=1), mlp(seed=2)
    X = rng(3).integers(0, 27, (32, 3))
    trained(X)  # moves the running statistics off their initial values
    state = trained.state_dict()
    assert set(state) == {n for n, _ in trained.named_parameters()} | {"3.running_mean", "3.running_var"}
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert not np.shares_memory(state["2.weight"], trained[2].weight.array)  # copies, not views
    weight = fresh[2].weight
    fresh.load_state_dict(state)
    assert fresh[2].weight is weight  # loaded in place: optimizers keep their parameters
    for name, value in fresh.state_dict().items():
        np.testing.assert_array_equal(value, state[name], err_msg=name)
    trained.eval(), fresh.eval()
    np.testing.assert_array_equal(fresh(X).array, trained(X).array)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("3.running_var"), r"missing: 3\.running_var"),
        (lambda s: s.update(extra=np.zeros(1)), "unexpected: extra"),
        (lambda s: s.update({"5.bias": np.zeros(5, np.float32)}), r"5\.bias: the model has float32\[27\]"),
        (lambda s: s.update({"0.weight": np.zeros((27, 10))}), r"state dict float64\[27, 10\]"),
    ],
)
def test_load_state_dict_rejects_a_state_that_does_not_fit_and_changes_nothing(change, message):
    model, state = mlp(seed=1), mlp(seed=2).state_dict()
    change(state)
    before = model.state_dict()
    with pytest.raises(ValueError, match=message):
        model.load_state_dict(state)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


# ---------------------------------------------------------------- SGD and training


def test_sgd_steps_against_the_gradient_and_zero_grad_clears_it():
    w = tape.tensor(np.array([1.0, -2.0]), requires_grad=True)
    unused = tape.tensor(np.array([5.0]), requires_grad=True)
    optimizer = nn.SGD([w, unused], lr=0.5)
    (w * w).sum().backward()
    optimizer.step()
    np.testing.assert_array_equal(w.array, [0.0, 0.0])
    np.testing.assert_array_equal(unused.array, [5.0])
    optimizer.zero_grad()
    assert w.grad is None


class TorchMLP:
    """The notebook's model written out by hand in torch, from the same initial numbers."""

    def __init__(self, model):
        self.p = torch_parameters(model)

    def loss(self, Xb, Yb):
        p = self.p
        embcat = p["0.weight"][Xb].view(Xb.shape[0], -1)
        hprebn = embcat @ p["2.weight"] + p["2.bias"]
        bnmean, bnvar = hprebn.mean(0, keepdim=True), hprebn.var(0, keepdim=True, unbiased=True)
        hpreact = p["3.weight"] * (hprebn - bnmean) / torch.sqrt(bnvar + 1e-5) + p["3.bias"]
        logits = torch.tanh(hpreact) @ p["5.weight"] + p["5.bias"]
        return F.cross_entropy(logits, Yb)

    def step(self, lr):
        with torch.no_grad():
            for t in self.p.values():
                t -= lr * t.grad
                t.grad = None


@pytest.fixture
def one_torch_thread():
    """Small torch ops on two threads crawl when another process holds the second core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_torch_thread")
def test_training_trajectory_follows_torch_step_by_step():
    model = mlp(seed=10, n_hidden=64)
    reference = TorchMLP(model)
    optimizer = nn.SGD(model.parameters(), lr=0.1)
    g = rng(11)
    X = g.integers(1, 27, (1000, 3))
    Y = X[:, 2]  # a learnable rule, so the loss really moves
    losses = []
    for _ in range(300):
        ix = g.integers(0, len(X), 32)
        loss = nn.cross_entropy(model(X[ix]), Y[ix])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        expected = reference.loss(torch.from_numpy(X[ix]), torch.from_numpy(Y[ix]))
        expected.backward()
        reference.step(0.1)
        losses.append((loss.item(), expected.item()))
    ours, theirs = np.array(losses).T
    assert ours[-20:].mean() < ours[:20].mean() - 0.5
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)
