"""The engines that train the makemore MLP: tape and torch eager, each as the nn model and as the
notebook's graph op by op (the NumPy floor is ``floor``), tape-nn under ``tape.replay``, and the
table of engines. ``TapeModel`` and ``Replayed`` serve the WaveNet's tape engines too."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol

import numpy as np

import tape
from experiments import notebook
from experiments.bench.floor import NumpyFloor
from experiments.bench.workload import (
    BLOCK_SIZE,
    BN_EPS,
    BN_MOMENTUM,
    N_EMBD,
    N_HIDDEN,
    VOCAB_SIZE,
    sequential_parameters,
)


class EngineUnavailableError(Exception):
    """An engine cannot run here (torch not installed, ...)."""


class Engine(Protocol):
    def prepare(self, Xb: np.ndarray, Yb: np.ndarray) -> Any:
        """The batch in the engine's own types (converted once, outside the timing)."""

    def step(self, batch: Any) -> Any:
        """One training step (forward, backward, SGD); returns the loss before the update."""


def load_torch() -> ModuleType:
    try:
        import torch
    except ImportError as e:
        raise EngineUnavailableError(f"torch not importable ({e})") from None
    torch.set_num_threads(1)
    return torch


class TapeModel:
    """A tape nn model trained as the makemore experiments train it: ``nn.cross_entropy`` on its
    logits, ``nn.SGD``. Subclasses build ``self.model``; the step is ``train_step``."""

    def __init__(self, model: Any, lr: float) -> None:
        import nn  # imported here, so that only tape's memory processes hold nn

        self.model = model
        self.cross_entropy = nn.cross_entropy
        self.optimizer = nn.SGD(model.parameters(), lr)

    def prepare(self, Xb: np.ndarray, Yb: np.ndarray) -> Any:
        return Xb, Yb

    def loss(self, Xb: np.ndarray, Yb: np.ndarray) -> tape.Tensor:
        return self.cross_entropy(self.model(Xb), Yb)

    def train_step(self, Xb: np.ndarray, Yb: np.ndarray) -> tape.Tensor:
        """The whole step on NumPy batches, as ``tape.replay`` takes it; the loss tensor."""
        loss = self.loss(Xb, Yb)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss

    def step(self, batch: Any) -> Any:
        return self.train_step(*batch).array


class TapeNN(TapeModel):
    """The makemore experiment's nn model, with the fused cross-entropy and batchnorm."""

    def __init__(self, params: dict[str, np.ndarray], lr: float) -> None:
        from experiments.makemore.model import build_mlp

        model = build_mlp(
            VOCAB_SIZE,
            N_EMBD,
            BLOCK_SIZE,
            N_HIDDEN,
            np.random.default_rng(0),  # its draws are replaced by the notebook's numbers below
            batchnorm_unbiased=False,  # torch.nn.BatchNorm1d's normalisation, as torch-nn
            batchnorm_eps=BN_EPS,
            batchnorm_momentum=BN_MOMENTUM,
        )
        model.load_state_dict({**model.state_dict(), **sequential_parameters(params)})
        super().__init__(model, lr)


def require_replay() -> Callable[[Callable], Callable]:
    """``tape.replay``, or EngineUnavailableError where this tape has none yet."""
    replay = getattr(tape, "replay", None)
    if replay is None:
        raise EngineUnavailableError("this tape has no tape.replay")
    return replay


class Replayed:
    """An eager tape engine's whole step (``train_step``) under ``tape.replay``: recorded on its
    first calls, replayed on the later ones (``tape.replay`` keeps a record per batch shape)."""

    def __init__(self, eager: TapeModel) -> None:
        self.eager = eager
        self.replayed = require_replay()(eager.train_step)

    def prepare(self, Xb: np.ndarray, Yb: np.ndarray) -> Any:
        return Xb, Yb

    def step(self, batch: Any) -> Any:
        # a copy: a replay may hand back the same buffer every step
        return np.array(self.replayed(*batch).array)


def tape_replay(params: dict[str, np.ndarray], lr: float) -> Replayed:
    """tape-replay: tape-nn's model and step under ``tape.replay``."""
    require_replay()  # before building the model
    return Replayed(TapeNN(params, lr))


class TapeDecomposed:
    """The notebook's exercise-1 graph, op by op, on tape."""

    def __init__(self, params: dict[str, np.ndarray], lr: float) -> None:
        self.forward = notebook.forward
        self.lr = lr
        self.params = {k: tape.tensor(v, requires_grad=True) for k, v in params.items()}

    def prepare(self, Xb: np.ndarray, Yb: np.ndarray) -> Any:
        return tape.tensor(Xb), tape.tensor(Yb), len(Yb)

    def step(self, batch: Any) -> Any:
        Xb, Yb, n = batch
        loss = self.forward(tape, **self.params, Xb=Xb, Yb=Yb, n=n)["loss"]
        for p in self.params.values():
            p.grad = None
        loss.backward()
        for p in self.params.values():
            p.array -= self.lr * p.grad.array
        return loss.array


class TorchTraining:
    """A torch.nn ``model`` stepped with F.cross_entropy and its ``optimizer``: idiomatic torch eager.
    Subclasses build ``torch``, ``model`` and ``optimizer``."""

    torch: Any
    model: Any
    optimizer: Any

    def prepare(self, Xb: np.ndarray, Yb: np.ndarray) -> Any:
        return self.torch.from_numpy(Xb), self.torch.from_numpy(Yb)

    def step(self, batch: Any) -> Any:
        Xb, Yb = batch
        loss = self.torch.nn.functional.cross_entropy(self.model(Xb), Yb)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.detach()


class TorchNN(TorchTraining):
    """torch.nn modules, F.cross_entropy and torch.optim.SGD: idiomatic torch eager.

    The layers are ``build_mlp``'s in torch.nn (torch cannot build from nn's); the losses
    ``verification`` compares before any timing would tell them apart.
    """

    def __init__(self, params: dict[str, np.ndarray], lr: float) -> None:
        torch = self.torch = load_torch()
        nn = torch.nn
        self.model = nn.Sequential(
            nn.Embedding(VOCAB_SIZE, N_EMBD),
            nn.Flatten(),
            nn.Linear(N_EMBD * BLOCK_SIZE, N_HIDDEN),
            nn.BatchNorm1d(N_HIDDEN, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.Tanh(),
            nn.Linear(N_HIDDEN, VOCAB_SIZE),
        )
        values = sequential_parameters(params)
        transposed = {"2.weight", "5.weight"}  # torch's Linear stores (fan_out, fan_in)
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                value = values[name].T if name in transposed else values[name]
                p.copy_(torch.from_numpy(np.ascontiguousarray(value)))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)


class TorchDecomposed:
    """The notebook's exercise-1 graph on torch eager: the same ``forward`` as tape runs."""

    def __init__(self, params: dict[str, np.ndarray], lr: float) -> None:
        self.torch = load_torch()
        self.forward = notebook.forward
        self.lr = lr
        self.params = {k: self.torch.tensor(v, requires_grad=True) for k, v in params.items()}

    def prepare(self, Xb: np.ndarray, Yb: np.ndarray) -> Any:
        return self.torch.from_numpy(Xb), self.torch.from_numpy(Yb), len(Yb)

    def step(self, batch: Any) -> Any:
        Xb, Yb, n = batch
        loss = self.forward(self.torch, **self.params, Xb=Xb, Yb=Yb, n=n)["loss"]
        for p in self.params.values():
            p.grad = None
        loss.backward()
        with self.torch.no_grad():
            for p in self.params.values():
                p -= self.lr * p.grad
        return loss.detach()


@dataclasses.dataclass(frozen=True)
class EngineSpec:
    name: str
    build: Callable[[dict[str, np.ndarray], float], Engine]
    baseline: str | None  # the torch engine its ratio is taken against
    description: str


ENGINES = [
    EngineSpec("tape-nn", TapeNN, "torch-nn", "tape, nn model (fused cross-entropy and batchnorm)"),
    EngineSpec(
        "tape-replay", tape_replay, "torch-nn", "tape-nn's step recorded once, then replayed (tape.replay)"
    ),
    EngineSpec("tape-decomposed", TapeDecomposed, "torch-decomposed", "tape, notebook graph op by op"),
    EngineSpec("torch-nn", TorchNN, None, "torch eager, torch.nn modules + F.cross_entropy"),
    EngineSpec("torch-decomposed", TorchDecomposed, None, "torch eager, notebook graph op by op"),
    EngineSpec("numpy-floor", NumpyFloor, "torch-nn", "NumPy, forward and backward fused by hand"),
]
ENGINE_BY_NAME = {spec.name: spec for spec in ENGINES}
