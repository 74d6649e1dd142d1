"""The WaveNet on torch, twice: from torch.nn modules, and from the lecture's own layer classes.
Both are loaded with the tape model's parameters (``wavenet.initial_parameters``' names).

Imports torch at the top: import it only after ``engines.load_torch`` has succeeded.
"""

from __future__ import annotations

import numpy as np
import torch

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


# The lecture's layers (makemore_part5_cnn1.ipynb), as tests/test_nn.py holds them verbatim, with
# one change: BatchNorm1d's batch variance is the biased one (``unbiased=False``), torch.nn's.


class Linear:
    def __init__(self, fan_in, fan_out, bias=True):
        self.weight = torch.randn((fan_in, fan_out)) / fan_in**0.5  # note: kaiming init
        self.bias = torch.zeros(fan_out) if bias else None

    def __call__(self, x):
        self.out = x @ self.weight
        if self.bias is not None:
            self.out += self.bias
        return self.out

    def parameters(self):
        return [self.weight] + ([] if self.bias is None else [self.bias])


class BatchNorm1d:
    def __init__(self, dim, eps=1e-5, momentum=0.1):
        self.eps = eps
        self.momentum = momentum
        self.training = True
        # parameters (trained with backprop)
        self.gamma = torch.ones(dim)
        self.beta = torch.zeros(dim)
        # buffers (trained with a running 'momentum update')
        self.running_mean = torch.zeros(dim)
        self.running_var = torch.ones(dim)

    def __call__(self, x):
        # calculate the forward pass
        if self.training:
            if x.ndim == 2:
                dim = 0
            elif x.ndim == 3:
                dim = (0, 1)
            xmean = x.mean(dim, keepdim=True)  # batch mean
            xvar = x.var(dim, keepdim=True, unbiased=False)  # batch variance (the lecture's: n-1)
        else:
            xmean = self.running_mean
            xvar = self.running_var
        xhat = (x - xmean) / torch.sqrt(xvar + self.eps)  # normalize to unit variance
        self.out = self.gamma * xhat + self.beta
        # update the buffers
        if self.training:
            with torch.no_grad():
                self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * xmean
                self.running_var = (1 - self.momentum) * self.running_var + self.momentum * xvar
        return self.out

    def parameters(self):
        return [self.gamma, self.beta]


class Tanh:
    def __call__(self, x):
        self.out = torch.tanh(x)
        return self.out

    def parameters(self):
        return []


class Embedding:
    def __init__(self, num_embeddings, embedding_dim):
        self.weight = torch.randn((num_embeddings, embedding_dim))

    def __call__(self, IX):
        self.out = self.weight[IX]
        return self.out

    def parameters(self):
        return [self.weight]


class FlattenConsecutiveLecture:
    def __init__(self, n):
        self.n = n

    def __call__(self, x):
        B, T, C = x.shape
        x = x.view(B, T // self.n, C * self.n)
        if x.shape[1] == 1:
            x = x.squeeze(1)
        self.out = x
        return self.out

    def parameters(self):
        return []


class Sequential:
    def __init__(self, layers):
        self.layers = layers

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        self.out = x
        return self.out

    def parameters(self):
        # get parameters of all layers and stretch them out into one list
        return [p for layer in self.layers for p in layer.parameters()]


def lecture_model(params: dict[str, np.ndarray]) -> Sequential:
    """The lecture's network (its cell, at the experiment's sizes) holding ``params``."""
    n_embd, n_hidden, vocab_size = N_EMBD, N_HIDDEN, VOCAB_SIZE
    model = Sequential([
        Embedding(vocab_size, n_embd),
        FlattenConsecutiveLecture(2), Linear(n_embd * 2, n_hidden, bias=False), BatchNorm1d(n_hidden), Tanh(),
        FlattenConsecutiveLecture(2), Linear(n_hidden*2, n_hidden, bias=False), BatchNorm1d(n_hidden), Tanh(),
        FlattenConsecutiveLecture(2), Linear(n_hidden*2, n_hidden, bias=False), BatchNorm1d(n_hidden), Tanh(),
        Linear(n_hidden, vocab_size),
    ])  # fmt: skip
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
