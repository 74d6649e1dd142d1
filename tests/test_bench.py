"""The benchmark's machinery in a tiny mode: engines agree, the JSON has its structure and the
usual permissions, the command runs as ``python -m experiments.bench``.

Timings are never asserted: they depend on the machine and on whatever else runs on it.
"""

import importlib.util
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import tape
from experiments.bench import cli, engines, op_profile, report, verification, wavenet
from experiments.bench.workloads import MLP, WAVENET, WORKLOADS

REPO_ROOT = Path(__file__).resolve().parents[1]

TINY = ["--batch-sizes", "32", "--rounds", "2", "--seconds", "0.01"]
ROW_KEYS = {
    "engine",
    "batch_size",
    "steps_per_measurement",
    "steps_per_second",
    "us_per_step",
    "ratio_to_torch",
    "rounds",
    "memory",
}


def test_all_engines_reach_the_same_losses_as_the_numpy_floor():
    checked = verification.verify_losses(MLP, MLP.engine_names, batch_size=32)
    assert checked["max_relative_error"] <= verification.LOSS_TOLERANCE
    assert "tape-decomposed" in checked["losses"]
    assert checked["reference_of"]["tape-decomposed"] == "numpy-floor, unbiased variance"
    for losses in checked["losses"].values():
        assert len(losses) == verification.VERIFY_STEPS


def test_the_wavenet_engines_reach_the_same_losses():
    """tape eager, tape replay, the lecture's classes on torch and torch.nn: the same three steps."""
    checked = verification.verify_losses(WAVENET, WAVENET.engine_names, batch_size=8)
    assert checked["max_relative_error"] <= verification.LOSS_TOLERANCE
    expected = {"tape-nn"} | {n for n in ("tape-replay",) if hasattr(tape, "replay")}
    if importlib.util.find_spec("torch"):
        expected |= {"torch-eager", "torch-nn"}
    assert set(checked["losses"]) == expected
    reference = checked["references"]["tape-nn"]
    assert len(reference) == verification.VERIFY_STEPS and len(set(reference)) == verification.VERIFY_STEPS


def test_the_wavenet_is_the_experiments_model_normalising_as_torch_nn():
    model = wavenet.build_tape_model()
    assert sum(p.numel() for p in model.parameters()) == 76_579  # the lecture's count
    assert not any(getattr(layer, "unbiased", False) for layer in model)


def test_without_tape_replay_the_replay_engines_are_unavailable(monkeypatch):
    monkeypatch.delattr(tape, "replay", raising=False)
    for workload in WORKLOADS.values():
        built, unavailable = workload.build_engines(["tape-nn", "tape-replay"], workload.initial_parameters())
        assert list(built) == ["tape-nn"]
        assert unavailable == {"tape-replay": "this tape has no tape.replay"}


def test_disagreeing_engine_aborts_with_a_clear_message(monkeypatch):
    def off_by_a_bit(self, batch):
        return self.forward(tape, **self.params, Xb=batch[0], Yb=batch[1], n=batch[2])["loss"].array + 0.01

    monkeypatch.setattr(engines.TapeDecomposed, "step", off_by_a_bit)
    with pytest.raises(SystemExit, match="tape-decomposed step 0: loss"):
        verification.verify_losses(MLP, ["tape-decomposed", "numpy-floor"], batch_size=32)


@pytest.mark.parametrize("workload", [MLP, WAVENET], ids=["mlp", "wavenet"])
def test_the_op_profile_accounts_for_the_step(workload):
    """Every op's forward and VJP and the rest of each phase; the originals put back after."""
    forwards = {name: op.forward for name, op in op_profile.REGISTRY.items()}
    found = op_profile.op_profile(workload, "tape-nn", batch_size=8, steps=20)
    assert {name: op.forward for name, op in op_profile.REGISTRY.items()} == forwards
    parts = {(row["phase"], row["part"]) for row in found["rows"]}
    assert ("forward", "linear forward") in parts and ("forward", "cross_entropy forward") in parts
    assert ("backward", "cross_entropy VJP 0 (dcross_entropy)") in parts
    assert {phase for phase, _ in parts} == set(op_profile.PHASES)
    assert all(row["calls"] > 0 for row in found["rows"] if row["calls"] is not None)
    table = op_profile.format_op_profile(found)
    assert "| backward | the rest: the sweep" in table and "| all | step (sum of the rows) |" in table


def test_tiny_run_writes_the_json(tmp_path):
    pytest.importorskip("torch")
    path = tmp_path / "out" / "bench.json"
    returned = cli.main([*TINY, "--rss-samples", "0", "--json", str(path)])
    written = json.loads(path.read_text())
    assert written == json.loads(json.dumps(returned))
    assert not list(path.parent.glob("*.tmp"))  # the atomic write left no temporary file
    assert written["schema"] == report.SCHEMA_VERSION
    assert {"nproc", "cpu", "numpy", "torch", "blas", "openblas_variables"} <= written["machine"].keys()
    assert written["config"]["batch_sizes"] == {"mlp": [32], "wavenet": [32]}
    assert list(written["workloads"]) == ["mlp", "wavenet"]
    mlp, wave = written["workloads"]["mlp"], written["workloads"]["wavenet"]
    assert mlp["model"]["n_hidden"] == 200 and wave["model"]["n_hidden"] == 128
    assert {"tape-decomposed", "torch-nn", "torch-decomposed", "numpy-floor"} <= _measured(mlp)
    assert {"tape-nn", "torch-eager", "torch-nn"} <= _measured(wave)
    for part in (mlp, wave):
        assert _measured(part) == {name for name, e in part["engines"].items() if e["available"]}
        assert [v["batch_size"] for v in part["verification"]] == [32]
        for row in part["results"]:
            assert row.keys() == ROW_KEYS
            assert len(row["rounds"]) == 2
            rate = row["steps_per_second"]
            assert 0 < rate["min"] <= rate["median"] <= rate["max"]
            assert row["ratio_to_torch"]["median"] > 0
        by_engine = {row["engine"]: row for row in part["results"]}
        assert by_engine["torch-nn"]["ratio_to_torch"]["median"] == 1.0
    assert wave["engines"]["torch-eager"]["baseline"] == "torch-nn"
    table = report.format_table(written)
    assert "| tape-decomposed | 32 |" in table and "| numpy-floor | torch-nn |" in table
    assert "wavenet: makemore part 5's WaveNet" in table and "| torch-eager | torch-nn |" in table


def _measured(part):
    return {row["engine"] for row in part["results"]}


def test_without_torch_tape_and_the_floor_are_reported_alone(tmp_path):
    path = tmp_path / "bench.json"
    argv = [*TINY, "--clock", "cpu", "--rss-samples", "320", "--json", str(path)]
    argv += [
        "--engines",
        "tape-nn",
        "tape-decomposed",
        "torch-nn",
        "torch-decomposed",
        "torch-eager",
        "numpy-floor",
    ]
    blocked = (
        "import runpy, sys; sys.modules['torch'] = None; "
        f"sys.argv = ['bench', *{argv!r}]; "
        "runpy.run_module('experiments.bench', run_name='__main__', alter_sys=True)"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocked],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    written = json.loads(path.read_text())
    assert written["machine"]["torch"] is None
    assert written["config"]["clock"] == "cpu"
    mlp, wave = written["workloads"]["mlp"], written["workloads"]["wavenet"]
    assert "torch not importable" in mlp["unavailable"]["torch-nn"]
    assert "torch not importable" in mlp["unavailable"]["torch-decomposed"]
    assert set(wave["unavailable"]) == {"torch-nn", "torch-eager"}
    assert {"tape-decomposed", "numpy-floor"} <= _measured(mlp)
    assert _measured(wave) == {"tape-nn"}
    for row in mlp["results"] + wave["results"]:
        assert row["ratio_to_torch"] is None
        assert row["memory"]["peak_rss_mb"] > 0
        assert row["memory"]["steps"] == 10
    assert "torch-nn: not measured, torch not importable" in done.stdout


def test_the_command_runs_quick_and_writes_its_json_with_the_usual_permissions(tmp_path):
    """``python -m experiments.bench --quick`` as a user runs it (here without torch's engines):
    the JSON is written atomically with 0666 & ~umask, not the 0600 of a mkstemp file."""
    path = tmp_path / "runs" / "bench.json"
    command = [sys.executable, "-m", "experiments.bench", "--quick", *TINY, "--workload", "mlp"]
    command += ["--engines", "tape-nn", "numpy-floor", "--rss-samples", "320", "--json", str(path)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, umask=0o022)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["bench.json"]  # no temporary file left
    written = json.loads(path.read_text())
    assert written["config"]["engines"] == ["tape-nn", "numpy-floor"]
    assert written["config"]["rounds"] == 2 and written["config"]["seconds"] == 0.01  # over --quick's
    assert list(written["workloads"]) == ["mlp"]
    results = written["workloads"]["mlp"]["results"]
    assert [row["engine"] for row in results] == ["tape-nn", "numpy-floor"]
    assert all(row["memory"]["peak_rss_mb"] > 0 for row in results)
    assert "| tape-nn | 32 |" in done.stdout and "| numpy-floor | torch-nn | n/a" in done.stdout
    assert done.stdout.rstrip().endswith(f"wrote {path}")


def test_the_command_runs_the_wavenet_alone(tmp_path):
    """``--workload wavenet`` at its own batch size; memory processes for its engines."""
    path = tmp_path / "bench.json"
    command = [sys.executable, "-m", "experiments.bench", *TINY, "--workload", "wavenet"]
    command += [
        "--wavenet-batch-sizes",
        "8",
        "--engines",
        "tape-nn",
        "--rss-samples",
        "80",
        "--json",
        str(path),
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    written = json.loads(path.read_text())
    assert written["config"]["batch_sizes"] == {"wavenet": [8]}
    (row,) = written["workloads"]["wavenet"]["results"]
    assert (row["engine"], row["batch_size"]) == ("tape-nn", 8)
    assert row["memory"]["peak_rss_mb"] > 0 and row["memory"]["steps"] == 10
    assert "| tape-nn | 8 |" in done.stdout


def test_the_op_profile_command_prints_its_table():
    command = [sys.executable, "-m", "experiments.bench", "--profile-ops", "tape-nn", "--workload", "wavenet"]
    command += ["--wavenet-batch-sizes", "8", "--profile-steps", "10"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wavenet tape-nn, batch 8, 10 steps:")
    assert "| forward | batchnorm forward |" in done.stdout


def test_a_workload_none_of_whose_engines_was_asked_for_is_left_out(tmp_path):
    path = tmp_path / "bench.json"
    returned = cli.main([*TINY, "--engines", "numpy-floor", "--rss-samples", "0", "--json", str(path)])
    assert list(returned["workloads"]) == ["mlp"]
    assert [row["engine"] for row in returned["workloads"]["mlp"]["results"]] == ["numpy-floor"]
