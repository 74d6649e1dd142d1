"""makemore part 5's hierarchical model (a WaveNet-like tree of dilated pairs), built from nn as
the lecture builds it: an embedding, then one block per level of the tree, each joining two
consecutive positions (FlattenConsecutive(2)), Linear without bias, BatchNorm1d (statistics over
the batch and the positions, n-1 variance as the lecture), Tanh; the output layer scaled by 0.1.

A context of 8 characters makes three levels: (B, 8, n_embd) -> (B, 4, n_hidden) -> (B, 2,
n_hidden) -> (B, n_hidden) -> (B, 27). The learning rate drops tenfold after 3/4 of the steps,
as in the lecture (150,000 of 200,000).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import nn
from experiments.makemore.model import Experiment


def levels(block_size: int) -> int:
    """How many pairwise joins take ``block_size`` positions down to one (a power of two)."""
    return block_size.bit_length() - 1


def build_wavenet(
    vocab_size: int, n_embd: int, block_size: int, n_hidden: int, rng: np.random.Generator
) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Embedding(vocab_size, n_embd, generator=rng)]
    width = n_embd
    for _ in range(levels(block_size)):
        layers += [
            nn.FlattenConsecutive(2),
            nn.Linear(2 * width, n_hidden, bias=False, generator=rng),
            nn.BatchNorm1d(n_hidden),
            nn.Tanh(),
        ]
        width = n_hidden
    layers.append(nn.Linear(width, vocab_size, generator=rng))
    model = nn.Sequential(*layers)
    model[-1].weight.data *= 0.1  # the lecture's init: a near-uniform first prediction
    return model


def parameter_count(vocab_size: int, n_embd: int, block_size: int, n_hidden: int) -> int:
    depth = levels(block_size)
    hidden = 2 * n_embd * n_hidden + (depth - 1) * 2 * n_hidden * n_hidden + depth * 2 * n_hidden
    return vocab_size * n_embd + hidden + (n_hidden + 1) * vocab_size


def memory_needed(vocab_size: int, n_embd: int, block_size: int, n_hidden: int, rows: int) -> int:
    """Roughly the bytes the model takes to train or evaluate ``rows`` examples at a time, as
    ``model.memory_needed``: each level keeps three activations of n_hidden per position, and the
    levels have block_size - 1 positions in all."""
    per_row = block_size * n_embd + 4 * n_hidden * (block_size - 1) + 3 * vocab_size
    return 16 * parameter_count(vocab_size, n_embd, block_size, n_hidden) + 12 * rows * per_row


def _check(values: dict[str, Any]) -> list[str]:
    block_size = values.get("block_size")
    if block_size is not None and (block_size < 2 or block_size & (block_size - 1)):
        return [f"--block-size must be a power of two, at least 2 (the model joins pairs), got {block_size}"]
    return []


WAVENET = Experiment(
    name="makemore_wavenet",
    short_name="WaveNet",
    title="makemore part 5's hierarchical (WaveNet-like) model",
    defaults={"n_embd": 24, "n_hidden": 128, "block_size": 8},
    build=build_wavenet,
    memory_needed=memory_needed,
    decay_step=lambda steps: steps * 3 // 4,
    decay_help="3/4 of the steps",
    check=_check,
)
