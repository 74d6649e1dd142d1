"""The makemore MLP (Bengio et al. 2003 as the notebook builds it) and its training recipe,
built here and nowhere else."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import nn


def build_mlp(
    vocab_size: int, n_embd: int, block_size: int, n_hidden: int, rng: np.random.Generator
) -> nn.Sequential:
    """Embedding, Flatten, Linear, BatchNorm1d, Tanh, Linear, initialised as the notebook."""
    model = nn.Sequential(
        nn.Embedding(vocab_size, n_embd, generator=rng),
        nn.Flatten(),
        nn.Linear(n_embd * block_size, n_hidden, generator=rng),
        nn.BatchNorm1d(n_hidden),
        nn.Tanh(),
        nn.Linear(n_hidden, vocab_size, generator=rng),
    )
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
