"""The command's options: their defaults and help, their checks, and how a resumed run's saved
options and the ones given on the command line combine."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from experiments.makemore import data
from experiments.makemore.checkpoint import CheckpointError
from experiments.makemore.errors import UsageError
from experiments.makemore.model import MLP, Experiment

PROG = MLP.prog  # the MLP's; each experiment's is ``Experiment.prog``
DIAGNOSTICS_EVERY = 100  # steps between two samples of the diagnostics, unless told otherwise
SIZE = 2**31 - 1  # a larger size overflows NumPy's shape arithmetic before memory runs out
COUNT = 2**62


@dataclasses.dataclass(frozen=True)
class Options:
    """What decides a run's result, and where its data and checkpoints go: saved in each checkpoint."""

    steps: int = 200_000
    batch_size: int = 32
    lr: float = 0.1
    n_embd: int = 10
    n_hidden: int = 200
    block_size: int = 3
    seed: int = 42
    data: str = str(data.DEFAULT_PATH)
    checkpoint_every: int = 10_000


# a resumed run keeps these: its steps so far were taken with them (--steps may grow, --data may
# move if its content is the same, --checkpoint-every may change)
FIXED = ("batch_size", "lr", "n_embd", "n_hidden", "block_size", "seed")

HELP = {
    "steps": "SGD steps in all; with --resume a larger number extends the run",
    "batch_size": "examples per step (at least 2: batchnorm normalises over the batch)",
    "lr": "learning rate, divided by 10 after {decay}",
    "n_embd": "size of each character's embedding",
    "n_hidden": "size of the hidden layer",
    "block_size": "context length: how many characters the model sees before the next",
    "seed": "seed of the initial parameters and of the batches (the split is the notebook's, seed 42)",
    "data": "names file, one lowercase name a line; only the default is downloaded (and checked by "
    "sha256) when missing",
    "checkpoint_every": "steps between checkpoints",
}

LIMITS = {  # of the whole-number options: (lowest, highest)
    "steps": (1, COUNT),
    "batch_size": (2, SIZE),
    "n_embd": (1, SIZE),
    "n_hidden": (1, SIZE),
    "block_size": (1, SIZE),
    "seed": (0, math.inf),
    "checkpoint_every": (1, COUNT),
}


@dataclasses.dataclass(frozen=True)
class Request:
    """One invocation: the options given on the command line and what to do with --out."""

    given: dict[str, Any]  # only the options typed on the command line
    out: Path
    resume: bool
    overwrite: bool
    pause_at: int | None
    graph_timeout: float
    diagnostics: bool | None = None  # --diagnostics or --no-diagnostics, if given
    diagnostics_every: int | None = None  # if given
    explore: bool = False  # also write explore.html, the sweep page of the drawn training step
    replay: bool = False  # train with tape.replay: the step recorded once, then replayed
    experiment: Experiment = MLP

    def new_options(self) -> Options:
        """The options of a new run: the given ones over the experiment's defaults."""
        return defaults(self.experiment, **self.given)


def defaults(experiment: Experiment, **given: Any) -> Options:
    """``given`` over ``experiment``'s defaults (the fields' defaults are the MLP's)."""
    return dataclasses.replace(Options(), **{**experiment.defaults, **given})


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, as every other error of the command
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser(experiment: Experiment = MLP) -> argparse.ArgumentParser:
    default = defaults(experiment)
    parser = _Parser(
        prog=experiment.prog,
        description=f"Train {experiment.title} on names, with tape. "
        "With --resume, the run's saved options are the defaults.",
        epilog="Exit codes: 0 done, 1 failed while running, 2 refused before training, 3 diverged, "
        "130 or 143 stopped by Ctrl-C or SIGTERM (while training, after saving a checkpoint; after it, "
        "--resume writes the results).",
    )
    for field in dataclasses.fields(Options):
        shown = "data/names.txt" if field.name == "data" else getattr(default, field.name)
        parser.add_argument(
            flag(field.name),
            type={"int": int, "float": float, "str": str}[field.type],
            default=argparse.SUPPRESS,  # so that --resume knows what was typed
            metavar={"lr": "LR", "data": "PATH"}.get(field.name, "N"),
            help=f"{HELP[field.name].format(decay=experiment.decay_help)} (default: {shown})",
        )
    _add_run_arguments(parser, experiment)
    return parser


def _add_run_arguments(parser: argparse.ArgumentParser, experiment: Experiment) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs") / experiment.name,
        metavar="DIR",
        help="output directory (default: %(default)s)",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out with its saved options (any given must match them, but a "
        "larger --steps extends it); on a finished run, write its results again",
    )
    what.add_argument(
        "--overwrite",
        action="store_true",
        help="start a new run in --out although it holds a run or other files: this experiment's "
        "files there are deleted first, other files are left alone",
    )
    parser.add_argument(
        "--pause-at",
        type=int,
        metavar="STEP",
        help="save a checkpoint at STEP and stop (default: do not pause)",
    )
    parser.add_argument(
        "--graph-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="time Graphviz may take to draw graph.svg before it is skipped (default: %(default)s)",
    )
    parser.add_argument(
        "--explore",
        action="store_true",
        help="also write explore.html: a page that steps through the reverse sweep of the training "
        "step graph.svg draws (docs/explore.md)",
    )
    parser.add_argument(
        "--replay",
        action="store_true",
        help="train with tape.replay: the training step is recorded on its first calls and then re-run "
        "from the record, without building the tape on every step (the same numbers, bit for bit)",
    )
    parser.add_argument(
        "--diagnostics",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        help="sample the training every --diagnostics-every steps and write activations.png, "
        "gradients.png, weights.png, updates.png and diagnostics.json (default: on; with --resume, "
        "as the run was)",
    )
    parser.add_argument(
        "--diagnostics-every",
        type=int,
        default=argparse.SUPPRESS,
        metavar="N",
        help=f"steps between two samples of the diagnostics (default: {DIAGNOSTICS_EVERY}; with --resume, "
        "the run's)",
    )


def parse(argv: Sequence[str] | None, experiment: Experiment = MLP) -> Request:
    """The command line (default: sys.argv), checked; a UsageError says what is wrong."""
    args = vars(build_parser(experiment).parse_args(argv))
    given = {field.name: args.pop(field.name) for field in dataclasses.fields(Options) if field.name in args}
    problems = check(given, experiment)
    if args["pause_at"] is not None and args["pause_at"] < 1:
        problems.append(f"--pause-at must be at least 1, got {args['pause_at']}")
    if args.get("diagnostics_every", 1) < 1:
        problems.append(f"--diagnostics-every must be at least 1, got {args['diagnostics_every']}")
    if not (math.isfinite(args["graph_timeout"]) and args["graph_timeout"] > 0):
        problems.append(f"--graph-timeout must be a positive number of seconds, got {args['graph_timeout']}")
    if problems:
        raise UsageError("; ".join(problems))
    return Request(given, **args, experiment=experiment)


def diagnostics_every(request: Request, saved: dict[str, Any] | None) -> int | None:
    """Every how many steps the run samples its diagnostics, None for not at all: as given, else
    as the resumed run did (``saved``: its checkpoint's diagnostics), else every DIAGNOSTICS_EVERY."""
    if request.diagnostics is False:
        return None
    if request.diagnostics_every is not None:
        return request.diagnostics_every
    if saved is not None and (request.diagnostics is None or saved["every"] is not None):
        return saved["every"]
    return DIAGNOSTICS_EVERY


def check(values: dict[str, Any], experiment: Experiment = MLP) -> list[str]:
    """What is wrong with these option values (typed on the command line, or read from a checkpoint)."""
    problems = []
    for name, value in values.items():
        if name == "lr":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
                problems.append(f"--lr must be a positive finite number, got {value}")
        elif name == "data":
            if not isinstance(value, str) or not value:
                problems.append(f"--data must be a path, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{flag(name)} must be a whole number, got {value!r}")
        elif not LIMITS[name][0] <= value <= LIMITS[name][1]:
            lowest, highest = LIMITS[name]
            at_most = f" and at most {highest}" if highest < math.inf else ""
            problems.append(f"{flag(name)} must be at least {lowest}{at_most}, got {value}")
    return problems if problems else experiment.check(values)


def saved(values: dict[str, Any], path: Path, experiment: Experiment = MLP) -> tuple[Options, str]:
    """The options a checkpoint holds, and the sha256 of its data; a CheckpointError if damaged."""
    values = dict(values)
    sha256 = values.pop("data_sha256", None)
    names = {field.name for field in dataclasses.fields(Options)}
    problems = [f"unknown option {name!r}" for name in values if name not in names]
    problems += [f"no {flag(name)}" for name in sorted(names - values.keys())]
    problems += check({k: v for k, v in values.items() if k in names}, experiment)
    if not isinstance(sha256, str):
        problems.append("no data_sha256")
    if problems:
        raise CheckpointError(f"{path} holds bad options: {'; '.join(problems)}")
    return Options(**values), sha256


def resumed(stored: Options, given: dict[str, Any], step: int, source: Path) -> Options:
    """The saved options with the given ones on top, refused where they would change the run."""
    changed = [
        f"{flag(k)} {getattr(stored, k)}" for k in FIXED if k in given and given[k] != getattr(stored, k)
    ]
    if changed:
        raise UsageError(
            f"the run in {source} was made with {' '.join(changed)}: --resume keeps a run's options "
            "(leave them out to use the saved ones), or start a new run with another --out or --overwrite"
        )
    if (steps := given.get("steps", stored.steps)) < step:
        raise UsageError(f"the run in {source} is at step {step}: --steps {steps} would end before it")
    return dataclasses.replace(stored, **given)


def check_pause(pause_at: int | None, step: int) -> None:
    if pause_at is not None and pause_at <= step:
        raise UsageError(f"the run is already at step {step}: --pause-at {pause_at} would train nothing")
