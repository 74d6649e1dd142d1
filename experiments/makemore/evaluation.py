"""After training: batchnorm calibrated on the training set, the loss of each split, and names
sampled from the model. Any nn model mapping contexts to next-character logits will do."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

import nn
import tape
from experiments.makemore import data
from experiments.makemore.errors import ExperimentError

CHUNK = 16384  # examples at a time: bounded memory on large splits


def calibrate_batchnorm(model: nn.Sequential, examples: data.Examples, chunk: int = CHUNK) -> None:
    """Set each BatchNorm1d's running statistics to those of its inputs over all the examples.

    The notebook's calibration after training: the running averages lag the trained weights.
    Two passes over chunks (mean, then variance about it) keep memory small and the variance exact.
    A batchnorm of (n, length, features) normalises over n and length: so are its statistics taken.
    """
    model.eval()
    for i, layer in enumerate(model):
        if isinstance(layer, nn.BatchNorm1d):
            with tape.no_grad():
                total, rows = 0, 0
                for x in _outputs(model.layers[:i], examples, chunk):
                    total, rows = total + x.sum(0), rows + len(x)
                mean = total / rows
                var = sum(((x - mean) ** 2).sum(0) for x in _outputs(model.layers[:i], examples, chunk))
            layer.running_mean[...] = mean
            layer.running_var[...] = var / (rows - 1)


def _outputs(layers: Sequence[nn.Module], examples: data.Examples, chunk: int) -> Iterator[np.ndarray]:
    """The output of ``layers`` for the examples' contexts, chunk by chunk, in float64, as rows of
    features (an output (n, length, features) as n * length rows)."""
    for x, _ in examples.chunks(chunk):
        for layer in layers:
            x = layer(x)
        yield x.array.reshape(-1, x.shape[-1]).astype(np.float64)


def evaluate(model: nn.Module, examples: data.Examples, chunk: int = CHUNK) -> float:
    """Mean cross-entropy over all the examples in evaluation mode."""
    model.eval()
    total = 0.0
    with tape.no_grad():
        for Xb, Yb in examples.chunks(chunk):
            total += nn.cross_entropy(model(Xb), Yb).item() * Xb.shape[0]
    return total / len(examples)


def sample(
    model: nn.Module, rng: np.random.Generator, count: int, block_size: int, max_len: int = 50
) -> list[str]:
    """Names drawn character by character from the model, as the notebook samples."""
    model.eval()
    names = []
    with tape.no_grad():
        for _ in range(count):
            context, name = [0] * block_size, []
            while len(name) < max_len:
                ix = _draw(model(np.array([context])).array[0], rng)
                if ix == 0:
                    break
                name.append(data.itos[ix])
                context = context[1:] + [ix]
            names.append("".join(name))
    return names


def _draw(logits: np.ndarray, rng: np.random.Generator) -> int:
    logits = logits.astype(np.float64)
    probs = np.exp(logits - logits.max())
    if not np.isfinite(probs).all():
        raise ExperimentError("the model's next-character probabilities are not finite: nothing to sample")
    return int(rng.choice(len(probs), p=probs / probs.sum()))
