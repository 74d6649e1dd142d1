"""The makemore experiment end to end on a small names file: results, the graph's gradients,
checkpoints and bit-for-bit resume (in process and after a signal), and the notebook parity
script. Refusals and failures are in test_experiment_cli.py."""

import io
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from makemore_runs import DIAGNOSTICS, SMALL, load, losses, make_names, run

import nn
import tape
from experiments import makemore_mlp, notebook_parity
from experiments.makemore import data, evaluation, model, rundir
from experiments.makemore.progress import Progress

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def names(tmp_path_factory):
    return make_names(tmp_path_factory.mktemp("data") / "names.txt")


def assert_same_arrays(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def assert_same_run(a, b):
    """Two output directories hold the same run, bit for bit (wall time aside)."""
    timeless = [load(d / "checkpoint.npz") | {"seconds": 0} for d in (a, b)]
    assert_same_arrays(*timeless)
    np.testing.assert_array_equal(losses(a), losses(b))
    assert_same_arrays(load(a / "model.npz"), load(b / "model.npz"))
    ours, theirs = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert [ours[k] for k in ("train", "val", "test")] == [theirs[k] for k in ("train", "val", "test")]
    assert (a / "samples.txt").read_text() == (b / "samples.txt").read_text()
    assert (a / "graph.dot").read_text() == (b / "graph.dot").read_text()
    if (a / "diagnostics.json").exists() or (b / "diagnostics.json").exists():
        assert (a / "diagnostics.json").read_text() == (b / "diagnostics.json").read_text()


@pytest.fixture(scope="module")
def finished(names, tmp_path_factory):
    """A run of 300 steps, and what it printed."""
    out = tmp_path_factory.mktemp("runs") / "finished"
    capture = io.StringIO()
    stdout, sys.stdout = sys.stdout, capture
    try:
        assert run(names, out, *DIAGNOSTICS, "--steps", "300", "--checkpoint-every", "100") == 0
    finally:
        sys.stdout = stdout
    return out, capture.getvalue()


def test_replay_trains_the_same_run_bit_for_bit(finished, names, tmp_path):
    # the learning rate decays halfway (a new record), the diagnostics' sampled steps run eagerly
    out = tmp_path / "replayed"
    assert run(names, out, *DIAGNOSTICS, "--steps", "300", "--checkpoint-every", "100", "--replay") == 0
    assert_same_run(finished[0], out)


def test_the_pipeline_end_to_end(finished):
    out, printed = finished
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"steps", "train", "val", "test", "seconds", "steps_per_second", "config"} <= metrics.keys()
    assert metrics["steps"] == 300 and metrics["steps_per_second"] > 0
    assert metrics["config"]["data_sha256"] and metrics["config"]["n_hidden"] == 16
    assert all(1.0 < metrics[k] < np.log(27) for k in ("train", "val", "test"))  # learned something
    saved = load(out / "model.npz")
    assert set(saved) == set(model.build_mlp(27, 4, 3, 16, np.random.default_rng(0)).state_dict())
    assert saved["2.weight"].shape == (12, 16) and saved["3.running_var"].dtype == np.float32
    samples = (out / "samples.txt").read_text().splitlines()
    assert len(samples) == 20 and all(set(s) <= set("abcdefghijklmnopqrstuvwxyz") for s in samples)
    for picture in ("loss.png", "activations.png", "gradients.png", "weights.png", "updates.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", picture
    assert json.loads((out / "diagnostics.json").read_text())["updates"]["steps"] == [0, 100, 200, 299]
    assert len(losses(out)) == 300
    if shutil.which("dot") or os.environ.get("CI"):  # CI installs Graphviz: the graph must be drawn
        assert (out / "graph.svg").read_text().lstrip().startswith("<?xml")
    assert "train " in printed and "val " in printed
    assert {p.name for p in out.iterdir()} <= set(rundir.RUN_FILES)  # no temporary left


def test_the_graph_shows_the_gradients_of_one_batch(finished, names):
    """The drawing's ‖∇‖ of the embedding table is the one recomputed from the saved model on the
    first training batch, not the sum with the last training step's gradients."""
    out, _ = finished
    drawn = re.search(r"<B>0\.weight</B>.*?‖∇‖ ([0-9.e+-]+)<", (out / "graph.dot").read_text())
    mlp = model.build_mlp(27, 4, 3, 16, np.random.default_rng(0))
    mlp.load_state_dict(load(out / "model.npz"))
    train = data.examples(data.split(data.load(names))[0], block_size=3)
    Xb, Yb = train.batch(slice(0, 8))
    nn.cross_entropy(mlp(Xb), Yb).backward()
    true_norm = float(np.linalg.norm(mlp[0].weight.grad.numpy()))
    assert float(drawn.group(1)) == pytest.approx(true_norm, rel=5e-3)  # drawn to 3 significant digits


@pytest.mark.skipif(not (shutil.which("dot") or os.environ.get("CI")), reason="Graphviz lays the page out")
def test_explore_writes_the_sweep_page_of_the_drawn_step_and_only_when_asked(finished, names, tmp_path):
    out, _ = finished
    assert not (out / "explore.html").exists()
    assert run(names, tmp_path / "run", "--steps", "30", "--explore") == 0
    page = (tmp_path / "run" / "explore.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and 'id="tape-data"' in page
    assert "0.weight" in page and "cross_entropy" in page  # the model's own names and ops
    assert (tmp_path / "run" / "graph.svg").exists()  # the page is made before backward, the drawing after


def test_pause_and_resume_with_no_other_option_give_the_same_run_bit_for_bit(names, tmp_path, capsys):
    straight, paused = tmp_path / "straight", tmp_path / "paused"
    assert run(names, straight, "--steps", "120", "--checkpoint-every", "50") == 0
    assert run(names, paused, "--steps", "120", "--checkpoint-every", "50", "--pause-at", "70") == 0
    assert int(load(paused / "checkpoint.npz")["step"]) == 70 and not (paused / "metrics.json").exists()
    hint = capsys.readouterr().out.splitlines()[-1]
    assert hint.endswith(f"Continue with: python -m experiments.makemore_mlp --resume --out {paused}")
    assert makemore_mlp.main(shlex.split(hint.split("Continue with: ")[1])[3:]) == 0  # the options saved
    assert_same_run(paused, straight)


def test_a_larger_steps_extends_a_run(names, tmp_path):
    straight, extended = tmp_path / "straight", tmp_path / "extended"
    assert run(names, straight, "--steps", "160", "--checkpoint-every", "50") == 0
    assert run(names, extended, "--steps", "100", "--checkpoint-every", "50", "--pause-at", "40") == 0
    # steps 0-39 ran at the same learning rate under either length: the same as a run of 160
    assert makemore_mlp.main(["--resume", "--out", str(extended), "--steps", "160"]) == 0
    assert_same_run(extended, straight)


def test_checkpoints_cost_the_same_at_any_step(names, tmp_path):
    """The loss history is appended to a log, not rewritten into every checkpoint."""
    out = tmp_path / "run"
    assert (
        run(names, out, "--steps", "300", "--checkpoint-every", "1", "--pause-at", "5", "--no-diagnostics")
        == 0
    )
    early = (out / "checkpoint.npz").stat().st_size
    assert makemore_mlp.main(["--resume", "--out", str(out), "--pause-at", "200", "--no-diagnostics"]) == 0
    assert abs((out / "checkpoint.npz").stat().st_size - early) < 16  # the generator's state varies in digits
    assert (out / "losses.f32").stat().st_size == 4 * 200


def test_the_diagnostics_history_goes_to_a_log_not_into_every_checkpoint(names, tmp_path):
    """The checkpoint holds two snapshots of histograms (the first sample's and the latest's)
    whatever the step; the update ratios of every sample are appended to updates.f64."""
    out = tmp_path / "run"
    sampled = [*DIAGNOSTICS, "--checkpoint-every", "1", "--diagnostics-every", "1"]
    assert run(names, out, "--steps", "300", *sampled, "--pause-at", "5") == 0
    early = (out / "checkpoint.npz").stat().st_size
    assert makemore_mlp.main(["--resume", "--out", str(out), *sampled, "--pause-at", "200"]) == 0
    # 195 more rows inside it would be 195 * 4 * 8 bytes: only the histograms' digits vary
    assert abs((out / "checkpoint.npz").stat().st_size - early) < 1000
    assert (out / "updates.f64").stat().st_size == 200 * (1 + 3) * 8  # step and 3 weights, a row a step


def test_temporary_files_of_a_killed_write_are_removed_by_the_next_run(names, tmp_path):
    out = tmp_path / "run"
    assert run(names, out, "--steps", "20", "--pause-at", "10") == 0
    stale = [out / ".checkpoint.npz.4242.0badf00d.tmp", out / ".metrics.json.77.12ab.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    assert makemore_mlp.main(["--resume", "--out", str(out)]) == 0
    assert not any(path.exists() for path in stale)


@pytest.fixture(scope="module")
def straight_1500(names, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "straight"
    assert run(names, out, *DIAGNOSTICS, "--steps", "1500", "--checkpoint-every", "50") == 0
    return out


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["int", "term", "kill"])
def test_an_interrupted_process_resumes_to_the_uninterrupted_result(names, tmp_path, straight_1500, how):
    interrupted = tmp_path / "interrupted"
    args = ["--data", str(names), "--steps", "1500", "--checkpoint-every", "50", "--out", str(interrupted)]
    command = [sys.executable, "-m", "experiments.makemore_mlp", *SMALL, *DIAGNOSTICS, *args]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not (interrupted / "checkpoint.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(how)
    output, _ = process.communicate(timeout=60)
    step = int(load(interrupted / "checkpoint.npz")["step"])
    assert 50 <= step < 1500, output  # stopped part way, with a checkpoint to resume from
    if how == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL and step % 50 == 0, (process.returncode, step, output)
    else:
        assert process.returncode == 128 + how, output
        assert f"stopped at step {step} by {how.name}; the checkpoint is saved" in output, output
        assert "Traceback" not in output
    assert makemore_mlp.main(["--resume", "--out", str(interrupted)]) == 0
    assert_same_run(interrupted, straight_1500)


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
    mlp = model.build_mlp(27, 4, 3, 8, np.random.default_rng(0))
    g = np.random.default_rng(0)
    examples = data.Examples(g.integers(0, 27, (100, 3), dtype=np.uint8), np.zeros(100, dtype=np.uint8))
    evaluation.calibrate_batchnorm(mlp, examples, chunk=16)
    with tape.no_grad():
        hprebn = mlp[2](mlp[1](mlp[0](examples.X.astype(np.int64)))).array.astype(np.float64)
    np.testing.assert_allclose(mlp[3].running_mean, hprebn.mean(0), rtol=1e-6)
    np.testing.assert_allclose(mlp[3].running_var, hprebn.var(0, ddof=1), rtol=1e-6)
    assert not mlp.training


def test_load_state_dict_names_a_key_that_is_not_a_string():
    mlp = model.build_mlp(27, 4, 3, 8, np.random.default_rng(0))
    state = mlp.state_dict() | {1: np.zeros(3)}
    with pytest.raises(TypeError, match=r"load_state_dict: keys must be strings, got 1 \(int\)"):
        mlp.load_state_dict(state)


class Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_progress_redraws_one_line_on_a_terminal_and_prints_a_few_lines_to_a_log(tty):
    stream = Stream(tty)
    progress = Progress(total=1000, start=0, stream=stream)
    for step in range(1, 1001):
        progress.update(step, 2.0)
    progress.close()
    text = stream.getvalue()
    assert "step 1000/1000 | loss 2.0000 |" in text and "steps/s" in text
    if tty:
        assert text.startswith("\r") and text.count("\n") == 1
    else:
        assert "\r" not in text and text.count("\n") == 10
