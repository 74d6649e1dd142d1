"""``torch.nn.functional`` on tape: torch code's ``import torch.nn.functional as F`` becomes
``import nn.functional as F`` and the calls stay as they are.

Signatures, defaults, shapes and reductions are torch's. Each function is either a tape op
(``F.cross_entropy`` on 2-D logits is the fused ``tape.cross_entropy``) or a composite of
tape ops whose gradient is then exact by the chain rule; nothing here has a VJP of its own.
Where torch's semantics are subtle they are spelled out beside the code (``ignore_index``
leaves the mean's denominator, label smoothing spreads over every class, ...).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

import tape

# conv and pooling are tape's own (tape/conv.py), re-exported here as torch's F has them
from tape import Tensor, avg_pool2d, conv1d, conv2d, max_pool2d
from tape import random as tape_random
from tape.fused import BatchStatistics, batch_statistics
from tape.tracing import replayable

__all__ = [
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy",
    "conv1d",
    "conv2d",
    "cross_entropy",
    "dropout",
    "embedding",
    "gelu",
    "l1_loss",
    "layer_norm",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "one_hot",
    "pad",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
]

REDUCTIONS = ("none", "mean", "sum")


def _array(x: Any) -> np.ndarray:
    return x.array if isinstance(x, Tensor) else np.asarray(x)


# ---------------------------------------------------------------- activations


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return input.relu_() if inplace else input.relu()


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """``x * Phi(x)``. Only torch's ``approximate="tanh"`` form: the exact one needs erf, which
    tape does not have yet."""
    if approximate == "none":
        raise NotImplementedError(
            "gelu: the exact form (approximate='none') needs erf, which tape lacks; "
            "use gelu(x, approximate='tanh')"
        )
    if approximate != "tanh":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    inner = (input + 0.044715 * input**3) * math.sqrt(2 / math.pi)
    return 0.5 * input * (1 + inner.tanh())


def _softmax_dim(name: str, ndim: int, dim: int | None) -> int:
    """torch's implicit dim (deprecated there too): 0 for 0-, 1- and 3-D input, else 1."""
    if dim is not None:
        return dim
    warnings.warn(
        f"{name}: implicit dimension choice has been deprecated (as in torch); pass dim=",
        UserWarning,
        stacklevel=3,
    )
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    return input.softmax(_softmax_dim("softmax", input.ndim, dim), dtype)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    return input.log_softmax(_softmax_dim("log_softmax", input.ndim, dim), dtype)


# ---------------------------------------------------------------- layers


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` with torch's weight layout (out_features, in_features).

    (``tape.linear`` and ``nn.Linear`` keep the notebook's (fan_in, fan_out) layout instead.)
    """
    if weight.ndim != 2 or input.ndim < 1 or input.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: expected input (..., in_features) and weight (out_features, in_features), "
            f"got shapes {tuple(input.shape)} and {tuple(weight.shape)}"
        )
    return tape.linear(input, weight.T, bias)


def embedding(
    input: Any,
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Rows of ``weight`` (num_embeddings, embedding_dim) at the integer indices ``input``.

    Indices are checked as torch checks them: negative ones do not count from the end.
    ``padding_idx``'s row is looked up but gets no gradient. ``sparse`` only changes the
    storage of torch's gradient, so it is accepted and the gradient is dense.
    """
    if max_norm is not None or scale_grad_by_freq:
        raise NotImplementedError("embedding: max_norm and scale_grad_by_freq are not supported")
    rows = tape.embedding(weight, input)
    if padding_idx is None:
        return rows
    index, count = _array(input), weight.shape[0]
    padding = padding_idx + count if padding_idx < 0 else padding_idx
    if not 0 <= padding < count:
        raise ValueError(f"embedding: padding_idx {padding_idx} is out of range for {count} embeddings")
    # the same values, but the padding rows come from a detached copy: no gradient reaches them
    return tape.where((index != padding)[..., None], rows, weight.detach()[index])


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """``tape.pad`` with torch's ``value=None`` default (meaning 0)."""
    return tape.pad(input, pad, mode, 0.0 if value is None else value)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p), in training only.

    The mask comes from tape's default generator, so ``tape.manual_seed`` makes it reproducible
    (it is not torch's mask: torch draws it with a bernoulli kernel of its own).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    mask = dropout_mask(input.shape, p, input.dtype)
    return input.mul_(mask) if inplace else input * mask


@replayable  # drawn anew on every replay of a replayed step
def dropout_mask(shape: tuple[int, ...], p: float, dtype: Any) -> np.ndarray:
    """Zeros where an element is dropped, ``1 / (1 - p)`` where it is kept."""
    if p == 1.0:
        return np.zeros(shape, dtype=dtype)
    keep = tape_random.rand(shape) >= p  # float32 uniforms: one random word each
    return keep.astype(dtype) * np.asarray(1 / (1 - p), dtype=dtype)


def layer_norm(
    input: Tensor,
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` dims with the biased variance, as torch."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or tuple(input.shape[-len(shape) :]) != shape:
        raise ValueError(
            f"layer_norm: normalized_shape {shape} must be the trailing dims of the input, "
            f"got shape {input.shape}"
        )
    dims = tuple(range(-len(shape), 0))
    centred = input - input.mean(dims, keepdim=True)
    variance = (centred * centred).mean(dims, keepdim=True)
    out = centred * (variance + eps).rsqrt()
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


# ---------------------------------------------------------------- batch normalisation


@replayable  # Python around the ops, part of every training step: a replay runs it again
def update_running_statistics(
    running_mean: Any, running_var: Any, statistics: BatchStatistics, unbiased: bool, momentum: float
) -> None:
    """``running = (1 - momentum) * running + momentum * batch``, in place (optimisers, checkpoints
    and state dicts hold these very arrays). The running variance is always the unbiased one,
    as torch keeps it, whichever variance normalised the batch."""
    if running_mean is not None:
        _move_towards(_array(running_mean), statistics.bnmean, momentum)
    if running_var is not None:
        n = statistics.bndiff.size // statistics.bnvar.size
        variance = statistics.bnvar if unbiased else statistics.bnvar * (n / (n - 1))
        _move_towards(_array(running_var), variance, momentum)


def _move_towards(running: np.ndarray, batch: np.ndarray, momentum: float) -> None:
    running *= 1 - momentum
    running += momentum * batch


@replayable  # the running variance moves with training: a replayed evaluation reads it anew
def inverse_std(variance: np.ndarray, eps: float) -> np.ndarray:
    return (variance + eps) ** -0.5


def normalise_features(
    x: Tensor,
    running_mean: Any,
    running_var: Any,
    weight: Any,
    bias: Any,
    training: bool,
    momentum: float,
    eps: float,
    unbiased: bool,
) -> Tensor:
    """Batch normalisation of ``x`` (..., features) per feature (the last dim), every other dim a
    batch dim: the one fused ``tape.batchnorm`` entry in training, running statistics otherwise.

    Shared by ``nn.BatchNorm1d`` (features last, as the notebook) and ``batch_norm`` (channels
    at dim 1, as torch, moved last around this call).
    """
    gain = np.ones(x.shape[-1], x.dtype) if weight is None else weight
    shift = np.zeros(x.shape[-1], x.dtype) if bias is None else bias
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation needs running_mean and running_var (or training=True)")
        scale = gain * inverse_std(_array(running_var), eps)
        return (x - _array(running_mean)) * scale + shift
    batch = 0 if x.ndim == 2 else tuple(range(x.ndim - 1))  # 0: the notebook's case, checked fastest
    statistics = batch_statistics(x.array, unbiased, batch)
    out = tape.batchnorm(x, gain, shift, eps, unbiased, statistics, dim=batch)
    update_running_statistics(running_mean, running_var, statistics, unbiased, momentum)
    return out


def batch_norm(
    input: Tensor,
    running_mean: Any,
    running_var: Any,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """torch's batch norm: channels at dim 1 of (N, C) or (N, C, ...), normalised over all other
    dims with the biased variance; in training the running statistics are updated in place."""
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected an input of shape (N, C) or (N, C, ...), got {input.shape}")
    if input.ndim == 2:
        return normalise_features(
            input, running_mean, running_var, weight, bias, training, momentum, eps, False
        )
    channels_last = (0, *range(2, input.ndim), 1)
    back = (0, input.ndim - 1, *range(1, input.ndim - 1))
    out = normalise_features(
        input.permute(channels_last), running_mean, running_var, weight, bias, training, momentum, eps, False
    )
    return out.permute(back)


# ---------------------------------------------------------------- losses


def _legacy_reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """torch's deprecated ``size_average``/``reduce`` pair, when given, overrides ``reduction``."""
    if size_average is None and reduce is None:
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"{reduction} is not a valid value for reduction (one of {', '.join(REDUCTIONS)})"
            )
        return reduction
    legacy = "none" if reduce is False else "sum" if size_average is False else "mean"
    warnings.warn(
        f"size_average and reduce args will be deprecated, please use reduction='{legacy}' instead.",
        UserWarning,
        stacklevel=3,
    )
    return legacy


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _mean_over(total: Tensor, denominator: float) -> Tensor:
    """``total / denominator``; nan when nothing counts (every target ignored, an empty batch),
    as torch gives, while the gradient stays the zero that flows into ``total``."""
    if denominator == 0:
        return total + float("nan")
    return total / denominator


def _weighted_pointwise(errors: Tensor, weight: Any, reduction: str) -> Tensor:
    """mse_loss and l1_loss with ``weight``: the mean is divided by the sum of the weights."""
    if weight is None:
        return _reduce(errors, reduction)
    if tuple(weight.shape) != tuple(errors.shape):
        raise ValueError("Weights and input must have the same size.")
    weighted = errors * weight
    if reduction == "mean":
        return weighted.sum() / _array(weight).sum()
    return _reduce(weighted, reduction)


def mse_loss(
    input: Tensor,
    target: Any,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    difference = input - target
    return _weighted_pointwise(
        difference * difference, weight, _legacy_reduction(size_average, reduce, reduction)
    )


def l1_loss(
    input: Tensor,
    target: Any,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    return _weighted_pointwise(
        (input - target).abs(), weight, _legacy_reduction(size_average, reduce, reduction)
    )


def binary_cross_entropy(
    input: Tensor,
    target: Any,
    weight: Any = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """``-(t log x + (1 - t) log(1 - x))`` with each log clamped at -100, as torch clamps it."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if tuple(np.shape(target)) != tuple(input.shape):
        raise ValueError(
            f"binary_cross_entropy: target shape {tuple(np.shape(target))} must equal "
            f"input shape {tuple(input.shape)}"
        )
    values = input.array
    if values.size and not (values.min() >= 0 and values.max() <= 1):
        raise ValueError("binary_cross_entropy: all elements of input should be between 0 and 1")
    loss = -(target * input.log().clamp(min=-100) + (1 - target) * (1 - input).log().clamp(min=-100))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def _rows_of_classes(input: Tensor) -> Tensor:
    """(M, C) log-probabilities: the class dim (1, or 0 of 1-D input) moved last, the rest flattened."""
    if input.ndim == 1:
        return input.view(1, -1)
    if input.ndim == 2:
        return input
    return input.permute(0, *range(2, input.ndim), 1).reshape(-1, input.shape[1])


def _check_class_targets(name: str, input: Tensor, target: np.ndarray) -> None:
    expected = () if input.ndim == 1 else (input.shape[0], *input.shape[2:])
    if input.ndim == 0 or tuple(target.shape) != expected:
        raise ValueError(
            f"{name}: expected input (C,), (N, C) or (N, C, d1, ...) and target (), (N,) or (N, d1, ...) "
            f"without the class dim; got shapes {tuple(input.shape)} and {tuple(target.shape)}"
        )


def _class_target_loss(
    name: str,
    logp: Tensor,
    target: np.ndarray,
    weight: Any,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
) -> Tensor:
    """torch's negative log-likelihood of class indices, with its label smoothing.

    Per target i with class weight w[y_i] (zero if ignored): (1 - eps) * -w[y_i] logp[i, y_i]
    + eps/C * -sum_c w[c] logp[i, c]. The mean divides by the sum of w[y_i] over the targets not
    ignored (their count without weights), so ignored targets leave the denominator too.
    """
    _check_class_targets(name, logp, target)
    rows = _rows_of_classes(logp)
    classes = rows.shape[1]
    labels = target.reshape(-1)
    counted = labels != ignore_index
    bad = labels[counted & ((labels < 0) | (labels >= classes))]
    if bad.size:
        raise IndexError(f"{name}: target {bad[0]} is out of bounds for {classes} classes")
    safe = np.where(counted, labels, 0)
    class_weight = None if weight is None else _array(weight).astype(rows.dtype, copy=False)
    coefficient = counted.astype(rows.dtype) * (1 if class_weight is None else class_weight[safe])
    loss = rows[np.arange(labels.size), safe] * (coefficient * -(1 - label_smoothing))
    if label_smoothing:
        spread = rows.sum(1) if class_weight is None else (rows * class_weight).sum(1)
        loss = loss + spread * (-label_smoothing / classes * counted.astype(rows.dtype))
    if reduction == "none":
        return loss.view(target.shape)
    if reduction == "sum":
        return loss.sum()
    return _mean_over(loss.sum(), float(coefficient.sum()))


def _probability_target_loss(
    logp: Tensor, target: Any, weight: Any, reduction: str, label_smoothing: float
) -> Tensor:
    """Cross-entropy against class probabilities (target shaped as the input), as torch: the mean
    divides by the number of samples, never by the weights."""
    class_dim = 0 if logp.ndim == 1 else 1
    classes = logp.shape[class_dim]
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / classes
    products = logp * target
    if weight is not None:
        products = products * _array(weight).reshape((classes,) + (1,) * (logp.ndim - class_dim - 1))
    loss = -products.sum(class_dim)
    if reduction == "mean":
        return _mean_over(loss.sum(), logp.array.size / classes if classes else 0)
    return _reduce(loss, reduction)


def nll_loss(
    input: Tensor,
    target: Any,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """The negative log-likelihood of class indices ``target`` under log-probabilities ``input``."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return _class_target_loss(
        "nll_loss", input, _integer_targets("nll_loss", target), weight, ignore_index, reduction, 0.0
    )


def _integer_targets(name: str, target: Any) -> np.ndarray:
    labels = _array(target)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{name}: class-index targets must be integers, got {labels.dtype}")
    return labels


def _fused_loss(
    input: Tensor, labels: np.ndarray, weight: Any, ignore_index: int, reduction: str, smoothing: float
) -> Tensor | None:
    """The fused ``tape.cross_entropy``, which is exactly torch's loss for 2-D logits, integer
    labels and a plain mean; None where it does not apply."""
    if not (
        input.ndim == 2
        and reduction == "mean"
        and weight is None
        and not smoothing
        and labels.dtype.kind in "iu"
        and labels.ndim == 1
    ):
        return None
    if 0 <= ignore_index < input.array.shape[1]:
        return None if (labels == ignore_index).any() else tape.cross_entropy(input, labels)
    try:  # the usual ignore_index (-100) is no class: the fused op's own range check finds it
        return tape.cross_entropy(input, labels)
    except IndexError:
        return None  # a label to ignore, or one out of range, which the general path reports


def cross_entropy(
    input: Tensor,
    target: Any,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """torch's cross-entropy of logits ``input`` (C,), (N, C) or (N, C, d1, ...), the class dim
    being 1 (0 for 1-D), against class indices or class probabilities (shaped as the input).

    The notebook's case (2-D logits, integer targets, a plain mean) is the one fused
    ``tape.cross_entropy`` entry; anything else is ``log_softmax`` and a gather (or a product)
    with exactly torch's weighting, ``ignore_index``, label smoothing and reduction.
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    labels = _array(target)
    fused = _fused_loss(input, labels, weight, ignore_index, reduction, label_smoothing)
    if fused is not None:
        return fused
    logp = input.log_softmax(0 if input.ndim == 1 else 1)
    if labels.dtype.kind == "f":
        if tuple(labels.shape) != tuple(input.shape):
            raise ValueError(
                f"cross_entropy: probability targets must have the input's shape {tuple(input.shape)}, "
                f"got {tuple(labels.shape)}"
            )
        return _probability_target_loss(logp, target, weight, reduction, label_smoothing)
    labels = _integer_targets("cross_entropy", labels)
    return _class_target_loss("cross_entropy", logp, labels, weight, ignore_index, reduction, label_smoothing)


def one_hot(tensor: Any, num_classes: int = -1) -> Tensor:
    """int64 one-hot vectors along a new last dim; ``num_classes=-1``: the largest index + 1."""
    labels = _array(tensor)
    if labels.dtype.kind not in "iu":
        raise RuntimeError(f"one_hot: expected an integer (index) tensor, got {labels.dtype}")
    if num_classes == -1:
        if labels.size == 0:
            raise RuntimeError("one_hot: can not infer the number of classes from an empty tensor")
        num_classes = int(labels.max()) + 1
    if labels.size and labels.min() < 0:
        raise RuntimeError(f"one_hot: class values must be non-negative, got {labels.min()}")
    if labels.size and labels.max() >= num_classes:
        raise RuntimeError(
            f"one_hot: class values must be smaller than num_classes ({num_classes}), got {labels.max()}"
        )
    return tape.tensor(labels[..., None] == np.arange(num_classes), dtype=tape.int64)
