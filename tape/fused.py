"""Fused ops: one forward and one analytic VJP where the primitives would record a chain.

Cross-entropy and batchnorm are the notebook's exercises 2 and 3; linear is ``x @ W + b``
as one entry. Each is a registered primitive like those in ``tape/elementwise.py``, so it sits on
the Wengert list as a single line and its VJP is checked against torch and finite
differences like any other op.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from tape.linalg import rows_times
from tape.op import primitive, unbroadcast
from tape.tensor import Tensor, apply
from tape.tracing import replayable

# ---------------------------------------------------------------- linear


@primitive("linear", saves=("x", "W"))
def linear_op(x, W, b):
    """out = x @ W + b; dx = dout @ W.T, dW = x.T @ dout, db = dout.sum(0) (rows of every leading dim)"""
    out = rows_times(x, W)
    out += b  # in place: the matmul's result is ours
    return out, (x, W)


def dlinear_W(dout, x, W):
    # rows of every leading dim are samples: dW = x^T @ dout over all of them
    if x.ndim == 2:  # the notebook's (n, fan_in): no reshapes on the hot path
        return x.T @ dout
    return x.reshape(-1, W.shape[0]).T @ dout.reshape(-1, W.shape[1])


def dlinear_b(dout, x, W):
    return dout.sum(0) if dout.ndim == 2 else dout.reshape(-1, W.shape[1]).sum(0)


linear_op.defvjp(lambda dout, x, W: rows_times(dout, W.T), dlinear_W, dlinear_b)


def linear(x: Tensor, W: Tensor, b: Tensor | None = None) -> Tensor:
    """``x @ W + b`` for x (..., fan_in), W (fan_in, fan_out) and b (fan_out,): one entry."""
    if b is None:
        return x @ W
    # shapes of the arrays: the hot path (x may also be a NumPy array, as in nn.Linear(ndarray))
    x_shape = x.array.shape if isinstance(x, Tensor) else np.shape(x)
    W_shape, b_shape = (
        np.shape(W.array if isinstance(W, Tensor) else W),
        np.shape(b.array if isinstance(b, Tensor) else b),
    )
    fan_in, fan_out = W_shape if len(W_shape) == 2 else (None, None)
    if not x_shape or fan_in != x_shape[-1] or b_shape != (fan_out,):
        raise ValueError(
            f"linear: expected x (..., fan_in), W (fan_in, fan_out) and b (fan_out,), "
            f"got shapes {x.shape}, {W.shape} and {b.shape}"
        )
    return apply(linear_op, (x, W, b))


# ---------------------------------------------------------------- cross-entropy (exercise 2)


@primitive("cross_entropy", saves=("counts", "counts_sum", "Yb"))
def cross_entropy_op(logits, Yb):
    """loss = -log_softmax(logits)[range(n), Yb].mean(); dlogits = (softmax(logits) - one_hot(Yb)) / n * dloss

    The mean negative log-likelihood of the targets ``Yb`` under softmax(logits, dim 1).

    Log-sum-exp with the row maximum subtracted first: exp never overflows, and the
    log-probabilities are exact even where a probability underflows to zero.
    """
    n, classes = logits.shape
    if Yb.dtype.kind not in "iu" or not _within(Yb, classes):  # here: a replay checks each batch
        raise IndexError(
            f"cross_entropy: targets must be integers in [0, {classes}) for logits of shape {logits.shape}"
        )
    norm_logits = logits - logits.max(1, keepdims=True)
    norm_logits_of_targets = norm_logits[np.arange(n), Yb]
    counts = np.exp(norm_logits, out=norm_logits)
    counts_sum = counts.sum(1, keepdims=True)
    loss = (np.log(counts_sum[:, 0]) - norm_logits_of_targets).sum() / n
    return np.asarray(loss, dtype=logits.dtype), (counts, counts_sum, Yb)


def dcross_entropy(dloss, counts, counts_sum, Yb):
    # dlogits = (softmax(logits) - onehot(Yb)) / n
    n = counts.shape[0]
    dlogits = counts / counts_sum
    dlogits[np.arange(n), Yb] -= 1
    dlogits *= dloss / n
    return dlogits


cross_entropy_op.defvjp(dcross_entropy)


def dcross_entropy_graph(dloss, counts, counts_sum, Yb):
    # create_graph: the same formula out of place, on tensors counts and counts_sum of the logits
    n = counts.shape[0]
    one_hot = np.zeros(counts.shape, counts.dtype)
    one_hot[np.arange(n), Yb] = 1
    return (counts / counts_sum - one_hot) * (dloss / n)


def softmax_counts(inputs: tuple, out: Tensor, saved: tuple) -> tuple:
    """create_graph: counts = e**(logits - max) and their row sums rebuilt on the tape. The max
    is a constant (softmax does not depend on the shift), so no max entry is differentiated."""
    (logits,) = inputs
    counts = (logits - logits.array.max(1, keepdims=True)).exp()
    return counts, counts.sum(1, keepdim=True), saved[2]


cross_entropy_op.defgraph(dcross_entropy_graph, saved=softmax_counts)


def _within(labels: np.ndarray, classes: int) -> bool:
    # argmin and argmax, not min and max: a third of the cost on a minibatch's labels
    return labels.size == 0 or (labels.item(labels.argmin()) >= 0 and labels.item(labels.argmax()) < classes)


def cross_entropy(logits: Tensor, targets: Any) -> Tensor:
    """``F.cross_entropy(logits, targets)`` for logits (n, classes) and integer targets (n,)."""
    Yb = targets.array if isinstance(targets, Tensor) else np.asarray(targets)
    shape = logits.array.shape if isinstance(logits, Tensor) else np.shape(logits)
    if len(shape) != 2 or Yb.shape != shape[:1]:
        raise ValueError(
            f"cross_entropy: expected logits (n, classes) and targets (n,), "
            f"got shapes {logits.shape} and {Yb.shape}"
        )
    return apply(cross_entropy_op, (logits,), Yb)


# ---------------------------------------------------------------- batchnorm (exercise 3)


class BatchStatistics(NamedTuple):
    bnmean: np.ndarray  # (features,)
    bndiff: np.ndarray  # hprebn - bnmean
    bnvar: np.ndarray  # (features,), with Bessel's correction if unbiased


def rows(a: np.ndarray) -> np.ndarray:
    """``a`` as (samples, features): every leading dim counts samples ((n, length, features) of
    makemore part 5 has n * length). 2-D arrays are returned as they are: the notebook's path
    pays nothing for the generality."""
    return a if a.ndim == 2 else a.reshape(-1, a.shape[-1])


def batch_dims(hprebn_shape: tuple[int, ...], dim: Any) -> None:
    """Check that ``dim`` names the leading dims of the input, all but the features (last).

    The caller says which dims are the batch: a 3-D input is (n, channels, length) to
    torch.nn.BatchNorm1d but (n, length, features) to makemore part 5, and a silent guess would
    normalise the wrong dims of one of them.
    """
    ndim = len(hprebn_shape)
    if ndim == 2 and dim == 0:  # the notebook's (n, features): the hot path, decided at once
        return
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    if ndim < 2 or tuple(d % ndim for d in dims) != tuple(range(ndim - 1)):
        expected = "(n, features) for dim=0, (n, length, features) for dim=(0, 1)"
        raise ValueError(
            f"batchnorm: expected an input of shape {expected}: the batch dims must be all but the "
            f"last; got dim={dim!r} for an input of shape {hprebn_shape}"
        )


@replayable  # Python around the op, yet part of every step: a replay runs it again
def batch_statistics(hprebn: np.ndarray, unbiased: bool = True, dim: Any = 0) -> BatchStatistics:
    """Mean and variance of ``hprebn`` over its batch dims, as the notebook computes them: dim 0
    of (n, features), or dims (0, 1) of (n, length, features) as makemore part 5 does."""
    batch_dims(hprebn.shape, dim)
    samples = rows(hprebn)
    n = samples.shape[0]
    if n < 2:
        raise ValueError(
            f"batchnorm: expected more than 1 value per feature when training, got input of shape "
            f"{hprebn.shape}; use a batch of at least 2 or evaluation mode (running statistics)"
        )
    bnmean = 1 / n * samples.sum(0)
    bndiff = hprebn - bnmean
    diff_rows = rows(bndiff)
    bnvar = 1 / (n - int(unbiased)) * np.einsum("ij,ij->j", diff_rows, diff_rows)
    return BatchStatistics(bnmean, bndiff, bnvar)


@primitive("batchnorm", saves=("bnraw", "bngain", "bnvar_inv", "bnbias.shape", "correction"))
def batchnorm_op(hprebn, bngain, bnbias, bndiff, bnvar, eps, correction):
    """hpreact = bngain * (hprebn - bnmean) * bnvar_inv + bnbias; dhprebn is the notebook's one line

    ``bndiff`` and ``bnvar`` are the batch statistics of ``hprebn`` itself (with ``correction``
    1 for the n-1 variance, 0 for the biased one): the VJP differentiates through them.
    """
    bnvar_inv = (bnvar + eps) ** -0.5  # here, not in the caller: a replay re-runs it with the op
    bnraw = bndiff * bnvar_inv
    hpreact = bngain * bnraw
    hpreact += bnbias
    return hpreact, (bnraw, bngain, bnvar_inv, np.shape(bnbias), correction)


def dbatchnorm_hprebn(dhpreact, bnraw, bngain, bnvar_inv, bnbias_shape, correction):
    # The notebook's one line, with n/(n-1) generalised to n/(n - correction):
    #   dhprebn = bngain*bnvar_inv/n * (n*dhpreact - dhpreact.sum(0) - n/(n-1)*bnraw*(dhpreact*bnraw).sum(0))
    # multiplied out so that the per-feature factors are formed first: four passes over (n, features).
    # n counts the samples over every batch dim; the per-feature factors broadcast over all of them.
    drows = rows(dhpreact)
    n = drows.shape[0]
    scale = bngain * bnvar_inv / n
    dbnbias = drows.sum(0)
    dbngain = np.einsum("ij,ij->j", drows, rows(bnraw))
    dhprebn = dhpreact * (n * scale)
    dhprebn -= bnraw * (n / (n - correction) * scale * dbngain)
    dhprebn -= scale * dbnbias
    return dhprebn


def dbatchnorm_bngain(dhpreact, bnraw, bngain, *_):
    # bngain is a tensor's array here (the VJP runs only for a gain that requires grad)
    return np.einsum("ij,ij->j", rows(dhpreact), rows(bnraw)).reshape(bngain.shape)


def dbatchnorm_bnbias(dhpreact, bnraw, bngain, bnvar_inv, bnbias_shape, correction):
    dbnbias = rows(dhpreact).sum(0)  # per feature; a bias of another shape gets the general unbroadcast
    return dbnbias if dbnbias.shape == bnbias_shape else unbroadcast(dhpreact, bnbias_shape)


batchnorm_op.defvjp(dbatchnorm_hprebn, dbatchnorm_bngain, dbatchnorm_bnbias)


def feature_sum(a: Any) -> Any:
    return rows(a).sum(0)


def dbatchnorm_hprebn_graph(dhpreact, bnraw, bngain, bnvar_inv, bnbias_shape, correction):
    # create_graph: the notebook's one line as written, out of place on tensors
    n = rows(dhpreact).shape[0]
    scale = bngain * bnvar_inv / n
    dbngain = feature_sum(dhpreact * bnraw)
    return (
        dhpreact * (n * scale)
        - bnraw * (n / (n - correction) * scale * dbngain)
        - scale * feature_sum(dhpreact)
    )


def dbatchnorm_bngain_graph(dhpreact, bnraw, bngain, *_):
    return feature_sum(dhpreact * bnraw).reshape(np.shape(bngain))


def dbatchnorm_bnbias_graph(dhpreact, bnraw, bngain, bnvar_inv, bnbias_shape, correction):
    dbnbias = feature_sum(dhpreact)
    return dbnbias if dbnbias.shape == bnbias_shape else unbroadcast(dhpreact, bnbias_shape)


def normalised(inputs: tuple, out: Tensor, saved: tuple) -> tuple:
    """create_graph: ``bnraw`` and ``bnvar_inv`` rebuilt from ``hprebn`` on the tape, so that the
    second derivative sees the batch mean and variance move with every sample. eps is not saved:
    ``1/bnvar_inv**2 - bnvar`` recovers it to a few ulps of ``bnvar + eps``, all that enters."""
    hprebn, bngain, _ = inputs
    bnraw, _, bnvar_inv, bnbias_shape, correction = saved
    if isinstance(hprebn, Tensor):
        samples = rows(hprebn)
        n = samples.shape[0]
        bndiff = hprebn - samples.sum(0) * (1 / n)
        bnvar = feature_sum(bndiff * bndiff) * (1 / (n - correction))
        bnvar_inv = (bnvar + (1 / (bnvar_inv * bnvar_inv) - bnvar.array)) ** -0.5
        bnraw = bndiff * bnvar_inv
    return bnraw, bngain, bnvar_inv, bnbias_shape, correction


batchnorm_op.defgraph(
    dbatchnorm_hprebn_graph, dbatchnorm_bngain_graph, dbatchnorm_bnbias_graph, saved=normalised
)


def batchnorm(
    hprebn: Tensor,
    bngain: Any,
    bnbias: Any,
    eps: float = 1e-5,
    unbiased: bool = True,
    statistics: BatchStatistics | None = None,
    *,
    dim: Any = 0,
) -> Tensor:
    """Batch normalisation of ``hprebn`` with its own batch statistics, per feature (last dim).

    ``dim`` names the batch dims: 0 for (n, features) as in the notebook, (0, 1) for
    (n, length, features) as makemore part 5's BatchNorm1d. ``unbiased=True`` normalises with
    the n-1 variance as the notebook does; ``False`` with the biased one as
    ``torch.nn.BatchNorm1d`` in training mode. Pass ``statistics`` (from
    ``batch_statistics(hprebn.array, unbiased, dim)``) when you need them too, as BatchNorm1d does
    for its running averages.
    """
    if statistics is None:
        statistics = batch_statistics(hprebn.array, unbiased, dim)
    else:
        batch_dims(hprebn.array.shape, dim)
    inputs = (hprebn, bngain, bnbias)
    return apply(batchnorm_op, inputs, statistics.bndiff, statistics.bnvar, eps, int(unbiased))
