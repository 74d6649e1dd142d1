"""The training loop for any nn model on random batches: SGD steps, diagnostics sampled every
few steps, checkpoints, a clean stop on Ctrl-C or SIGTERM, and a stop at the first non-finite loss."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

import nn
import tape
from experiments.makemore.checkpoint import Run, Saver
from experiments.makemore.data import Examples
from experiments.makemore.progress import Progress

UNSAMPLED = contextlib.nullcontext()  # reusable
EXPLODED = 10.0  # a loss this many times the session's first is worth a warning


class Outcome(enum.Enum):
    FINISHED = "finished"  # all the steps are done
    PAUSED = "paused"  # stopped on purpose at Schedule.end
    STOPPED = "stopped"  # by a signal, after saving
    DIVERGED = "diverged"  # a non-finite loss or parameter; nothing saved from that step


@dataclasses.dataclass(frozen=True)
class Result:
    outcome: Outcome
    signal: int | None = None  # STOPPED: which
    loss: float | None = None  # DIVERGED: the loss (None: the loss was finite, a parameter was not)


@dataclasses.dataclass(frozen=True)
class Schedule:
    steps: int  # the run's length
    end: int  # where this session stops (a pause before ``steps``)
    batch_size: int
    learning_rate: Callable[[int], float]  # of the step
    checkpoint_every: int
    replay: bool = False  # the step through tape.replay (diagnostics' sampled steps run eagerly)


def train(run: Run, examples: Examples, schedule: Schedule, saver: Saver, progress: Progress) -> Result:
    """SGD on cross-entropy from ``run.step`` to ``schedule.end``, saving along the way."""
    trainer = _Trainer(run, examples, schedule, saver, progress)
    try:
        # a diverging run's overflows are caught by the finite-loss check, which says so in one
        # line: NumPy's warnings about them would only clutter it
        with StopOnSignal() as stop, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return trainer.loop(stop)
    finally:
        progress.close()


class _Trainer:
    """One session of training: the optimizer, and the losses not yet saved."""

    def __init__(self, run: Run, examples: Examples, schedule: Schedule, saver: Saver, progress: Progress):
        self.run = run
        self.examples = examples
        self.schedule = schedule
        self.saver = saver
        self.progress = progress
        self.optimizer = nn.SGD(run.model.parameters(), lr=schedule.learning_rate(run.step))
        self.losses: list[float] = []  # since the last save
        self.first_loss: float | None = None
        self.began = time.perf_counter()
        self.replayed = tape.replay(self.replayable_step) if schedule.replay else None

    def loop(self, stop: StopOnSignal) -> Result:
        run, schedule = self.run, self.schedule
        for step in range(run.step, schedule.end):
            loss = self.step(step)
            if not math.isfinite(loss):
                return Result(Outcome.DIVERGED, loss=loss)
            self.losses.append(loss)
            run.step = step + 1
            self.watch(step, loss)
            self.progress.update(run.step, loss)
            if run.step % schedule.checkpoint_every == 0 or run.step == schedule.end or stop.signal:
                if not _finite(run.model):
                    return Result(Outcome.DIVERGED)
                self.save()
                if stop.signal:
                    return Result(Outcome.STOPPED, signal=stop.signal)
        return Result(Outcome.FINISHED if run.step == schedule.steps else Outcome.PAUSED)

    def step(self, step: int) -> float:
        """One SGD step; its loss. A non-finite loss is not stepped on."""
        rows = self.run.rng.integers(0, len(self.examples), self.schedule.batch_size)
        Xb, Yb = self.examples.batch(rows)
        lr = self.schedule.learning_rate(step)
        sampling = self.sampling(step, lr)
        if self.replayed is not None and sampling is UNSAMPLED:
            # stepped even on a non-finite loss (a replay cannot stop halfway); the loop then ends
            # the run as diverged without saving, as it does when the eager step skips the update
            return self.replayed(Xb, Yb, lr).item()
        with sampling:
            loss = nn.cross_entropy(self.run.model(Xb), Yb)
            value = loss.item()
            if math.isfinite(value):
                self.update(loss, lr)
        return value

    def update(self, loss: tape.Tensor, lr: float) -> None:
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.lr = lr
        self.optimizer.step()

    def replayable_step(self, Xb: np.ndarray, Yb: np.ndarray, lr: float) -> tape.Tensor:
        """The whole step as ``tape.replay`` records it: its learning rate an argument, so that a
        new rate records the step again."""
        loss = nn.cross_entropy(self.run.model(Xb), Yb)
        self.update(loss, lr)
        return loss

    def sampling(self, step: int, lr: float) -> contextlib.AbstractContextManager[None]:
        """The diagnostics' view of the step (every few steps, and the run's last for its
        histograms at the end of training): reads values, changes none."""
        recorder, last = self.run.diagnostics, step == self.schedule.steps - 1
        if recorder is None or not (last or recorder.due(step)):
            return UNSAMPLED  # most steps: a test, not the recorder's context (3 us, 0.5% of a step)
        return recorder.step(step, lr, last=last)

    def watch(self, step: int, loss: float) -> None:
        """Warn once when the loss explodes: a learning rate too high shows within a few steps."""
        if self.first_loss is None:
            self.first_loss = loss
        elif loss > EXPLODED * self.first_loss and self.first_loss > 0:
            self.progress.note(
                f"warning: the loss is {loss:.4g} at step {step}, over {EXPLODED:g}x its "
                f"{self.first_loss:.4g} at the start: the learning rate "
                f"({self.schedule.learning_rate(step):g}) may be too high"
            )
            self.first_loss = math.inf  # once is enough

    def save(self) -> None:
        now = time.perf_counter()
        self.run.seconds += now - self.began
        self.began = now
        self.saver.save(self.run, np.array(self.losses, dtype=np.float32))
        self.losses.clear()


def _finite(model: nn.Module) -> bool:
    arrays = [p.array for p in model.parameters()] + [array for _, array in model.named_buffers()]
    return all(np.isfinite(array).all() for array in arrays)


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM where the command stops at once: outside training (``interrupt_on_signal``),
    or a second one during it. A BaseException, as KeyboardInterrupt: nothing on the way catches it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def handling_signals(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """``handler`` receives Ctrl-C and SIGTERM while the block runs (signal handlers belong to the
    main thread: elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler_before in previous.items():
            signal.signal(s, handler_before)


def interrupt_on_signal() -> contextlib.AbstractContextManager[None]:
    """While the block runs, Ctrl-C or SIGTERM raise Interrupted: SIGTERM's default would end the
    process without a word."""
    return handling_signals(_interrupt)


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


class StopOnSignal:
    """Ctrl-C or SIGTERM asks the loop to stop after the current step (and save); a second one
    stops at once (Interrupted).

    Stopping between steps matters: a stop in the middle of the SGD update would leave half the
    parameters updated, and a checkpoint of that could not resume bit for bit.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self.handling = handling_signals(self.handle)

    def __enter__(self) -> StopOnSignal:
        self.handling.__enter__()
        return self

    def handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise Interrupted(signum)
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        self.handling.__exit__(*exc)
