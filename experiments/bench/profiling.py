"""cProfile of one engine's training steps: where a step's time goes, in µs per step."""

from __future__ import annotations

import cProfile
import io
import pstats
from pathlib import Path

from experiments.bench.timing import run_steps
from experiments.bench.workloads import Workload


def profile(workload: Workload, name: str, batch_size: int, steps: int, top: int = 25) -> str:
    """cProfile of ``steps`` training steps: the functions taking the most time, in µs per step."""
    engine = workload.build_engine(name)
    batches = workload.prepared_batches(engine, batch_size)
    run_steps(engine, batches, max(10, steps // 10))  # warm up outside the profile
    profiler = cProfile.Profile()
    profiler.enable()
    run_steps(engine, batches, steps)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = []
    for (filename, line, function), (_, calls, tottime, cumtime, _) in stats.stats.items():
        where = f"{Path(filename).name}:{line}({function})" if line else function
        rows.append((tottime, cumtime, calls, where))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    lines = [
        f"cProfile, {workload.name} {name}, batch {batch_size}: "
        f"{1e6 * total / steps:.0f} µs per step under the profiler",
        f"{'self µs/step':>12} {'cum µs/step':>12} {'calls/step':>10}  function",
    ]
    for tottime, cumtime, calls, where in rows[:top]:
        lines.append(
            f"{1e6 * tottime / steps:12.1f} {1e6 * cumtime / steps:12.1f} {calls / steps:10.1f}  {where}"
        )
    return "\n".join(lines)
