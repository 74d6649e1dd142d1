"""Draw the backprop-ninja notebook's graph after backward: docs/notebook_graph.svg (and .dot).

    python -m experiments.draw_notebook_graph [--out docs/notebook_graph.svg]

Every intermediate keeps its gradient (``retain_grad``, as the notebook does), so every named
tensor shows its gradient's shape and norm; ``backward(retain_graph=True)`` keeps what the ops
saved, so each op shows its parameters (``pow(•, -0.5)``). The numbers are rounded
(``tape.viz``'s default of 3 digits, gradients below float32 resolution as ``≈ 0``), so the
committed files come out the same on any machine. ``--out graph.dot`` writes the DOT source
alone, without Graphviz.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import tape
from experiments import notebook
from tape import viz

ROOT = Path(__file__).resolve().parent.parent
TITLE = (
    "makemore part 4 (backprop ninja), one batch of 32\n"
    "arrows run forward; red labels: the gradient flowing back along each arrow"
)


def notebook_after_backward() -> dict[str, Any]:
    """The notebook's tensors after backward, keeping every intermediate's gradient and what each op saved."""
    out = notebook.run(tape)
    for t in out.values():
        if isinstance(t, tape.Tensor) and not t.is_leaf:
            t.retain_grad()
    out["loss"].backward(retain_graph=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "notebook_graph.svg")
    args = parser.parse_args()
    out = notebook_after_backward()
    print(viz.render(out["loss"], args.out, names=out, title=TITLE))


if __name__ == "__main__":
    main()
