"""tape: a tiny, exact and fast tensor autograd engine on NumPy.

Ops are recorded on a Wengert list; every op has a hand-written vector-Jacobian product
beside its forward (``tape/ops.py``); ``loss.backward()`` is a reverse sweep over the list.
"""

from tape.fused import batch_statistics, batchnorm, cross_entropy, linear
from tape.op import REGISTRY, Op, primitive, unbroadcast
from tape.tensor import (
    MaxResult,
    Tensor,
    apply,
    bool_,
    exp,
    float32,
    float64,
    int64,
    log,
    matmul,
    ones,
    ones_like,
    randn,
    result_type,
    tanh,
    tensor,
    zeros,
    zeros_like,
)
from tape.wengert import (
    AnomalyError,
    Entry,
    WengertList,
    detect_anomaly,
    is_grad_enabled,
    no_grad,
    scope,
)


def wengert_list(*roots: Tensor, names: dict | None = None) -> WengertList:
    """The entries the roots depend on, in execution order (print it for the table)."""
    from tape.wengert import ancestors

    return WengertList(ancestors(roots), names)


__all__ = [
    "REGISTRY",
    "AnomalyError",
    "Entry",
    "MaxResult",
    "Op",
    "Tensor",
    "WengertList",
    "apply",
    "batch_statistics",
    "batchnorm",
    "bool_",
    "cross_entropy",
    "detect_anomaly",
    "exp",
    "float32",
    "float64",
    "int64",
    "is_grad_enabled",
    "linear",
    "log",
    "matmul",
    "no_grad",
    "ones",
    "ones_like",
    "primitive",
    "randn",
    "result_type",
    "scope",
    "tanh",
    "tensor",
    "unbroadcast",
    "wengert_list",
    "zeros",
    "zeros_like",
]
