"""Checkpoints of any nn model trained by SGD on random batches: the model's state, the batch
generator's state, the step, the time spent and the run's options, in one .npz written
atomically; the loss of every step goes to an append-only log beside it.

The log keeps a checkpoint's cost independent of the step: the loss history is appended, never
rewritten. It is appended before the checkpoint is renamed into place, and only the losses up
to the checkpoint's step count, so a run killed between the two still resumes bit for bit.
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
from tape.atomic import atomic_path

CHECKPOINT = "checkpoint.npz"
LOSSES = "losses.f32"
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


def capture(
    model: nn.Module,
    rng: np.random.Generator,
    step: int,
    seconds: float,
    options: dict[str, Any],
    experiment: str = FIRST,
) -> Checkpoint:
    return Checkpoint(step, seconds, dict(options), rng.bit_generator.state, model.state_dict(), experiment)


def write(path: Path, checkpoint: Checkpoint) -> None:
    arrays = {f"model/{name}": value for name, value in checkpoint.model_state.items()}
    arrays["format"] = np.array(FORMAT)
    arrays["step"] = np.array(checkpoint.step, dtype=np.int64)
    arrays["seconds"] = np.array(checkpoint.seconds, dtype=np.float64)
    arrays["options"] = np.array(json.dumps(checkpoint.options))
    arrays["rng"] = np.array(json.dumps(checkpoint.rng_state))
    arrays["experiment"] = np.array(checkpoint.experiment)
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


def restore(checkpoint: Checkpoint, model: nn.Module, rng: np.random.Generator, path: Path) -> None:
    """Copy the checkpoint's state into ``model`` and ``rng``: all of it, or (on error) none."""
    saved_rng = rng.bit_generator.state
    try:
        rng.bit_generator.state = checkpoint.rng_state
        model.load_state_dict(checkpoint.model_state)
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        rng.bit_generator.state = saved_rng
        raise CheckpointError(f"{path} does not fit this run: {' '.join(str(e).split())}") from None


class LossLog:
    """The training loss of every step: little-endian float32, one after the other, no header."""

    ITEM = np.dtype("<f4")

    def __init__(self, path: Path) -> None:
        self.path = path

    def count(self) -> int:
        try:
            return self.path.stat().st_size // self.ITEM.itemsize
        except FileNotFoundError:
            return 0

    def check(self, step: int) -> None:
        """Refuse a log shorter than a checkpoint at ``step`` needs."""
        if self.count() < step:
            raise CheckpointError(
                f"{self.path} holds the losses of {self.count()} steps, the checkpoint is at step {step}"
            )

    def append(self, step: int, losses: np.ndarray) -> None:
        """Write ``losses`` as those of the steps from ``step`` on, and drop any after them: what a
        session killed after its last checkpoint, or a failed write, left beyond ``step``."""
        with open(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o666), "wb") as f:  # not truncated yet
            f.seek(step * self.ITEM.itemsize)
            f.write(np.asarray(losses, dtype=self.ITEM).tobytes())
            f.truncate()

    def read(self, steps: int | None = None) -> np.ndarray:
        try:
            return np.fromfile(self.path, dtype=self.ITEM, count=-1 if steps is None else steps)
        except FileNotFoundError:
            return np.zeros(0, dtype=self.ITEM)


@dataclasses.dataclass
class Run:
    """A training run as the loop advances it and a checkpoint saves it (with its options)."""

    model: nn.Module
    rng: np.random.Generator  # draws the batches
    step: int = 0  # steps done
    seconds: float = 0.0  # training wall time so far, over all sessions
    saved_step: int | None = None  # the step of the checkpoint on disk, if there is one


class Saver:
    """Saves a run into ``directory``: its new losses appended to the log, then the checkpoint."""

    def __init__(self, directory: Path, options: dict[str, Any], experiment: str = FIRST) -> None:
        self.path, self.log, self.options = directory / CHECKPOINT, LossLog(directory / LOSSES), options
        self.experiment = experiment

    def save(self, run: Run, losses: np.ndarray) -> None:
        """Save ``run``, whose steps since the last save had the losses ``losses``."""
        kept = "no checkpoint was saved"
        if run.saved_step is not None:
            kept = f"the checkpoint of step {run.saved_step} is intact"
        try:
            self.log.append(run.step - len(losses), losses)
        except OSError as e:
            raise write_failed(self.log.path, e, kept) from None
        try:
            checkpoint = capture(run.model, run.rng, run.step, run.seconds, self.options, self.experiment)
            write(self.path, checkpoint)
        except OSError as e:
            raise write_failed(self.path, e, kept) from None
        run.saved_step = run.step

    def resume(self, run: Run, checkpoint: Checkpoint) -> None:
        """Load ``checkpoint`` (read from this directory) into ``run``."""
        self.log.check(checkpoint.step)
        restore(checkpoint, run.model, run.rng, self.path)
        run.step = run.saved_step = checkpoint.step
        run.seconds = checkpoint.seconds
