"""The benchmark's machinery in a tiny mode: engines agree, the JSON has its structure and the
usual permissions, the command runs as ``python -m experiments.bench``.

Timings are never asserted: they depend on the machine and on whatever else runs on it.
"""

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import tape
from experiments.bench import cli, engines, report, verification

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
    checked = verification.verify_losses(list(engines.ENGINE_BY_NAME), batch_size=32)
    assert checked["max_relative_error"] <= verification.LOSS_TOLERANCE
    assert "tape-decomposed" in checked["losses"]
    for losses in checked["losses"].values():
        assert len(losses) == verification.VERIFY_STEPS


def test_disagreeing_engine_aborts_with_a_clear_message(monkeypatch):
    def off_by_a_bit(self, batch):
        return self.forward(tape, **self.params, Xb=batch[0], Yb=batch[1], n=batch[2])["loss"].array + 0.01

    monkeypatch.setattr(engines.TapeDecomposed, "step", off_by_a_bit)
    with pytest.raises(SystemExit, match="tape-decomposed step 0: loss"):
        verification.verify_losses(["tape-decomposed", "numpy-floor"], batch_size=32)


def test_tiny_run_writes_the_json(tmp_path):
    pytest.importorskip("torch")
    path = tmp_path / "out" / "bench.json"
    returned = cli.main([*TINY, "--rss-samples", "0", "--json", str(path)])
    written = json.loads(path.read_text())
    assert written == json.loads(json.dumps(returned))
    assert not list(path.parent.glob("*.tmp"))  # the atomic write left no temporary file
    assert written["schema"] == report.SCHEMA_VERSION
    assert {"nproc", "cpu", "numpy", "torch", "blas", "openblas_variables"} <= written["machine"].keys()
    assert written["config"]["batch_sizes"] == [32]
    measured = {row["engine"] for row in written["results"]}
    assert {"tape-decomposed", "torch-nn", "torch-decomposed", "numpy-floor"} <= measured
    assert measured == {name for name, e in written["engines"].items() if e["available"]}
    for row in written["results"]:
        assert row.keys() == ROW_KEYS
        assert len(row["rounds"]) == 2
        rate = row["steps_per_second"]
        assert 0 < rate["min"] <= rate["median"] <= rate["max"]
        assert row["ratio_to_torch"]["median"] > 0
    by_engine = {row["engine"]: row for row in written["results"]}
    assert by_engine["torch-nn"]["ratio_to_torch"]["median"] == 1.0
    table = report.format_table(written)
    assert "| tape-decomposed | 32 |" in table and "| numpy-floor | torch-nn |" in table


def test_without_torch_tape_and_the_floor_are_reported_alone(tmp_path):
    path = tmp_path / "bench.json"
    argv = [*TINY, "--clock", "cpu", "--rss-samples", "320", "--json", str(path)]
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
    assert "torch not importable" in written["unavailable"]["torch-nn"]
    assert "torch not importable" in written["unavailable"]["torch-decomposed"]
    measured = {row["engine"] for row in written["results"]}
    assert {"tape-decomposed", "numpy-floor"} <= measured
    assert not any(name.startswith("torch") for name in measured)
    for row in written["results"]:
        assert row["ratio_to_torch"] is None
        assert row["memory"]["peak_rss_mb"] > 0
        assert row["memory"]["steps"] == 10
    assert "torch-nn: not measured, torch not importable" in done.stdout


def test_the_command_runs_quick_and_writes_its_json_with_the_usual_permissions(tmp_path):
    """``python -m experiments.bench --quick`` as a user runs it (here without torch's engines):
    the JSON is written atomically with 0666 & ~umask, not the 0600 of a mkstemp file."""
    path = tmp_path / "runs" / "bench.json"
    command = [sys.executable, "-m", "experiments.bench", "--quick", *TINY]
    command += ["--engines", "tape-nn", "numpy-floor", "--rss-samples", "320", "--json", str(path)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, umask=0o022)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["bench.json"]  # no temporary file left
    written = json.loads(path.read_text())
    assert written["config"]["engines"] == ["tape-nn", "numpy-floor"]
    assert written["config"]["rounds"] == 2 and written["config"]["seconds"] == 0.01  # over --quick's
    assert [row["engine"] for row in written["results"]] == ["tape-nn", "numpy-floor"]
    assert all(row["memory"]["peak_rss_mb"] > 0 for row in written["results"])
    assert "| tape-nn | 32 |" in done.stdout and "| numpy-floor | torch-nn | n/a" in done.stdout
    assert done.stdout.rstrip().endswith(f"wrote {path}")
