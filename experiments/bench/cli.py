"""The command: ``python -m experiments.bench`` (a full run, ``--profile``, or a memory worker)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import experiments.bench
from experiments.bench.engines import ENGINE_BY_NAME
from experiments.bench.memory import rss_worker
from experiments.bench.profiling import profile
from experiments.bench.report import format_table
from experiments.bench.run import FULL, QUICK, Settings, run_benchmark
from experiments.bench.timing import CLOCKS
from tape.atomic import write_text


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    description = experiments.bench.__doc__.split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m experiments.bench", description=description)
    parser.add_argument("--quick", action="store_true", help="fewer and shorter rounds: under a minute")
    parser.add_argument(
        "--json", type=Path, default=Path("runs/bench.json"), help="where to write the results"
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256, 4096])
    parser.add_argument("--engines", nargs="+", choices=list(ENGINE_BY_NAME), default=list(ENGINE_BY_NAME))
    parser.add_argument(
        "--clock",
        choices=list(CLOCKS),
        default="wall",
        help="wall time, or this process's CPU time (steadier when other processes share the CPUs)",
    )
    parser.add_argument("--rounds", type=int, help="timing rounds per batch size")
    parser.add_argument("--seconds", type=float, help="seconds per engine per round")
    parser.add_argument(
        "--rss-samples", type=int, help="samples (steps x batch) per memory process, 0 to skip memory"
    )
    parser.add_argument("--rss-steps", type=int, help=argparse.SUPPRESS)  # for --rss-worker
    parser.add_argument("--rss-worker", choices=list(ENGINE_BY_NAME), help=argparse.SUPPRESS)
    parser.add_argument("--profile", choices=list(ENGINE_BY_NAME), help="cProfile one engine instead")
    parser.add_argument("--profile-steps", type=int, default=2000)
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    """The run's settings: the options given, the rest from ``--quick``'s or the full run's."""
    defaults = QUICK if args.quick else FULL
    return Settings(
        batch_sizes=args.batch_sizes,
        rounds=args.rounds or defaults["rounds"],
        seconds=args.seconds or defaults["seconds"],
        rss_samples=defaults["rss_samples"] if args.rss_samples is None else args.rss_samples,
        engines=args.engines,
        clock=args.clock,
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Run the command; the report of a benchmark run, None for a profile or a memory worker."""
    args = parse_args(argv)
    if args.rss_worker:
        print(json.dumps(rss_worker(args.rss_worker, args.batch_sizes[0], args.rss_steps)))
        return None
    if args.profile:
        for batch_size in args.batch_sizes:
            print(profile(args.profile, batch_size, args.profile_steps), end="\n\n")
        return None
    report = run_benchmark(settings_from(args))
    print()
    print(format_table(report))
    write_text(args.json, json.dumps(report, indent=2) + "\n")  # atomic, with the usual permissions
    print(f"\nwrote {args.json}")
    return report
