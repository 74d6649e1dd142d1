"""Modules: the notebook's Linear, BatchNorm1D and Tanh classes, plus the glue to stack them.

A module owns parameters (tape Tensors that require a gradient), buffers (NumPy arrays
such as batchnorm's running statistics) and submodules, all found by attribute assignment.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

import tape
from tape import Tensor
from tape.fused import batch_statistics


class Module:
    """Base class: parameter discovery and naming, train/eval, state dicts, scoped calls."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_prefix", "")  # "2." for model[2]: the path from the outermost module
        object.__setattr__(self, "_scope", tape.scope(type(self).__name__))
        object.__setattr__(self, "training", True)

    def forward(self, x: Any) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, x: Any) -> Tensor:
        # one scope object per module, re-entered on every call: entries get "Sequential/Linear 2"
        with self._scope:
            return self.forward(x)

    # ------------------------------------------------------------ registration and naming
    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Tensor) and value.requires_grad:
            self._parameters[name] = value
            value.name = self._prefix + name
        elif isinstance(value, Module):
            self._modules[name] = value
            object.__setattr__(value, "_scope", tape.scope(f"{type(value).__name__} {name}"))
            value._set_prefix(f"{self._prefix}{name}.")
        elif name in self._buffers:
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, array: np.ndarray) -> None:
        """A named array saved in the state dict but never trained (running statistics)."""
        self._buffers[name] = array
        object.__setattr__(self, name, array)

    def _set_prefix(self, prefix: str) -> None:
        # attaching a module renames everything below it, so names always start at the outermost
        object.__setattr__(self, "_prefix", prefix)
        for name, p in self._parameters.items():
            p.name = prefix + name
        for name, child in self._modules.items():
            child._set_prefix(f"{prefix}{name}.")

    # ------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix.rstrip("."), self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}{name}.")

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, parameter) pairs, each parameter once; the outermost module's names are
        the parameters' ``.name``."""
        seen: set[int] = set()
        for path, module in self.named_modules():
            for name, p in module._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{path}.{name}" if path else name), p

    def parameters(self) -> list[Tensor]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        for path, module in self.named_modules():
            for name, array in module._buffers.items():
                yield (f"{path}.{name}" if path else name), array

    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    # ------------------------------------------------------------ state
    def _state_arrays(self) -> dict[str, np.ndarray]:
        """Every parameter's and buffer's array by name: the live arrays, not copies."""
        arrays = {name: p.array for name, p in self.named_parameters()}
        arrays.update(self.named_buffers())
        return arrays

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of all parameters and buffers by dotted name (``np.savez(path, **state)`` works)."""
        return {name: array.copy() for name, array in self._state_arrays().items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Copy ``state`` into the parameters and buffers in place, after checking it all.

        Names must match exactly, and each array's shape and dtype; nothing is changed unless
        everything matches.
        """
        targets = self._state_arrays()
        values = {name: v.array if isinstance(v, Tensor) else np.asarray(v) for name, v in state.items()}
        problems = []
        if missing := [name for name in targets if name not in values]:
            problems.append(f"missing: {', '.join(missing)}")
        if unexpected := [name for name in values if name not in targets]:
            problems.append(f"unexpected: {', '.join(unexpected)}")
        for name, target in targets.items():
            value = values.get(name)
            if value is not None and (value.shape != target.shape or value.dtype != target.dtype):
                problems.append(
                    f"{name}: the model has {target.dtype}{list(target.shape)}, "
                    f"the state dict {value.dtype}{list(value.shape)}"
                )
        if problems:
            raise ValueError(
                f"load_state_dict: the state dict does not fit this {type(self).__name__}:\n  "
                + "\n  ".join(problems)
            )
        for name, target in targets.items():
            target[...] = values[name]

    # ------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): {child!r}".replace("\n", "\n  ") for name, child in self._modules.items()]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


def _parameter(array: np.ndarray, dtype: Any) -> Tensor:
    return Tensor(np.asarray(array, dtype=dtype), requires_grad=True)


def _generator(generator: np.random.Generator | None) -> np.random.Generator:
    return generator if generator is not None else np.random.default_rng()


class Embedding(Module):
    """A lookup table: row ``i`` of ``weight`` (num_embeddings, embedding_dim) embeds index ``i``."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        generator: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        rng = _generator(generator)
        self.weight = _parameter(rng.standard_normal((num_embeddings, embedding_dim)), dtype)

    def forward(self, index: Any) -> Tensor:  # integer array or Tensor of any shape
        return self.weight[index]

    def extra_repr(self) -> str:
        return "{}, {}".format(*self.weight.shape)


class Flatten(Module):
    """Flatten every dim but the first: (n, block_size, n_embd) -> (n, block_size * n_embd)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.view(x.shape[0], -1)


class Linear(Module):
    """``x @ weight + bias`` with weight (fan_in, fan_out) drawn as randn / sqrt(fan_in), bias zeros."""

    def __init__(
        self,
        fan_in: int,
        fan_out: int,
        bias: bool = True,
        *,
        generator: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        rng = _generator(generator)
        self.weight = _parameter(rng.standard_normal((fan_in, fan_out)) / fan_in**0.5, dtype)
        self.bias = _parameter(np.zeros(fan_out), dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return tape.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        fan_in, fan_out = self.weight.shape
        return f"{fan_in}, {fan_out}, bias={self.bias is not None}"


class BatchNorm1d(Module):
    """Batch normalisation over dim 0 of (n, dim) inputs: one fused tape op in training.

    Training normalises with the batch's statistics and updates the running averages;
    evaluation uses the running ones. ``unbiased=True`` normalises with the n-1 variance as
    the notebook does; ``unbiased=False`` with the biased one, exactly as
    ``torch.nn.BatchNorm1d``. The running variance is the unbiased one either way, as in torch.
    """

    def __init__(
        self,
        dim: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        unbiased: bool = True,
        *,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.unbiased = unbiased
        self.weight = _parameter(np.ones(dim), dtype)
        self.bias = _parameter(np.zeros(dim), dtype)
        self.register_buffer("running_mean", np.zeros(dim, dtype=dtype))
        self.register_buffer("running_var", np.ones(dim, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            scale = self.weight * (self.running_var + self.eps) ** -0.5
            return (x - self.running_mean) * scale + self.bias
        bnmean, _, bnvar = statistics = batch_statistics(x.array, self.unbiased)
        out = tape.batchnorm(x, self.weight, self.bias, self.eps, self.unbiased, statistics)
        n, m = x.shape[0], self.momentum
        unbiased_var = bnvar if self.unbiased else bnvar * (n / (n - 1))
        # in place (and without attribute assignment): checkpoints hold these very arrays
        running_mean, running_var = self.running_mean, self.running_var
        running_mean *= 1 - m
        running_mean += m * bnmean
        running_var *= 1 - m
        running_var += m * unbiased_var
        return out

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}, momentum={self.momentum}, unbiased={self.unbiased}"


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sequential(Module):
    """Layers applied in order; ``model[i]`` is layer ``i``, its parameters are named ``"i.weight"``."""

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)
        object.__setattr__(self, "layers", layers)

    def forward(self, x: Any) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)
