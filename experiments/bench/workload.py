"""What every engine trains: the notebook's MLP, its initial numbers, and the batches."""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments import notebook

VOCAB_SIZE, N_EMBD, BLOCK_SIZE, N_HIDDEN = 27, 10, 3, 200
LEARNING_RATE = 0.1
BN_EPS, BN_MOMENTUM = 1e-5, 0.1
DATASET_SIZE = 20_000  # the pseudo-dataset: random contexts and targets, no data file needed
BATCH_POOL = 32  # distinct batches per batch size, drawn once and cycled through


def model_config() -> dict[str, Any]:
    """The model and its training, as the report records them."""
    return {
        "vocab_size": VOCAB_SIZE,
        "n_embd": N_EMBD,
        "block_size": BLOCK_SIZE,
        "n_hidden": N_HIDDEN,
        "learning_rate": LEARNING_RATE,
        "dtype": "float32",
    }


def initial_parameters(seed: int = 42) -> dict[str, np.ndarray]:
    """The notebook's parameters (C, W1, b1, W2, b2, bngain, bnbias) in float32."""
    params = notebook.parameters(seed, VOCAB_SIZE, N_EMBD, BLOCK_SIZE, N_HIDDEN)
    return {name: value.astype(np.float32) for name, value in params.items()}


def sequential_parameters(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The notebook's parameters under the names of the nn.Sequential model (tape layout)."""
    return {
        "0.weight": params["C"],
        "2.weight": params["W1"],
        "2.bias": params["b1"],
        "3.weight": params["bngain"].reshape(-1),
        "3.bias": params["bnbias"].reshape(-1),
        "5.weight": params["W2"],
        "5.bias": params["b2"],
    }


def pseudo_dataset(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, VOCAB_SIZE, (DATASET_SIZE, BLOCK_SIZE)),
        rng.integers(0, VOCAB_SIZE, DATASET_SIZE),
    )


def sample_batches(batch_size: int, count: int = BATCH_POOL, seed: int = 2) -> list[tuple[np.ndarray, ...]]:
    X, Y = pseudo_dataset()
    rng = np.random.default_rng([seed, batch_size])
    batches = []
    for _ in range(count):
        rows = rng.integers(0, DATASET_SIZE, batch_size)
        batches.append((X[rows], Y[rows]))
    return batches
