"""nn: the notebook's layers as modules built from tape ops, torch.nn.functional and torch.optim.

    import nn
    import nn.functional as F

    model = nn.Sequential(nn.Embedding(27, 10), nn.Flatten(), nn.Linear(30, 200),
                          nn.BatchNorm1d(200), nn.Tanh(), nn.Linear(200, 27))
    optimizer = nn.optim.AdamW(model.parameters(), lr=1e-3)
    loss = F.cross_entropy(model(Xb), Yb)

Parameters are ``nn.Parameter``s (tape Tensors) named by their path from the outermost module
("2.weight"), and each module call runs in a tape scope ("Sequential/Linear 2") so that the
graph of a model groups its entries by module. ``nn.Linear`` keeps the notebook's weight layout
(fan_in, fan_out); ``F.linear`` takes torch's (out_features, in_features).
"""

from nn import diagnostics, functional, optim
from nn.functional import cross_entropy
from nn.modules import (
    BatchNorm1d,
    Dropout,
    Embedding,
    Flatten,
    FlattenConsecutive,
    Identity,
    LayerNorm,
    Linear,
    Module,
    ModuleDict,
    ModuleList,
    Parameter,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)
from nn.optim import SGD, Adam, AdamW

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "BatchNorm1d",
    "Dropout",
    "Embedding",
    "Flatten",
    "FlattenConsecutive",
    "Identity",
    "LayerNorm",
    "Linear",
    "Module",
    "ModuleDict",
    "ModuleList",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "cross_entropy",
    "diagnostics",
    "functional",
    "optim",
]
