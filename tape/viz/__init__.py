"""The graph exporter: the recorded tape drawn as DOT and, through Graphviz, as SVG, PNG or PDF.

    from tape import viz
    viz.explore(loss, "explore.html", names=locals())  # before backward: a page stepping through it
    loss.backward()
    viz.render(loss, "graph.svg", names=locals())   # graph.svg, and graph.dot beside it
    source = viz.to_dot(loss, names=locals())       # DOT text only: no Graphviz needed

One node per tensor (name, shape, dtype; after backward its gradient's shape and norm) and one
per op (its name, constants and parameters: ``pow(•, -0.5)``, ``sum(•, dim=0, keepdim=True)``).
The edge from a tensor into an op is labelled with the gradient that flows back along it, so
broadcasting shows: the bias ``b1`` (64,) receives ``∇ (64,) = Σ (32, 64)``. Entries recorded
inside ``tape.scope`` (every nn module call) are drawn as nested clusters, or with
``collapse_modules=True`` as one node per module.

``explore`` (``explore.py``, its page ``explore.html``) replays the reverse sweep
(``sweep.py``) into one self-contained HTML page; docs/explore.md shows how to read it.

Three modules, one job each: ``model`` decides the drawing from the tape (which it only
reads), ``dot`` writes it as DOT (``labels`` says what each node shows, ``escape`` makes user
text safe for Graphviz) and ``render`` runs Graphviz on it.
"""

from tape.viz.dot import COLOURS, to_dot
from tape.viz.explore import explore
from tape.viz.render import (
    FORMATS,
    CollapsedWarning,
    GraphTooLargeError,
    GraphvizError,
    GraphvizNotFoundError,
    RenderError,
    RenderTimeoutError,
    render,
)

__all__ = [
    "COLOURS",
    "FORMATS",
    "CollapsedWarning",
    "GraphTooLargeError",
    "GraphvizError",
    "GraphvizNotFoundError",
    "RenderError",
    "RenderTimeoutError",
    "explore",
    "render",
    "to_dot",
]
