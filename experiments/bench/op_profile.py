"""Per op and per step: the time in each tape op's forward and in each VJP, and the rest of the
step (Python around the ops: modules, Tensor and entry creation, the sweep, the optimizer), for
the eager tape engines. Unlike cProfile, only the ops are instrumented, so the step runs at
nearly its own speed.

Each ``Op.forward`` and VJP in ``tape.op.REGISTRY`` is wrapped with a timer for the duration of
the profile (an op called inside another op's forward counts in the outer one), and so is the
NumPy work that runs beside the ops (``BESIDE_OPS``: batchnorm's statistics). A step is split
into its phases (forward and loss, zero_grad, backward, optimizer.step), each timed as a whole;
a phase's "rest" is its time less the ops timed inside it, less the timers' own cost (measured
on an empty function). Instrumented and plain steps alternate in chunks; the plain step's time
(the median chunk's) shows what the instrumentation costs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from experiments.bench.engines import TapeModel
from experiments.bench.timing import run_steps
from experiments.bench.workloads import Workload
from tape.op import REGISTRY

# NumPy work that runs beside the ops rather than in them, timed as if it were an op: batchnorm's
# batch statistics (handed to its op) and running averages, both in nn.functional
BESIDE_OPS = {
    ("nn.functional", "batch_statistics"): "batch statistics (beside the batchnorm op)",
    ("nn.functional", "update_running_statistics"): "running averages (beside the batchnorm op)",
}
CHUNKS = 5  # instrumented and plain steps alternate in this many chunks, to see the same machine
PHASES = ("forward", "zero_grad", "backward", "optimizer.step")
REST = {  # what a phase's time outside the ops is
    "forward": "the rest: module calls, Tensor and entry creation, argument checks",
    "zero_grad": "zero_grad (nn.SGD, set_to_none)",
    "backward": "the rest: the sweep (ancestors, gradient checks, accumulation into .grad)",
    "optimizer.step": "nn.SGD.step, outside any op",
}


@dataclasses.dataclass
class Tally:
    seconds: float = 0.0
    calls: int = 0


class OpTimer:
    """Timers around every registered op's forward and VJPs, tallied by (phase, op, part)."""

    def __init__(self) -> None:
        self.tallies: dict[tuple[str, str], Tally] = defaultdict(Tally)
        self.phase = "forward"
        self.depth = 0

    def wrap(self, fn: Callable, label: str) -> Callable:
        clock = time.perf_counter

        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.depth:  # inside another op: its time is the outer op's
                return fn(*args, **kwargs)
            self.depth = 1
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                tally = self.tallies[self.phase, label]
                tally.seconds += clock() - start
                tally.calls += 1
                self.depth = 0

        return timed

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Every op's forward and VJPs timed; the originals put back afterwards."""
        originals = {op: (op.forward, op.vjps) for op in REGISTRY.values()}
        beside = {(m, name): getattr(importlib.import_module(m), name, None) for m, name in BESIDE_OPS}
        try:
            for op in REGISTRY.values():
                op.forward = self.wrap(op.forward, f"{op.name} forward")
                op.vjps = TimedVjps(self, op.name, op.vjps)
            for (module, name), fn in beside.items():
                if fn is not None:  # looked up by name when called, so the module's name is replaced
                    setattr(importlib.import_module(module), name, self.wrap(fn, BESIDE_OPS[module, name]))
            yield
        finally:
            for op, (forward, vjps) in originals.items():
                op.forward, op.vjps = forward, vjps
            for (module, name), fn in beside.items():
                if fn is not None:
                    setattr(importlib.import_module(module), name, fn)


class TimedVjps:
    """An op's VJPs, each timed: indexed as the sweep indexes ``op.vjps`` (a tuple, or for ops of
    any number of inputs such as cat, an object that makes ``vjps[k]`` on demand)."""

    def __init__(self, timer: OpTimer, op: str, vjps: Any) -> None:
        self.timer, self.op, self.vjps = timer, op, vjps
        self.timed: dict[int, Callable] = {}

    def __getitem__(self, k: int) -> Callable:
        timed = self.timed.get(k)
        if timed is None:
            vjp = self.vjps[k]
            timed = self.timed[k] = self.timer.wrap(vjp, _vjp_label(self.op, k, vjp))
        return timed


def _vjp_label(op: str, k: int, vjp: Callable) -> str:
    name = getattr(vjp, "__name__", "<lambda>")
    return f"{op} VJP {k}" + ("" if name == "<lambda>" else f" ({name})")


def timer_cost(calls: int = 100_000) -> float:
    """Seconds a timed call costs over a plain one, outside what its tally records."""
    timer = OpTimer()

    def empty() -> None:
        return None

    timed = timer.wrap(empty, "empty")
    start = time.perf_counter()
    for _ in range(calls):
        empty()
    plain = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(calls):
        timed()
    wrapped = time.perf_counter() - start
    return max(0.0, (wrapped - plain - timer.tallies["forward", "empty"].seconds) / calls)


def phased_steps(engine: TapeModel, timer: OpTimer, batches: list[Any], steps: int) -> dict[str, float]:
    """``steps`` training steps, each phase timed; seconds per phase in all."""
    clock = time.perf_counter
    phases = dict.fromkeys(PHASES, 0.0)
    for i in range(steps):
        Xb, Yb = batches[i % len(batches)]
        timer.phase, start = "forward", clock()
        loss = engine.loss(Xb, Yb)
        timer.phase, t1 = "zero_grad", clock()
        engine.optimizer.zero_grad()
        timer.phase, t2 = "backward", clock()
        loss.backward()
        timer.phase, t3 = "optimizer.step", clock()
        engine.optimizer.step()
        t4 = clock()
        for phase, seconds in zip(PHASES, (t1 - start, t2 - t1, t3 - t2, t4 - t3)):
            phases[phase] += seconds
    return phases


def op_profile(workload: Workload, name: str, batch_size: int, steps: int) -> dict[str, Any]:
    """The per-op profile of ``steps`` steps of one eager tape engine (a TapeModel)."""
    engine = workload.build_engine(name)
    if not isinstance(engine, TapeModel):
        raise SystemExit(f"bench: --profile-ops takes an eager tape nn engine, not {name}")
    batches = workload.prepared_batches(engine, batch_size)
    run_steps(engine, batches, max(10, steps // 10))  # warm up
    timer, chunk = OpTimer(), max(1, steps // CHUNKS)
    plain, phases = [], dict.fromkeys(PHASES, 0.0)
    for _ in range(CHUNKS):
        plain.append(run_steps(engine, batches, chunk) / chunk)
        with timer.installed():
            for phase, seconds in phased_steps(engine, timer, batches, chunk).items():
                phases[phase] += seconds
    steps = chunk * CHUNKS
    cost = timer_cost()
    rows = []
    for phase in PHASES:
        inside = [(label, t) for (p, label), t in timer.tallies.items() if p == phase]
        inside.sort(key=lambda item: -item[1].seconds)
        ops_seconds = sum(t.seconds for _, t in inside)
        calls = sum(t.calls for _, t in inside)
        for label, t in inside:
            rows.append(
                {"phase": phase, "part": label, "us": 1e6 * t.seconds / steps, "calls": t.calls / steps}
            )
        rest = phases[phase] - ops_seconds - cost * calls
        rows.append({"phase": phase, "part": REST[phase], "us": 1e6 * rest / steps, "calls": None})
    return {
        "workload": workload.name,
        "engine": name,
        "batch_size": batch_size,
        "steps": steps,
        "us_per_step_uninstrumented": 1e6 * statistics.median(plain),
        "us_per_step_instrumented": 1e6 * sum(phases.values()) / steps,
        "timer_cost_us_per_call": 1e6 * cost,
        "rows": rows,
    }


def format_op_profile(profile: dict[str, Any]) -> str:
    """The profile as a Markdown table, ops and rest per phase, then the totals."""
    total = sum(row["us"] for row in profile["rows"])
    p = profile
    lines = [
        f"{p['workload']} {p['engine']}, batch {p['batch_size']}, {p['steps']} steps: "
        f"{p['us_per_step_uninstrumented']:.0f} µs per step uninstrumented, "
        f"{p['us_per_step_instrumented']:.0f} µs instrumented "
        f"(timers {p['timer_cost_us_per_call']:.2f} µs a call, taken out of the rest rows)",
        "",
        "| phase | op or part | µs/step | calls/step | share |",
        "|---|---|---:|---:|---:|",
    ]
    for row in profile["rows"]:
        calls = "" if row["calls"] is None else f"{row['calls']:.0f}"
        lines.append(
            f"| {row['phase']} | {row['part']} | {row['us']:.1f} | {calls} | {row['us'] / total:.0%} |"
        )
    ops = sum(row["us"] for row in profile["rows"] if row["calls"] is not None)
    lines.append(
        f"| all | ops' forwards and VJPs, and the NumPy work beside them | {ops:.1f} | | {ops / total:.0%} |"
    )
    lines.append(
        f"| all | the rest (Python around the ops) | {total - ops:.1f} | | {(total - ops) / total:.0%} |"
    )
    lines.append(f"| all | step (sum of the rows) | {total:.1f} | | 100% |")
    return "\n".join(lines)
