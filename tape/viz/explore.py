"""An interactive page that steps through the reverse sweep: one self-contained HTML file.

    from tape import viz
    viz.explore(loss, "explore.html", names=locals())   # before loss.backward()
    loss.backward()

The page shows the graph (Graphviz's layout, as ``render`` draws it) beside the Wengert list,
and steps through the sweep entry by entry: the gradient reaching the entry's output (``dout``),
the VJP's formula (the op's doc line, as in docs/vjp.md), the gradient it hands to each input
and, where a tensor feeds several entries, the sums as they add up. A toggle replays the
forward pass the same way. Everything is inline (no network); ``#step=K`` opens it at step K.

The numbers are the recorded ones: ``tape.viz.sweep`` replays the sweep on what the entries
saved, so the page is made before ``backward`` frees them, and its last step equals ``.grad``
bit for bit. Arrays travel in their own dtype (float32 or float64, base64) for tensors of up
to ``max_elements`` elements; larger ones show their shape, norm, min and max only.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from tape.atomic import write_text
from tape.tensor import Tensor
from tape.viz import labels
from tape.viz.model import TensorNode, build
from tape.viz.render import TIMEOUT, GraphvizNotFoundError, render
from tape.viz.sweep import Step, Sweep, trace
from tape.wengert import Entry, WengertList

MAX_ELEMENTS = 4096  # a tensor's values travel (and get a heat map) up to this size
MAX_ENTRIES = 2000  # more steps than anyone steps through, and a page of many megabytes
STAT_DIGITS = 4


def explore(
    root: Tensor,
    path: str | os.PathLike,
    names: Mapping[str, Any] | None = None,
    *,
    gradient: Any = None,
    title: str | None = None,
    max_elements: int = MAX_ELEMENTS,
    timeout: float | None = TIMEOUT,
) -> Path:
    """Write the interactive page of ``root``'s reverse sweep to ``path``; returns ``path``.

    Call it before ``root.backward()`` (or after ``backward(retain_graph=True)``): it replays
    the sweep on the values the entries saved. ``names`` maps names to tensors (``locals()``
    works), ``gradient`` seeds the sweep as ``backward(gradient)`` does (ones for a scalar).
    Tensors of up to ``max_elements`` elements get heat maps. Graphviz's ``dot`` lays out the
    graph (``GraphvizNotFoundError`` without it; stopped after ``timeout`` seconds).
    """
    names = names or {}
    sweep = trace(root, gradient)
    if len(sweep.entries) > MAX_ENTRIES:
        raise ValueError(
            f"explore: the graph has {len(sweep.entries):,} entries, more than {MAX_ENTRIES:,} steps "
            "make a usable page; explore a smaller part of it (a tensor nearer the inputs)"
        )
    svg = _graph_svg(root, names, timeout)
    data = _PageData(sweep, names, max_elements).data(title or _default_title(sweep))
    target = Path(path)
    write_text(target, _page(svg, data))
    return target


def _default_title(sweep: Sweep) -> str:
    return f"the reverse sweep over {len(sweep.entries)} tape entries"


# ---------------------------------------------------------------- the graph


def _graph_svg(root: Tensor, names: Mapping[str, Any], timeout: float | None) -> str:
    """Graphviz's SVG of the graph, as ``render`` draws it (node titles are the drawing's ids)."""
    if shutil.which("dot") is None:
        raise GraphvizNotFoundError(
            "explore: the Graphviz program `dot` is not on PATH, and the page lays out its graph "
            "with it. Install Graphviz (Debian/Ubuntu: `apt-get install graphviz`, macOS: "
            "`brew install graphviz`, others: https://graphviz.org/download/) and run explore again"
        )
    with tempfile.TemporaryDirectory(prefix="tape-explore-") as folder:
        drawn = render(root, Path(folder) / "graph.svg", names, timeout=timeout, max_clusters=None)
        svg = drawn.read_text(encoding="utf-8")
    return svg[svg.index("<svg") :]  # without the XML prolog and doctype, which HTML does not take


# ---------------------------------------------------------------- the data


class _Arrays:
    """The page's arrays, each stored once (a VJP often hands ``dout`` itself to an input)."""

    def __init__(self, max_elements: int) -> None:
        self.max_elements = max_elements
        self.records: list[dict[str, Any]] = []
        self._index: dict[tuple, int] = {}

    def add(self, array: np.ndarray) -> int:
        array = np.asarray(array)
        key = (array.dtype.str, array.shape, hashlib.sha1(np.ascontiguousarray(array).tobytes()).digest())
        if key not in self._index:
            self._index[key] = len(self.records)
            self.records.append(self._record(array))
        return self._index[key]

    def _record(self, array: np.ndarray) -> dict[str, Any]:
        record: dict[str, Any] = {"shape": list(array.shape), "dtype": str(array.dtype)}
        record["stats"] = _statistics(array)
        if array.size <= self.max_elements:
            # float32 and float64 as they are, so the page holds the exact values; anything else
            # (indices, masks, float16) is only looked at, as float64
            kind = array.dtype if array.dtype in (np.float32, np.float64) else np.dtype(np.float64)
            record["encoding"] = "float32" if kind == np.float32 else "float64"
            raw = np.ascontiguousarray(array, dtype=kind.newbyteorder("<")).tobytes()
            record["data"] = base64.b64encode(raw).decode("ascii")
        return record


def _statistics(array: np.ndarray) -> dict[str, str]:
    if array.size == 0:
        return {"norm": "0"}
    values = array.astype(np.float64)
    return {
        key: labels.number(value, STAT_DIGITS)
        for key, value in [("norm", labels.norm(values)), ("min", values.min()), ("max", values.max())]
    }


class _PageData:
    """The page's JSON: tensors, entries and sweep steps, arrays referred to by index."""

    def __init__(self, sweep: Sweep, names: Mapping[str, Any], max_elements: int) -> None:
        self.sweep = sweep
        self.arrays = _Arrays(max_elements)
        self.listing = WengertList(sweep.entries, names)
        self.positions = {entry: i for i, entry in enumerate(sweep.entries)}
        drawing = build((sweep.root,), names, False)
        self.nodes = [node for node in drawing.nodes if isinstance(node, TensorNode)]
        self.tensor_index = {id(node.tensor): i for i, node in enumerate(self.nodes)}

    def data(self, title: str) -> dict[str, Any]:
        tensors = [self._tensor(node) for node in self.nodes]
        entries = [self._entry(entry) for entry in self.sweep.entries]
        seed = {
            "tensor": self.tensor_index[id(self.sweep.root)],
            "gradient": self.arrays.add(self.sweep.seed),
        }
        steps = [self._step(step) for step in self.sweep.steps]
        return {
            "title": title,
            "tensors": tensors,
            "entries": entries,
            "seed": seed,
            "steps": steps,
            "arrays": self.arrays.records,
        }

    def _tensor(self, node: TensorNode) -> dict[str, Any]:
        t = node.tensor
        made_by = self.positions.get(t.grad_fn) if t.grad_fn is not None else None
        return {
            "node": node.id,  # the title of its node in the SVG
            "label": self.listing.label(t),
            "kind": node.kind,
            "shape": list(t.shape),
            "dtype": str(t.dtype),
            "requires_grad": bool(t.requires_grad),
            "made_by": made_by,
            "value": self.arrays.add(t.array),
        }

    def _entry(self, entry: Entry) -> dict[str, Any]:
        position = self.positions[entry]
        inputs = [
            {"tensor": self.tensor_index[id(x)]}
            if isinstance(x, Tensor)
            else {"constant": labels.describe(x)}
            for x in entry.inputs
        ]
        saved = [f"{name}={labels.describe(value)}" for name, value in zip(entry.op.saves, entry.saved)]
        return {
            "node": f"op{position}",
            "op": entry.op.name,
            "label": labels.op_label(entry),
            "doc": entry.op.doc,
            "scope": entry.scope or "",
            "inputs": inputs,
            "output": self.tensor_index[id(entry.output())],
            "saved": ", ".join(saved),
        }

    def _step(self, step: Step) -> dict[str, Any]:
        handed = [
            {
                "input": h.position,
                "tensor": self.tensor_index[id(h.tensor)],
                "gradient": self.arrays.add(h.gradient),
                "before": None if h.before is None else self.arrays.add(h.before),
                "after": self.arrays.add(h.after),
            }
            for h in step.handed
        ]
        return {"entry": self.positions[step.entry], "dout": self.arrays.add(step.dout), "handed": handed}


# ---------------------------------------------------------------- the page

_FIELD = re.compile(r"\{\{(\w+)\}\}")


def _page(svg: str, data: dict[str, Any]) -> str:
    """The template with its fields filled in one pass (so filled-in text is never read as a field)."""
    template = resources.files("tape.viz").joinpath("explore.html").read_text(encoding="utf-8")
    fields = {"title": html.escape(data["title"]), "svg": svg, "data": _script_json(data)}
    return _FIELD.sub(lambda match: fields[match.group(1)], template)


def _script_json(data: dict[str, Any]) -> str:
    """JSON that cannot end its <script> element or start a comment in it, whatever the names say."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
