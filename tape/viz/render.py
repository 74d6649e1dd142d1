"""Rendering: a drawing's DOT source through Graphviz's ``dot`` into an image file, safely.

The format is the file's extension. The DOT source is written beside the image first, so a
missing or failing Graphviz still leaves something to render elsewhere. A graph too large
for Graphviz is drawn collapsed by module, or refused, before ``dot`` starts; ``dot`` runs
with a timeout; each failure raises a ``RenderError`` saying what happened and what to do, so
a caller (a training run drawing its graph) can catch it, warn and carry on.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tape.atomic import write_bytes, write_text
from tape.tensor import Tensor
from tape.viz.dot import roots_of, write
from tape.viz.model import Drawing, build

FORMATS = ("svg", "png", "pdf", "dot", "jpg", "jpeg", "gif", "ps", "eps")
SAME_FORMAT = {"jpeg": "jpg"}  # two extensions, one format
TIMEOUT = 60.0  # seconds
# Measured with Graphviz 2.43: a flat chain of 15,000 nodes lays out in 2 s and one of 20,000
# crashes dot; 500 module clusters lay out in 2 s, 1,500 take 50 s and 0.9 GB (4,500: 2.5 GB).
MAX_NODES = 10_000
MAX_CLUSTERS = 500
STDERR_SHOWN = 2000  # characters of dot's error output quoted in an exception


class RenderError(RuntimeError):
    """``render`` could not draw the graph (the DOT source was written anyway)."""


class GraphvizNotFoundError(RenderError):
    """The Graphviz ``dot`` program is not on PATH."""


class GraphvizError(RenderError):
    """``dot`` failed: ``returncode`` is its exit status (negative: the signal that killed it)."""

    def __init__(self, message: str, returncode: int, stderr: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


class RenderTimeoutError(RenderError, TimeoutError):
    """``dot`` did not finish within ``timeout`` seconds and was stopped."""


class GraphTooLargeError(RenderError):
    """The graph has more nodes than Graphviz lays out reliably (``max_nodes``)."""


class CollapsedWarning(UserWarning):
    """``render`` drew each module as one node because the full drawing was too large."""


def render(
    root: Tensor | Sequence[Tensor],
    path: str | os.PathLike,
    names: Mapping[str, Any] | None = None,
    format: str | None = None,
    *,
    timeout: float | None = TIMEOUT,
    max_nodes: int | None = MAX_NODES,
    max_clusters: int | None = MAX_CLUSTERS,
    **options: Any,
) -> Path:
    """Draw ``root``'s graph into ``path`` with Graphviz ``dot``; returns ``path``.

    The format is ``path``'s extension (svg, png, pdf, dot, jpg, gif, ps, eps); ``format``
    names it for a path without one, and a ``format`` that contradicts the extension is
    refused. The DOT source is written beside the image (``graph.svg`` -> ``graph.dot``;
    ``dot`` writes only it). ``options`` are ``to_dot``'s. A drawing with more than
    ``max_clusters`` module clusters is drawn collapsed (``collapse_modules=True``, with a
    ``CollapsedWarning``); one with more than ``max_nodes`` nodes raises
    ``GraphTooLargeError``; None lifts a limit. ``dot`` is stopped after ``timeout`` seconds
    (``RenderTimeoutError``, a ``TimeoutError``). Files are written atomically.
    """
    target, format = _target(path, format)
    roots, names = roots_of(root), names or {}
    drawing = build(roots, names, options.pop("collapse_modules", False))
    if format != "dot":
        drawing = _fitted(drawing, roots, names, max_nodes, max_clusters)
    source = write(drawing, **options)
    dot_path = _dot_path(target, format)
    write_text(dot_path, source)
    if format == "dot":
        return target
    _refuse_too_large(drawing, max_nodes, dot_path)
    write_bytes(target, _run_dot(source, format, timeout, dot_path, drawing))
    return target


# ---------------------------------------------------------------- the file and its format


def _target(path: str | os.PathLike, format: str | None) -> tuple[Path, str]:
    """The file to write and its format, or a ValueError before anything is written."""
    text = os.fsdecode(os.fspath(path))
    target = Path(text)
    separators = tuple(s for s in (os.sep, os.altsep, "/") if s)
    if text.endswith(separators) or target.name in ("", ".", "..") or target.is_dir():
        raise ValueError(
            f"render: {text!r} is a directory, not a file: name the file to draw, e.g. graph.svg"
        )
    extension = target.suffix[1:].lower()
    if format is None:
        if extension not in FORMATS:
            raise ValueError(
                f"render: cannot tell the format from the name {target.name!r}; end it with "
                f"{', '.join('.' + f for f in FORMATS)}, or pass format="
            )
        return target, extension
    if format not in FORMATS:
        raise ValueError(f"render: unknown format {format!r}; render writes {', '.join(FORMATS)}")
    if extension in FORMATS and SAME_FORMAT.get(extension, extension) != SAME_FORMAT.get(format, format):
        raise ValueError(
            f"render: format={format!r} contradicts the name {target.name!r}; "
            f"name the file {target.with_suffix('.' + format).name!r} or leave format out"
        )
    return target, format


def _dot_path(target: Path, format: str) -> Path:
    """Where the DOT source goes: the image's name with .dot for its extension."""
    if format == "dot":
        return target
    if not target.suffix or target.suffix[1:].lower() in FORMATS:
        return target.with_suffix(".dot")
    return target.with_name(target.name + ".dot")  # graph.v2 -> graph.v2.dot, not graph.dot


# ---------------------------------------------------------------- size


def _size(drawing: Drawing) -> str:
    return f"{len(drawing.nodes):,} nodes in {len(drawing.clusters()):,} clusters"


def _too_large(drawing: Drawing, max_nodes: int | None, max_clusters: int | None) -> bool:
    too_many_nodes = max_nodes is not None and len(drawing.nodes) > max_nodes
    return too_many_nodes or (max_clusters is not None and len(drawing.clusters()) > max_clusters)


def _fitted(
    drawing: Drawing,
    roots: tuple[Tensor, ...],
    names: Mapping[str, Any],
    max_nodes: int | None,
    max_clusters: int | None,
) -> Drawing:
    """``drawing``, or the same graph collapsed by module when only that fits Graphviz."""
    if drawing.flat or not drawing.clusters() or not _too_large(drawing, max_nodes, max_clusters):
        return drawing
    collapsed = build(roots, names, True)
    if _too_large(collapsed, max_nodes, max_clusters):
        return drawing  # refused with the full size in the message
    warnings.warn(
        f"render: {_size(drawing)} are more than Graphviz lays out in reasonable time "
        f"(max_nodes={max_nodes}, max_clusters={max_clusters}), so each module is drawn as one node "
        f"(collapse_modules=True): {len(collapsed.nodes):,} nodes. Pass max_clusters=None and "
        "max_nodes=None to draw every op anyway",
        CollapsedWarning,
        stacklevel=3,
    )
    return collapsed


def _refuse_too_large(drawing: Drawing, max_nodes: int | None, dot_path: Path) -> None:
    if max_nodes is None or len(drawing.nodes) <= max_nodes:
        return
    raise GraphTooLargeError(
        f"render: the graph has {_size(drawing)}, more than max_nodes={max_nodes:,}: Graphviz "
        "crashes or runs out of memory on graphs this large. Draw a part of it (render a tensor "
        "nearer the inputs), collapse modules (collapse_modules=True, or 1 for top-level modules), "
        f"or pass max_nodes=None to try anyway. The DOT source is in {dot_path}"
    )


# ---------------------------------------------------------------- running dot


def _run_dot(source: str, format: str, timeout: float | None, dot_path: Path, drawing: Drawing) -> bytes:
    """``dot -T<format>`` on ``source``: its output, or a RenderError that says why not."""
    program = shutil.which("dot")
    if program is None:
        raise GraphvizNotFoundError(
            f"render: the Graphviz program `dot` is not on PATH, so the graph was not drawn; the DOT "
            f"source is in {dot_path}. Install Graphviz (Debian/Ubuntu: `apt-get install graphviz`, "
            "macOS: `brew install graphviz`, others: https://graphviz.org/download/) and run "
            f"render again, or draw it yourself: dot -T{format} {dot_path} -o <file>"
        )
    command = f"`dot -T{format}` on {dot_path} ({_size(drawing)})"
    try:
        done = subprocess.run(
            [program, f"-T{format}"], input=source.encode("utf-8"), capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise RenderTimeoutError(
            f"render: {command} did not finish within {timeout:g} s and was stopped. Collapse "
            "modules (collapse_modules=True) to lay it out in seconds, or pass a larger timeout="
        ) from None
    except OSError as e:  # found but not runnable: permissions, a broken install
        raise GraphvizError(f"render: could not run {program}: {e}", -1, "") from None
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", "replace").strip()
        raise GraphvizError(
            f"render: {command} {_failure(done.returncode)}:\n{stderr[-STDERR_SHOWN:]}",
            done.returncode,
            stderr,
        )
    return done.stdout


def _failure(returncode: int) -> str:
    if returncode >= 0:
        return f"failed with exit status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"was killed by {name} (Graphviz crashes or runs out of memory on very large graphs)"
