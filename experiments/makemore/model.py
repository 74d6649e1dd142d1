"""What makes one makemore experiment: its model, defaults and learning-rate schedule (an
``Experiment``); and the makemore MLP (Bengio et al. 2003 as the notebook builds it) and its
training recipe, built here and nowhere else. Another model is another small module with its
own ``Experiment`` (``wavenet``); data, checkpoints, the loop, evaluation and the command are shared.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

import nn


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One model trained by the shared pipeline (``cli.main(argv, experiment)``)."""

    name: str  # the command is ``python -m experiments.<name>``, its runs go to runs/<name>
    short_name: str  # in the loss plot's title
    title: str  # what the command trains, for its --help
    defaults: Mapping[str, Any]  # the options whose defaults differ from ``options.Options``'
    # (vocab_size, n_embd, block_size, n_hidden, rng) -> the model, initialised
    build: Callable[[int, int, int, int, np.random.Generator], nn.Module]
    # (vocab_size, n_embd, block_size, n_hidden, rows) -> roughly the bytes to train ``rows`` at a time
    memory_needed: Callable[[int, int, int, int, int], int]
    decay_step: Callable[[int], int]  # of the run's steps: where the learning rate drops tenfold
    decay_help: str  # the same, in words, for --lr's help
    check: Callable[[dict[str, Any]], list[str]] = lambda values: []  # the model's own limits

    @property
    def prog(self) -> str:
        return f"python -m experiments.{self.name}"

    def learning_rate(self, lr: float, steps: int) -> Callable[[int], float]:
        """``lr`` before the decay step, then ``lr / 10``."""
        decay = self.decay_step(steps)
        return lambda step: lr if step < decay else lr / 10


def build_mlp(
    vocab_size: int,
    n_embd: int,
    block_size: int,
    n_hidden: int,
    rng: np.random.Generator,
    *,
    scale_init: bool = True,
    batchnorm_unbiased: bool = True,
    batchnorm_eps: float = 1e-5,
    batchnorm_momentum: float = 0.1,
) -> nn.Sequential:
    """Embedding, Flatten, Linear, BatchNorm1d, Tanh, Linear, initialised as the notebook.

    The keywords are for the benchmark and the tests, which build this same model:
    ``scale_init=False`` keeps nn's plain initialisation; the ``batchnorm_*`` options are
    ``nn.BatchNorm1d``'s (``batchnorm_unbiased=False`` normalises as torch.nn.BatchNorm1d does).
    """
    model = nn.Sequential(
        nn.Embedding(vocab_size, n_embd, generator=rng),
        nn.Flatten(),
        nn.Linear(n_embd * block_size, n_hidden, generator=rng),
        nn.BatchNorm1d(n_hidden, eps=batchnorm_eps, momentum=batchnorm_momentum, unbiased=batchnorm_unbiased),
        nn.Tanh(),
        nn.Linear(n_hidden, vocab_size, generator=rng),
    )
    if scale_init:
        # the notebook's init: the tanh gain 5/3 into the hidden layer, and an output layer that
        # starts unconfident (near-uniform probabilities, loss near log 27 at step 0)
        model[2].weight.data *= 5 / 3
        model[5].weight.data *= 0.1
    return model


def parameter_count(vocab_size: int, n_embd: int, block_size: int, n_hidden: int) -> int:
    embedding, hidden = vocab_size * n_embd, (n_embd * block_size + 1) * n_hidden
    return embedding + hidden + 2 * n_hidden + (n_hidden + 1) * vocab_size


def memory_needed(vocab_size: int, n_embd: int, block_size: int, n_hidden: int, rows: int) -> int:
    """Roughly the bytes the model takes to train or evaluate ``rows`` examples at a time:
    parameters, gradients and the float64 draws of the init, and each row's activations, their
    gradients and what the backward pass saves (float32)."""
    per_row = block_size * n_embd + 4 * n_hidden + 3 * vocab_size
    return 16 * parameter_count(vocab_size, n_embd, block_size, n_hidden) + 12 * rows * per_row


def notebook_learning_rate(lr: float, steps: int) -> Callable[[int], float]:
    """``lr`` for the first half of the steps, then ``lr / 10``."""
    return lambda step: lr if step < steps // 2 else lr / 10


MLP = Experiment(
    name="makemore_mlp",
    short_name="MLP",
    title="the makemore MLP (Karpathy's backprop-ninja notebook)",
    defaults={},
    # looked up when called, so that a test may replace build_mlp
    build=lambda *args: build_mlp(*args),
    memory_needed=lambda *args: memory_needed(*args),
    decay_step=lambda steps: steps // 2,
    decay_help="half the steps",
)
