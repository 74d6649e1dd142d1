"""The second workload: one training step of makemore part 5's WaveNet (the experiment's model,
``experiments/makemore/wavenet.py``: vocab 27, n_embd 24, block 8, n_hidden 128, three levels of
FlattenConsecutive(2), Linear without bias, BatchNorm1d over (N, L, C), Tanh), its batches, and
its engines:

- ``tape-nn``: the experiment's model on tape, eager, with ``nn.cross_entropy`` and ``nn.SGD``
- ``tape-replay``: the same step under ``tape.replay`` (recorded once, then replayed)
- ``torch-eager``: the lecture's own hand-written layer classes run on torch, updated as the
  lecture does (``p.data += -lr * p.grad``)
- ``torch-nn``: the same architecture from ``torch.nn`` modules, ``torch.optim.SGD``: the baseline

The batchnorm normalises with the biased batch variance in all four, as ``torch.nn.BatchNorm1d``
does (the experiment and the lecture use the n-1 one; the cost is the same), so that all four
compute the same step and their losses can be held to each other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.bench.engines import (
    EngineSpec,
    Replayed,
    TapeModel,
    TorchTraining,
    load_torch,
    require_replay,
)

VOCAB_SIZE, N_EMBD, BLOCK_SIZE, N_HIDDEN = 27, 24, 8, 128  # the experiment's defaults
LEARNING_RATE = 0.1
DATASET_SIZE = 20_000  # the pseudo-dataset: random contexts and targets, no data file needed
BATCH_POOL = 32  # distinct batches per batch size, drawn once and cycled through


def model_config() -> dict[str, Any]:
    """The model and its training, as the report records them."""
    return {
        "model": "experiments.makemore.wavenet.build_wavenet",
        "vocab_size": VOCAB_SIZE,
        "n_embd": N_EMBD,
        "block_size": BLOCK_SIZE,
        "n_hidden": N_HIDDEN,
        "learning_rate": LEARNING_RATE,
        "batchnorm_variance": "biased",
        "dtype": "float32",
    }


def build_tape_model(params: dict[str, np.ndarray] | None = None) -> Any:
    """The experiment's model, normalising as torch.nn.BatchNorm1d; ``params`` loaded if given."""
    import nn
    from experiments.makemore.wavenet import build_wavenet

    model = build_wavenet(VOCAB_SIZE, N_EMBD, BLOCK_SIZE, N_HIDDEN, np.random.default_rng(42))
    for layer in model:
        if isinstance(layer, nn.BatchNorm1d):
            layer.unbiased = False
    if params is not None:
        model.load_state_dict(params)
    return model


def initial_parameters() -> dict[str, np.ndarray]:
    """The experiment's initial parameters and buffers (seed 42), by the tape model's names."""
    return build_tape_model().state_dict()


def sample_batches(batch_size: int, count: int = BATCH_POOL, seed: int = 2) -> list[tuple[np.ndarray, ...]]:
    data = np.random.default_rng(1)
    X = data.integers(0, VOCAB_SIZE, (DATASET_SIZE, BLOCK_SIZE))
    Y = data.integers(0, VOCAB_SIZE, DATASET_SIZE)
    rng = np.random.default_rng([seed, batch_size])
    return [(X[rows], Y[rows]) for rows in (rng.integers(0, DATASET_SIZE, batch_size) for _ in range(count))]


class TapeWaveNet(TapeModel):
    """tape-nn: the experiment's model, eager."""

    def __init__(self, params: dict[str, np.ndarray], lr: float) -> None:
        super().__init__(build_tape_model(params), lr)


def tape_replay(params: dict[str, np.ndarray], lr: float) -> Replayed:
    """tape-replay: tape-nn's step under ``tape.replay``."""
    require_replay()  # before building the model
    return Replayed(TapeWaveNet(params, lr))


class TorchNNWaveNet(TorchTraining):
    """torch-nn: the architecture from torch.nn modules, torch.optim.SGD."""

    def __init__(self, params: dict[str, np.ndarray], lr: float) -> None:
        self.torch = load_torch()
        from experiments.bench import torch_wavenet  # imports torch: only once it is known to load

        self.model = torch_wavenet.torch_nn_model(params)
        self.optimizer = self.torch.optim.SGD(self.model.parameters(), lr=lr)


class TorchEagerWaveNet:
    """torch-eager: the lecture's own layer classes on torch, trained as the lecture's loop."""

    def __init__(self, params: dict[str, np.ndarray], lr: float) -> None:
        self.torch = load_torch()
        from experiments.bench import torch_wavenet

        self.model = torch_wavenet.lecture_model(params)
        self.parameters = self.model.parameters()
        self.lr = lr

    def prepare(self, Xb: np.ndarray, Yb: np.ndarray) -> Any:
        return self.torch.from_numpy(Xb), self.torch.from_numpy(Yb)

    def step(self, batch: Any) -> Any:
        Xb, Yb = batch
        loss = self.torch.nn.functional.cross_entropy(self.model(Xb), Yb)
        for p in self.parameters:
            p.grad = None
        loss.backward()
        for p in self.parameters:
            p.data += -self.lr * p.grad
        return loss.detach()


ENGINES = [
    EngineSpec("tape-nn", TapeWaveNet, "torch-nn", "tape eager, the experiment's nn model"),
    EngineSpec(
        "tape-replay", tape_replay, "torch-nn", "tape-nn's step recorded once, then replayed (tape.replay)"
    ),
    EngineSpec("torch-eager", TorchEagerWaveNet, "torch-nn", "torch eager, the lecture's own layer classes"),
    EngineSpec("torch-nn", TorchNNWaveNet, None, "torch eager, torch.nn modules + F.cross_entropy"),
]
