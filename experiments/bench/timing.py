"""Steps per second: each engine calibrated, then timed in interleaved rounds; ratios to torch
are taken within a round."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from experiments.bench.engines import Engine
from experiments.bench.workloads import Workload

# wall: what a user waits for. cpu: this process's CPU time (one thread, so the same on an
# idle machine), which leaves out the time other processes hold the CPU on a shared machine.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def run_steps(engine: Engine, batches: Sequence[Any], steps: int, clock: str = "wall") -> float:
    """Seconds taken by ``steps`` training steps."""
    now = CLOCKS[clock]
    count = len(batches)
    start = now()
    for i in range(steps):
        engine.step(batches[i % count])
    return now() - start


def calibrate(engine: Engine, batches: Sequence[Any], seconds: float) -> int:
    """Steps that take about ``seconds`` (this also warms the engine up)."""
    steps = 1
    while True:
        elapsed = run_steps(engine, batches, steps)
        if elapsed >= seconds / 4 or steps >= 1_000_000:
            return max(1, round(steps * seconds / elapsed))
        steps *= 2


def summary(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def time_batch_size(
    workload: Workload,
    engines: dict[str, Engine],
    batch_size: int,
    rounds: int,
    seconds: float,
    clock: str = "wall",
) -> dict[str, dict[str, Any]]:
    """Interleaved rounds: each round times every engine once, in a rotating order."""
    if not engines:  # none of those asked for can run here
        return {}
    batches = workload.sample_batches(batch_size)  # one pool, each engine's view of it
    prepared = {name: [e.prepare(*b) for b in batches] for name, e in engines.items()}
    steps = {name: calibrate(e, prepared[name], seconds) for name, e in engines.items()}
    names = list(engines)
    rates: dict[str, list[float]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        this_round = {}
        for name in names[r % len(names) :] + names[: r % len(names)]:
            elapsed = run_steps(engines[name], prepared[name], steps[name], clock)
            this_round[name] = steps[name] / elapsed
        for name, rate in this_round.items():
            rates[name].append(rate)
            baseline = workload.baseline(name)
            if baseline in this_round:
                ratios[name].append(rate / this_round[baseline])
    return {
        name: {
            "steps_per_measurement": steps[name],
            "steps_per_second": summary(rates[name]),
            "us_per_step": 1e6 / statistics.median(rates[name]),
            "ratio_to_torch": summary(ratios[name]) if ratios[name] else None,
            "rounds": rates[name],
        }
        for name in names
    }
