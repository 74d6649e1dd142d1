"""tape.replay: a recorded step re-run from its record gives the eager step's numbers bit for bit,
records again when the inputs' shapes change, and runs eagerly (with a warning) what it cannot
repeat: Python reads of tensor values, values computed outside tape's ops, retain_grad."""

from __future__ import annotations

import functools
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import nn
import tape
from experiments.makemore.model import build_mlp
from experiments.makemore.wavenet import build_wavenet

VOCAB, BLOCK = 27, 3


def batches(
    count: int, size: int = 32, block: int = BLOCK, seed: int = 1
) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, VOCAB, (size, block)), rng.integers(0, VOCAB, size)) for _ in range(count)]


def cross_entropy(model: nn.Module, Xb: np.ndarray, Yb: np.ndarray) -> tape.Tensor:
    return nn.cross_entropy(model(Xb), Yb)


def training_step(model: nn.Module, optimizer: nn.Optimizer, loss_of=cross_entropy):
    """One step of ``optimizer`` on ``loss_of(model, *inputs)``; it returns the loss."""

    def step(*inputs: np.ndarray) -> tape.Tensor:
        loss = loss_of(model, *inputs)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    return step


def twins(build, optimizer=lambda params: nn.SGD(params, lr=0.1)):
    """Two equal models with their optimisers: one trained eagerly, one replayed."""
    eager_model, replayed_model = build(), build()
    replayed_model.load_state_dict(eager_model.state_dict())
    eager = training_step(eager_model, optimizer(eager_model.parameters()))
    replayed = tape.replay(training_step(replayed_model, optimizer(replayed_model.parameters())))
    return eager, replayed, eager_model, replayed_model


def assert_same_training(eager, replayed, eager_model, replayed_model, data) -> None:
    for i, (Xb, Yb) in enumerate(data):
        a, b = eager(Xb, Yb), replayed(Xb, Yb)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.item() == b.item(), f"step {i}: eager {a.item()!r}, replayed {b.item()!r}"
    for (name, x), (_, y) in zip(eager_model.state_dict().items(), replayed_model.state_dict().items()):
        assert np.array_equal(x, y), name  # parameters and running statistics, bit for bit
    for p, q in zip(eager_model.parameters(), replayed_model.parameters()):
        assert np.array_equal(p.grad.array, q.grad.array)


def mlp() -> nn.Module:
    return build_mlp(VOCAB, 10, BLOCK, 200, np.random.default_rng(0))


def test_a_replayed_mlp_training_step_is_eager_bit_for_bit_over_300_steps():
    eager, replayed, *models = twins(mlp)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing in the nn model falls back to eager
        assert_same_training(eager, replayed, *models, batches(100) * 3)
    assert replayed.reason(*batches(1)[0]) is None


def test_a_replayed_wavenet_training_step_is_eager_bit_for_bit():
    def build() -> nn.Module:
        return build_wavenet(VOCAB, 8, 8, 32, np.random.default_rng(0))

    eager, replayed, *models = twins(build)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same_training(eager, replayed, *models, batches(60, block=8))


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda ps: nn.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3),
        lambda ps: nn.Adam(ps, lr=1e-3),
        lambda ps: nn.AdamW(ps, lr=1e-3),
    ],
    ids=["sgd-momentum", "adam", "adamw"],
)
def test_optimisers_with_state_replay_bit_for_bit(optimizer):
    eager, replayed, *models = twins(mlp, optimizer)
    assert_same_training(eager, replayed, *models, batches(40))


def test_replay_runs_the_function_only_while_recording():
    calls = []
    model = mlp()
    inner = training_step(model, nn.SGD(model.parameters(), lr=0.1))

    def step(Xb, Yb):
        calls.append(1)
        return inner(Xb, Yb)

    replayed = tape.replay(step)
    for Xb, Yb in batches(10):
        replayed(Xb, Yb)
    assert len(calls) == 2  # two records that agree, then replays


def test_a_new_batch_size_records_again_and_both_sizes_replay():
    eager, replayed, *models = twins(mlp)
    mixed = [b for pair in zip(batches(20, 32), batches(20, 7, seed=2)) for b in pair]
    assert_same_training(eager, replayed, *models, mixed)


def test_the_replayed_training_agrees_with_torch():
    torch = pytest.importorskip("torch")
    model = mlp()
    torch_model = torch_mlp(torch, model)
    torch_optimizer = torch.optim.SGD(torch_model.parameters(), lr=0.1)
    replayed = tape.replay(training_step(model, nn.SGD(model.parameters(), lr=0.1)))
    for Xb, Yb in batches(100):
        loss = torch.nn.functional.cross_entropy(torch_model(torch.from_numpy(Xb)), torch.from_numpy(Yb))
        torch_optimizer.zero_grad()
        loss.backward()
        torch_optimizer.step()
        mine = replayed(Xb, Yb).item()
        assert mine == pytest.approx(loss.item(), rel=1e-4)


def torch_mlp(torch, model: nn.Module):
    """torch.nn's version of build_mlp's model, with its weights (unbiased batchnorm as tape's)."""

    class BatchNorm(torch.nn.Module):  # the notebook's: normalised with the n-1 variance
        def __init__(self, layer):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.tensor(layer.weight.array))
            self.bias = torch.nn.Parameter(torch.tensor(layer.bias.array))
            self.eps = layer.eps

        def forward(self, x):
            return self.weight * (x - x.mean(0)) / (x.var(0, unbiased=True) + self.eps).sqrt() + self.bias

    layers = []
    for layer in model:
        if isinstance(layer, nn.Embedding):
            layers.append(torch.nn.Embedding.from_pretrained(torch.tensor(layer.weight.array), freeze=False))
        elif isinstance(layer, nn.Flatten):
            layers.append(torch.nn.Flatten())
        elif isinstance(layer, nn.Linear):
            linear = torch.nn.Linear(*layer.weight.shape, bias=layer.bias is not None)
            with torch.no_grad():
                linear.weight.copy_(torch.tensor(layer.weight.array.T))
                if layer.bias is not None:
                    linear.bias.copy_(torch.tensor(layer.bias.array))
            layers.append(linear)
        elif isinstance(layer, nn.BatchNorm1d):
            layers.append(BatchNorm(layer))
        elif isinstance(layer, nn.Tanh):
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


def test_a_learning_rate_passed_as_an_argument_records_again_when_it_changes():
    eager_model, replayed_model = mlp(), mlp()
    replayed_model.load_state_dict(eager_model.state_dict())

    def stepper(model):
        optimizer = nn.SGD(model.parameters(), lr=0.1)

        def step(Xb, Yb, lr):
            loss = nn.cross_entropy(model(Xb), Yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.lr = lr
            optimizer.step()
            return loss

        return step

    eager, replayed = stepper(eager_model), tape.replay(stepper(replayed_model))
    for i, (Xb, Yb) in enumerate(batches(30)):
        lr = 0.1 if i < 15 else 0.01
        assert eager(Xb, Yb, lr).item() == replayed(Xb, Yb, lr).item()
    for p, q in zip(eager_model.parameters(), replayed_model.parameters()):
        assert np.array_equal(p.array, q.array)


def test_the_notebooks_manual_update_and_grad_reset_replay():
    def stepper(params):
        def step(Xb, Yb):
            C, W, b = params
            logits = C[Xb].view(Xb.shape[0], -1) @ W + b
            loss = nn.functional.cross_entropy(logits, Yb)
            for p in params:
                p.grad = None
            loss.backward()
            for p in params:
                p.data += -0.1 * p.grad
            return loss

        return step

    g = tape.Generator().manual_seed(42)
    shapes = [(VOCAB, 10), (30, VOCAB), (VOCAB,)]
    params = [tape.randn(shape, generator=g, requires_grad=True) for shape in shapes]
    twin = [tape.tensor(p.array, requires_grad=True) for p in params]
    eager, replayed = stepper(params), tape.replay(stepper(twin))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for Xb, Yb in batches(30):
            assert eager(Xb, Yb).item() == replayed(Xb, Yb).item()
    for p, q in zip(params, twin):
        assert np.array_equal(p.array, q.array)


def test_random_numbers_drawn_inside_the_step_are_drawn_anew_on_every_replay():
    def stepper(model, generator):
        def step(Xb):
            h = model(tape.from_numpy(Xb))
            noise = tape.randn(h.shape, generator=generator)
            return nn.functional.dropout(h + noise, p=0.5).sum()

        return step

    model = nn.Linear(4, 3)
    eager = stepper(model, tape.Generator().manual_seed(3))
    replayed = tape.replay(stepper(model, tape.Generator().manual_seed(3)))
    x = np.ones((5, 4), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tape.manual_seed(0)
        eager_values = [eager(x).item() for _ in range(6)]
        tape.manual_seed(0)
        replayed_values = [replayed(x).item() for _ in range(6)]
    assert eager_values == replayed_values
    assert len(set(eager_values)) == 6


def test_evaluation_under_no_grad_with_argmax_replays():
    model = mlp().eval()

    def evaluate(Xb, Yb):
        with tape.no_grad():
            logits = model(Xb)
            return nn.cross_entropy(logits, Yb), logits.argmax(1)

    replayed = tape.replay(evaluate)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the eval BatchNorm's scale is a replayable step
        for Xb, Yb in batches(6, 64):
            (loss, predicted), (loss_again, predicted_again) = evaluate(Xb, Yb), replayed(Xb, Yb)
            assert loss.item() == loss_again.item()
            assert np.array_equal(predicted.array, predicted_again.array)


def test_python_control_flow_on_a_tensors_value_runs_eagerly_with_a_warning():
    x = tape.tensor([1.0, -2.0, 3.0], requires_grad=True)

    def step(sign):
        y = (x * tape.tensor(sign)).sum()
        out = y * 2 if y.item() > 0 else y * -3  # which op runs depends on the value
        x.grad = None
        out.backward()
        return out

    replayed = tape.replay(step)
    signs = [np.array(s, np.float32) for s in (1, -1, 1, -1, 1)]
    with pytest.warns(UserWarning, match="reads a tensor's value"):
        results = [(replayed(s).item(), x.grad.array.copy()) for s in signs]
    expected = [(4.0, 2 * np.ones(3)), (6.0, 3 * np.ones(3))] * 3
    for (value, grad), (want, want_grad) in zip(results, expected):
        assert value == want and np.array_equal(grad, want_grad)


def test_a_value_computed_in_numpy_from_the_inputs_runs_eagerly_with_a_warning():
    W = tape.ones((3, 2))

    def step(x):
        return (tape.from_numpy(x * 2) @ W).sum()  # x * 2 happens outside tape: a replay cannot see it

    replayed = tape.replay(step)
    with pytest.warns(UserWarning, match="changed between its first two calls"):
        values = [replayed(np.full((4, 3), k, np.float32)).item() for k in range(4)]
    assert values == [0.0, 48.0, 96.0, 144.0]


def test_retain_grad_runs_eagerly_with_a_warning():
    W = tape.ones((3, 2), requires_grad=True)

    def step(x):
        h = tape.from_numpy(x) @ W
        h.retain_grad()
        loss = (h * h).sum()
        W.grad = None
        loss.backward()
        return h.grad

    replayed = tape.replay(step)
    x = np.ones((4, 3), np.float32)
    with pytest.warns(UserWarning, match="retain_grad"):
        grads = [replayed(x) for _ in range(3)]
    assert all(np.array_equal(g.array, np.full((4, 2), 6.0)) for g in grads)


def test_the_example_in_docs_replay_md_runs_and_replays():
    page = (Path(__file__).resolve().parents[1] / "docs" / "replay.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", page, re.S)
    scope: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(code, scope)
    Xb, Yb = scope["Xb"], scope["Yb"]
    assert scope["step"].reason(Xb, Yb, 0.01) is None
    assert np.isfinite(scope["loss"].item()) and scope["loss"].grad_fn is None


def test_a_replayed_function_called_inside_another_ones_recording_is_part_of_its_record():
    W = tape.ones((3, 2), requires_grad=True)
    inner = tape.replay(lambda x: tape.from_numpy(x) @ W)

    def outer(x):
        loss = (inner(x) * 2).sum()
        W.grad = None
        loss.backward()
        return loss

    x = np.ones((4, 3), np.float32)
    for _ in range(3):
        inner(x)  # replays on its own by now
    replayed = tape.replay(outer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k in range(1, 5):
            assert replayed(k * x).item() == 48.0 * k
            assert np.array_equal(W.grad.array, np.full((3, 2), 8.0 * k))


def mean_square(model: nn.Module, X: np.ndarray) -> tape.Tensor:
    return (model(tape.tensor(X)) ** 2).mean()


def squared_error(model: nn.Module, X: np.ndarray, Y: np.ndarray) -> tape.Tensor:
    return ((model(tape.tensor(X)) - tape.tensor(Y)) ** 2).mean()


def linear_step(seed: int = 0, lr: float = 0.1, loss_of=squared_error, optimizer=nn.SGD):
    """A Linear layer trained on ``loss_of(model, *inputs)``: the model, and the step."""
    model = nn.Linear(4, 3)
    model.weight.data = np.random.default_rng(seed).standard_normal((4, 3)).astype(np.float32)
    return model, training_step(model, optimizer(model.parameters(), lr=lr), loss_of)


def floats(*shape: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def assert_eager_with_a_warning(build, match: str) -> None:
    """Twin models from ``build()``, one stepped eagerly and one through replay: the replayed one
    warns (``match``) and runs eagerly, so both give the same losses and weights."""
    (eager_model, eager), (replayed_model, step) = build(), build()
    replayed = tape.replay(step)
    with pytest.warns(UserWarning, match=match):
        for s in range(5):
            X = floats(2, 4, seed=s)
            assert eager(X).item() == replayed(X).item()
    assert np.array_equal(eager_model.weight.array, replayed_model.weight.array)


def test_one_array_passed_for_two_arguments_while_recording_does_not_replay_two_different_arrays():
    (eager_model, eager), (replayed_model, step) = linear_step(), linear_step()
    replayed = tape.replay(step)
    for model in (eager_model, replayed_model):  # 3 in, 3 out: X and Y of one shape
        model.weight.data = model.weight.array[:3].copy()
    same = floats(2, 3, seed=9)
    calls = [(same, same)] * 2  # recorded with Y the very array X is
    calls += [(floats(2, 3, seed=s), floats(2, 3, seed=s + 100)) for s in range(4)]
    for A, B in calls:
        assert eager(A, B).item() == replayed(A, B).item()
    assert np.array_equal(eager_model.weight.array, replayed_model.weight.array)


def test_keyword_arguments_are_passed_to_fn_and_replayed():
    model, step = linear_step()
    eager_model, eager = linear_step()
    replayed = tape.replay(lambda X, Y, scale=1.0: step(X, Y) * scale)
    for s in range(5):
        X, Y = floats(2, 4, seed=s), floats(2, 3, seed=s + 50)
        assert (eager(X, Y) * 2.0).item() == replayed(X, Y, scale=2.0).item()
    assert replayed.reason(X, Y, scale=2.0) is None
    assert np.array_equal(eager_model.weight.array, model.weight.array)


def test_an_unhashable_argument_runs_eagerly_with_a_warning_instead_of_a_type_error():
    model = nn.Linear(4, 3)
    replayed = tape.replay(lambda Xs: sum(model(tape.tensor(X)).sum() for X in Xs))
    X = floats(2, 4, seed=1)
    with pytest.warns(UserWarning, match="not hashable"):
        out = replayed([X, X])
    assert out.item() == (2 * model(tape.tensor(X)).sum()).item()
    assert "not hashable" in replayed.reason([X, X])


def test_an_input_changed_in_place_with_numpy_inside_the_step_runs_eagerly_with_a_warning():
    eager_model, eager_step = linear_step()
    replayed_model, replayed_step = linear_step()

    def doubling(step):
        def doubled(X: np.ndarray, Y: np.ndarray) -> tape.Tensor:
            X *= 2  # NumPy, outside tape: a replay would not do it
            return step(X, Y)

        return doubled

    eager, replayed = doubling(eager_step), tape.replay(doubling(replayed_step))
    with pytest.warns(UserWarning, match="changes an array in place outside tape"):
        for s in range(5):
            X, Y = floats(2, 4, seed=s), floats(2, 3, seed=s + 50)
            assert eager(X.copy(), Y).item() == replayed(X.copy(), Y).item()
    assert np.array_equal(eager_model.weight.array, replayed_model.weight.array)


def test_a_parameter_updated_with_numpy_inside_the_step_runs_eagerly_with_a_warning():
    def build():
        model = nn.Linear(4, 3)
        model.load_state_dict(reference.state_dict())

        def step(X: np.ndarray) -> tape.Tensor:
            loss = (model(tape.tensor(X)) ** 2).mean()
            for p in model.parameters():
                p.grad = None
            loss.backward()
            for p in model.parameters():
                p.array -= 0.1 * p.grad.array  # NumPy on the parameter's memory, not a tape op
            return loss

        return model, step

    reference = nn.Linear(4, 3)
    assert_eager_with_a_warning(build, "changes an array in place outside tape")


def test_a_0d_array_argument_kept_by_fn_as_the_learning_rate_records_again_for_each_value():
    def build():
        model, _ = linear_step()
        optimizer = nn.SGD(model.parameters(), lr=0.1)

        def step(X: np.ndarray, lr: np.ndarray) -> tape.Tensor:
            loss = (model(tape.tensor(X)) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.lr = lr  # the 0-d array itself, kept in Python: a replay does not set it
            optimizer.step()
            return loss

        return model, step

    (eager_model, eager), (replayed_model, step) = build(), build()
    replayed = tape.replay(step)
    for s in range(6):
        X, lr = floats(2, 4, seed=s), np.array(0.1 / (s + 1))
        assert eager(X, lr).item() == replayed(X, lr).item()
    assert np.array_equal(eager_model.weight.array, replayed_model.weight.array)


def test_a_tensor_argument_given_a_new_array_between_calls_records_again():
    model = nn.Linear(4, 3)
    replayed = tape.replay(lambda x: model(x).sum())
    x = tape.tensor(floats(2, 4, seed=0))
    for s in range(5):
        if s >= 3:
            x.data = floats(2, 4, seed=s)  # a new array: the record's constant is the old one
        assert replayed(x).item() == model(x).sum().item()


def test_a_computed_array_or_a_gradient_changed_with_numpy_inside_the_step_runs_eagerly_with_a_warning():
    def build(change):
        model, _ = linear_step()
        optimizer = nn.SGD(model.parameters(), lr=0.1)

        def step(X: np.ndarray) -> tape.Tensor:
            h = model(tape.tensor(X))
            change(h, model)
            loss = (h**2).mean()
            optimizer.zero_grad()
            loss.backward()
            change(None, model)
            optimizer.step()
            return loss

        return model, step

    def relu_in_numpy(h, model):
        if h is not None:
            h.numpy()[h.numpy() < 0] = 0

    def halve_gradients_in_numpy(h, model):
        if h is None:
            for p in model.parameters():
                p.grad.numpy()[...] *= 0.5

    for change in (relu_in_numpy, halve_gradients_in_numpy):
        assert_eager_with_a_warning(functools.partial(build, change), "changes an array in place")


def test_a_boolean_mask_index_runs_eagerly_even_when_the_first_two_masks_select_as_many():
    def loss_of(model, X: np.ndarray, Y: np.ndarray) -> tape.Tensor:
        per_row = (model(tape.tensor(X)) ** 2).sum(1)
        return per_row[tape.tensor(Y) != 0].mean()  # the rows that are not padding

    (eager_model, eager), (replayed_model, step) = linear_step(loss_of=loss_of), linear_step(loss_of=loss_of)
    replayed = tape.replay(step)
    masks = [[1, 1, 0, 1], [0, 1, 1, 1], [1, 0, 0, 1], [1, 1, 1, 1], [0, 1, 0, 0]]
    with pytest.warns(UserWarning, match="boolean mask"):
        for s, Y in enumerate(masks):
            X = floats(4, 4, seed=s)
            assert eager(X, np.array(Y)).item() == replayed(X, np.array(Y)).item()
    assert np.array_equal(eager_model.weight.array, replayed_model.weight.array)


def test_an_error_raised_while_replaying_says_which_recorded_step_raised_and_the_next_call_replays():
    table = nn.Embedding(10, 4)
    optimizer = nn.SGD(table.parameters(), lr=0.1)

    def step(X: np.ndarray) -> tape.Tensor:
        loss = (table(X) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    replayed = tape.replay(step)
    for _ in range(3):
        replayed(np.arange(6).reshape(3, 2))
    with pytest.raises(IndexError) as raised:
        replayed(np.array([[1, 2], [3, 11], [0, 0]]))  # 11: past the table's end
    assert "tape.replay" in "".join(getattr(raised.value, "__notes__", []))
    assert "gather" in "".join(raised.value.__notes__)
    assert replayed.reason(np.arange(6).reshape(3, 2)) is None
    before = table.weight.array.copy()
    replayed(np.arange(6).reshape(3, 2))
    assert not np.array_equal(before, table.weight.array)


@pytest.mark.parametrize("change", ["new array", "frozen", "unfrozen"])
def test_a_parameter_given_a_new_array_frozen_or_unfrozen_between_calls_records_again(change):
    def build():
        model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
        model.load_state_dict(reference.state_dict())
        return model, training_step(model, nn.Adam(model.parameters(), lr=0.01), mean_square)

    reference = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    (eager_model, eager), (replayed_model, step) = build(), build()
    replayed = tape.replay(step)
    if change == "unfrozen":  # the first layer is frozen while recording: no tape entry reads it
        for model in (eager_model, replayed_model):
            for p in model[0].parameters():
                p.requires_grad_(False)
    for s in range(8):
        if s == 4:
            for model in (eager_model, replayed_model):
                for p in model[0 if change == "unfrozen" else 2].parameters():
                    if change == "new array":
                        p.data = np.zeros_like(p.array)  # a re-initialised layer
                    else:
                        p.requires_grad_(change == "unfrozen")  # fine-tuning a part
        X = floats(5, 4, seed=s)
        assert eager(X).item() == replayed(X).item(), f"call {s}"
    for p, q in zip(eager_model.parameters(), replayed_model.parameters()):
        assert np.array_equal(p.array, q.array)


def test_tape_manual_seed_inside_the_step_seeds_again_on_every_replay():
    def build():
        tape.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.5), nn.Linear(6, 3))
        model.load_state_dict(reference.state_dict())
        return model, training_step(model, nn.SGD(model.parameters(), lr=0.1), seeded_mean_square)

    def seeded_mean_square(model: nn.Module, X: np.ndarray, seed: int) -> tape.Tensor:
        tape.manual_seed(seed)  # the same dropout masks on every call
        return mean_square(model, X)

    reference = nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.5), nn.Linear(6, 3))
    (eager_model, eager), (replayed_model, step) = build(), build()
    replayed = tape.replay(step)
    for s in range(6):
        X = floats(5, 4, seed=s)
        assert eager(X, 7).item() == replayed(X, 7).item(), f"call {s}"
    assert np.array_equal(eager_model[0].weight.array, replayed_model[0].weight.array)


def test_an_evaluation_replayed_between_training_steps_follows_the_running_statistics():
    def build():
        model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
        model.load_state_dict(reference.state_dict())
        optimizer = nn.SGD(model.parameters(), lr=0.1)

        def train(X: np.ndarray, Y: np.ndarray) -> tape.Tensor:
            loss = nn.cross_entropy(model(tape.tensor(X)), Y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return loss

        def evaluate(X: np.ndarray, Y: np.ndarray) -> tape.Tensor:
            model.eval()
            with tape.no_grad():
                loss = nn.cross_entropy(model(tape.tensor(X)), Y)
            model.train()
            return loss

        return train, evaluate

    reference = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    (train, evaluate), (train_replayed, evaluate_replayed) = build(), build()
    train_replayed, evaluate_replayed = tape.replay(train_replayed), tape.replay(evaluate_replayed)
    Xv, Yv = floats(7, 4, seed=99), np.arange(7) % 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # both replay: the eval scale is computed anew each time
        for epoch in range(3):
            for s in range(4):
                X, Y = floats(5, 4, seed=10 * epoch + s), np.arange(5) % 3
                assert train(X, Y).item() == train_replayed(X, Y).item()
            for _ in range(3):  # recorded twice, then replayed: with this epoch's running statistics
                assert evaluate(Xv, Yv).item() == evaluate_replayed(Xv, Yv).item(), f"epoch {epoch}"


def test_a_step_with_cat_and_stack_replays_bit_for_bit():
    def loss_of(model, X: np.ndarray) -> tape.Tensor:
        h = model(tape.tensor(X))
        both = tape.cat([h, h * 2], 1) + tape.stack([h, -h], 0).sum(0).repeat(1, 2)
        return (both**2).mean()

    def build():
        return linear_step(lr=0.01, loss_of=loss_of, optimizer=nn.Adam)

    (eager_model, eager), (replayed_model, step) = build(), build()
    replayed = tape.replay(step)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # cat's and stack's VJPs are made per call: alike, not the same
        for s in range(6):
            X = floats(5, 4, seed=s)
            assert eager(X).item() == replayed(X).item()
    assert replayed.reason(X) is None
    assert np.array_equal(eager_model.weight.array, replayed_model.weight.array)
