"""The training-loss plot: log10 loss per step, averaged over windows, with its spread."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from tape.atomic import atomic_path


def plot_loss(
    losses: np.ndarray,
    path: str | os.PathLike,
    *,
    lr_decay_step: int | None = None,
    final: Mapping[str, float] | None = None,
    title: str = "makemore MLP on names.txt",
) -> None:
    """Write a PNG of the per-step training loss ``losses`` (natural log units).

    A single step's loss is noisy (batch of 32), so the plot shows the mean of log10 loss over
    windows of about 1/200 of the run and the band between its 10th and 90th percentiles.
    ``final`` losses (e.g. train/val after batchnorm calibration) are drawn as dashed lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log_loss = np.log10(np.asarray(losses, dtype=np.float64))
    window = max(1, len(log_loss) // 200)
    usable = len(log_loss) // window * window
    windows = log_loss[:usable].reshape(-1, window)
    centres = np.arange(windows.shape[0]) * window + window / 2
    low, high = np.percentile(windows, [10, 90], axis=1)

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    ax.fill_between(
        centres, low, high, color="#4c72b0", alpha=0.15, linewidth=0, label="10th-90th percentile"
    )
    ax.plot(centres, windows.mean(axis=1), color="#4c72b0", linewidth=1.6, label=f"mean over {window} steps")
    if lr_decay_step is not None and 0 < lr_decay_step < len(log_loss):
        ax.axvline(lr_decay_step, color="#888888", linestyle=":", linewidth=1)
        late = lr_decay_step > 0.6 * len(log_loss)  # under the legend: labelled at the bottom instead
        ax.annotate(
            "learning rate / 10",
            (lr_decay_step, 0.0 if late else 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(4, 6 if late else -14),
            textcoords="offset points",
            color="#555555",
            fontsize=9,
        )
    for (name, value), colour in zip((final or {}).items(), ("#dd8452", "#55a868", "#c44e52")):
        ax.axhline(
            np.log10(value),
            color=colour,
            linestyle="--",
            linewidth=1.1,
            label=f"final {name} loss {value:.4f}",
        )
    ax.set_xlabel("training step")
    ax.set_ylabel("log10 cross-entropy loss")
    loss_axis = ax.secondary_yaxis(
        "right", functions=(lambda y: 10**y, lambda v: np.log10(np.maximum(v, 1e-12)))
    )
    loss_axis.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", frameon=False, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as temporary:
        fig.savefig(temporary, format="png")
    plt.close(fig)
