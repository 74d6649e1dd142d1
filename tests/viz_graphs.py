"""Graphs and DOT helpers shared by the exporter's tests (tests/test_viz*.py)."""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest

import tape
from experiments import notebook

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"

# rendering tests run for real in CI (which installs Graphviz); elsewhere they skip without `dot`
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None and not os.environ.get("CI"),
    reason="Graphviz `dot` is not installed (CI installs it and runs these tests)",
)


def notebook_graph(backward: bool = True, retain: bool = True, retain_graph: bool = False) -> dict:
    """The notebook's forward pass (float32), after backward with every intermediate retained."""
    out = notebook.run(tape)
    if retain:
        for t in out.values():
            if isinstance(t, tape.Tensor) and not t.is_leaf:
                t.retain_grad()
    if backward:
        out["loss"].backward(retain_graph=retain_graph)
    return out


def small_model() -> dict:
    """A two-layer model recorded inside nested scopes, as nn's Sequential(Linear, Tanh, Linear) does."""
    g = np.random.default_rng(0)
    x = tape.tensor(g.standard_normal((8, 4)))
    w0 = tape.tensor(g.standard_normal((4, 5)), requires_grad=True, name="0.weight")
    b0 = tape.tensor(g.standard_normal(5), requires_grad=True, name="0.bias")
    w2 = tape.tensor(g.standard_normal((5, 3)), requires_grad=True, name="2.weight")
    with tape.scope("Sequential"):
        with tape.scope("Linear 0"):
            h = x @ w0 + b0
        with tape.scope("Tanh 1"):
            h = h.tanh()
        with tape.scope("Linear 2"):
            y = h @ w2
    loss = (y * y).mean()
    loss.backward()
    return locals()


def chain(blocks: int, scoped: bool = False) -> tape.Tensor:
    """tanh(tanh(... x)): 2 nodes per block (op and output), each block in its own scope if ``scoped``."""
    h = tape.tensor(np.ones(2), requires_grad=True)
    for i in range(blocks):
        if scoped:
            with tape.scope(f"Block {i}"):
                h = h.tanh()
        else:
            h = h.tanh()
    return h


def node_line(dot: str, name: str) -> str:
    """The DOT statement of the tensor node labelled ``name``."""
    (line,) = [line for line in dot.splitlines() if f"<B>{name}</B>" in line and "->" not in line]
    return line


def node_id(dot: str, name: str) -> str:
    return node_line(dot, name).split()[0]


def edges_from(dot: str, source: str) -> list[str]:
    return [line.strip() for line in dot.splitlines() if line.strip().startswith(f"{source} -> ")]


def op_labels(dot: str) -> list[str]:
    """The labels of the op nodes, in tape order."""
    return re.findall(r'^\s*op\d+ \[label="([^"]+)"', dot, flags=re.MULTILINE)
