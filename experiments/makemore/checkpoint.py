"""Checkpoints of any nn model trained by SGD on random batches: the model's state, the batch
generator's state, the step, the time spent, the run's options and the diagnostics recorder's
histograms, in one .npz written atomically; the loss of every step, and the update ratios of
every sampled step, go to append-only logs beside it.

The logs keep a checkpoint's cost independent of the step: histories are appended, never
rewritten. They are appended before the checkpoint is renamed into place, and only the rows the
checkpoint counts are read back, so a run killed between the two still resumes bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

import nn
from experiments.makemore.errors import UsageError, write_failed
from nn.diagnostics import Recorder
from tape.atomic import atomic_path

CHECKPOINT = "checkpoint.npz"
LOSSES = "losses.f32"
UPDATES = "updates.f64"  # the diagnostics' update ratios, a row per sampled step
FORMAT = 2  # 1 held the loss history inside the checkpoint, and neither the data's hash nor a format
FIRST = "makemore_mlp"  # the experiment of a checkpoint that does not name one: the first, the only one then


class CheckpointError(UsageError):
    """A checkpoint that cannot be read, or does not fit the model it is loaded into."""


@dataclasses.dataclass
class Checkpoint:
    step: int  # steps done
    seconds: float  # training wall time so far, over all sessions
    options: dict[str, Any]  # everything needed to continue the run: JSON values
    rng_state: dict[str, Any]  # the batch generator's bit_generator.state
    model_state: dict[str, np.ndarray]
    experiment: str = FIRST  # which command made it (``Experiment.name``)
    # the diagnostics': {"every": steps between samples (None: not sampled), "rows": rows of the
    # update log that count, "snapshots": [the recorder's]}; None in checkpoints older than them
    diagnostics: dict[str, Any] | None = None


def capture(
    model: nn.Module,
    rng: np.random.Generator,
    step: int,
    seconds: float,
    options: dict[str, Any],
    experiment: str = FIRST,
    diagnostics: dict[str, Any] | None = None,
) -> Checkpoint:
    return Checkpoint(
        step, seconds, dict(options), rng.bit_generator.state, model.state_dict(), experiment, diagnostics
    )


def write(path: Path, checkpoint: Checkpoint) -> None:
    arrays = {f"model/{name}": value for name, value in checkpoint.model_state.items()}
    arrays["format"] = np.array(FORMAT)
    arrays["step"] = np.array(checkpoint.step, dtype=np.int64)
    arrays["seconds"] = np.array(checkpoint.seconds, dtype=np.float64)
    arrays["options"] = np.array(json.dumps(checkpoint.options))
    arrays["rng"] = np.array(json.dumps(checkpoint.rng_state))
    arrays["experiment"] = np.array(checkpoint.experiment)
    if (
        checkpoint.diagnostics is not None
    ):  # UTF-8 bytes: a long text, and NumPy's strings take 4 bytes a character
        arrays["diagnostics"] = np.frombuffer(json.dumps(checkpoint.diagnostics).encode(), dtype=np.uint8)
    with atomic_path(path) as temporary, open(temporary, "wb") as f:
        np.savez(f, **arrays)


def read(path: Path) -> Checkpoint:
    """The checkpoint at ``path``, every field checked; a CheckpointError says what is wrong."""
    arrays = _read_arrays(path)
    fields = {key: value for key, value in arrays.items() if not key.startswith("model/")}
    if "format" not in fields and "config" in fields:
        raise CheckpointError(
            f"{path} was written by an earlier version of this experiment, which did not record the data "
            "it trained on: start again with --overwrite (or finish it with that version)"
        )
    expected = {"format", "step", "seconds", "options", "rng"}
    if missing := sorted(expected - fields.keys()):
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: not a checkpoint of this experiment")
    if _scalar(fields, "format", "i", path) != FORMAT:
        raise CheckpointError(f"{path} was written by another version of this experiment")
    checkpoint = Checkpoint(
        step=int(_scalar(fields, "step", "i", path)),
        seconds=float(_scalar(fields, "seconds", "f", path)),
        options=_json_object(fields, "options", path),
        rng_state=_json_object(fields, "rng", path),
        model_state={key.removeprefix("model/"): v for key, v in arrays.items() if key.startswith("model/")},
        experiment=_name(fields, "experiment", path) if "experiment" in fields else FIRST,
        diagnostics=_diagnostics(fields, path) if "diagnostics" in fields else None,
    )
    if checkpoint.step < 0 or not (math.isfinite(checkpoint.seconds) and checkpoint.seconds >= 0):
        raise CheckpointError(f"{path} holds step {checkpoint.step} and {checkpoint.seconds} seconds")
    return checkpoint


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    # every member is read (and its CRC checked) here, so damage shows before anything is changed
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("an .npy array, not an .npz archive")
        with archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
        raise CheckpointError(f"{path} is damaged or not a checkpoint ({reason})") from None


def _scalar(fields: dict[str, np.ndarray], key: str, kind: str, path: Path) -> Any:
    value = fields[key]
    if value.shape != () or value.dtype.kind not in kind:
        raise CheckpointError(f"{path}: {key} is {value.dtype}{list(value.shape)}, expected a number")
    return value.item()


def _name(fields: dict[str, np.ndarray], key: str, path: Path) -> str:
    value = fields[key]
    if value.shape != () or value.dtype.kind != "U":
        raise CheckpointError(f"{path}: {key} is {value.dtype}{list(value.shape)}, expected a name")
    return str(value.item())


def _json_object(fields: dict[str, np.ndarray], key: str, path: Path) -> dict[str, Any]:
    value = fields[key]
    try:
        if value.shape != () or value.dtype.kind != "U":
            raise ValueError(f"{value.dtype}{list(value.shape)}")
        result = json.loads(value.item())
        if not isinstance(result, dict):
            raise ValueError(type(result).__name__)
    except ValueError as e:
        raise CheckpointError(f"{path}: {key} is not a JSON object ({e})") from None
    return result


def _diagnostics(fields: dict[str, np.ndarray], path: Path) -> dict[str, Any]:
    value = fields["diagnostics"]
    try:
        if value.ndim != 1 or value.dtype != np.uint8:
            raise ValueError(f"{value.dtype}{list(value.shape)}")
        state = json.loads(value.tobytes().decode())
        if not (isinstance(state, dict) and isinstance(state.get("snapshots"), list)):
            raise ValueError("no snapshots")
        if not (isinstance(state.get("rows"), int) and state["rows"] >= 0):
            raise ValueError("no count of rows")
        if not (state.get("every") is None or (isinstance(state["every"], int) and state["every"] >= 1)):
            raise ValueError(f"every {state['every']!r}")
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: diagnostics are damaged ({e})") from None
    return state


def restore(checkpoint: Checkpoint, model: nn.Module, rng: np.random.Generator, path: Path) -> None:
    """Copy the checkpoint's state into ``model`` and ``rng``: all of it, or (on error) none."""
    saved_rng = rng.bit_generator.state
    try:
        rng.bit_generator.state = checkpoint.rng_state
        model.load_state_dict(checkpoint.model_state)
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        rng.bit_generator.state = saved_rng
        raise CheckpointError(f"{path} does not fit this run: {' '.join(str(e).split())}") from None


class Log:
    """Rows of ``width`` numbers of type ``item``, one row after the other, no header: an
    append-only history (the loss of each step, the update ratios of each sampled step)."""

    def __init__(self, path: Path, item: str = "<f4", width: int = 1) -> None:
        self.path, self.item, self.width = path, np.dtype(item), width

    def count(self) -> int:
        """How many whole rows the file holds."""
        try:
            return self.path.stat().st_size // (self.item.itemsize * self.width)
        except FileNotFoundError:
            return 0

    def check(self, rows: int, what: str = "steps") -> None:
        """Refuse a log shorter than a checkpoint counting ``rows`` needs."""
        if self.count() < rows:
            raise CheckpointError(
                f"{self.path} holds {self.count()} of the {rows} {what} the checkpoint counts"
            )

    def append(self, row: int, values: np.ndarray) -> None:
        """Write ``values`` as the rows from ``row`` on, and drop any after them: what a session
        killed after its last checkpoint, or a failed write, left beyond ``row``."""
        with open(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o666), "wb") as f:  # not truncated yet
            f.seek(row * self.item.itemsize * self.width)
            f.write(np.asarray(values, dtype=self.item).tobytes())
            f.truncate()

    def read(self, rows: int | None = None) -> np.ndarray:
        """The first ``rows`` rows (all by default); a log of width 1 as a flat array."""
        count = -1 if rows is None else rows * self.width
        try:
            values = np.fromfile(self.path, dtype=self.item, count=count)
        except FileNotFoundError:
            values = np.zeros(0, dtype=self.item)
        if self.width == 1:
            return values
        return values[: len(values) // self.width * self.width].reshape(-1, self.width)


class LossLog(Log):
    """The training loss of every step: little-endian float32."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "<f4", 1)


@dataclasses.dataclass
class Run:
    """A training run as the loop advances it and a checkpoint saves it (with its options)."""

    model: nn.Module
    rng: np.random.Generator  # draws the batches
    step: int = 0  # steps done
    seconds: float = 0.0  # training wall time so far, over all sessions
    saved_step: int | None = None  # the step of the checkpoint on disk, if there is one
    diagnostics: Recorder | None = None  # samples the training, if asked to


class Saver:
    """Saves a run into ``directory``: its new losses and update ratios appended to the logs,
    then the checkpoint."""

    def __init__(self, directory: Path, options: dict[str, Any], experiment: str = FIRST) -> None:
        self.path, self.log, self.options = directory / CHECKPOINT, LossLog(directory / LOSSES), options
        self.experiment = experiment
        self.updates_path = directory / UPDATES
        self.saved_rows = 0  # of the update log, counted by the checkpoint on disk
        # a resumed run's diagnostics, kept as they were by a session that does not sample any
        self.kept_diagnostics: dict[str, Any] = {"rows": 0, "snapshots": []}

    def save(self, run: Run, losses: np.ndarray) -> None:
        """Save ``run``, whose steps since the last save had the losses ``losses``."""
        kept = "no checkpoint was saved"
        if run.saved_step is not None:
            kept = f"the checkpoint of step {run.saved_step} is intact"
        try:
            self.log.append(run.step - len(losses), losses)
        except OSError as e:
            raise write_failed(self.log.path, e, kept) from None
        diagnostics = self._append_updates(run.diagnostics, kept)
        try:
            checkpoint = capture(
                run.model, run.rng, run.step, run.seconds, self.options, self.experiment, diagnostics
            )
            write(self.path, checkpoint)
        except OSError as e:
            raise write_failed(self.path, e, kept) from None
        run.saved_step = run.step
        self.saved_rows = diagnostics["rows"]

    def _append_updates(self, recorder: Recorder | None, kept: str) -> dict[str, Any]:
        """The recorder's update ratios since the last save, appended; the diagnostics' state for
        the checkpoint (without a recorder: as it was)."""
        if recorder is None:
            return {**self.kept_diagnostics, "every": None}
        new = recorder.rows(start=self.saved_rows)
        try:
            self.updates_log(new.shape[1]).append(self.saved_rows, new)
        except OSError as e:
            raise write_failed(self.updates_path, e, kept) from None
        return {"every": recorder.every, "rows": self.saved_rows + len(new), "snapshots": recorder.snapshots}

    def updates_log(self, width: int) -> Log:
        return Log(self.updates_path, "<f8", width)

    def resume(self, run: Run, checkpoint: Checkpoint) -> None:
        """Load ``checkpoint`` (read from this directory) into ``run``."""
        self.log.check(checkpoint.step)
        restore(checkpoint, run.model, run.rng, self.path)
        run.step = run.saved_step = checkpoint.step
        run.seconds = checkpoint.seconds
        state = checkpoint.diagnostics
        if state is None:  # a checkpoint older than the diagnostics
            return
        self.kept_diagnostics, self.saved_rows = (
            {"rows": state["rows"], "snapshots": state["snapshots"]},
            state["rows"],
        )
        if run.diagnostics is not None:
            log = self.updates_log(run.diagnostics.rows().shape[1])
            log.check(state["rows"], "samples")
            run.diagnostics.restore(state["snapshots"], log.read(state["rows"]))
