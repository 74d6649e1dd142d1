"""The makemore experiment end to end on a small names file, checkpoints and bit-for-bit resume,
and the notebook parity script."""

import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tape
from experiments import makemore_mlp, notebook_parity

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--batch-size", "8", "--n-embd", "4", "--n-hidden", "16", "--seed", "3"]


@pytest.fixture(scope="module")
def names(tmp_path_factory):
    """400 made-up names from a handful of syllables: enough structure to learn a little."""
    g = random.Random(0)
    syllables = ["ma", "ri", "an", "el", "jo", "na", "li", "ka", "so", "ta", "be", "ne", "y"]
    words = ["".join(g.choice(syllables) for _ in range(g.randint(1, 3))) for _ in range(400)]
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(words) + "\n")
    return path


def run(names, out, *args):
    return makemore_mlp.main(["--data", str(names), "--out", str(out), *SMALL, *args])


def load(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f}


def assert_same_arrays(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_the_pipeline_end_to_end(names, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(names, out, "--steps", "300", "--checkpoint-every", "100") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"steps", "train", "val", "test", "seconds", "steps_per_second"} <= metrics.keys()
    assert metrics["steps"] == 300 and metrics["steps_per_second"] > 0
    assert all(1.0 < metrics[k] < np.log(27) for k in ("train", "val", "test"))  # learned something
    model = load(out / "model.npz")
    assert set(model) == {name for name in makemore_mlp.new_run(makemore_mlp.Config()).model.state_dict()}
    assert model["2.weight"].shape == (12, 16) and model["3.running_var"].dtype == np.float32
    samples = (out / "samples.txt").read_text().splitlines()
    assert len(samples) == 20 and all(set(s) <= set("abcdefghijklmnopqrstuvwxyz") for s in samples)
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    if shutil.which("dot") or os.environ.get("CI"):  # CI installs Graphviz: the graph must be drawn
        assert (out / "graph.svg").read_text().lstrip().startswith("<?xml")
    else:
        assert "graph.svg: skipped" in printed
    assert "train " in printed and "val " in printed
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))  # every write was renamed into place


def test_pause_and_resume_give_the_same_run_bit_for_bit(names, tmp_path):
    straight, paused = tmp_path / "straight", tmp_path / "paused"
    assert run(names, straight, "--steps", "120", "--checkpoint-every", "50") == 0
    assert run(names, paused, "--steps", "120", "--checkpoint-every", "50", "--pause-at", "70") == 0
    assert int(load(paused / "checkpoint.npz")["step"]) == 70 and not (paused / "metrics.json").exists()
    assert run(names, paused, "--steps", "120", "--checkpoint-every", "50", "--resume") == 0
    assert_same_arrays(
        load(paused / "checkpoint.npz") | {"seconds": 0}, load(straight / "checkpoint.npz") | {"seconds": 0}
    )
    assert_same_arrays(load(paused / "model.npz"), load(straight / "model.npz"))
    ours, theirs = (json.loads((d / "metrics.json").read_text()) for d in (paused, straight))
    assert [ours[k] for k in ("train", "val", "test")] == [theirs[k] for k in ("train", "val", "test")]
    assert (paused / "samples.txt").read_text() == (straight / "samples.txt").read_text()


def test_an_existing_run_is_never_overwritten_and_resumes_only_with_the_same_options(names, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(names, out, "--steps", "20", "--pause-at", "10") == 0
    before = (out / "checkpoint.npz").read_bytes()
    assert run(names, out, "--steps", "20") == 2
    assert "pass --resume" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="made with --steps 20"):
        run(names, out, "--steps", "30", "--resume")
    assert (out / "checkpoint.npz").read_bytes() == before


def test_bad_data_and_options_get_clear_errors(tmp_path, capsys):
    empty = tmp_path / "names.txt"
    empty.write_text("")
    assert makemore_mlp.main(["--data", str(empty), "--out", str(tmp_path / "out")]) == 2
    assert "holds no names" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        makemore_mlp.main(["--batch-size", "1"])
    assert "batchnorm needs two examples" in capsys.readouterr().err


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_an_interrupted_process_resumes_to_the_uninterrupted_result(names, tmp_path, how):
    args = [*SMALL, "--data", str(names), "--steps", "2000", "--checkpoint-every", "50"]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    command = [sys.executable, "-m", "experiments.makemore_mlp", *args, "--out", str(interrupted)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not (interrupted / "checkpoint.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(how)
    output, _ = process.communicate(timeout=60)
    step = int(load(interrupted / "checkpoint.npz")["step"])
    assert 50 <= step < 2000, output  # stopped part way, with a checkpoint to resume from
    if how == signal.SIGINT:
        assert process.returncode == 130 and f"stopped at step {step}" in output, output
    else:
        assert process.returncode == -signal.SIGKILL and step % 50 == 0, (process.returncode, step, output)
    assert makemore_mlp.main([*args, "--out", str(interrupted), "--resume"]) == 0
    assert makemore_mlp.main([*args, "--out", str(straight)]) == 0
    assert_same_arrays(load(interrupted / "model.npz"), load(straight / "model.npz"))
    losses = [load(d / "checkpoint.npz")["losses"] for d in (interrupted, straight)]
    np.testing.assert_array_equal(*losses)


def test_the_notebook_parity_script_prints_the_three_exercises_and_passes(capsys):
    pytest.importorskip("torch")
    assert notebook_parity.main([]) == 0
    printed = capsys.readouterr().out
    assert "exercise 1" in printed and "exercise 2" in printed and "exercise 3" in printed
    assert printed.count("approximate: True") >= 26 + 2 and "approximate: False" not in printed


def test_the_seed_alone_decides_the_run(names, tmp_path):
    """No global NumPy or Python random state is read."""
    np.random.seed(123)
    random.seed(123)
    first = tmp_path / "a"
    assert run(names, first, "--steps", "30") == 0
    np.random.seed(456)
    random.seed(456)
    second = tmp_path / "b"
    assert run(names, second, "--steps", "30") == 0
    assert_same_arrays(load(first / "model.npz"), load(second / "model.npz"))


def test_calibration_sets_the_running_statistics_of_the_whole_set_chunk_by_chunk():
    config = makemore_mlp.Config(n_embd=4, n_hidden=8)
    model = makemore_mlp.new_run(config).model
    X = np.random.default_rng(0).integers(0, 27, (100, 3))
    makemore_mlp.calibrate_batchnorm(model, X, chunk=16)
    with tape.no_grad():
        hprebn = model[2](model[1](model[0](X))).array.astype(np.float64)
    np.testing.assert_allclose(model[3].running_mean, hprebn.mean(0), rtol=1e-6)
    np.testing.assert_allclose(model[3].running_var, hprebn.var(0, ddof=1), rtol=1e-6)
    assert not model.training


class Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_progress_redraws_one_line_on_a_terminal_and_prints_a_few_lines_to_a_log(tty):
    stream = Stream(tty)
    progress = makemore_mlp.Progress(total=1000, start=0, stream=stream)
    for step in range(1, 1001):
        progress.update(step, 2.0)
    progress.close()
    text = stream.getvalue()
    assert "step 1000/1000 | loss 2.0000 |" in text and "steps/s" in text
    if tty:
        assert text.startswith("\r") and text.count("\n") == 1
    else:
        assert "\r" not in text and text.count("\n") == 10
