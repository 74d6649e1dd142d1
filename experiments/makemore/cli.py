"""The command: everything is checked before training starts, then train, then the results.

Every failure the user can act on is an ExperimentError, printed here, once, as one line
``error: ...`` with its exit code (see ``errors``); nothing already saved is touched by a
refused run.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import sys
from collections.abc import Sequence

import numpy as np

from experiments.makemore import checkpoint, data, evaluation, loop, options, report, rundir
from experiments.makemore.checkpoint import CHECKPOINT, Checkpoint, Run, Saver
from experiments.makemore.errors import DIVERGED, FAILED, ExperimentError, UsageError
from experiments.makemore.model import MLP, Experiment
from experiments.makemore.options import Options, Request
from experiments.makemore.progress import Progress
from nn import diagnostics


def main(argv: Sequence[str] | None = None, experiment: Experiment = MLP) -> int:
    """Run ``experiment``'s command with ``argv`` (default: sys.argv); the exit code."""
    try:
        with loop.interrupt_on_signal():
            return execute(options.parse(argv, experiment))
    except ExperimentError as e:
        return _error(str(e), e.code)
    except MemoryError:
        return _error("out of memory: try smaller --batch-size, --n-embd, --n-hidden or --block-size", FAILED)
    except loop.Interrupted as e:  # before training, or a second signal during it
        return _error(f"stopped at once by {e.name}; the last checkpoint is left as it was", 128 + e.signum)
    except KeyboardInterrupt:  # Ctrl-C outside the main thread's handler
        return _error("stopped at once; the last checkpoint is left as it was", 128 + signal.SIGINT)
    except OSError as e:  # a read or write that was not expected to fail
        return _error(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}", FAILED)


def _error(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


@dataclasses.dataclass(frozen=True)
class Plan:
    """What this invocation does: a new run, or a resumed one from its checkpoint."""

    options: Options
    checkpoint: Checkpoint | None = None
    data_sha256: str | None = None  # the resumed run's


def execute(request: Request) -> int:
    """Do what ``request`` asks; the exit code (failures raise ExperimentError)."""
    with rundir.claim(request.out) as out:
        plan = _plan(request, out)
        names = _names(plan)
        splits = _examples(names, plan.options, request.experiment)
        saver = Saver(out.path, _saved_options(plan.options, names.sha256), request.experiment.name)
        run = _start(plan, saver, request)
        out.check_writable()
        if request.overwrite:
            out.remove_run()
        _announce(run, plan, names, splits, out)
        schedule = _schedule(plan.options, request.pause_at, request.experiment, request.replay)
        result = loop.train(run, splits["train"], schedule, saver, Progress(schedule.steps, run.step))
        return _conclude(result, run, splits, plan.options, saver, request)


# ---------------------------------------------------------------- before training


def _plan(request: Request, out: rundir.OutputDir) -> Plan:
    present, foreign = out.contents()
    if request.overwrite:
        return Plan(request.new_options())
    if foreign:
        raise UsageError(
            f"--out {out} holds files this experiment did not write ({_few(foreign)}): choose a new or "
            "empty --out, or pass --overwrite to write beside them"
        )
    if CHECKPOINT in present:
        if not request.resume:
            raise UsageError(
                f"--out {out} already holds a run: pass --resume to continue it (a larger --steps extends "
                "it), --overwrite to start again, or choose another --out"
            )
        return _resume(request, out)
    if not set(present) <= set(rundir.LOGS):  # logs alone: a run killed before its first checkpoint
        raise UsageError(
            f"--out {out} holds results of an earlier run ({_few(present)}) but no checkpoint to resume: "
            "pass --overwrite to start again there, or choose another --out"
        )
    if request.resume:
        print(f"--resume: no checkpoint in {out}, starting a new run")
    return Plan(request.new_options())


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _resume(request: Request, out: rundir.OutputDir) -> Plan:
    path = out / CHECKPOINT
    saved = checkpoint.read(path)
    if saved.experiment != request.experiment.name:
        raise UsageError(
            f"--out {out} holds a run of python -m experiments.{saved.experiment}, not of this command: "
            f"continue it with that command, or choose another --out"
        )
    stored, data_sha256 = options.saved(saved.options, path, request.experiment)
    resumed = options.resumed(stored, request.given, saved.step, out.path)
    options.check_pause(request.pause_at, saved.step)
    _note_schedule_change(stored, resumed, saved.step, request.experiment)
    return Plan(resumed, saved, data_sha256)


def _note_schedule_change(stored: Options, resumed: Options, step: int, experiment: Experiment) -> None:
    """Say so when an extended run's past steps differ from a new run of its new length."""
    old_decay, new_decay = experiment.decay_step(stored.steps), experiment.decay_step(resumed.steps)
    if old_decay < min(step, new_decay):
        print(
            f"note: steps {old_decay} to {min(step, new_decay)} were taken at --lr {stored.lr / 10:g} "
            f"(the schedule of --steps {stored.steps}); a new run of --steps {resumed.steps} would take "
            f"them at {stored.lr:g}"
        )


def _names(plan: Plan) -> data.Names:
    names = data.load(plan.options.data)
    if plan.data_sha256 is not None and names.sha256 != plan.data_sha256:
        raise UsageError(
            f"{plan.options.data} is not the data this run was trained on (sha256 {names.sha256[:16]}..., "
            f"the run's {plan.data_sha256[:16]}...): pass the original file with --data"
        )
    return names


def _examples(names: data.Names, opts: Options, experiment: Experiment) -> dict[str, data.Examples]:
    parts = data.split(names)
    data.check_split(parts, opts.data)
    rows = int(names.lengths.sum()) + len(names)
    _check_memory(opts, rows * (opts.block_size + 1), experiment)
    return {name: data.examples(part, opts.block_size) for name, part in zip(data.SPLITS, parts)}


def _check_memory(opts: Options, examples_bytes: int, experiment: Experiment) -> None:
    """Refuse sizes that cannot fit, before allocating them (an overcommitting OS would let the
    allocation through and kill the process later)."""
    rows = max(opts.batch_size, evaluation.CHUNK)
    needed = examples_bytes + experiment.memory_needed(
        data.vocab_size, opts.n_embd, opts.block_size, opts.n_hidden, rows
    )
    available = _physical_memory()
    if available and needed > available:
        raise UsageError(
            f"--n-embd {opts.n_embd} --n-hidden {opts.n_hidden} --block-size {opts.block_size} "
            f"--batch-size {opts.batch_size} need about {needed / 2**30:,.1f} GiB of memory, "
            f"this machine has {available / 2**30:,.1f} GiB"
        )


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _saved_options(opts: Options, data_sha256: str) -> dict[str, object]:
    # the data's absolute path, so that --resume finds it from any working directory
    return dataclasses.asdict(opts) | {"data": os.path.abspath(opts.data), "data_sha256": data_sha256}


def _start(plan: Plan, saver: Saver, request: Request) -> Run:
    opts = plan.options
    rng = np.random.default_rng(opts.seed)
    net = request.experiment.build(data.vocab_size, opts.n_embd, opts.block_size, opts.n_hidden, rng)
    every = options.diagnostics_every(request, plan.checkpoint and plan.checkpoint.diagnostics)
    run = Run(net, rng, diagnostics=None if every is None else diagnostics.Recorder(net, every=every))
    if plan.checkpoint is not None:
        saver.resume(run, plan.checkpoint)
    return run


def _announce(
    run: Run, plan: Plan, names: data.Names, splits: dict[str, data.Examples], out: rundir.OutputDir
) -> None:
    if plan.checkpoint is not None:
        print(f"resuming {out / CHECKPOINT} at step {run.step}/{plan.options.steps}")
    sizes = "/".join(str(len(examples)) for examples in splits.values())
    parameters = sum(p.numel() for p in run.model.parameters())
    print(
        f"{len(names)} names, examples train/val/test {sizes}; model of {parameters} parameters; "
        f"writing to {out}"
    )


def _schedule(opts: Options, pause_at: int | None, experiment: Experiment, replay: bool) -> loop.Schedule:
    return loop.Schedule(
        steps=opts.steps,
        end=opts.steps if pause_at is None else min(pause_at, opts.steps),
        batch_size=opts.batch_size,
        learning_rate=experiment.learning_rate(opts.lr, opts.steps),
        checkpoint_every=opts.checkpoint_every,
        replay=replay,
    )


# ---------------------------------------------------------------- after training


def _conclude(
    result: loop.Result,
    run: Run,
    splits: dict[str, data.Examples],
    opts: Options,
    saver: Saver,
    request: Request,
) -> int:
    resume = f"{request.experiment.prog} --resume --out {shlex.quote(str(request.out))}"
    if result.outcome is loop.Outcome.DIVERGED:
        raise ExperimentError(_diverged(result, run, opts), DIVERGED)
    if result.outcome is loop.Outcome.STOPPED:
        name = signal.Signals(result.signal).name
        print(f"stopped at step {run.step} by {name}; the checkpoint is saved. Continue with: {resume}")
        return 128 + result.signal
    if result.outcome is loop.Outcome.PAUSED:
        print(f"paused at step {run.step}; the checkpoint is saved. Continue with: {resume}")
        return 0
    decay = request.experiment.decay_step(opts.steps)
    title = f"makemore {request.experiment.short_name} on names.txt"
    try:
        report.write_results(
            run,
            splits,
            opts,
            saver,
            request.graph_timeout,
            lr_decay_step=decay,
            explore=request.explore,
            title=title,
        )
    except loop.Interrupted as e:  # training is over and saved: only the results are missing
        raise ExperimentError(
            f"stopped by {e.name} while writing the results; the trained run is saved in {CHECKPOINT}: "
            f"write them with: {resume}",
            128 + e.signum,
        ) from None
    return 0


def _diverged(result: loop.Result, run: Run, opts: Options) -> str:
    what = f"the loss is {result.loss}" if result.loss is not None else "a parameter is not finite"
    kept = (
        f"the last good checkpoint (step {run.saved_step}) is kept"
        if run.saved_step is not None
        else "no checkpoint was saved"
    )
    return (
        f"training diverged: {what} at step {run.step} (--lr {opts.lr:g}); {kept}. "
        "Start again with a smaller --lr and --overwrite"
    )


if __name__ == "__main__":
    sys.exit(main())
