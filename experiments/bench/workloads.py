"""A workload: one model's training step, the engines that run it, its batches and its reference
losses. The benchmark has two: the makemore MLP (``mlp``) and makemore part 5's WaveNet
(``wavenet``); every other module of the package takes the workload it works on."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from experiments.bench import wavenet, workload
from experiments.bench.engines import ENGINES, Engine, EngineSpec, EngineUnavailableError
from experiments.bench.floor import NumpyFloor

Batches = list[tuple[np.ndarray, ...]]


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    title: str
    engines: list[EngineSpec]
    batch_sizes: tuple[int, ...]  # the full run's
    learning_rate: float
    initial_parameters: Callable[[], dict[str, np.ndarray]]
    sample_batches: Callable[..., Batches]  # (batch_size, count=pool): fixed pseudo-random batches
    model_config: Callable[[], dict[str, Any]]
    # the losses every engine must match, by label, and which label each engine is held to
    references: Callable[[dict[str, np.ndarray], Batches], dict[str, list[float]]]
    reference_of: Callable[[str], str]

    @property
    def engine_names(self) -> list[str]:
        return [spec.name for spec in self.engines]

    def spec(self, name: str) -> EngineSpec:
        return next(spec for spec in self.engines if spec.name == name)

    def baseline(self, name: str) -> str:
        """The engine whose rate ``name``'s is divided by (itself for a baseline)."""
        return self.spec(name).baseline or name

    def build_engines(
        self, names: Sequence[str], params: dict[str, np.ndarray]
    ) -> tuple[dict[str, Engine], dict[str, str]]:
        """The engines among ``names`` that can run here, and why the others cannot."""
        engines, unavailable = {}, {}
        for name in names:
            try:
                engines[name] = self.spec(name).build(params, self.learning_rate)
            except EngineUnavailableError as e:
                unavailable[name] = str(e)
        return engines, unavailable

    def build_engine(self, name: str) -> Engine:
        """One engine from the initial parameters (EngineUnavailableError if it cannot run)."""
        return self.spec(name).build(self.initial_parameters(), self.learning_rate)

    def prepared_batches(self, engine: Engine, batch_size: int) -> list[Any]:
        """The batch pool of this size, in the engine's own types."""
        return [engine.prepare(*batch) for batch in self.sample_batches(batch_size)]

    def describe_engines(self, names: Sequence[str], available: Sequence[str], unavailable: dict) -> dict:
        """The report's table of the engines asked for: what each is, its baseline, whether it ran."""
        return {
            spec.name: {
                "description": spec.description,
                "baseline": spec.baseline,
                "available": spec.name in available,
                "reason": unavailable.get(spec.name),
            }
            for spec in self.engines
            if spec.name in names
        }


# what each MLP engine's losses must match: the floor with the same batchnorm variance
# convention (biased as torch.nn.BatchNorm1d; the notebook's graphs are Bessel-corrected)
BIASED, UNBIASED = "numpy-floor, biased variance", "numpy-floor, unbiased variance"
DECOMPOSED = {"tape-decomposed", "torch-decomposed"}


def _mlp_references(params: dict[str, np.ndarray], batches: Batches) -> dict[str, list[float]]:
    return {
        label: _floor_losses(params, batches, unbiased)
        for label, unbiased in ((BIASED, False), (UNBIASED, True))
    }


def _floor_losses(params: dict[str, np.ndarray], batches: Batches, unbiased: bool) -> list[float]:
    floor = NumpyFloor(params, workload.LEARNING_RATE, unbiased)
    return [float(floor.step(floor.prepare(*b))) for b in batches]


def _wavenet_references(params: dict[str, np.ndarray], batches: Batches) -> dict[str, list[float]]:
    # no hand-derived floor for the WaveNet: every engine is held to tape's eager nn model,
    # which the test suite checks against the lecture's own classes on torch
    engine = wavenet.TapeWaveNet(params, wavenet.LEARNING_RATE)
    return {"tape-nn": [float(engine.step(engine.prepare(*b))) for b in batches]}


MLP = Workload(
    name="mlp",
    title="the backprop-ninja notebook's makemore MLP",
    engines=ENGINES,
    batch_sizes=(32, 256, 4096),
    learning_rate=workload.LEARNING_RATE,
    initial_parameters=workload.initial_parameters,
    sample_batches=workload.sample_batches,
    model_config=workload.model_config,
    references=_mlp_references,
    reference_of=lambda name: UNBIASED if name in DECOMPOSED else BIASED,
)
WAVENET = Workload(
    name="wavenet",
    title="makemore part 5's WaveNet",
    engines=wavenet.ENGINES,
    batch_sizes=(32,),
    learning_rate=wavenet.LEARNING_RATE,
    initial_parameters=wavenet.initial_parameters,
    sample_batches=wavenet.sample_batches,
    model_config=wavenet.model_config,
    references=_wavenet_references,
    reference_of=lambda name: "tape-nn",
)
WORKLOADS = {w.name: w for w in (MLP, WAVENET)}
ENGINE_NAMES = list(dict.fromkeys(name for w in WORKLOADS.values() for name in w.engine_names))
