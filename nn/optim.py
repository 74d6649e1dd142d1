"""Optimisers with torch.optim's interface: SGD (momentum, Nesterov), Adam and AdamW.

    optimizer = nn.optim.AdamW(model.parameters(), lr=1e-3)
    for g in optimizer.param_groups:
        g["lr"] = 1e-4                  # as in torch

Each update is torch's single-tensor algorithm, in its order of operations, applied in place
to ``p.array``: NumPy arithmetic on the parameter's memory, nothing recorded on the tape (torch
runs it under no_grad). Parameters without a gradient are skipped, as in torch.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import numpy as np

from tape import Tensor
from tape.tensor import gradients, zero_gradients
from tape.tracing import replayable

__all__ = ["SGD", "Adam", "AdamW", "Optimizer"]


class Optimizer:
    """Parameter groups, per-parameter state, zero_grad and state dicts; subclasses define
    ``update(p, grad, state, group)``.

    ``params`` is an iterable of tensors or of dicts ``{"params": [...], "lr": ...}`` whose
    options override the defaults for that group, as in torch.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        for group in groups if isinstance(groups[0], dict) else [{"params": groups}]:
            self.add_param_group(group)

    def add_param_group(self, group: dict[str, Any]) -> None:
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor) or not p.requires_grad or not p.is_leaf:
                raise ValueError(
                    f"{type(self).__name__}: can only optimise leaf tensors that require grad, got {p!r}"
                )
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown options {sorted(unknown)}")
        self.param_groups.append({**self.defaults, **group, "params": params})

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            zero_gradients(group["params"], set_to_none)

    @replayable  # inside a replayed step: the update (read at each replay: lr, state) is one step
    def step(self) -> None:
        for group in self.param_groups:
            self.step_group(group)

    def step_group(self, group: dict[str, Any]) -> None:
        states = self.state
        for p, grad in gradients(group["params"]):  # parameters the loss does not depend on have none
            state = states.get(p)
            if state is None:  # not setdefault(p, {}): that builds a dict per parameter per step
                state = states[p] = {}
            self.update(p, grad, state, group)

    def update(self, p: Tensor, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ a tape extra: one learning rate
    @property
    def lr(self) -> float:
        """The first group's learning rate; setting it sets every group's (tape's shorthand for
        ``for g in optimizer.param_groups: g["lr"] = lr``)."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        for group in self.param_groups:
            group["lr"] = value

    # ------------------------------------------------------------ state dicts (torch's layout)
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}``: parameters
        are numbered in group order, as torch numbers them; arrays are copies."""
        index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        state = {index[id(p)]: copy.deepcopy(s) for p, s in self.state.items() if id(p) in index}
        groups = [{**g, "params": [index[id(p)] for p in g["params"]]} for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore options and state onto this optimizer's parameters (matched by position)."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
            len(g["params"]) != len(mine["params"]) for g, mine in zip(groups, self.param_groups)
        ):
            raise ValueError(
                "load_state_dict: the state dict's parameter groups do not match this optimizer's"
            )
        params = {}
        for saved, mine in zip(groups, self.param_groups):
            params.update(zip(saved["params"], mine["params"]))
            mine.update({k: v for k, v in saved.items() if k != "params"})
        self.state = {params[i]: copy.deepcopy(s) for i, s in state_dict["state"].items()}


def _with_weight_decay(grad: np.ndarray, p: Tensor, weight_decay: float) -> np.ndarray:
    # a new array: the gradient itself is left as backward made it
    return grad + weight_decay * p.array if weight_decay else grad


class SGD(Optimizer):
    """torch.optim.SGD: ``p -= lr * g`` with optional weight decay, momentum (the buffer starts as
    the first gradient), dampening and Nesterov momentum."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: invalid lr {lr}, momentum {momentum} or weight_decay {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
        }
        super().__init__(params, defaults)

    def step_group(self, group: dict[str, Any]) -> None:
        if group["momentum"]:
            super().step_group(group)  # a momentum buffer per parameter
            return
        # the notebook's ``p.data += -lr * p.grad``, the common case: no state, as torch keeps none
        lr, weight_decay = group["lr"], group["weight_decay"]
        for p, g in gradients(group["params"]):
            if weight_decay:
                g = g + weight_decay * p.array
            p.array -= lr * g

    def update(self, p: Tensor, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        momentum = group["momentum"]
        grad = _with_weight_decay(grad, p, group["weight_decay"])
        buffer = state.get("momentum_buffer")
        if buffer is None:
            buffer = state["momentum_buffer"] = grad.copy()
        else:
            buffer *= momentum
            buffer += (1 - group["dampening"]) * grad
        grad = grad + momentum * buffer if group["nesterov"] else buffer
        p.array -= group["lr"] * grad


class Adam(Optimizer):
    """torch.optim.Adam: bias-corrected first and second moment estimates, optional AMSGrad.

    ``weight_decay`` adds ``weight_decay * p`` to the gradient (L2); AdamW decays the weights instead.
    """

    decoupled_weight_decay = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
    ) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(
                f"{type(self).__name__}: invalid lr {lr}, betas {betas}, eps {eps} "
                f"or weight_decay {weight_decay}"
            )
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
        }
        super().__init__(params, defaults)

    def update(self, p: Tensor, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(p.array), exp_avg_sq=np.zeros_like(p.array))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p.array)
        if self.decoupled_weight_decay:
            p.array *= 1 - lr * group["weight_decay"]
        else:
            grad = _with_weight_decay(grad, p, group["weight_decay"])
        state["step"] += 1
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg += (1 - beta1) * (grad - exp_avg)  # torch's lerp_(grad, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        bias_correction1 = 1 - beta1 ** state["step"]
        bias_correction2_sqrt = (1 - beta2 ** state["step"]) ** 0.5
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            exp_avg_sq = state["max_exp_avg_sq"]
        denominator = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
        p.array -= (lr / bias_correction1) * exp_avg / denominator


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay, ``p *= 1 - lr * weight_decay`` before
    the step (default 1e-2)."""

    decoupled_weight_decay = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
