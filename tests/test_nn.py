"""nn modules against torch, parameter naming and scopes, state dicts, SGD, a training
trajectory that follows torch step by step, nn.Parameter and module registration, and makemore
part 5's hierarchical model against the lecture's own classes."""

import numpy as np
import pytest
from checks import assert_close

import nn
import nn.functional as F_tape
import tape
from experiments.makemore.model import build_mlp

torch = pytest.importorskip("torch")
from experiments import lecture_layers as Lecture  # noqa: E402  (needs torch)

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


def mlp(seed=0, n_hidden=16):
    """The makemore MLP, built where the experiment builds it, with nn's plain initialisation."""
    return build_mlp(27, 10, 3, n_hidden, rng(seed), scale_init=False)


def test_build_mlp_scales_the_notebooks_init_by_default_and_passes_the_batchnorm_options():
    plain, scaled = mlp(seed=3), build_mlp(27, 10, 3, 16, rng(3))
    np.testing.assert_array_equal(scaled[0].weight.array, plain[0].weight.array)
    np.testing.assert_allclose(scaled[2].weight.array, plain[2].weight.array * 5 / 3, rtol=1e-6)
    np.testing.assert_allclose(scaled[5].weight.array, plain[5].weight.array * 0.1, rtol=1e-6)
    assert (scaled[3].unbiased, scaled[3].eps, scaled[3].momentum) == (True, 1e-5, 0.1)
    torchlike = build_mlp(
        27, 10, 3, 16, rng(3), batchnorm_unbiased=False, batchnorm_eps=1e-3, batchnorm_momentum=0.5
    )
    assert (torchlike[3].unbiased, torchlike[3].eps, torchlike[3].momentum) == (False, 1e-3, 0.5)


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


# ---------------------------------------------------------------- Parameter


def test_a_parameter_is_a_tensor_that_requires_grad_and_shares_the_data():
    data = tape.tensor(np.arange(6.0).reshape(2, 3))
    p = nn.Parameter(data)
    assert isinstance(p, tape.Tensor) and p.requires_grad and p.is_leaf
    assert np.shares_memory(p.array, data.array)  # as torch: Parameter(t) is t's storage
    assert not nn.Parameter(data, requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)
    assert repr(p).startswith("Parameter containing:\ntensor(")
    import pickle

    copy = pickle.loads(pickle.dumps(p))
    assert type(copy) is nn.Parameter and copy.requires_grad
    np.testing.assert_array_equal(copy.array, p.array)


def test_tape_ops_take_parameters_like_any_tensor():
    g = rng(30)
    W = nn.Parameter(tape.tensor(g.standard_normal((4, 3))))
    b = nn.Parameter(tape.tensor(g.standard_normal(3)))
    table = nn.Parameter(tape.tensor(g.standard_normal((5, 4))))
    x = table[np.array([0, 3, 3])]  # indexing
    h = tape.linear(x, W, b) + tape.where(np.array([True, False, True]), b, 0.0)  # fused op, where
    loss = nn.cross_entropy(h.tanh() @ (W.T @ W), np.array([0, 1, 2]))  # matmul, transpose
    loss.backward()
    assert all(p.grad.shape == p.shape for p in (W, b, table))
    with tape.no_grad():
        W *= 2  # in place on a parameter, as torch's init code does
    W.data += -0.1 * W.grad  # the lectures' update
    assert type(W) is nn.Parameter and W.requires_grad


# ---------------------------------------------------------------- Module: registration and calls


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(3, 4, generator=rng(31))
        self.scale = nn.Parameter(tape.tensor(np.ones(4)))
        self.out = None

    def forward(self, x, shift=0.0):
        self.out = self.first(x) * self.scale + shift  # an op output kept on the module, as the lectures do
        return self.out


def test_parameters_are_registered_op_outputs_are_not_and_call_passes_args_and_kwargs():
    model = TwoLayers()
    x = tape.tensor(rng(32).standard_normal((2, 3)), dtype=tape.float32)
    out = model(x, shift=1.0)
    assert model.out is out and out.requires_grad
    # torch's order: a module's own parameters, then its children's
    assert [n for n, _ in model.named_parameters()] == ["scale", "first.weight", "first.bias"]
    assert isinstance(model.first.weight, nn.Parameter) and model.scale.name == "scale"
    model.scale = None  # a name holds what was assigned last
    assert [n for n, _ in model.named_parameters()] == ["first.weight", "first.bias"]
    assert list(model.children()) == [model.first]


def test_a_plain_list_of_modules_is_refused_with_a_pointer_to_modulelist():
    class Listed(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = [nn.Linear(2, 2), nn.Tanh()]

    with pytest.raises(TypeError, match=r"Listed\.layers: a plain list of modules .* use nn\.ModuleList"):
        Listed()

    class FilledLater(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = []  # empty when assigned: refused when the model is walked
            self.blocks.append(nn.Linear(2, 2))

    model = FilledLater()
    with pytest.raises(TypeError, match=r"FilledLater\.blocks: a plain list"):
        model.parameters()
    with pytest.raises(TypeError, match=r"use nn\.ModuleDict"):
        nn.Sequential().heads = {"a": nn.Tanh()}
    nn.Sequential().sizes = [1, 2]  # plain data is fine


def test_modulelist_and_moduledict_register_their_modules():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(2, 3), nn.Linear(3, 2)])
            self.blocks.append(nn.Tanh())
            self.heads = nn.ModuleDict({"left": nn.Linear(2, 1)})
            self.heads["right"] = nn.Linear(2, 1, bias=False)

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return self.heads["left"](x) + self.heads["right"](x)

    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == [
        "blocks.0.weight",
        "blocks.0.bias",
        "blocks.1.weight",
        "blocks.1.bias",
        "heads.left.weight",
        "heads.left.bias",
        "heads.right.weight",
    ]
    assert len(net.blocks) == 3 and isinstance(net.blocks[2], nn.Tanh) and len(net.blocks[:2]) == 2
    assert list(net.heads) == ["left", "right"] and "left" in net.heads
    assert net(tape.tensor(np.ones((4, 2), np.float32))).shape == (4, 1)
    net.eval()
    assert not net.blocks[0].training and not net.heads["right"].training
    with pytest.raises(TypeError, match="is not a Module"):
        net.blocks.append(lambda x: x)


def test_zero_grad_sets_none_or_zeroes_in_place():
    model = TwoLayers()
    model(tape.tensor(np.ones((2, 3), np.float32))).sum().backward()
    grad = model.scale.grad
    model.zero_grad(set_to_none=False)
    assert model.scale.grad is grad and not grad.array.any()
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


# ---------------------------------------------------------------- more modules against torch


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_sigmoid_identity_match_torch(dtype):
    x = rng(33).standard_normal((4, 5)).astype(dtype)
    assert_matches_torch(nn.ReLU(), lambda p, x: torch.relu(x), x)
    assert_matches_torch(nn.Sigmoid(), lambda p, x: torch.sigmoid(x), x)
    assert_matches_torch(nn.Identity(54, unused=True), lambda p, x: x * 1, x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("normalized_shape", [6, (4, 6)])
def test_layernorm_matches_torch(dtype, normalized_shape):
    ours = nn.LayerNorm(normalized_shape, eps=1e-5, dtype=dtype)
    g = rng(34)
    for p in ours.parameters():
        p.array[...] = g.standard_normal(p.shape)
    x = (g.standard_normal((3, 4, 6)) * 2 + 1).astype(dtype)
    assert_matches_torch(ours, lambda p, x: F.layer_norm(x, ours.normalized_shape, p["weight"], p["bias"]), x)
    plain = nn.LayerNorm(6, elementwise_affine=False, dtype=dtype)
    assert plain.parameters() == []
    assert_matches_torch(plain, lambda p, x: F.layer_norm(x, (6,)), x)


def test_dropout_module_follows_train_and_eval():
    layer = nn.Dropout(0.25)
    x = tape.tensor(np.ones((100, 100), np.float32))
    assert layer.eval()(x) is x
    out = layer.train()(x).array
    assert abs((out == 0).mean() - 0.25) < 0.02 and set(np.unique(out)) == {0.0, np.float32(1 / 0.75)}
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(-0.1)
    assert repr(layer) == "Dropout(p=0.25, inplace=False)"


def test_embedding_refuses_indices_out_of_range_and_keeps_its_padding_row_untrained():
    table = nn.Embedding(5, 3, padding_idx=0, generator=rng(35))
    with pytest.raises(IndexError, match=r"embedding: index -1 is out of range .* \(valid: 0 to 4\)"):
        table(np.array([1, -1]))
    np.testing.assert_array_equal(table.weight.array[0], 0)
    table(np.array([[0, 1], [0, 2]])).sum().backward()
    np.testing.assert_array_equal(table.weight.grad.array[0], 0)
    np.testing.assert_array_equal(table.weight.grad.array[1], 1)


def test_flatten_consecutive_groups_positions_and_squeezes_a_middle_dim_of_one():
    x = tape.tensor(np.arange(2 * 8 * 3, dtype=np.float32).reshape(2, 8, 3))
    out = nn.FlattenConsecutive(2)(x)
    assert out.shape == (2, 4, 6)
    np.testing.assert_array_equal(out.array[0, 1], [6, 7, 8, 9, 10, 11])  # positions 2 and 3, concatenated
    assert nn.FlattenConsecutive(8)(x).shape == (2, 24)
    with pytest.raises(
        ValueError, match=r"FlattenConsecutive\(3\): .* T a multiple of 3, got shape \(2, 8, 3\)"
    ):
        nn.FlattenConsecutive(3)(x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("unbiased", [True, False])
def test_batchnorm1d_of_3d_input_normalises_over_the_first_two_dims_as_part_5(dtype, unbiased):
    layer = nn.BatchNorm1d(6, unbiased=unbiased, dtype=dtype)
    g = rng(36)
    layer.weight.array[:] = g.standard_normal(6)
    layer.bias.array[:] = g.standard_normal(6)
    x = (g.standard_normal((4, 5, 6)) * 3 + 2).astype(dtype)

    def lecture(p, x):
        mean, var = x.mean((0, 1), keepdim=True), x.var((0, 1), keepdim=True, unbiased=unbiased)
        return p["weight"] * (x - mean) / torch.sqrt(var + 1e-5) + p["bias"]

    assert_matches_torch(layer, lecture, x)
    rows = x.astype(np.float64).reshape(-1, 6)
    assert_close(layer.running_mean, (0.1 * rows.mean(0)).astype(dtype), "running_mean")
    assert_close(layer.running_var, (0.9 + 0.1 * rows.var(0, ddof=1)).astype(dtype), "running_var")
    layer.eval()
    out = layer(tape.tensor(x[:1]))  # one example in evaluation: the running statistics
    scale = layer.weight.array / np.sqrt(layer.running_var + 1e-5)
    expected = (x[:1] - layer.running_mean) * scale + layer.bias.array
    assert_close(out.array, expected.astype(dtype), "evaluation")
    with pytest.raises(ValueError, match=r"BatchNorm1d\(6\): expected an input \(n, 6\) or \(n, length, 6\)"):
        layer(tape.tensor(np.zeros((4, 6, 5), dtype)))


# ---------------------------------------------------------------- makemore part 5 against the lecture


def hierarchical(lib, vocab_size=27, n_embd=24, n_hidden=128, dtype=np.float32):
    """The lecture's hierarchical network, from ``nn`` (lib=None) or from the lecture's classes."""
    if lib is None:
        g = rng(40)
        return nn.Sequential(
            nn.Embedding(vocab_size, n_embd, generator=g, dtype=dtype),
            nn.FlattenConsecutive(2), nn.Linear(n_embd * 2, n_hidden, bias=False, generator=g, dtype=dtype),
            nn.BatchNorm1d(n_hidden, dtype=dtype), nn.Tanh(),
            nn.FlattenConsecutive(2), nn.Linear(n_hidden * 2, n_hidden, bias=False, generator=g, dtype=dtype),
            nn.BatchNorm1d(n_hidden, dtype=dtype), nn.Tanh(),
            nn.FlattenConsecutive(2), nn.Linear(n_hidden * 2, n_hidden, bias=False, generator=g, dtype=dtype),
            nn.BatchNorm1d(n_hidden, dtype=dtype), nn.Tanh(),
            nn.Linear(n_hidden, vocab_size, generator=g, dtype=dtype),
        )  # fmt: skip
    return Lecture.hierarchical(vocab_size, n_embd, n_hidden)


def lecture_twin(model):
    """The lecture's network holding copies of ``model``'s parameters (in the lecture's order)."""
    twin = hierarchical(torch)
    with torch.no_grad():
        for mine, theirs in zip(model.parameters(), twin.parameters(), strict=True):
            assert mine.shape == tuple(theirs.shape)
    for layer, source in zip(twin.layers, model.layers):
        for name in ("weight", "bias"):
            if getattr(layer, name, None) is not None:
                setattr(layer, name, torch.tensor(getattr(source, name).array))
        if isinstance(layer, Lecture.BatchNorm1d):
            layer.gamma, layer.beta = torch.tensor(source.weight.array), torch.tensor(source.bias.array)
            layer.running_mean = torch.tensor(source.running_mean)  # in the model's dtype
            layer.running_var = torch.tensor(source.running_var)
    for p in twin.parameters():
        p.requires_grad = True
    return twin


def test_the_part_5_model_flows_shapes_as_the_lecture_and_has_its_76579_parameters():
    model = hierarchical(None)
    assert sum(p.nelement() for p in model.parameters()) == 76579  # the lecture prints 76579
    X = rng(41).integers(0, 27, (32, 8))
    shapes = []
    x = X
    for layer in model.layers:
        x = layer(x)
        shapes.append(tuple(x.shape))
    assert shapes[:5] == [(32, 8, 24), (32, 4, 48), (32, 4, 128), (32, 4, 128), (32, 4, 128)]
    assert shapes[5:10] == [(32, 2, 256), (32, 2, 128), (32, 2, 128), (32, 2, 128), (32, 256)]
    assert shapes[10:] == [(32, 128), (32, 128), (32, 128), (32, 27)]
    model.eval()
    assert model(X[[7]]).shape == (1, 27)  # the lecture's single-example forward


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_part_5_model_trains_as_the_lectures_own_classes(dtype):
    """Loss, every gradient and the running statistics equal torch running the lecture's classes,
    through three of the lecture's SGD steps (``p.data += -lr * p.grad``), then evaluation."""
    model = hierarchical(None, dtype=dtype)
    with tape.no_grad():
        model.layers[-1].weight *= 0.1  # the lecture's "last layer make less confident"
    twin = lecture_twin(model)
    parameters, theirs = model.parameters(), twin.parameters()
    g = rng(42)
    for _ in range(3):
        Xb, Yb = g.integers(0, 27, (32, 8)), g.integers(0, 27, 32)
        loss = F_tape.cross_entropy(model(Xb), Yb)
        expected = F.cross_entropy(twin(torch.from_numpy(Xb)), torch.from_numpy(Yb))
        assert_close(loss.array, expected.detach().numpy(), "loss")
        for p in parameters:
            p.grad = None
        for p in theirs:
            p.grad = None
        loss.backward()
        expected.backward()
        for (name, p), q in zip(model.named_parameters(), theirs):
            assert_close(p.grad, q.grad.numpy(), f"d{name}")
        for p in parameters:
            p.data += -0.1 * p.grad
        with torch.no_grad():
            for p in theirs:
                p.data += -0.1 * p.grad
    for layer, source in zip(twin.layers, model.layers):
        if isinstance(layer, Lecture.BatchNorm1d):
            assert_close(source.running_mean, layer.running_mean.numpy().reshape(-1), "running_mean")
            assert_close(source.running_var, layer.running_var.numpy().reshape(-1), "running_var")
    model.eval()
    for layer in twin.layers:
        layer.training = False
    X = g.integers(0, 27, (5, 8))
    with torch.no_grad():
        assert_close(model(X).array, twin(torch.from_numpy(X)).numpy(), "evaluation")
