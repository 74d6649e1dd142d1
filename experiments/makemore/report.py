"""A finished run's results, each written as soon as it is known: model.npz and metrics.json
first, then samples.txt, loss.png, the diagnostics (diagnostics.json and its four pictures) and
graph.svg, whose failure is a warning that loses nothing."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

import nn
import tape
from experiments.makemore import evaluation
from experiments.makemore.checkpoint import Run, Saver
from experiments.makemore.data import Examples
from experiments.makemore.errors import ExperimentError, write_failed
from experiments.makemore.options import Options
from experiments.makemore.plot import plot_loss
from experiments.makemore.progress import format_seconds
from nn import diagnostics
from tape import viz
from tape.atomic import atomic_path, write_text

SAMPLES = 20
# what an optional output's failure can raise: Graphviz missing, failing or timing out
# (viz.RenderError, a RuntimeError), a full disk, matplotlib missing, a model whose
# probabilities are not finite
OPTIONAL_FAILURES = (ExperimentError, OSError, RuntimeError, ValueError, ImportError)
# and the diagnostics': a checkpoint's histograms that are not what the recorder wrote
DIAGNOSTICS_FAILURES = (*OPTIONAL_FAILURES, KeyError, TypeError)
DIAGNOSTICS = "diagnostics.json"
EXPLORE = "explore.html"


def write_model(model: nn.Module, path: Path) -> None:
    """Parameters and buffers by name (loads with ``np.load(path, allow_pickle=False)``)."""
    try:
        with atomic_path(path) as temporary, open(temporary, "wb") as f:
            np.savez(f, **model.state_dict())
    except OSError as e:
        raise write_failed(path, e, "the checkpoint holds the trained model") from None


def write_metrics(metrics: Mapping[str, Any], path: Path) -> None:
    try:
        write_text(path, json.dumps(metrics, indent=2) + "\n")
    except OSError as e:
        raise write_failed(path, e, "the checkpoint holds the trained model") from None


def summary(metrics: Mapping[str, Any]) -> str:
    rate = metrics["steps_per_second"]
    return (
        f"train {metrics['train']:.4f} | val {metrics['val']:.4f} | test {metrics['test']:.4f} | "
        f"{metrics['steps']} steps in {format_seconds(metrics['seconds'])}"
        + (f" ({rate:,.0f} steps/s)" if rate else "")
    )


def optional(
    what: str, write: Callable[[], None], failures: tuple[type[Exception], ...] = OPTIONAL_FAILURES
) -> bool:
    """Run ``write``; on one of ``failures`` print a warning naming ``what`` and go on. Whether it worked."""
    try:
        write()
    except failures as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        print(f"warning: {what} not written: {reason}", file=sys.stderr)
        return False
    return True


def write_samples(model: nn.Module, options: Options, path: Path) -> list[str]:
    rng = np.random.default_rng((options.seed, 1))
    names = evaluation.sample(model, rng, SAMPLES, options.block_size)
    write_text(path, "\n".join(names) + "\n")
    return names


def draw_graph(
    model: nn.Module, examples: Examples, batch_size: int, path: Path, timeout: float, explore: bool = False
) -> None:
    """graph.svg (and graph.dot) of one training step on the first batch, gradients included;
    with ``explore`` also explore.html, the page of that step's reverse sweep.

    Changes the model's batchnorm running statistics (a training-mode forward): draw last.
    """
    model.train()
    model.zero_grad()  # the drawing shows this batch's gradients, not the sum with the last step's
    Xb, Yb = examples.batch(slice(0, batch_size))
    loss = nn.cross_entropy(model(Xb), Yb)
    if explore:  # before backward, which frees what the page shows
        page = partial(viz.explore, loss, path.with_name(EXPLORE), names={"loss": loss}, timeout=timeout)
        optional(EXPLORE, page)
    loss.backward()
    try:
        viz.render(loss, path, names={"loss": loss}, timeout=timeout)
    finally:
        model.zero_grad()


def write_results(
    run: Run,
    splits: Mapping[str, Examples],
    options: Options,
    saver: Saver,
    graph_timeout: float,
    lr_decay_step: int | None = None,
    explore: bool = False,
    title: str = "makemore MLP on names.txt",
) -> None:
    """Calibrate, evaluate and write all a finished run produces, the essential first
    (``lr_decay_step``, marked on the loss plot under ``title``: half the steps unless given)."""
    metrics = write_essentials(run, splits, saver)
    print(summary(metrics))
    out, model = saver.path.parent, run.model
    samples: list[str] = []
    if optional("samples.txt", lambda: samples.extend(write_samples(model, options, out / "samples.txt"))):
        print("samples: " + " ".join(samples))
    final = {"train": metrics["train"], "val": metrics["val"]}
    losses = saver.log.read(run.step)
    optional(
        "loss.png",
        partial(
            plot_loss,
            losses,
            out / "loss.png",
            lr_decay_step=options.steps // 2 if lr_decay_step is None else lr_decay_step,
            final=final,
            title=title,
        ),
    )
    if run.diagnostics is not None:
        write_diagnostics(run.diagnostics, out)
    train = splits["train"]
    draw = partial(draw_graph, model, train, options.batch_size, out / "graph.svg", graph_timeout, explore)
    optional("graph.svg", draw)


def write_diagnostics(recorder: diagnostics.Recorder, out: Path) -> None:
    """diagnostics.json, then each picture drawn from its numbers (``nn.diagnostics.FIGURES``)."""
    numbers: dict[str, Any] = {}

    def write_numbers() -> None:
        numbers.update(recorder.to_json())
        write_text(out / DIAGNOSTICS, json.dumps(numbers, allow_nan=False) + "\n")

    optional(DIAGNOSTICS, write_numbers, DIAGNOSTICS_FAILURES)
    for name, figure in diagnostics.FIGURES.items() if numbers else ():  # none: the warning said why
        draw = partial(_draw_figure, figure, numbers, out / name)
        optional(name, draw, DIAGNOSTICS_FAILURES)


def _draw_figure(figure: Callable[[Any], Any], numbers: Mapping[str, Any], path: Path) -> None:
    diagnostics.save(figure(numbers), path)


def write_essentials(run: Run, splits: Mapping[str, Examples], saver: Saver) -> dict[str, Any]:
    """model.npz and metrics.json, after batchnorm's calibration; the metrics."""
    model, out = run.model, saver.path.parent
    evaluation.calibrate_batchnorm(model, splits["train"])
    losses = {name: evaluation.evaluate(model, examples) for name, examples in splits.items()}
    # the evaluations reused each other's freed blocks (tape.memory keeps them); what follows
    # (sampling, drawing) would not, and would add its memory on top of them
    tape.memory.release()
    metrics = {
        "steps": run.step,
        **losses,
        "seconds": run.seconds,
        "steps_per_second": run.step / run.seconds if run.seconds else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": saver.options,
    }
    write_model(model, out / "model.npz")
    write_metrics(metrics, out / "metrics.json")
    return metrics
