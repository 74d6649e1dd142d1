"""Modules: the notebook's Linear, BatchNorm1D and Tanh classes, plus the glue to stack them.

A module owns parameters (``nn.Parameter``s, or leaf tape Tensors that require a gradient),
buffers (NumPy arrays such as batchnorm's running statistics) and submodules, all found by
attribute assignment. Layers compute through ``nn.functional``, so a module and its function
are the same code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

import tape
from nn import functional as F
from tape import Tensor
from tape.tensor import zero_gradients


class Parameter(Tensor):
    """A tensor that is a module's parameter: it requires a gradient unless told otherwise, and
    assigning it to a module attribute registers it. It shares ``data``'s memory, as torch's does.

    A Tensor subclass, so every tape op takes it (tape dispatches on ``isinstance(x, Tensor)``).
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        super().__init__(np.empty(0, np.float32) if data is None else data, requires_grad=requires_grad)
        if isinstance(data, Tensor):
            self.version = data.version  # the same memory: in-place changes to either are seen by both

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (Parameter, (self.array, self.requires_grad))


def _is_parameter(value: Any) -> bool:
    # op outputs (a forward's ``self.out = ...``, as the lectures write) are values, not parameters
    return isinstance(value, Parameter) or (
        isinstance(value, Tensor) and value.requires_grad and value.is_leaf
    )


def _hidden_modules(value: Any) -> bool:
    """A plain container holding modules: their parameters would be invisible to the model."""
    if isinstance(value, (list, tuple)):
        return any(isinstance(v, Module) for v in value)
    if isinstance(value, dict):
        return any(isinstance(v, Module) for v in value.values())
    return False


def _refuse_hidden_modules(owner: Module, name: str, value: Any) -> None:
    # torch registers nothing from a plain list and says nothing: the model then trains without
    # those layers' parameters (or saves without them). tape refuses instead of guessing.
    if _hidden_modules(value):
        container = "nn.ModuleDict" if isinstance(value, dict) else "nn.ModuleList"
        raise TypeError(
            f"{type(owner).__name__}.{name}: a plain {type(value).__name__} of modules is not registered, so "
            f"parameters(), state_dict() and train()/eval() would not see them; use {container}"
        )


REGISTRIES = ("_parameters", "_buffers", "_modules")


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

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # one scope object per module, re-entered on every call: entries get "Sequential/Linear 2"
        with self._scope:
            return self.forward(*args, **kwargs)

    # ------------------------------------------------------------ registration and naming
    def __setattr__(self, name: str, value: Any) -> None:
        _refuse_hidden_modules(self, name, value)
        parameter, module = _is_parameter(value), isinstance(value, Module)
        # a name holds what was assigned last; re-assigning a parameter (``w *= 0.1`` does) keeps its place
        if not parameter:
            self._parameters.pop(name, None)
        if not module:
            self._modules.pop(name, None)
        if parameter:
            self._parameters[name] = value
            value.name = self._prefix + name
        elif module:
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
        # a list filled after assignment (``self.blocks = []; self.blocks.append(...)``) is caught here
        for name, value in vars(self).items():
            if name not in REGISTRIES:
                _refuse_hidden_modules(self, name, value)
        yield prefix.rstrip("."), self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}{name}.")

    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

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

    def zero_grad(self, set_to_none: bool = True) -> None:
        zero_gradients(self.parameters(), set_to_none)

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
        for name in state:
            if not isinstance(name, str):  # else a TypeError from joining the names, saying nothing
                raise TypeError(
                    f"load_state_dict: keys must be strings, got {name!r} ({type(name).__name__})"
                )
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


def _parameter(array: np.ndarray, dtype: Any) -> Parameter:
    return Parameter(np.asarray(array, dtype=dtype))


def _generator(generator: np.random.Generator | None) -> np.random.Generator:
    return generator if generator is not None else np.random.default_rng()


class Embedding(Module):
    """A lookup table: row ``i`` of ``weight`` (num_embeddings, embedding_dim) embeds index ``i``.

    ``padding_idx``'s row starts at zero and is never trained, as in torch.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        *,
        generator: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        rng = _generator(generator)
        self.padding_idx = padding_idx
        self.weight = _parameter(rng.standard_normal((num_embeddings, embedding_dim)), dtype)
        if padding_idx is not None:
            self.weight.array[padding_idx] = 0

    def forward(self, index: Any) -> Tensor:  # integer array or Tensor of any shape
        return F.embedding(index, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        padding = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return "{}, {}".format(*self.weight.shape) + padding


class Flatten(Module):
    """Flatten every dim but the first: (n, block_size, n_embd) -> (n, block_size * n_embd)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.view(x.shape[0], -1)


class FlattenConsecutive(Module):
    """makemore part 5's layer: concatenate each ``n`` consecutive positions,
    (B, T, C) -> (B, T // n, C * n), and drop the middle dim when it becomes 1, as the lecture does."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 3 or x.shape[1] % self.n:
            raise ValueError(
                f"FlattenConsecutive({self.n}): expected an input (B, T, C) with T a multiple of {self.n}, "
                f"got shape {tuple(x.shape)}"
            )
        B, T, C = x.shape
        x = x.view(B, T // self.n, C * self.n)
        return x.squeeze(1) if x.shape[1] == 1 else x

    def extra_repr(self) -> str:
        return str(self.n)


class Linear(Module):
    """``x @ weight + bias`` with weight (fan_in, fan_out) drawn as randn / sqrt(fan_in), bias zeros.

    The notebook's layout and initialisation, not torch's (out_features, in_features):
    ``F.linear(x, layer.weight.T, layer.bias)`` is the same layer.
    """

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
    """Batch normalisation per feature (the last dim): one fused tape op in training.

    (n, features) is normalised over dim 0, as the notebook; (n, length, features) over dims
    (0, 1), as makemore part 5's own BatchNorm1d (torch.nn.BatchNorm1d would take a 3-D input as
    (n, features, length); this layer keeps the lecture's meaning). Training normalises with the
    batch's statistics and updates the running averages; evaluation uses the running ones.
    ``unbiased=True`` normalises with the n-1 variance as the notebook does; ``unbiased=False``
    with the biased one, exactly as ``torch.nn.BatchNorm1d``. The running variance is the
    unbiased one either way, as in torch.
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
        self.num_features = dim
        self.eps = eps
        self.momentum = momentum
        self.unbiased = unbiased
        self.weight = _parameter(np.ones(dim), dtype)
        self.bias = _parameter(np.zeros(dim), dtype)
        self.register_buffer("running_mean", np.zeros(dim, dtype=dtype))
        self.register_buffer("running_var", np.ones(dim, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        shape, features = x.shape, self.num_features
        if len(shape) not in (2, 3) or shape[-1] != features:
            raise ValueError(
                f"BatchNorm1d({features}): expected an input (n, {features}) or (n, length, {features}), "
                f"got shape {tuple(x.shape)}"
            )
        return F.normalise_features(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training,
            self.momentum,
            self.eps,
            self.unbiased,
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, unbiased={self.unbiased}"


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` dims; weight ones and bias zeros, as torch."""

    def __init__(
        self,
        normalized_shape: int | Iterable[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        *,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape = shape
        self.eps = eps
        self.weight = _parameter(np.ones(shape), dtype) if elementwise_affine else None
        self.bias = _parameter(np.zeros(shape), dtype) if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.weight is not None}"


class Dropout(Module):
    """Zero a fraction ``p`` of the elements and scale the rest by 1/(1-p) in training; the
    identity in evaluation."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class ReLU(Module):
    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x, self.inplace)


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class Identity(Module):
    """Returns its input; takes (and ignores) any constructor arguments, as torch's does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


# ---------------------------------------------------------------- containers


class _Numbered(Module):
    """Modules registered under "0", "1", ...: indexing, length and iteration."""

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module: Module) -> _Numbered:
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: {type(module).__name__} is not a Module")
        setattr(self, str(len(self._modules)), module)
        return self

    @property
    def layers(self) -> tuple[Module, ...]:
        """The modules in order (the lecture's ``model.layers``)."""
        return tuple(self._modules.values())

    def __getitem__(self, i: int | slice) -> Any:
        return self.layers[i]  # a slice is a tuple: a new container would rename the parameters

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)


class Sequential(_Numbered):
    """Layers applied in order; ``model[i]`` is layer ``i``, its parameters are named ``"i.weight"``."""

    def __init__(self, *layers: Module) -> None:
        super().__init__(layers)

    def forward(self, x: Any) -> Any:
        for layer in self._modules.values():
            x = layer(x)
        return x


class ModuleList(_Numbered):
    """A list of modules whose parameters belong to the owner (a plain list is refused)."""

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for module in modules:
            self.append(module)
        return self


class ModuleDict(Module):
    """A dict of modules whose parameters belong to the owner (a plain dict is refused)."""

    def __init__(self, modules: Mapping[str, Module] | None = None) -> None:
        super().__init__()
        for name, module in (modules or {}).items():
            self[name] = module

    def __getitem__(self, name: str) -> Module:
        return self._modules[name]

    def __setitem__(self, name: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: {type(module).__name__} is not a Module")
        setattr(self, name, module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, name: object) -> bool:
        return name in self._modules

    def keys(self) -> Iterable[str]:
        return self._modules.keys()

    def values(self) -> Iterable[Module]:
        return self._modules.values()

    def items(self) -> Iterable[tuple[str, Module]]:
        return self._modules.items()
