"""Convolution and pooling as composites: an im2col gather, then a matmul or a reduction.

No new primitive: the windows are gathered with two integer index arrays over the spatial
dims (so the gather's VJP is the fast scatter-add that sums overlapping windows), the
kernel is applied as one matmul, and pooling is a ``max``/``mean`` over each window. The
gradients are those of gather, matmul, max and mean, each checked on its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tape.shapes import cat, pad
from tape.tensor import ShapeError, Tensor


def pair(value: Any, name: str) -> tuple[int, int]:
    pair_ = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair_) != 2 or any(not isinstance(v, (int, np.integer)) or v < 0 for v in pair_):
        raise ValueError(f"{name} must be an int or a pair of non-negative ints, got {value!r}")
    return int(pair_[0]), int(pair_[1])


def windows(x: Tensor, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]) -> Tensor:
    """Every (kH, kW) window of x (N, C, H, W): a tensor (N, C, OH, OW, kH * kW)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise ShapeError(
            f"conv: a {kernel} kernel (dilation {dilation}) does not fit an input of shape {x.shape}"
        )
    rows = (np.arange(oh) * sh)[:, None] + np.arange(kh) * dh  # (OH, kH)
    cols = (np.arange(ow) * sw)[:, None] + np.arange(kw) * dw  # (OW, kW)
    spatial_first = x.permute(2, 3, 0, 1)  # (H, W, N, C): the gather then scatters whole (N, C) rows
    patches = spatial_first[rows[:, None, :, None], cols[None, :, None, :]]  # (OH, OW, kH, kW, N, C)
    return patches.permute(4, 5, 0, 1, 2, 3).reshape(n, c, oh, ow, kh * kw)


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """``F.conv2d``: input (N, C, H, W), weight (O, C / groups, kH, kW), bias (O,)."""
    if input.ndim != 4 or weight.ndim != 4:
        raise ShapeError(
            f"conv2d: expected input (N, C, H, W) and weight (O, C, kH, kW), "
            f"got {input.shape} and {weight.shape}"
        )
    o, c_per_group, kh, kw = weight.shape
    if input.shape[1] != c_per_group * groups or o % groups:
        raise ShapeError(f"conv2d: input {input.shape} and weight {weight.shape} do not fit groups={groups}")
    ph, pw = pair(padding, "conv2d: padding")
    x = pad(input, (pw, pw, ph, ph)) if ph or pw else input
    patches = windows(x, (kh, kw), pair(stride, "conv2d: stride"), pair(dilation, "conv2d: dilation"))
    n, _, oh, ow, _ = patches.shape
    outputs = []
    for g, w in enumerate(weight.chunk(groups, 0) if groups > 1 else (weight,)):
        group = patches[:, g * c_per_group : (g + 1) * c_per_group] if groups > 1 else patches
        columns = group.permute(0, 2, 3, 1, 4).reshape(n * oh * ow, c_per_group * kh * kw)
        outputs.append(columns @ w.reshape(w.shape[0], -1).T)  # (N * OH * OW, O / groups)
    out = cat(outputs, 1) if groups > 1 else outputs[0]
    if bias is not None:
        out = out + bias
    return out.reshape(n, oh, ow, o).permute(0, 3, 1, 2)


def conv1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
) -> Tensor:
    """``F.conv1d``: input (N, C, L), weight (O, C / groups, k): conv2d over a height of 1."""
    if input.ndim != 3 or weight.ndim != 3:
        raise ShapeError(
            f"conv1d: expected input (N, C, L) and weight (O, C, k), got {input.shape} and {weight.shape}"
        )
    single = (lambda v: (0, v[0] if isinstance(v, (tuple, list)) else v)) if padding else (lambda v: 0)
    out = conv2d(
        input.unsqueeze(2),
        weight.unsqueeze(2),
        bias,
        stride=(1, stride[0] if isinstance(stride, (tuple, list)) else stride),
        padding=single(padding),
        dilation=(1, dilation[0] if isinstance(dilation, (tuple, list)) else dilation),
        groups=groups,
    )
    return out.squeeze(2)


def pool_windows(input: Tensor, kernel_size: Any, stride: Any, padding: Any, fill: float) -> Tensor:
    if input.ndim != 4:
        raise ShapeError(f"pool2d: expected input (N, C, H, W), got {input.shape}")
    kernel = pair(kernel_size, "pool2d: kernel_size")
    ph, pw = pair(padding, "pool2d: padding")
    if 2 * ph > kernel[0] or 2 * pw > kernel[1]:
        raise ValueError(f"pool2d: padding {padding} should be at most half the kernel size {kernel}")
    x = pad(input, (pw, pw, ph, ph), value=fill) if ph or pw else input
    return windows(x, kernel, pair(kernel if stride is None else stride, "pool2d: stride"), (1, 1))


def max_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """``F.max_pool2d``: the largest value of each window (padding is -inf, as torch's)."""
    return pool_windows(input, kernel_size, stride, padding, -np.inf).max(-1).values


def avg_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """``F.avg_pool2d`` (count_include_pad=True): the mean of each window, zero padding counted."""
    return pool_windows(input, kernel_size, stride, padding, 0.0).mean(-1)
