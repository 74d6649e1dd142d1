"""Before any timing: every engine's losses over its first steps against the NumPy floor's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from experiments.bench.engines import Engine, build_engines
from experiments.bench.floor import NumpyFloor
from experiments.bench.workload import LEARNING_RATE, initial_parameters, sample_batches

VERIFY_STEPS = 3  # losses compared at each of these steps (so the gradients are checked too)
LOSS_TOLERANCE = 1e-4  # |loss - reference| <= tol * (1 + |reference|), float32
# what each engine's losses must match: the floor with the same batchnorm variance convention
# (biased as torch.nn.BatchNorm1d; the notebook's graphs are Bessel-corrected)
REFERENCE_UNBIASED = {"tape-nn": False, "torch-nn": False, "numpy-floor": False}


def verify_losses(names: Sequence[str], batch_size: int) -> dict[str, Any]:
    """Every engine's losses over the first steps against the NumPy floor's; exits if one differs."""
    params = initial_parameters()
    engines, _ = build_engines(names, params)
    batches = sample_batches(batch_size, VERIFY_STEPS)
    references = {
        unbiased: [float(s) for s in run_each(NumpyFloor(params, LEARNING_RATE, unbiased), batches)]
        for unbiased in (False, True)
    }
    losses, worst = {}, 0.0
    failures = []
    for name, engine in engines.items():
        losses[name] = [float(np.asarray(loss)) for loss in run_each(engine, batches)]
        reference = references[REFERENCE_UNBIASED.get(name, True)]
        for step, (ours, theirs) in enumerate(zip(losses[name], reference)):
            error = abs(ours - theirs) / (1 + abs(theirs))
            worst = max(worst, error)
            if not error <= LOSS_TOLERANCE:
                failures.append(f"  {name} step {step}: loss {ours:.7f}, reference {theirs:.7f}")
    if failures:
        raise SystemExit(
            f"bench: the engines disagree at batch size {batch_size} (relative tolerance "
            f"{LOSS_TOLERANCE:g}), so their timings would not be comparable:\n" + "\n".join(failures)
        )
    return {
        "batch_size": batch_size,
        "steps": VERIFY_STEPS,
        "losses": losses,
        "reference_biased_variance": references[False],
        "reference_unbiased_variance": references[True],
        "max_relative_error": worst,
        "tolerance": LOSS_TOLERANCE,
    }


def run_each(engine: Engine, batches: Sequence[tuple[np.ndarray, ...]]) -> list[Any]:
    """One step on each batch, in order; the losses."""
    return [engine.step(engine.prepare(*b)) for b in batches]
