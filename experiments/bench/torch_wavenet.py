"""The WaveNet on torch, twice: from torch.nn modules, and from the lecture's own layer classes.
Both are loaded with the tape model's parameters (``wavenet.initial_parameters``' names).

Imports torch at the top: import it only after ``engines.load_torch`` has succeeded.
"""

from __future__ import annotations

import numpy as np
import torch

from experiments import lecture_layers
from experiments.bench.wavenet import BLOCK_SIZE, N_EMBD, N_HIDDEN, VOCAB_SIZE

BN_EPS, BN_MOMENTUM = 1e-5, 0.1  # nn.BatchNorm1d's defaults, as the experiment builds it


class FlattenConsecutive(torch.nn.Module):
    """(B, T, C) -> (B, T // n, C * n), dropping the middle dim when it becomes 1 (the lecture's)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        # reshape, not the lecture's view: BatchNorm1dNLC hands on a transposed (strided) tensor
        x = x.reshape(B, T // self.n, C * self.n)
        return x.squeeze(1) if x.shape[1] == 1 else x


class BatchNorm1dNLC(torch.nn.BatchNorm1d):
    """torch.nn.BatchNorm1d over the last dim of (N, L, C) too, as the lecture's layer: torch's
    own takes a 3-D input as (N, C, L), so the input is transposed there and back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            return super().forward(x.transpose(1, 2)).transpose(1, 2)
        return super().forward(x)


def torch_nn_model(params: dict[str, np.ndarray]) -> torch.nn.Sequential:
    """The architecture from torch.nn, its layers at the tape model's indices, so that the names
    of parameters and buffers match (Linear weights transposed: torch stores (out, in))."""
    nn = torch.nn
    layers: list[nn.Module] = [nn.Embedding(VOCAB_SIZE, N_EMBD)]
    width = N_EMBD
    for _ in range(BLOCK_SIZE.bit_length() - 1):
        layers += [
            FlattenConsecutive(2),
            nn.Linear(2 * width, N_HIDDEN, bias=False),
            BatchNorm1dNLC(N_HIDDEN, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.Tanh(),
        ]
        width = N_HIDDEN
    layers.append(nn.Linear(width, VOCAB_SIZE))
    model = nn.Sequential(*layers)
    state = model.state_dict()
    with torch.no_grad():
        for name, value in params.items():
            target = state[name]
            value = (
                value.T
                if isinstance(model.get_submodule(name.split(".")[0]), nn.Linear) and value.ndim == 2
                else value
            )
            target.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return model


class BiasedBatchNorm1d(lecture_layers.BatchNorm1d):
    """The lecture's BatchNorm1d normalising with the biased batch variance, as torch.nn's does."""

    unbiased = False


def lecture_model(params: dict[str, np.ndarray]) -> lecture_layers.Sequential:
    """The lecture's network (its cell, at the experiment's sizes) holding ``params``."""
    model = lecture_layers.hierarchical(VOCAB_SIZE, N_EMBD, N_HIDDEN, batchnorm=BiasedBatchNorm1d)
    names = {"weight": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}
    names.update(running_mean="running_mean", running_var="running_var")
    for index, layer in enumerate(model.layers):
        for attribute, name in names.items():
            key = f"{index}.{name}"
            if getattr(layer, attribute, None) is not None and key in params:
                setattr(layer, attribute, torch.tensor(params[key]))
    for p in model.parameters():
        p.requires_grad = True
    return model
