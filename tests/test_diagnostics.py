"""nn.diagnostics: the numbers against NumPy on the same tensors, nested containers, training left
bit-for-bit unchanged; and the experiments' --diagnostics end to end on a small names file."""

import contextlib
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from makemore_runs import DIAGNOSTICS, load, losses, make_names, run, run_wavenet

import nn
from experiments import makemore_mlp
from experiments.makemore import report
from nn import diagnostics

PICTURES = ["activations.png", "gradients.png", "weights.png", "updates.png"]
PNG = b"\x89PNG\r\n\x1a\n"


def nested_model(seed=0):
    """Tanh layers two containers deep: Sequential(Embedding, Flatten, Sequential(Linear,
    BatchNorm1d, Tanh), Sequential(Linear, Tanh), Linear)."""
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Embedding(27, 4, generator=rng),
        nn.Flatten(),
        nn.Sequential(nn.Linear(12, 16, generator=rng), nn.BatchNorm1d(16), nn.Tanh()),
        nn.Sequential(nn.Linear(16, 16, generator=rng), nn.Tanh()),
        nn.Linear(16, 27, generator=rng),
    )


def batches(count, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 27, (32, 3)), rng.integers(0, 27, 32)) for _ in range(count)]


def train(model, recorder=None, steps=6, lr=0.5):
    """Plain SGD on fixed batches; the losses."""
    optimizer = nn.SGD(model.parameters(), lr=lr)
    values = []
    for i, (Xb, Yb) in enumerate(batches(steps)):
        sampling = recorder.step(i, lr, last=i == steps - 1) if recorder else contextlib.nullcontext()
        with sampling:
            loss = nn.cross_entropy(model(Xb), Yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        values.append(loss.item())
    return values


def std(values):
    return np.asarray(values, dtype=np.float64).std(ddof=1)


def test_nested_containers_are_searched_for_layers_and_weights():
    recorder = diagnostics.Recorder(nested_model())
    assert list(recorder.layers) == ["2.2", "3.1"]
    assert list(recorder.weights) == ["0.weight", "2.0.weight", "3.0.weight", "4.weight"]  # 2-D only


def test_the_numbers_are_those_numpy_computes_from_the_same_tensors():
    model, lr = nested_model(), 0.5
    recorder = diagnostics.Recorder(model, every=4)
    train(model, recorder, steps=5, lr=lr)  # sampled: steps 0 and 4 (the last)
    # the last step again, by hand: the outputs of the nested blocks are their Tanh's
    twin = nested_model()
    train(twin, steps=4, lr=lr)
    Xb, Yb = batches(5)[4]
    hidden = twin[2](twin[1](twin[0](Xb)))
    second = twin[3](hidden)
    for t in (hidden, second):
        t.retain_grad()
    loss = nn.cross_entropy(twin[4](second), Yb)
    twin.zero_grad()
    loss.backward()
    nn.SGD(twin.parameters(), lr=lr).step()

    numbers = json.loads(json.dumps(recorder.to_json()))  # as diagnostics.json holds them
    first, last = numbers["snapshots"]
    assert (first["step"], last["step"]) == (0, 4)
    for name, t in (("2.2", hidden), ("3.1", second)):
        values, grads = t.array, t.grad.array
        activation, gradient = last["activations"][name], last["gradients"][name]
        assert activation["saturated_percent"] == pytest.approx(100 * np.mean(np.abs(values) > 0.97))
        assert activation["mean"] == pytest.approx(values.mean(dtype=np.float64), abs=1e-9)
        assert activation["std"] == pytest.approx(std(values), rel=1e-9)
        assert gradient["std"] == pytest.approx(std(grads), rel=1e-9)
        density, edges = np.histogram(values.astype(np.float64), bins=100, density=True)
        np.testing.assert_allclose(activation["histogram"]["density"], density, rtol=1e-12)
        np.testing.assert_allclose(activation["histogram"]["edges"], edges, rtol=1e-12)
    assert numbers["updates"]["steps"] == [0, 4]
    for name, p in twin.named_parameters():
        if p.ndim == 2:
            grad, data = p.grad.array, p.array  # the lecture's: data after the update
            assert last["weights"][name]["grad_data_ratio"] == pytest.approx(std(grad) / std(data), rel=1e-9)
            expected = math.log10(std(lr * grad.astype(np.float64)) / std(data))
            assert numbers["updates"]["log10_update_ratio"][name][-1] == pytest.approx(expected, abs=1e-12)
            assert numbers["weights"][name] == list(p.shape)


def test_the_update_measured_as_the_change_is_sgds_lr_times_grad():
    ratios = []
    for lr in (0.5, None):
        model = nested_model()
        recorder = diagnostics.Recorder(model, every=1)
        optimizer = nn.SGD(model.parameters(), lr=0.5)
        for i, (Xb, Yb) in enumerate(batches(3)):
            with recorder.step(i, lr):
                optimizer.zero_grad()
                nn.cross_entropy(model(Xb), Yb).backward()
                optimizer.step()
        ratios.append(recorder.rows())
    np.testing.assert_allclose(ratios[1], ratios[0], atol=1e-5)  # float32 rounding of the change


def test_sampling_changes_no_number_of_the_training():
    plain, sampled = nested_model(), nested_model()
    recorder = diagnostics.Recorder(sampled, every=1)
    assert train(plain) == train(sampled, recorder)
    for (name, a), (_, b) in zip(plain.state_dict().items(), sampled.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert len(recorder.rows()) == 6 and "forward" not in vars(sampled[2][2])  # the layer as it was


def test_a_step_without_backward_is_not_recorded():
    model = nested_model()
    recorder = diagnostics.Recorder(model)
    with recorder.step(0, 0.1):
        model(batches(1)[0][0])
    assert recorder.snapshots == [] and len(recorder.rows()) == 0


def test_the_pictures_draw_from_the_recorder_or_its_json(tmp_path):
    model = nested_model()
    recorder = diagnostics.Recorder(model, every=2)
    train(model, recorder)
    drawn = diagnostics.draw(recorder, tmp_path)
    assert [p.name for p in drawn] == PICTURES and all(p.read_bytes()[:8] == PNG for p in drawn)
    numbers = json.loads(json.dumps(recorder.to_json()))  # a diagnostics.json read back
    diagnostics.save(diagnostics.activations_figure(numbers), tmp_path / "again.png")
    assert (tmp_path / "again.png").read_bytes() == (tmp_path / "activations.png").read_bytes()


def test_import_nn_does_not_import_matplotlib():
    code = "import sys, nn; from nn import diagnostics; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- the experiments


@pytest.fixture(scope="module")
def names(tmp_path_factory):
    return make_names(tmp_path_factory.mktemp("data") / "names.txt")


@pytest.fixture
def no_pictures(monkeypatch):
    """diagnostics.json without its pictures (a quarter of a second each): for the tests of numbers."""
    monkeypatch.setattr(diagnostics, "FIGURES", {})


def test_the_experiment_writes_the_diagnostics_and_they_match_the_update_log(names, tmp_path):
    out = tmp_path / "run"
    assert run(names, out, *DIAGNOSTICS, "--steps", "45", "--diagnostics-every", "10") == 0
    numbers = json.loads((out / "diagnostics.json").read_text())
    assert numbers["updates"]["steps"] == [0, 10, 20, 30, 40, 44]  # every 10, and the last
    assert [s["step"] for s in numbers["snapshots"]] == [0, 44]
    assert list(numbers["layers"]) == ["4"] and list(numbers["weights"]) == [
        "0.weight",
        "2.weight",
        "5.weight",
    ]
    rows = np.fromfile(out / "updates.f64", dtype="<f8").reshape(-1, 4)
    np.testing.assert_array_equal(rows[:, 1], numbers["updates"]["log10_update_ratio"]["0.weight"])
    assert all((out / name).read_bytes()[:8] == PNG for name in PICTURES)


def test_the_wavenet_writes_the_diagnostics_of_its_three_tanh_layers(names, tmp_path):
    out = tmp_path / "run"
    assert run_wavenet(names, out, *DIAGNOSTICS, "--steps", "12", "--diagnostics-every", "5") == 0
    numbers = json.loads((out / "diagnostics.json").read_text())
    assert list(numbers["layers"]) == ["4", "8", "12"]
    assert numbers["updates"]["steps"] == [0, 5, 10, 11]
    assert all((out / name).exists() for name in PICTURES)


@pytest.mark.usefixtures("no_pictures")
def test_diagnostics_change_no_number_of_the_run(names, tmp_path):
    with_them, without = tmp_path / "with", tmp_path / "without"
    assert run(names, with_them, *DIAGNOSTICS, "--steps", "40", "--diagnostics-every", "1") == 0
    assert run(names, without, "--steps", "40", "--no-diagnostics") == 0
    np.testing.assert_array_equal(losses(with_them), losses(without))
    for name, value in load(with_them / "model.npz").items():
        np.testing.assert_array_equal(value, load(without / "model.npz")[name], err_msg=name)
    assert not any((without / name).exists() for name in ["diagnostics.json", "updates.f64", *PICTURES])


@pytest.mark.usefixtures("no_pictures")
def test_a_resumed_run_has_the_diagnostics_of_an_uninterrupted_one(names, tmp_path):
    straight, paused = tmp_path / "straight", tmp_path / "paused"
    sampling = [*DIAGNOSTICS, "--steps", "60", "--diagnostics-every", "7", "--checkpoint-every", "20"]
    assert run(names, straight, *sampling) == 0
    assert run(names, paused, *sampling, "--pause-at", "30") == 0
    assert makemore_mlp.main(["--resume", "--out", str(paused)]) == 0  # sampled as the run was
    assert (paused / "diagnostics.json").read_text() == (straight / "diagnostics.json").read_text()


@pytest.mark.usefixtures("no_pictures")
def test_a_session_without_diagnostics_keeps_the_history_so_far(names, tmp_path):
    out = tmp_path / "run"
    assert (
        run(names, out, *DIAGNOSTICS, "--steps", "60", "--diagnostics-every", "10", "--pause-at", "25") == 0
    )
    assert makemore_mlp.main(["--resume", "--out", str(out), "--pause-at", "45", "--no-diagnostics"]) == 0
    assert makemore_mlp.main(["--resume", "--out", str(out), "--pause-at", "50"]) == 0  # still none
    assert makemore_mlp.main(["--resume", "--out", str(out), "--diagnostics-every", "10"]) == 0  # on again
    numbers = json.loads((out / "diagnostics.json").read_text())
    assert numbers["updates"]["steps"] == [0, 10, 20, 50, 59]  # none sampled from 25 to 49
    assert [s["step"] for s in numbers["snapshots"]] == [0, 59]


def test_a_failure_while_drawing_only_warns(names, tmp_path, capsys, monkeypatch):
    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report.diagnostics, "save", disk_full)
    out = tmp_path / "run"
    assert run(names, out, *DIAGNOSTICS, "--steps", "10") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {name} not written: [Errno 28] No space left on device" for name in PICTURES
    ]
    assert all((out / name).exists() for name in ["metrics.json", "model.npz", "diagnostics.json"])


def test_an_update_log_shorter_than_its_checkpoint_is_refused(names, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        run(names, out, *DIAGNOSTICS, "--steps", "40", "--diagnostics-every", "10", "--pause-at", "25") == 0
    )
    log = out / "updates.f64"
    log.write_bytes(log.read_bytes()[: 8 * 4])  # one row of the three
    capsys.readouterr()
    assert makemore_mlp.main(["--resume", "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {log} holds 1 of the 3 samples the checkpoint counts\n"


def test_damaged_diagnostics_in_a_checkpoint_are_refused_or_only_warn(names, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(names, out, *DIAGNOSTICS, "--steps", "10", "--pause-at", "5") == 0
    arrays = load(out / "checkpoint.npz")
    arrays["diagnostics"] = np.frombuffer(b"{not json", dtype=np.uint8)
    np.savez(out / "checkpoint.npz", **arrays)
    capsys.readouterr()
    assert makemore_mlp.main(["--resume", "--out", str(out)]) == 2
    assert f"{out / 'checkpoint.npz'}: diagnostics are damaged" in capsys.readouterr().err
    # JSON as the checkpoint expects, histograms as the recorder never wrote them
    state = {"every": 100, "rows": 1, "snapshots": [{"step": 0}]}
    arrays["diagnostics"] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
    np.savez(out / "checkpoint.npz", **arrays)
    assert makemore_mlp.main(["--resume", "--out", str(out)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {name} not written: '{name[:-4]}'" for name in PICTURES[:3]]
    assert (out / "metrics.json").exists() and (out / "updates.png").exists()
