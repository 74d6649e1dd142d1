"""A whole benchmark run: per workload, check the engines agree, time them at every batch size,
measure their memory, and gather it all in one report."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from collections.abc import Callable
from typing import Any

from experiments.bench.engines import Engine
from experiments.bench.machine import format_machine, machine_info
from experiments.bench.memory import measure_rss
from experiments.bench.report import build_report
from experiments.bench.timing import time_batch_size
from experiments.bench.verification import verify_losses
from experiments.bench.workloads import WORKLOADS, Workload


@dataclasses.dataclass
class Settings:
    batch_sizes: dict[str, list[int]]  # per workload, in the order they run
    rounds: int
    seconds: float  # per engine per round
    rss_samples: int  # training samples (steps x batch size) in each memory process; 0: skip
    engines: list[str]  # by name; a workload runs those of them it has
    clock: str = "wall"

    def rss_steps(self, batch_size: int) -> int:
        return max(10, self.rss_samples // batch_size)


FULL = dict(rounds=15, seconds=0.3, rss_samples=64_000)
QUICK = dict(rounds=5, seconds=0.04, rss_samples=4_000)


def run_benchmark(settings: Settings, log: Callable[[str], None] = print) -> dict[str, Any]:
    machine = machine_info()
    log(format_machine(machine))
    workloads = {
        name: run_workload(WORKLOADS[name], sizes, settings, log)
        for name, sizes in settings.batch_sizes.items()
        if set(WORKLOADS[name].engine_names) & set(settings.engines)  # skip one none was asked of
    }
    return build_report(machine=machine, config=dataclasses.asdict(settings), workloads=workloads)


def run_workload(
    workload: Workload, batch_sizes: list[int], settings: Settings, log: Callable[[str], None]
) -> dict[str, Any]:
    """One workload's part of the report: its model, engines, verification and timings."""
    names = [name for name in workload.engine_names if name in settings.engines]
    log(f"{workload.name}: {workload.title}")
    verification = [verify_losses(workload, names, b) for b in batch_sizes]
    worst = max(v["max_relative_error"] for v in verification)
    log(f"{workload.name}: losses agree (largest relative difference {worst:.1e})")
    engines, unavailable = workload.build_engines(names, workload.initial_parameters())
    for name, reason in unavailable.items():
        log(f"{workload.name} {name}: {reason}")
    results = _time_every_batch_size(workload, engines, batch_sizes, settings, log)
    if settings.rss_samples:
        log(f"{workload.name}: peak RSS, one process per engine and batch size")
        _measure_memory(workload, results, settings)
    return {
        "title": workload.title,
        "model": workload.model_config(),
        "batch_sizes": batch_sizes,
        "engines": workload.describe_engines(names, list(engines), unavailable),
        "unavailable": unavailable,
        "verification": verification,
        "results": results,
    }


def _measure_memory(workload: Workload, results: list[dict[str, Any]], settings: Settings) -> None:
    """Each row's memory, from its own process; two at a time where there are two CPUs (a process's
    peak and growth are its own, whatever runs beside it; the timing is over by now)."""

    def measure(row: dict[str, Any]) -> dict[str, Any]:
        return measure_rss(workload, row["engine"], row["batch_size"], settings.rss_steps(row["batch_size"]))

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        for row, memory in zip(results, pool.map(measure, results)):
            row["memory"] = memory


def _time_every_batch_size(
    workload: Workload,
    engines: dict[str, Engine],
    batch_sizes: list[int],
    settings: Settings,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """One row per batch size and engine, its memory still to be measured."""
    results = []
    for batch_size in batch_sizes:
        log(
            f"{workload.name}: timing batch size {batch_size}: {settings.rounds} rounds of "
            f"{settings.seconds} s ({settings.clock} clock) per engine"
        )
        timings = time_batch_size(
            workload, engines, batch_size, settings.rounds, settings.seconds, settings.clock
        )
        for name, timing in timings.items():
            results.append({"engine": name, "batch_size": batch_size, **timing, "memory": None})
    return results
