"""Training diagnostics as makemore part 3 draws them: is the network healthy while it trains?

    from nn import diagnostics

    recorder = diagnostics.Recorder(model, every=100)
    for i in range(max_steps):
        with recorder.step(i, lr, last=i == max_steps - 1):  # every 100th step and the last: sampled
            loss = F.cross_entropy(model(Xb), Yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    diagnostics.draw(recorder, "diagnostics")  # activations.png, gradients.png, weights.png, updates.png

On a sampled step the recorder keeps what the lecture reads off its layers:

- each Tanh's output ``t`` and its gradient (the lecture's ``layer.out.retain_grad()``): mean,
  std, the percentage saturated (``|t| > 0.97``) and a 100-bin density histogram of each;
- each 2-D parameter's gradient: mean, std, histogram and its grad:data std ratio;
- each 2-D parameter's update ratio, ``log10(std(update) / std(data))`` after the step, where the
  update is ``lr * grad`` (plain SGD, as the lecture) or, with ``lr=None``, the change the
  optimizer made. The lecture's guide: about -3.

Histograms are kept for the first sampled step and the latest (the end of training when the last
step is sampled); the update ratios for every sampled step. Stds are torch's (n - 1). Sampling
reads values and retains one gradient per layer; it changes no number of the training.
``recorder.to_json()`` holds every number the pictures show. matplotlib is imported only to draw.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nn.modules import Module, Tanh
from tape import Tensor
from tape.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SATURATION = 0.97  # the lecture's: |tanh| above this passes almost no gradient back
BINS = 100  # torch.histogram's default, which the lecture uses
GUIDE = -3.0  # the lecture's guide for log10(update std / data std)


class Recorder:
    """Statistics of ``model``'s layers of ``layer_types`` and 2-D parameters, sampled every
    ``every`` steps (see the module's docstring). Nested containers are searched too."""

    def __init__(
        self,
        model: Module,
        every: int = 100,
        layer_types: tuple[type[Module], ...] = (Tanh,),
        saturation: float = SATURATION,
        bins: int = BINS,
    ) -> None:
        if every < 1:
            raise ValueError(f"Recorder: every must be at least 1, got {every}")
        self.every, self.saturation, self.bins = every, saturation, bins
        self.layers = {name: m for name, m in model.named_modules() if isinstance(m, layer_types)}
        self.weights = {name: p for name, p in model.named_parameters() if p.ndim == 2}
        self.update_rows: list[np.ndarray] = []  # per sampled step: [step, log10 ratio of each weight]
        self._snapshots: list[dict[str, Any] | _Sample] = []  # the first sampled step's and the latest's

    def due(self, step: int) -> bool:
        return step % self.every == 0

    @contextlib.contextmanager
    def step(self, step: int, lr: float | None = None, last: bool = False) -> Iterator[None]:
        """Around one training step (forward, backward, update): on a sampled step (``due`` or
        ``last``), record it when the block ends. ``lr``: see the module's docstring."""
        if not (last or self.due(step)):
            yield
            return
        before = None if lr is not None else {name: p.array.copy() for name, p in self.weights.items()}
        outputs: dict[str, Tensor] = {}
        with self._watching(outputs):
            yield
        if all(out.grad is not None for out in outputs.values()):  # else no backward ran: nothing to see
            self.record(step, outputs, lr, before)

    @contextlib.contextmanager
    def _watching(self, outputs: dict[str, Tensor]) -> Iterator[None]:
        """While the block runs, each watched layer's output goes into ``outputs``, its gradient
        retained (the layer's own ``forward`` is shadowed, then restored)."""

        def watch(name: str, forward: Callable[..., Any]) -> Callable[..., Any]:
            def watched(*args: Any, **kwargs: Any) -> Any:
                out = forward(*args, **kwargs)
                if isinstance(out, Tensor) and out.requires_grad:
                    out.retain_grad()
                    outputs[name] = out
                return out

            return watched

        for name, layer in self.layers.items():
            object.__setattr__(layer, "forward", watch(name, layer.forward))
        try:
            yield
        finally:
            for layer in self.layers.values():
                object.__delattr__(layer, "forward")

    def record(
        self,
        step: int,
        outputs: Mapping[str, Tensor],
        lr: float | None = None,
        before: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """After the optimizer's step: the update ratios of ``step``, and what its histograms need
        (the layers' ``outputs`` with their gradients, the weights' gradients), copied; the
        histograms are made only when asked for. ``lr``, ``before``: see ``update_row``."""
        grads = {name: p.grad.array for name, p in self.weights.items() if p.grad is not None}
        grad_stds = {name: _std(grad) for name, grad in grads.items()}
        data_stds = {name: _std(p.array) for name, p in self.weights.items()}
        self.update_rows.append(self.update_row(step, lr, before, grad_stds, data_stds))
        sample = _Sample(
            step,
            {name: (out.array.copy(), out.grad.array.copy()) for name, out in outputs.items()},
            {name: (grad.copy(), _ratio(grad_stds[name], data_stds[name])) for name, grad in grads.items()},
        )
        self._snapshots[1 if self._snapshots else 0 :] = [sample]  # keep the first, replace the latest

    def update_row(
        self,
        step: int,
        lr: float | None,
        before: Mapping[str, np.ndarray] | None,
        grad_stds: Mapping[str, float],
        data_stds: Mapping[str, float],
    ) -> np.ndarray:
        """[step, log10(std(update) / std(data)) of each weight]: the update is ``lr * grad`` (its
        std, ``lr * std(grad)``) or, when ``lr`` is None, the change since ``before`` (by name)."""
        ratios = []
        for name, p in self.weights.items():
            if lr is not None:
                update_std = lr * grad_stds.get(name, math.nan)  # nan: a weight without a gradient
            else:
                update_std = _std(p.array.astype(np.float64) - before[name])
            ratio = _ratio(update_std, data_stds[name])
            ratios.append(math.log10(ratio) if ratio > 0 else math.nan)  # nan: no update, or no spread
        return np.array([step, *ratios], dtype=np.float64)

    @property
    def snapshots(self) -> list[dict[str, Any]]:
        """The first sampled step's histograms and numbers, and the latest's (as JSON values)."""
        self._snapshots = [self._summary(s) if isinstance(s, _Sample) else s for s in self._snapshots]
        return self._snapshots

    def _summary(self, sample: _Sample) -> dict[str, Any]:
        return {
            "step": sample.step,
            "activations": {name: self._activation(out) for name, (out, _) in sample.outputs.items()},
            "gradients": {name: _distribution(grad, self.bins) for name, (_, grad) in sample.outputs.items()},
            "weights": {
                name: {"grad_data_ratio": _number(ratio), **_distribution(grad, self.bins)}
                for name, (grad, ratio) in sample.weights.items()
            },
        }

    def _activation(self, values: np.ndarray) -> dict[str, Any]:
        saturated = 100 * float(np.mean(np.abs(values) > self.saturation))
        return {"saturated_percent": saturated, **_distribution(values, self.bins)}

    # ------------------------------------------------------------ the numbers, and back
    def to_json(self) -> dict[str, Any]:
        """Every number the pictures show, as JSON values (null where a ratio is undefined)."""
        rows = self.rows()
        return {
            "every": self.every,
            "saturation": self.saturation,
            "layers": {name: type(layer).__name__ for name, layer in self.layers.items()},
            "weights": {name: list(p.shape) for name, p in self.weights.items()},
            "updates": {
                "steps": [int(step) for step in rows[:, 0]],
                "log10_update_ratio": {name: _finite(rows[:, 1 + i]) for i, name in enumerate(self.weights)},
            },
            "snapshots": self.snapshots,
        }

    def rows(self, start: int = 0) -> np.ndarray:
        """The update ratios as a (samples, 1 + weights) array: the step, then each weight's
        (from the ``start``-th sample on)."""
        return np.array(self.update_rows[start:], dtype=np.float64).reshape(-1, 1 + len(self.weights))

    def restore(self, snapshots: list[dict[str, Any]], rows: np.ndarray) -> None:
        """Continue from ``snapshots`` and ``rows`` saved earlier (``snapshots``, ``rows()``)."""
        if rows.ndim != 2 or rows.shape[1] != 1 + len(self.weights):
            raise ValueError(
                f"Recorder.restore: rows of shape {rows.shape}, expected (n, {1 + len(self.weights)})"
            )
        self._snapshots, self.update_rows = list(snapshots), list(rows)


@dataclasses.dataclass(frozen=True)
class _Sample:
    """What a sampled step leaves for its histograms, until they are made."""

    step: int
    outputs: dict[str, tuple[np.ndarray, np.ndarray]]  # by layer: its output, and that output's gradient
    weights: dict[str, tuple[np.ndarray, float]]  # by weight: its gradient, and the grad:data std ratio


def _std(values: np.ndarray) -> float:
    return float(np.std(values, dtype=np.float64, ddof=1)) if values.size > 1 else math.nan


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def _number(value: float) -> float | None:
    """A JSON number: None for nan and infinities, which JSON lacks."""
    return float(value) if math.isfinite(value) else None


def _finite(values: Any) -> list[float | None]:
    return [_number(v) for v in values]


def _distribution(values: np.ndarray, bins: int) -> dict[str, Any]:
    """Mean, std and density histogram (as torch.histogram(t, density=True)) of ``values``."""
    values = values.astype(np.float64, copy=False).ravel()
    finite = values[np.isfinite(values)]  # a histogram's range must be finite
    density, edges = np.histogram(finite, bins=bins, density=True) if finite.size else ([], [])
    return {
        "mean": _number(values.mean()) if values.size else None,
        "std": _number(_std(values)),
        "histogram": {"density": _finite(density), "edges": list(map(float, edges))},
    }


# ---------------------------------------------------------------- pictures


Source = Recorder | Mapping[str, Any]  # a recorder, or its to_json() (a diagnostics.json read back)


def activations_figure(source: Source) -> Figure:
    """Histograms of each layer's output, at the first and the latest sampled step (the lecture's
    "activation distribution"), with mean, std and the percentage saturated."""
    return _histograms(_numbers(source), "activations", "layer output value", "activation distribution")


def gradients_figure(source: Source) -> Figure:
    """Histograms of the gradient of each layer's output (the lecture's "gradient distribution")."""
    return _histograms(_numbers(source), "gradients", "gradient of the layer output", "gradient distribution")


def weights_figure(source: Source) -> Figure:
    """Histograms of each 2-D parameter's gradient, with its grad:data std ratio (the lecture's
    "weights gradient distribution")."""
    return _histograms(_numbers(source), "weights", "gradient of the weight", "weights gradient distribution")


def updates_figure(source: Source) -> Figure:
    """log10(std(update) / std(data)) of each 2-D parameter over training, and the lecture's
    guide line at -3 (updates about a thousandth of the values)."""
    numbers = _numbers(source)
    updates = numbers["updates"]
    fig, ax = _figure(1)
    steps = np.array(updates["steps"], dtype=np.float64)
    for (name, ratios), colour in zip(updates["log10_update_ratio"].items(), _COLOURS):
        values = np.array([math.nan if r is None else r for r in ratios], dtype=np.float64)
        shape = tuple(numbers["weights"][name])
        ax[0].plot(steps, values, color=colour, linewidth=1.0, label=f"{name} {shape}")
    ax[0].axhline(GUIDE, color="black", linewidth=1.2, label="1e-3 guide (the lecture's)")
    ax[0].set(
        xlabel="training step",
        ylabel="log10(update std / data std)",
        title=f"update to data ratio, sampled every {numbers['every']:,} steps",
    )
    ax[0].xaxis.set_major_formatter("{x:,.0f}")  # 150,000 steps, not 150000
    _legend(ax[0], len(updates["log10_update_ratio"]) + 1)
    return fig


FIGURES: dict[str, Callable[[Source], Figure]] = {
    "activations.png": activations_figure,
    "gradients.png": gradients_figure,
    "weights.png": weights_figure,
    "updates.png": updates_figure,
}


def draw(source: Source, directory: str | os.PathLike) -> list[Path]:
    """Write the four pictures (``FIGURES``) into ``directory``, each atomically; their paths."""
    paths = [Path(directory) / name for name in FIGURES]
    for path, make in zip(paths, FIGURES.values()):
        save(make(source), path)
    return paths


def save(figure: Figure, path: str | os.PathLike) -> None:
    """``figure`` as a PNG at ``path``, written to a temporary file and renamed."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")


_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
_WIDTH = 8.0  # inches at 100 dpi: the README's 800 pixels


def _numbers(source: Source) -> Mapping[str, Any]:
    return source.to_json() if isinstance(source, Recorder) else source


def _figure(panels: int) -> tuple[Figure, list[Any]]:
    from matplotlib.figure import Figure  # here, not at import: ``import nn`` stays light

    height = 0.9 + 3.5 * panels  # inches: 0.9 for the margins, 3.5 a panel with its title and labels
    fig = Figure(figsize=(_WIDTH, height), dpi=100)
    # fixed margins (in inches, as fractions): a layout engine would take most of the drawing time
    fig.subplots_adjust(
        left=0.75 / _WIDTH, right=1 - 0.2 / _WIDTH, top=1 - 0.4 / height, bottom=0.55 / height
    )
    axes = list(fig.subplots(panels, 1, squeeze=False, gridspec_kw={"hspace": 0.3})[:, 0])
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig, axes


def _legend(ax: Any, entries: int) -> None:
    """A legend in the upper right, above the curves: the y axis grows to make room for it."""
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, top + (top - bottom) * (0.06 + 0.075 * entries))
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9)


def _histograms(numbers: Mapping[str, Any], kind: str, xlabel: str, title: str) -> Figure:
    """One panel per snapshot (the first sampled step, the latest), one density curve per layer
    or weight, as the lecture plots them."""
    snapshots = numbers["snapshots"]
    fig, axes = _figure(max(1, len(snapshots)))
    for ax, snapshot in zip(axes, snapshots):
        for (name, stats), colour in zip(snapshot[kind].items(), _COLOURS):
            edges = np.array(stats["histogram"]["edges"], dtype=np.float64)
            density = np.array(stats["histogram"]["density"], dtype=np.float64)  # None: nan, not drawn
            label = _label(numbers, kind, name, stats)
            ax.plot((edges[:-1] + edges[1:]) / 2, density, color=colour, linewidth=1.3, label=label)
        ax.set(xlabel=xlabel, ylabel="density", title=f"{title} at step {snapshot['step']:,}")
        if snapshot[kind]:
            _legend(ax, len(snapshot[kind]))
        else:
            ax.text(0.5, 0.5, f"no {kind} recorded", ha="center", va="center", transform=ax.transAxes)
    if not snapshots:
        axes[0].text(0.5, 0.5, "no step sampled", ha="center", va="center", transform=axes[0].transAxes)
    return fig


def _label(numbers: Mapping[str, Any], kind: str, name: str, stats: Mapping[str, Any]) -> str:
    """The legend's line, with the numbers the lecture prints beside its plots."""
    if kind == "weights":
        ratio = _shown(stats["grad_data_ratio"])
        what = f"{name} {tuple(numbers['weights'][name])}"
        return f"{what}: mean {_shown(stats['mean'], '+.1e')}, std {_shown(stats['std'])}, grad:data {ratio}"
    what = f"layer {name} ({numbers['layers'][name]})"
    if kind == "gradients":
        return f"{what}: mean {_shown(stats['mean'], '+.1e')}, std {_shown(stats['std'])}"
    mean, std = _shown(stats["mean"], "+.2f"), _shown(stats["std"], ".2f")
    return f"{what}: mean {mean}, std {std}, saturated {stats['saturated_percent']:.2f}%"


def _shown(value: float | None, format: str = ".1e") -> str:
    return "n/a" if value is None else f"{value:{format}}"
