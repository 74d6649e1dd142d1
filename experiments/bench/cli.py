"""The command: ``python -m experiments.bench`` (a full run, ``--profile``, ``--profile-ops``, or
a memory worker)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import experiments.bench
from experiments.bench.memory import rss_worker
from experiments.bench.op_profile import format_op_profile, op_profile
from experiments.bench.profiling import profile
from experiments.bench.report import format_table
from experiments.bench.run import FULL, QUICK, Settings, run_benchmark
from experiments.bench.timing import CLOCKS
from experiments.bench.workloads import ENGINE_NAMES, WORKLOADS, Workload
from tape.atomic import write_text


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    description = experiments.bench.__doc__.split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m experiments.bench", description=description)
    parser.add_argument("--quick", action="store_true", help="fewer and shorter rounds: about a minute")
    parser.add_argument(
        "--json", type=Path, default=Path("runs/bench.json"), help="where to write the results"
    )
    parser.add_argument(
        "--workload",
        choices=[*WORKLOADS, "all"],
        default="all",
        help="the model: the makemore MLP, makemore part 5's WaveNet, or both (the default)",
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="the MLP's (default 32 256 4096)")
    parser.add_argument("--wavenet-batch-sizes", type=int, nargs="+", help="the WaveNet's (default 32)")
    parser.add_argument(
        "--engines", nargs="+", choices=ENGINE_NAMES, default=ENGINE_NAMES, help="by name, in every workload"
    )
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
    parser.add_argument("--rss-worker", choices=ENGINE_NAMES, help=argparse.SUPPRESS)
    parser.add_argument("--profile", choices=ENGINE_NAMES, help="cProfile one engine instead")
    parser.add_argument(
        "--profile-ops",
        choices=ENGINE_NAMES,
        help="time each tape op's forward and VJPs and the rest of the step instead (eager tape engines)",
    )
    parser.add_argument("--profile-steps", type=int, default=2000)
    return parser.parse_args(argv)


def batch_sizes_from(args: argparse.Namespace) -> dict[str, list[int]]:
    """The batch sizes of each workload asked for, in the order they run."""
    given = {"mlp": args.batch_sizes, "wavenet": args.wavenet_batch_sizes}
    chosen = list(WORKLOADS) if args.workload == "all" else [args.workload]
    return {name: given[name] or list(WORKLOADS[name].batch_sizes) for name in chosen}


def settings_from(args: argparse.Namespace) -> Settings:
    """The run's settings: the options given, the rest from ``--quick``'s or the full run's."""
    defaults = QUICK if args.quick else FULL
    return Settings(
        batch_sizes=batch_sizes_from(args),
        rounds=args.rounds or defaults["rounds"],
        seconds=args.seconds or defaults["seconds"],
        rss_samples=defaults["rss_samples"] if args.rss_samples is None else args.rss_samples,
        engines=args.engines,
        clock=args.clock,
    )


def with_engine(args: argparse.Namespace, name: str) -> list[tuple[Workload, list[int]]]:
    """The workloads asked for that have engine ``name``, with their batch sizes."""
    return [
        (WORKLOADS[w], sizes)
        for w, sizes in batch_sizes_from(args).items()
        if name in WORKLOADS[w].engine_names
    ]


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Run the command; the report of a benchmark run, None for a profile or a memory worker."""
    args = parse_args(argv)
    if args.rss_worker:
        workload = "mlp" if args.workload == "all" else args.workload
        sizes = args.batch_sizes or args.wavenet_batch_sizes or [32]
        print(json.dumps(rss_worker(workload, args.rss_worker, sizes[0], args.rss_steps)))
        return None
    if args.profile or args.profile_ops:
        for workload, sizes in with_engine(args, args.profile or args.profile_ops):
            for batch_size in sizes:
                if args.profile:
                    print(profile(workload, args.profile, batch_size, args.profile_steps), end="\n\n")
                else:
                    found = op_profile(workload, args.profile_ops, batch_size, args.profile_steps)
                    print(format_op_profile(found), end="\n\n")
        return None
    report = run_benchmark(settings_from(args))
    print()
    print(format_table(report))
    write_text(args.json, json.dumps(report, indent=2) + "\n")  # atomic, with the usual permissions
    print(f"\nwrote {args.json}")
    return report
