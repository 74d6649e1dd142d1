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
                mean, rows = _mean(model.layers[:i], examples, chunk)
                var = sum(_squared_deviations(x, mean) for x in _outputs(model.layers[:i], examples, chunk))
            layer.running_mean[...] = mean
            layer.running_var[...] = var / (rows - 1)


def _mean(layers: Sequence[nn.Module], examples: data.Examples, chunk: int) -> tuple[np.ndarray, int]:
    """The mean of ``_outputs`` over all rows, and their number. A function of its own, so that
    its last chunk (a view of the pass's buffer) is gone before the variance pass starts."""
    total, rows = 0, 0
    for x in _outputs(layers, examples, chunk):
        total, rows = total + x.sum(0), rows + len(x)
    return total / rows, rows


def _outputs(layers: Sequence[nn.Module], examples: data.Examples, chunk: int) -> Iterator[np.ndarray]:
    """The output of ``layers`` for the examples' contexts, chunk by chunk, in float64, as rows of
    features (an output (n, length, features) as n * length rows).

    Every chunk is copied into one float64 buffer (the first chunk is the largest), which the
    caller may change in place until it asks for the next: a fresh copy a chunk would hold two
    of them at once, beside the float32 output, at the peak RSS of a run.
    """
    buffer = np.empty(0)
    for x, _ in examples.chunks(chunk):
        for layer in layers:
            x = layer(x)
        out = x.array.reshape(-1, x.shape[-1])
        if buffer.shape[0] < out.shape[0]:
            buffer = np.empty(out.shape, np.float64)
        rows = buffer[: out.shape[0]]
        rows[...] = out  # float32 to float64 is exact: the numbers astype(np.float64) gives
        del x, out  # the float32 output goes before the caller works on the copy
        yield rows


def _squared_deviations(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``((x - mean) ** 2).sum(0)``, the same numbers (``** 2`` is ``np.square``), computed in ``x``
    itself: no temporaries of its size (the variance pass set the peak RSS of a run)."""
    x -= mean
    np.square(x, out=x)
    return x.sum(0)


def evaluate(model: nn.Module, examples: data.Examples, chunk: int = CHUNK) -> float:
    """Mean cross-entropy over all the examples in evaluation mode. Its chunks' memory stays with
    the process for the next evaluation: call ``tape.memory.release()`` after the last one."""
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
