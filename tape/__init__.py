"""tape: a tiny, exact and fast tensor autograd engine on NumPy.

Ops are recorded on a Wengert list; every op has a hand-written vector-Jacobian product
beside its forward; ``loss.backward()`` is a reverse sweep over the list. The API mirrors
PyTorch's: ``torch.x`` is ``tape.x``.
"""

from types import SimpleNamespace as _SimpleNamespace

import numpy as np

from tape import elementwise, functional, inplace, linalg, memory, reductions, shapes  # memory tunes malloc
from tape.conv import avg_pool2d, conv1d, conv2d, max_pool2d
from tape.creation import (
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    multinomial,
    normal,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from tape.dtypes import (
    bool_,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    result_type,
    uint8,
)
from tape.elementwise import where
from tape.functional import grad
from tape.fused import batch_statistics, batchnorm, cross_entropy, linear
from tape.linalg import matmul
from tape.op import REGISTRY, Op, primitive, unbroadcast
from tape.predicates import allclose, bincount, equal, histc, histogram, is_tensor, isclose, numel
from tape.random import Generator, default_generator, initial_seed, manual_seed, seed
from tape.reductions import MaxResult
from tape.replay import Replay, replay
from tape.shapes import cat, embedding, pad, stack
from tape.tensor import ShapeError, Size, Tensor, apply
from tape.wengert import (
    AnomalyError,
    Entry,
    WengertList,
    ancestors,
    detect_anomaly,
    enable_grad,
    is_grad_enabled,
    no_grad,
    recorded_by_backward,
    scope,
    set_grad_enabled,
)

# torch.autograd.grad and torch.autograd.functional.hessian, under torch's names
autograd = _SimpleNamespace(grad=grad, functional=functional)
half, double, long = float16, float64, int64
float, int, bool = float32, int32, bool_  # torch's names for dtypes (shadowing the builtins here only)
concat = concatenate = cat


def wengert_list(*roots: Tensor, names: dict | None = None) -> WengertList:
    """The entries the roots depend on, in execution order (print it for the table)."""
    return WengertList(ancestors(roots), names)


def _function(name: str):
    method = getattr(Tensor, name)

    def function(input, *args, **kwargs):
        if not isinstance(input, Tensor):
            input = tensor(input)
        return method(input, *args, **kwargs)

    function.__name__ = name
    return function


# torch.exp(x) is x.exp(): the functional forms of the Tensor methods
_FUNCTIONS = (
    "abs",
    "add",
    "all",
    "amax",
    "amin",
    "any",
    "argmax",
    "argmin",
    "bmm",
    "ceil",
    "chunk",
    "clamp",
    "clip",
    "clone",
    "cos",
    "cumsum",
    "div",
    "dot",
    "exp",
    "exp2",
    "expand",
    "flatten",
    "flip",
    "floor",
    "isfinite",
    "isinf",
    "isnan",
    "log",
    "log10",
    "log2",
    "log_softmax",
    "logical_and",
    "logical_not",
    "logical_or",
    "logsumexp",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mm",
    "mul",
    "neg",
    "norm",
    "outer",
    "permute",
    "pow",
    "relu",
    "remainder",
    "repeat",
    "reshape",
    "round",
    "rsqrt",
    "sigmoid",
    "sign",
    "sin",
    "softmax",
    "split",
    "sqrt",
    "square",
    "squeeze",
    "std",
    "sub",
    "sum",
    "t",
    "tanh",
    "transpose",
    "tril",
    "triu",
    "trunc",
    "unbind",
    "unsqueeze",
    "var",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
)
for _name in _FUNCTIONS:
    globals()[_name] = _function(_name)
