"""The makemore command refused, broken and raced, as a careless or hostile user would: every
failure is one line ``error: ...`` and a non-zero exit code, never a traceback, and what was
already saved is left as it was."""

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from makemore_runs import DIAGNOSTICS, SMALL, load, losses, make_names, run

from experiments import makemore_mlp
from experiments.makemore import data, evaluation, model, report
from experiments.makemore.errors import ExperimentError
from experiments.makemore.options import build_parser

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def names(tmp_path_factory):
    return make_names(tmp_path_factory.mktemp("data") / "names.txt")


def command(*args, **kwargs):
    """The real command in a subprocess: its exit code, stdout and stderr."""
    argv = [sys.executable, "-m", "experiments.makemore_mlp", *SMALL, *map(str, args)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, **kwargs)
    return done.returncode, done.stdout, done.stderr


def one_error(capsys, *fragments):
    """What was printed to stderr is one line, an error naming each of ``fragments``."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def paused(names, tmp_path_factory):
    """A run paused at step 20 of 40: a checkpoint to resume and to damage (copy it first)."""
    out = tmp_path_factory.mktemp("runs") / "paused"
    assert run(names, out, "--steps", "40", "--checkpoint-every", "10", "--pause-at", "20") == 0
    return out


def copy_of(paused, tmp_path):
    return Path(shutil.copytree(paused, tmp_path / "run"))


# ---------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seed", "-1"], "--seed must be at least 0, got -1"),
        (["--pause-at", "0"], "--pause-at must be at least 1"),
        (["--lr", "nan"], "--lr must be a positive finite number"),
        (["--lr", "inf"], "--lr must be a positive finite number"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--batch-size", "1"], "--batch-size must be at least 2"),
        (["--n-hidden", str(2**40)], "--n-hidden must be at least 1 and at most 2147483647"),
        (["--steps", "many"], "argument --steps: invalid int value: 'many'"),
        (["--resume", "--overwrite"], "not allowed with argument"),
        (["--graph-timeout", "0"], "--graph-timeout must be a positive number"),
    ],
)
def test_bad_options_are_refused_in_one_line(tmp_path, capsys, argv, message):
    assert makemore_mlp.main([*argv, "--out", str(tmp_path / "out")]) == 2
    one_error(capsys, message)
    assert not (tmp_path / "out").exists()


def test_sizes_that_cannot_fit_in_memory_are_refused_before_allocating(names, tmp_path, capsys):
    assert run(names, tmp_path / "out", "--n-hidden", "2000000000") == 2
    one_error(capsys, "--n-hidden 2000000000", "GiB of memory, this machine has")


def test_running_out_of_memory_anyway_is_one_line(names, tmp_path, capsys, monkeypatch):
    def no_memory(*args):
        raise MemoryError

    monkeypatch.setattr(model, "build_mlp", no_memory)
    assert run(names, tmp_path / "out", "--steps", "5") == 1
    one_error(capsys, "out of memory")


def test_help_gives_every_option_a_help_and_a_default():
    for action in build_parser()._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.dest
            assert "default:" in action.help or action.nargs == 0, action.dest


# ---------------------------------------------------------------- data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "line 1"),
        ("emma\nzoë\n".encode("latin-1"), "line 2: 'zo\ufffd' is not a name"),
        (b"emma\nol\x0civia\n", "line 2"),
    ],
    ids=["binary", "latin-1", "form-feed"],
)
def test_a_file_that_is_not_names_is_refused(tmp_path, capsys, content, message):
    path = tmp_path / "names.txt"
    path.write_bytes(content)
    assert makemore_mlp.main(["--data", str(path), "--out", str(tmp_path / "out")]) == 2
    one_error(capsys, str(path), message)


def test_a_directory_as_data_is_refused(tmp_path, capsys):
    assert makemore_mlp.main(["--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    one_error(capsys, f"{tmp_path} is a directory")


def test_a_mistyped_data_path_is_an_error_not_a_download(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(data, "fetch_url", lambda url: pytest.fail("downloaded"))
    mistyped = tmp_path / "nmaes.txt"
    assert makemore_mlp.main(["--data", str(mistyped), "--out", str(tmp_path / "out")]) == 2
    one_error(capsys, f"names file {mistyped} does not exist")
    assert not mistyped.exists() and not (tmp_path / "out").exists()


def test_a_fifo_as_data_is_refused_at_once(tmp_path):
    fifo = tmp_path / "names.fifo"
    os.mkfifo(fifo)
    code, _, err = command("--data", fifo, "--out", tmp_path / "out")  # hanging would time out
    assert code == 2, err
    assert err.strip() == (f"error: {fifo} is not a regular file (a pipe or a device?), not a names file")


@pytest.mark.parametrize("count", [1, 3, 5])
def test_too_few_names_are_refused_before_training(tmp_path, capsys, count):
    path = make_names(tmp_path / "names.txt", count=count)
    assert makemore_mlp.main(["--data", str(path), "--out", str(tmp_path / "out")]) == 2
    one_error(capsys, f"holds {count} name", "would be empty")
    assert not (tmp_path / "out").exists()  # a refused run leaves nothing behind


# ---------------------------------------------------------------- the output directory


def test_an_out_that_cannot_be_written_is_refused_before_training(names, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    assert run(names, a_file) == 2
    one_error(capsys, f"--out {a_file} exists and is not a directory")
    assert run(names, a_file / "run") == 2
    one_error(capsys, f"cannot create --out {a_file / 'run'}: Not a directory")


@pytest.fixture
def read_only(tmp_path):
    """A directory nobody can write to (root included: chattr +i), as on a read-only mount."""
    path = tmp_path / "read_only"
    path.mkdir()
    path.chmod(0o555)
    if os.access(path, os.W_OK) and shutil.which("chattr"):  # root writes anywhere chmod allows
        subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    try:
        (path / "probe").touch()
    except OSError:
        yield path
    else:
        pytest.skip("cannot make a directory read-only here")
    finally:
        if shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
        path.chmod(0o755)


def test_a_read_only_out_is_refused_before_training(names, read_only, capsys):
    assert run(names, read_only, "--steps", "5") == 2
    one_error(capsys, f"cannot write to --out {read_only}: ")
    assert list(read_only.iterdir()) == []


def test_an_out_holding_other_files_is_written_to_only_with_overwrite(names, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    assert run(names, out, "--steps", "10") == 2
    one_error(capsys, "holds files this experiment did not write (notes.txt)", "--overwrite")
    assert run(names, out, "--steps", "10", "--overwrite") == 0
    assert (out / "notes.txt").read_text() == "my notes" and (out / "metrics.json").exists()


def test_a_finished_run_needs_a_choice_and_overwrite_starts_again(names, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(names, out, "--steps", "20") == 0
    before = snapshot(out)
    capsys.readouterr()
    assert run(names, out, "--steps", "20") == 2
    one_error(capsys, "already holds a run", "--resume", "--overwrite")
    assert snapshot(out) == before
    capsys.readouterr()
    assert makemore_mlp.main(["--resume", "--out", str(out)]) == 0  # nothing to train: results again
    assert "resuming" in capsys.readouterr().out and losses(out).size == 20
    assert run(names, out, "--steps", "10", "--overwrite") == 0
    assert int(load(out / "checkpoint.npz")["step"]) == 10 and losses(out).size == 10


def test_two_runs_into_one_out_cannot_both_write(names, tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "experiments.makemore_mlp", *SMALL, "--data", str(names), "--out", str(out)]
    argv += ["--steps", "400", "--checkpoint-every", "50"]
    first, second = (subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True) for _ in range(2))
    errors = [process.communicate(timeout=60)[1] for process in (first, second)]
    codes = sorted(p.returncode for p in (first, second))
    assert codes == [0, 2], errors
    refused = next(e for p, e in zip((first, second), errors) if p.returncode == 2)
    assert "another run is writing to --out" in refused or "already holds a run" in refused, refused
    assert "Traceback" not in refused
    assert int(load(out / "checkpoint.npz")["step"]) == 400 and losses(out).size == 400
    assert json.loads((out / "metrics.json").read_text())["steps"] == 400


# ---------------------------------------------------------------- resuming


def test_resume_refuses_other_data(names, paused, tmp_path, capsys):
    out = copy_of(paused, tmp_path)
    other = make_names(tmp_path / "other.txt", seed=1)
    before = snapshot(out)
    assert makemore_mlp.main(["--resume", "--out", str(out), "--data", str(other)]) == 2
    one_error(capsys, f"{other} is not the data this run was trained on")
    assert snapshot(out) == before
    moved = tmp_path / "moved.txt"
    shutil.copy(names, moved)
    assert makemore_mlp.main(["--resume", "--out", str(out), "--data", str(moved)]) == 0  # same content


def test_resume_refuses_options_that_would_change_the_run(paused, tmp_path, capsys):
    out = copy_of(paused, tmp_path)
    before = snapshot(out)
    assert makemore_mlp.main(["--resume", "--out", str(out), "--lr", "0.5", "--seed", "3"]) == 2
    one_error(capsys, "was made with --lr 0.1")
    assert makemore_mlp.main(["--resume", "--out", str(out), "--steps", "15"]) == 2
    one_error(capsys, "is at step 20: --steps 15")
    assert makemore_mlp.main(["--resume", "--out", str(out), "--pause-at", "20"]) == 2
    one_error(capsys, "already at step 20: --pause-at 20 would train nothing")
    assert snapshot(out) == before


def damage(path, how):
    content = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(content[: len(content) // 2])
    elif how == "bad-crc":
        with zipfile.ZipFile(path) as archive:
            member = archive.getinfo("model/0.weight.npy")
        at = member.header_offset + 30 + len(member.filename) + 200  # inside the member's data
        path.write_bytes(content[:at] + bytes([content[at] ^ 0xFF]) + content[at + 1 :])
    else:
        arrays = load(path)
        if how == "missing-field":
            del arrays["rng"]
        elif how == "mistyped-field":
            arrays["step"] = np.array("twenty")
        elif how == "bad-options":
            arrays["options"] = np.array(json.dumps(json.loads(str(arrays["options"])) | {"steps": "many"}))
        elif how == "wrong-model":
            arrays["model/2.weight"] = arrays["model/2.weight"][:, :3]
        np.savez(path, **arrays)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("empty", "is damaged or not a checkpoint"),
        ("truncated", "is damaged or not a checkpoint"),
        ("bad-crc", "is damaged or not a checkpoint (Bad CRC-32"),
        ("missing-field", "lacks rng"),
        ("mistyped-field", "step is <U6[], expected a number"),
        ("bad-options", "holds bad options: --steps must be a whole number"),
        ("wrong-model", "does not fit this run"),
    ],
)
def test_a_damaged_checkpoint_is_refused_and_left_as_it_is(paused, tmp_path, capsys, how, message):
    out = copy_of(paused, tmp_path)
    damage(out / "checkpoint.npz", how)
    before = snapshot(out)
    assert makemore_mlp.main(["--resume", "--out", str(out)]) == 2
    one_error(capsys, str(out / "checkpoint.npz"), message)
    assert snapshot(out) == before


def test_the_real_command_reports_a_damaged_checkpoint_without_a_traceback(paused, tmp_path):
    out = copy_of(paused, tmp_path)
    damage(out / "checkpoint.npz", "bad-crc")
    code, _, err = command("--resume", "--out", out)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "Bad CRC-32" in err, err


# ---------------------------------------------------------------- while and after training


def test_a_diverging_run_stops_at_the_first_non_finite_loss_and_keeps_the_last_good_checkpoint(
    names, tmp_path, capsys
):
    out = tmp_path / "run"
    assert run(names, out, "--steps", "1000", "--lr", "1e30", "--checkpoint-every", "1") == 3
    line = one_error(
        capsys, "training diverged: the loss is nan at step", "--lr 1e+30", "last good checkpoint"
    )
    step = int(load(out / "checkpoint.npz")["step"])
    assert f"(step {step}) is kept" in line and step < 5
    assert all(
        np.isfinite(v).all() for k, v in load(out / "checkpoint.npz").items() if k.startswith("model/")
    )
    assert not (out / "metrics.json").exists()


def test_an_exploding_loss_is_warned_of_early(names, tmp_path, capsys):
    assert run(names, tmp_path / "run", "--steps", "30", "--lr", "30") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "the learning rate (30) may be too high" in warnings[0], warnings


def test_a_failure_after_training_keeps_the_metrics_and_the_model(names, tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise ExperimentError("the model's next-character probabilities are not finite")

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(evaluation, "sample", broken)
    monkeypatch.setattr(report, "plot_loss", disk_full)
    out = tmp_path / "run"
    assert run(names, out, "--steps", "20") == 0
    err = capsys.readouterr().err
    assert "warning: samples.txt not written: the model's next-character" in err
    assert "warning: loss.png not written: [Errno 28] No space left on device" in err
    assert (out / "metrics.json").exists() and (out / "model.npz").exists() and (out / "graph.dot").exists()


# the command, with MODULE.NAME replaced by a function that says "stuck" and waits
STUCK = """
import importlib, sys, time
from experiments import makemore_mlp

def stuck(*args, **kwargs):
    print("stuck", flush=True)
    time.sleep(60)

setattr(importlib.import_module(sys.argv[1]), sys.argv[2], stuck)
sys.exit(makemore_mlp.main(sys.argv[3:]))
"""


@pytest.mark.parametrize(
    "stage",
    [
        "experiments.makemore.evaluation.evaluate",
        "experiments.makemore.evaluation.sample",
        "nn.diagnostics.save",
    ],
    ids=["evaluating", "sampling", "drawing"],
)
def test_sigterm_after_training_is_one_line_and_the_results_can_be_written_again(names, tmp_path, stage):
    out = tmp_path / "run"
    module, name = stage.rsplit(".", 1)
    argv = [sys.executable, "-c", STUCK, module, name, *SMALL, *DIAGNOSTICS, "--data", names, "--out", out]
    argv = [*map(str, argv), "--steps", "20"]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:  # what the command prints, then "stuck" once it is at that stage
        if line == "stuck\n":
            break
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: stopped by SIGTERM while writing the results; the trained run is saved in checkpoint.npz: "
        f"write them with: python -m experiments.makemore_mlp --resume --out {out}"
    ], err
    assert "Traceback" not in err and int(load(out / "checkpoint.npz")["step"]) == 20
    assert makemore_mlp.main(["--resume", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 20 and (out / "updates.png").exists()


@pytest.fixture
def fake_dot(tmp_path, monkeypatch):
    """A ``dot`` on PATH that runs ``script`` (a shell command line)."""

    def install(script):
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "dot").write_text(f"#!/bin/sh\n{script}\n")
        (bin_dir / "dot").chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    return install


@pytest.mark.parametrize(
    ("script", "message"),
    [("echo 'dot: out of memory' >&2; exit 1", "out of memory"), ("exec sleep 30", "0.5")],
)
def test_graphviz_failing_or_hanging_is_a_warning_and_the_run_finishes(
    names, tmp_path, capsys, fake_dot, script, message
):
    fake_dot(script)
    out = tmp_path / "run"
    assert run(names, out, "--steps", "20", "--graph-timeout", "0.5") == 0
    warning = capsys.readouterr().err.strip().splitlines()[-1]
    assert warning.startswith("warning: graph.svg not written:") and message in warning, warning
    assert (
        (out / "metrics.json").exists() and (out / "graph.dot").exists() and not (out / "graph.svg").exists()
    )


def limit_file_size(size):
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def test_a_full_disk_is_one_line_and_the_previous_checkpoint_stays(paused, tmp_path):
    out = copy_of(paused, tmp_path)
    before = (out / "checkpoint.npz").read_bytes()
    code, _, err = command("--resume", "--out", out, preexec_fn=limit_file_size(2000))
    assert code == 1, err
    assert err.strip().splitlines()[-1] == (
        f"error: could not write {out / 'checkpoint.npz'}: File too large; "
        "the checkpoint of step 20 is intact"
    )
    assert "Traceback" not in err and (out / "checkpoint.npz").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "losses.f32"]  # no temporary left
    assert makemore_mlp.main(["--resume", "--out", str(out)]) == 0  # once there is room again
    assert losses(out).size == 40
