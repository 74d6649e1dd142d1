"""A whole benchmark run: check the engines agree, time them at every batch size, measure their
memory, and gather it all in one report."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from experiments.bench.engines import Engine, build_engines, describe_engines
from experiments.bench.machine import format_machine, machine_info
from experiments.bench.memory import measure_rss
from experiments.bench.report import build_report
from experiments.bench.timing import time_batch_size
from experiments.bench.verification import verify_losses
from experiments.bench.workload import initial_parameters, model_config


@dataclasses.dataclass
class Settings:
    batch_sizes: list[int]
    rounds: int
    seconds: float  # per engine per round
    rss_samples: int  # training samples (steps x batch size) in each memory process; 0: skip
    engines: list[str]
    clock: str = "wall"

    def rss_steps(self, batch_size: int) -> int:
        return max(10, self.rss_samples // batch_size)


FULL = dict(rounds=15, seconds=0.3, rss_samples=64_000)
QUICK = dict(rounds=5, seconds=0.04, rss_samples=4_000)


def run_benchmark(settings: Settings, log: Callable[[str], None] = print) -> dict[str, Any]:
    machine = machine_info()
    log(format_machine(machine))
    verification = [verify_losses(settings.engines, b) for b in settings.batch_sizes]
    log(
        f"losses agree (largest relative difference {max(v['max_relative_error'] for v in verification):.1e})"
    )
    engines, unavailable = build_engines(settings.engines, initial_parameters())
    for name, reason in unavailable.items():
        log(f"{name}: {reason}")
    results = _time_every_batch_size(engines, settings, log)
    if settings.rss_samples:
        log("peak RSS, one process per engine and batch size")
        for row in results:
            steps = settings.rss_steps(row["batch_size"])
            row["memory"] = measure_rss(row["engine"], row["batch_size"], steps)
    return build_report(
        machine=machine,
        config={**dataclasses.asdict(settings), "model": model_config()},
        engines=describe_engines(settings.engines, list(engines), unavailable),
        unavailable=unavailable,
        verification=verification,
        results=results,
    )


def _time_every_batch_size(
    engines: dict[str, Engine], settings: Settings, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """One row per batch size and engine, its memory still to be measured."""
    results = []
    for batch_size in settings.batch_sizes:
        log(
            f"timing batch size {batch_size}: {settings.rounds} rounds of {settings.seconds} s "
            f"({settings.clock} clock) per engine"
        )
        timings = time_batch_size(engines, batch_size, settings.rounds, settings.seconds, settings.clock)
        for name, timing in timings.items():
            results.append({"engine": name, "batch_size": batch_size, **timing, "memory": None})
    return results
