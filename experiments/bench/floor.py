"""numpy-floor: the whole training step derived by hand in NumPy, what a perfect engine would do."""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.bench.workload import BN_EPS, BN_MOMENTUM, N_EMBD, N_HIDDEN, VOCAB_SIZE


class NumpyFloor:
    """Forward and backward of the whole step derived by hand: what a perfect engine would do.

    ``unbiased`` picks the batchnorm variance the normalisation uses: False as torch.nn and
    the nn model (timed), True as the notebook (used to check the decomposed graph).
    """

    def __init__(self, params: dict[str, np.ndarray], lr: float, unbiased: bool = False) -> None:
        self.p = {k: v.copy() for k, v in params.items()}
        self.p["bngain"] = self.p["bngain"].reshape(-1)
        self.p["bnbias"] = self.p["bnbias"].reshape(-1)
        self.running_mean = np.zeros(N_HIDDEN, np.float32)
        self.running_var = np.ones(N_HIDDEN, np.float32)
        self.lr = lr
        self.unbiased = unbiased

    def prepare(self, Xb: np.ndarray, Yb: np.ndarray) -> Any:
        return Xb, Yb

    def step(self, batch: Any) -> Any:
        Xb, Yb = batch
        p, n = self.p, len(Yb)
        rows = np.arange(n)
        # forward
        embcat = p["C"][Xb].reshape(n, -1)
        hprebn = embcat @ p["W1"] + p["b1"]
        mean = hprebn.mean(0)
        diff = hprebn - mean
        sum_sq = np.einsum("ij,ij->j", diff, diff)
        var_inv = (sum_sq / (n - 1 if self.unbiased else n) + BN_EPS) ** -0.5
        bnraw = diff * var_inv
        h = np.tanh(p["bngain"] * bnraw + p["bnbias"])
        logits = h @ p["W2"] + p["b2"]
        logits_max = logits.max(1, keepdims=True)
        counts = np.exp(logits - logits_max)
        counts_sum = counts.sum(1, keepdims=True)
        loss = (np.log(counts_sum[:, 0]) + logits_max[:, 0] - logits[rows, Yb]).mean()
        # backward
        dlogits = counts / counts_sum
        dlogits[rows, Yb] -= 1.0
        dlogits /= n
        grads = {"W2": h.T @ dlogits, "b2": dlogits.sum(0)}
        dhpreact = (dlogits @ p["W2"].T) * (1.0 - h * h)
        grads["bngain"] = np.einsum("ij,ij->j", bnraw, dhpreact)
        grads["bnbias"] = dhpreact.sum(0)
        correction = n / (n - 1) if self.unbiased else 1.0
        dhprebn = (p["bngain"] * var_inv / n) * (
            n * dhpreact - grads["bnbias"] - (correction * grads["bngain"]) * bnraw
        )
        grads["W1"] = embcat.T @ dhprebn
        grads["b1"] = dhprebn.sum(0)
        demb = dhprebn @ p["W1"].T  # (n, block * n_embd)
        # scatter-add into the embedding table: one bincount over flat (row, column) keys
        keys = (Xb[:, :, None] * N_EMBD + np.arange(N_EMBD)).ravel()
        grads["C"] = np.bincount(keys, demb.ravel(), VOCAB_SIZE * N_EMBD).reshape(VOCAB_SIZE, N_EMBD)
        for name, g in grads.items():
            p[name] -= self.lr * g.astype(np.float32, copy=False)
        # running statistics, as torch.nn.BatchNorm1d keeps them (unbiased running variance)
        self.running_mean += BN_MOMENTUM * (mean - self.running_mean)
        self.running_var += BN_MOMENTUM * (sum_sq / (n - 1) - self.running_var)
        return loss
