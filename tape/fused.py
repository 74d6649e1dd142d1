"""The two fused ops the notebook derives by hand: cross-entropy (exercise 2) and batchnorm (exercise 3).

Each replaces a chain of a dozen primitive ops with one forward and one analytic VJP, in the
notebook's notation. Both are registered primitives like those in ``tape/ops.py``, so they
sit on the Wengert list as one entry each.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tape.op import primitive, unbroadcast
from tape.tensor import Tensor, apply

# ---------------------------------------------------------------- cross-entropy (exercise 2)


@primitive("cross_entropy", saves=("probs", "Yb"))
def cross_entropy_op(logits, Yb):
    """The mean negative log-likelihood of the targets ``Yb`` under softmax(logits, dim 1).

    Log-sum-exp with the row maximum subtracted first: exp never overflows, and the
    log-probabilities are exact even where a probability underflows to zero.
    """
    n = logits.shape[0]
    norm_logits = logits - logits.max(1, keepdims=True)
    counts = np.exp(norm_logits)
    counts_sum = counts.sum(1, keepdims=True)
    logprobs_of_targets = norm_logits[np.arange(n), Yb] - np.log(counts_sum[:, 0])
    loss = -logprobs_of_targets.sum() / n
    probs = counts / counts_sum
    return np.asarray(loss, dtype=logits.dtype), (probs, Yb)


def dcross_entropy(dloss, probs, Yb):
    # dlogits = (softmax(logits) - onehot(Yb)) / n
    n = probs.shape[0]
    dlogits = probs.copy()
    dlogits[np.arange(n), Yb] -= 1
    dlogits *= dloss / n
    return dlogits


cross_entropy_op.defvjp(dcross_entropy)


def cross_entropy(logits: Tensor, targets: Any) -> Tensor:
    """``F.cross_entropy(logits, targets)`` for logits (n, classes) and integer targets (n,)."""
    Yb = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    if logits.ndim != 2 or Yb.shape != logits.shape[:1]:
        raise ValueError(
            f"cross_entropy: expected logits (n, classes) and targets (n,), "
            f"got shapes {logits.shape} and {Yb.shape}"
        )
    return apply(cross_entropy_op, (logits,), Yb)


# ---------------------------------------------------------------- batchnorm (exercise 3)


@primitive("batchnorm", saves=("bnraw", "bngain", "bnvar_inv", "bnbias.shape", "correction"))
def batchnorm_op(hprebn, bngain, bnbias, bnmean, bnvar, eps, correction):
    """``bngain * (hprebn - bnmean) / sqrt(bnvar + eps) + bnbias``.

    ``bnmean`` and ``bnvar`` must be the batch statistics of ``hprebn`` over dim 0 (from
    ``batch_statistics`` with the same ``correction``): the VJP differentiates through them.
    """
    bnvar_inv = (bnvar + eps) ** -0.5
    bnraw = (hprebn - bnmean) * bnvar_inv
    hpreact = bngain * bnraw + bnbias
    return hpreact, (bnraw, bngain, bnvar_inv, np.shape(bnbias), correction)


def dbatchnorm_hprebn(dhpreact, bnraw, bngain, bnvar_inv, bnbias_shape, correction):
    # the notebook's one line; n / (n - correction) is n/(n-1) for the unbiased variance, 1 for the biased
    n = dhpreact.shape[0]
    return (
        bngain
        * bnvar_inv
        / n
        * (n * dhpreact - dhpreact.sum(0) - n / (n - correction) * bnraw * (dhpreact * bnraw).sum(0))
    )


batchnorm_op.defvjp(
    dbatchnorm_hprebn,
    lambda dhpreact, bnraw, bngain, bnvar_inv, bnbias_shape, correction: unbroadcast(
        dhpreact * bnraw, np.shape(bngain)
    ),
    lambda dhpreact, bnraw, bngain, bnvar_inv, bnbias_shape, correction: unbroadcast(dhpreact, bnbias_shape),
)


def batch_statistics(x: np.ndarray, unbiased: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of ``x`` (n, features) over the batch, with Bessel's correction if ``unbiased``."""
    n = x.shape[0]
    if n < 2:
        raise ValueError(
            f"batchnorm: expected more than 1 value per feature when training, got input of shape "
            f"{x.shape}; use a batch of at least 2 or evaluation mode (running statistics)"
        )
    bnmeani = 1 / n * x.sum(0)
    bndiff = x - bnmeani
    bnvar = (bndiff * bndiff).sum(0) / (n - int(unbiased))
    return bnmeani, bnvar


def batchnorm(hprebn: Tensor, bngain: Any, bnbias: Any, eps: float = 1e-5, unbiased: bool = True) -> Tensor:
    """Batch normalisation of ``hprebn`` (n, features) with its own batch statistics.

    ``unbiased=True`` normalises with the n-1 variance as the notebook does; ``False`` with the
    biased one as ``torch.nn.BatchNorm1d`` in training mode.
    """
    if hprebn.ndim != 2:
        raise ValueError(f"batchnorm: expected an input of shape (n, features), got {hprebn.shape}")
    bnmean, bnvar = batch_statistics(hprebn.data, unbiased)
    return apply(batchnorm_op, (hprebn, bngain, bnbias), bnmean, bnvar, eps, int(unbiased))
