"""Stochastic gradient descent, as the notebook's update loop."""

from __future__ import annotations

from collections.abc import Iterable

from tape import Tensor


class SGD:
    """``p.data -= lr * p.grad`` for every parameter; ``lr`` may be changed between steps."""

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        self.params = list(params)
        self.lr = lr

    def step(self) -> None:
        lr = self.lr
        for p in self.params:
            if p.grad is not None:  # a parameter the loss does not depend on
                p.array -= lr * p.grad.array

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None
