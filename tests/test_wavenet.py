"""The makemore WaveNet experiment (``python -m experiments.makemore_wavenet``): the real command
end to end on a small names file, bit-for-bit resume, its refusals, and the model against torch
running makemore part 5's own classes. The pipeline it shares with the MLP is tested in
test_experiment.py and test_experiment_cli.py."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from checks import assert_close
from makemore_runs import DIAGNOSTICS, WAVENET_SMALL, load, losses, make_names, run, run_wavenet
from test_nn import Lecture, lecture_twin

import nn
from experiments import makemore_mlp, makemore_wavenet
from experiments.makemore import data, evaluation, options, rundir, wavenet
from experiments.makemore.wavenet import WAVENET

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def names(tmp_path_factory):
    return make_names(tmp_path_factory.mktemp("data") / "names.txt")


def default_model(seed=42):
    """The model the command builds with its defaults."""
    opts, rng = options.defaults(WAVENET), np.random.default_rng(seed)
    return WAVENET.build(data.vocab_size, opts.n_embd, opts.block_size, opts.n_hidden, rng)


def test_the_defaults_are_the_lectures():
    opts = options.defaults(WAVENET)
    assert (opts.n_embd, opts.n_hidden, opts.block_size) == (24, 128, 8)
    assert (opts.steps, opts.batch_size, opts.lr, opts.seed) == (200_000, 32, 0.1, 42)
    assert sum(p.numel() for p in default_model().parameters()) == 76_579  # the lecture prints 76579
    assert wavenet.parameter_count(27, 24, 8, 128) == 76_579
    assert wavenet.parameter_count(27, 4, 16, 16) == sum(
        p.numel() for p in wavenet.build_wavenet(27, 4, 16, 16, np.random.default_rng(0)).parameters()
    )
    rate = WAVENET.learning_rate(0.1, 200_000)
    assert (rate(0), rate(149_999), rate(150_000), rate(199_999)) == (0.1, 0.1, 0.01, 0.01)
    parser = options.build_parser(WAVENET)
    assert parser.prog == "python -m experiments.makemore_wavenet"
    assert parser.get_default("out") == Path("runs/makemore_wavenet")


@pytest.mark.usefixtures("one_torch_thread")
def test_loss_and_gradients_equal_torch_running_the_lectures_classes(names):
    """The command's model on a batch of the pipeline's examples: its loss and every gradient
    are those of the lecture's own classes (torch) holding the same parameters, and so are the
    loss and gradients after one SGD step of the lecture's learning rate."""
    model = default_model()
    assert model[-1].weight.array.std() < 0.1 / 128**0.5 * 1.5  # the lecture's 0.1 scaling
    twin = lecture_twin(model)
    train = data.examples(data.split(data.load(names))[0], block_size=8)
    rng = np.random.default_rng(0)
    for _ in range(2):
        Xb, Yb = train.batch(rng.integers(0, len(train), 32))
        loss = nn.cross_entropy(model(Xb), Yb)
        expected = torch.nn.functional.cross_entropy(twin(torch.from_numpy(Xb)), torch.from_numpy(Yb))
        model.zero_grad()
        for p in twin.parameters():
            p.grad = None
        loss.backward()
        expected.backward()
        assert_close(loss.array, expected.detach().numpy(), "loss")
        for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
            assert_close(p.grad.array, q.grad.numpy(), f"d{name}")
        nn.SGD(model.parameters(), lr=0.1).step()
        with torch.no_grad():
            for p in twin.parameters():
                p.data += -0.1 * p.grad  # the lecture's update
    for layer, source in zip(twin.layers, model.layers):
        if isinstance(layer, Lecture.BatchNorm1d):  # statistics over (batch, positions), n-1 variance
            assert_close(source.running_var, layer.running_var.numpy().reshape(-1), "running_var")


def test_calibration_takes_batchnorm_statistics_over_the_batch_and_the_positions(names):
    model = wavenet.build_wavenet(27, 4, 8, 16, np.random.default_rng(0))
    examples = data.examples(data.split(data.load(names))[0], block_size=8)
    evaluation.calibrate_batchnorm(model, examples, chunk=100)  # chunks of a different size
    X, _ = examples.batch(slice(0, len(examples)))
    x = model[0](X)
    for layer in model.layers[1:]:
        if isinstance(layer, nn.BatchNorm1d):
            rows = x.array.reshape(-1, x.shape[-1]).astype(np.float64)
            np.testing.assert_allclose(layer.running_mean, rows.mean(0), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(layer.running_var, rows.var(0, ddof=1), rtol=1e-5, atol=1e-6)
        x = layer(x)


def test_the_command_end_to_end(names, tmp_path):
    """The real command, in a subprocess, as a user runs it."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "experiments.makemore_wavenet", "--data", str(names), "--out", str(out)]
    command += [*WAVENET_SMALL, *DIAGNOSTICS, "--steps", "200", "--checkpoint-every", "50"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"model of {wavenet.parameter_count(27, 4, 8, 16)} parameters" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 200 and metrics["steps_per_second"] > 0
    assert metrics["parameters"] == wavenet.parameter_count(27, 4, 8, 16)
    assert metrics["config"]["block_size"] == 8 and metrics["config"]["n_embd"] == 4
    assert all(1.0 < metrics[k] < np.log(27) for k in ("train", "val", "test"))  # learned something
    saved = load(out / "model.npz")
    assert saved.keys() == wavenet.build_wavenet(27, 4, 8, 16, np.random.default_rng(0)).state_dict().keys()
    assert saved["2.weight"].shape == (8, 16) and "2.bias" not in saved and saved["13.bias"].shape == (27,)
    samples = (out / "samples.txt").read_text().splitlines()
    assert len(samples) == 20 and all(set(s) <= set("abcdefghijklmnopqrstuvwxyz") for s in samples)
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(losses(out)) == 200
    if shutil.which("dot") or os.environ.get("CI"):
        assert (out / "graph.svg").read_text().lstrip().startswith("<?xml")
    expected = {"checkpoint.npz", "losses.f32", "model.npz", "metrics.json", "samples.txt", "loss.png"}
    expected |= {
        "updates.f64",
        "diagnostics.json",
        "activations.png",
        "gradients.png",
        "weights.png",
        "updates.png",
    }
    assert expected <= {p.name for p in out.iterdir()} <= set(rundir.RUN_FILES)  # no temporary left


def test_pause_and_resume_give_the_same_run_bit_for_bit(names, tmp_path, capsys):
    straight, paused = tmp_path / "straight", tmp_path / "paused"
    steps = [*DIAGNOSTICS, "--steps", "80", "--checkpoint-every", "30", "--diagnostics-every", "20"]
    assert run_wavenet(names, straight, *steps) == 0
    assert run_wavenet(names, paused, *steps, "--pause-at", "45") == 0
    assert int(load(paused / "checkpoint.npz")["step"]) == 45 and not (paused / "metrics.json").exists()
    hint = capsys.readouterr().out.splitlines()[-1]
    assert hint.endswith(f"Continue with: python -m experiments.makemore_wavenet --resume --out {paused}")
    assert makemore_wavenet.main(["--resume", "--out", str(paused)]) == 0  # the saved options
    for a, b in [(load(straight / f), load(paused / f)) for f in ("checkpoint.npz", "model.npz")]:
        a.pop("seconds", None), b.pop("seconds", None)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    np.testing.assert_array_equal(losses(straight), losses(paused))
    ours, theirs = (json.loads((d / "metrics.json").read_text()) for d in (straight, paused))
    assert [ours[k] for k in ("train", "val", "test")] == [theirs[k] for k in ("train", "val", "test")]
    for name in ("samples.txt", "diagnostics.json"):
        assert (straight / name).read_text() == (paused / name).read_text(), name


def test_a_block_size_the_tree_cannot_halve_is_refused(names, tmp_path, capsys):
    assert run_wavenet(names, tmp_path / "run", "--block-size", "6") == 2
    assert capsys.readouterr().err.strip() == (
        "error: --block-size must be a power of two, at least 2 (the model joins pairs), got 6"
    )
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_the_other_experiments_run_is_refused_clearly(names, tmp_path, capsys):
    """An MLP run cannot be resumed as a WaveNet, nor the other way round; nothing is changed."""
    mlp, net = tmp_path / "mlp", tmp_path / "wavenet"
    assert run(names, mlp, "--steps", "20", "--pause-at", "10") == 0
    assert run_wavenet(names, net, "--steps", "20", "--pause-at", "10") == 0
    capsys.readouterr()
    before = {d: (d / "checkpoint.npz").read_bytes() for d in (mlp, net)}
    assert makemore_wavenet.main(["--resume", "--out", str(mlp)]) == 2
    assert "error: " in (err := capsys.readouterr().err) and "makemore_mlp" in err
    assert makemore_mlp.main(["--resume", "--out", str(net)]) == 2
    assert "error: " in (err := capsys.readouterr().err) and "makemore_wavenet" in err
    assert before == {d: (d / "checkpoint.npz").read_bytes() for d in (mlp, net)}


def test_a_checkpoint_naming_no_experiment_is_the_mlps(names, tmp_path, capsys):
    """Checkpoints written before the WaveNet existed name no experiment: they are the MLP's."""
    out = tmp_path / "mlp"
    assert run(names, out, "--steps", "20", "--pause-at", "10") == 0
    arrays = load(out / "checkpoint.npz")
    del arrays["experiment"]
    np.savez(out / "checkpoint.npz", **arrays)
    assert makemore_wavenet.main(["--resume", "--out", str(out)]) == 2
    assert "holds a run of python -m experiments.makemore_mlp" in capsys.readouterr().err
    assert makemore_mlp.main(["--resume", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 20
