"""nn: the notebook's layers as modules built from tape ops.

    model = nn.Sequential(nn.Embedding(27, 10), nn.Flatten(), nn.Linear(30, 200),
                          nn.BatchNorm1d(200), nn.Tanh(), nn.Linear(200, 27))
    loss = nn.cross_entropy(model(Xb), Yb)

Parameters are tape Tensors named by their path from the outermost module ("2.weight"),
and each module call runs in a tape scope ("Sequential/Linear 2") so that the graph of a
model groups its entries by module.
"""

from nn.modules import BatchNorm1d, Embedding, Flatten, Linear, Module, Sequential, Tanh
from nn.optim import SGD
from tape.fused import cross_entropy

__all__ = [
    "SGD",
    "BatchNorm1d",
    "Embedding",
    "Flatten",
    "Linear",
    "Module",
    "Sequential",
    "Tanh",
    "cross_entropy",
]
