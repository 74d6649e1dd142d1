"""Before any timing: every engine's losses over its first steps against its workload's reference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from experiments.bench.engines import Engine
from experiments.bench.workloads import Workload

VERIFY_STEPS = 3  # losses compared at each of these steps (so the gradients are checked too)
LOSS_TOLERANCE = 1e-4  # |loss - reference| <= tol * (1 + |reference|), float32


def verify_losses(workload: Workload, names: Sequence[str], batch_size: int) -> dict[str, Any]:
    """Every engine's losses over the first steps against the reference's; exits if one differs."""
    params = workload.initial_parameters()
    engines, _ = workload.build_engines(names, params)
    batches = workload.sample_batches(batch_size, VERIFY_STEPS)
    references = workload.references(params, batches)
    losses, worst = {}, 0.0
    failures = []
    for name, engine in engines.items():
        losses[name] = [float(np.asarray(loss)) for loss in run_each(engine, batches)]
        reference = references[workload.reference_of(name)]
        for step, (ours, theirs) in enumerate(zip(losses[name], reference)):
            error = abs(ours - theirs) / (1 + abs(theirs))
            worst = max(worst, error)
            if not error <= LOSS_TOLERANCE:
                failures.append(f"  {name} step {step}: loss {ours:.7f}, reference {theirs:.7f}")
    if failures:
        raise SystemExit(
            f"bench: the {workload.name} engines disagree at batch size {batch_size} (relative "
            f"tolerance {LOSS_TOLERANCE:g}), so their timings would not be comparable:\n"
            + "\n".join(failures)
        )
    return {
        "batch_size": batch_size,
        "steps": VERIFY_STEPS,
        "losses": losses,
        "references": references,
        "reference_of": {name: workload.reference_of(name) for name in engines},
        "max_relative_error": worst,
        "tolerance": LOSS_TOLERANCE,
    }


def run_each(engine: Engine, batches: Sequence[tuple[np.ndarray, ...]]) -> list[Any]:
    """One step on each batch, in order; the losses (each converted at once: a replay may reuse
    its loss's buffer)."""
    return [float(np.asarray(engine.step(engine.prepare(*b)))) for b in batches]
