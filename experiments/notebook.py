"""The backprop-ninja notebook's forward pass (makemore part 4), for tape and torch alike.

``forward`` is the notebook's code with ``torch`` replaced by ``lib``: it runs unchanged on
either library. Parameters use the notebook's initialisation, drawn from a NumPy generator.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# the order of the notebook's comparison table (exercise 1)
NOTEBOOK_ORDER = [
    "logprobs",
    "probs",
    "counts_sum_inv",
    "counts_sum",
    "counts",
    "norm_logits",
    "logit_maxes",
    "logits",
    "h",
    "W2",
    "b2",
    "hpreact",
    "bngain",
    "bnbias",
    "bnraw",
    "bnvar_inv",
    "bnvar",
    "bndiff2",
    "bndiff",
    "bnmeani",
    "hprebn",
    "embcat",
    "W1",
    "b1",
    "emb",
    "C",
]


def parameters(
    seed: int = 42, vocab_size: int = 27, n_embd: int = 10, block_size: int = 3, n_hidden: int = 64
) -> dict[str, np.ndarray]:
    g = np.random.default_rng(seed)
    fan_in = n_embd * block_size
    return {
        "C": g.standard_normal((vocab_size, n_embd)),
        "W1": g.standard_normal((fan_in, n_hidden)) * (5 / 3) / fan_in**0.5,
        "b1": g.standard_normal(n_hidden) * 0.1,
        "W2": g.standard_normal((n_hidden, vocab_size)) * 0.1,
        "b2": g.standard_normal(vocab_size) * 0.1,
        "bngain": g.standard_normal((1, n_hidden)) * 0.1 + 1.0,
        "bnbias": g.standard_normal((1, n_hidden)) * 0.1,
    }


def batch(seed: int = 0, n: int = 32, vocab_size: int = 27, block_size: int = 3) -> dict[str, Any]:
    g = np.random.default_rng(seed)
    return {
        "Xb": g.integers(0, vocab_size, (n, block_size)),
        "Yb": g.integers(0, vocab_size, n),
        "n": n,
    }


def forward(lib: Any, C, W1, b1, W2, b2, bngain, bnbias, Xb, Yb, n) -> dict[str, Any]:
    emb = C[Xb]  # embed the characters into vectors
    embcat = emb.view(emb.shape[0], -1)  # concatenate the vectors
    # Linear layer 1
    hprebn = embcat @ W1 + b1  # hidden layer pre-activation
    # BatchNorm layer
    bnmeani = 1 / n * hprebn.sum(0, keepdim=True)
    bndiff = hprebn - bnmeani
    bndiff2 = bndiff**2
    bnvar = 1 / (n - 1) * (bndiff2).sum(0, keepdim=True)  # note: Bessel's correction
    bnvar_inv = (bnvar + 1e-5) ** -0.5
    bnraw = bndiff * bnvar_inv
    hpreact = bngain * bnraw + bnbias
    # Non-linearity
    h = lib.tanh(hpreact)  # hidden layer
    # Linear layer 2
    logits = h @ W2 + b2  # output layer
    # cross entropy loss (same as F.cross_entropy(logits, Yb))
    logit_maxes = logits.max(1, keepdim=True).values
    norm_logits = logits - logit_maxes  # subtract max for numerical stability
    counts = norm_logits.exp()
    counts_sum = counts.sum(1, keepdims=True)
    counts_sum_inv = counts_sum**-1
    probs = counts * counts_sum_inv
    logprobs = probs.log()
    loss = -logprobs[range(n), Yb].mean()
    return locals()


def run(lib: Any, requires_grad: bool = True) -> dict[str, Any]:
    """``forward`` on the default batch, parameters as float32 ``lib`` tensors (torch or tape)."""
    p, b = parameters(), batch()
    return forward(
        lib,
        **{k: lib.tensor(v, dtype=lib.float32, requires_grad=requires_grad) for k, v in p.items()},
        Xb=lib.tensor(b["Xb"]),
        Yb=lib.tensor(b["Yb"]),
        n=b["n"],
    )
