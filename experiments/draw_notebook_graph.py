"""Draw the backprop-ninja notebook's graph after backward: docs/notebook_graph.svg (and .dot).

    python -m experiments.draw_notebook_graph [--out docs/notebook_graph.svg]

Every intermediate keeps its gradient (``retain_grad``, as the notebook does), so every named
tensor shows its gradient's shape and norm.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import tape
from experiments import notebook
from tape import viz

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "notebook_graph.svg")
    args = parser.parse_args()

    out = notebook.run(tape)
    for t in out.values():
        if isinstance(t, tape.Tensor) and not t.is_leaf:
            t.retain_grad()
    out["loss"].backward()
    title = (
        "makemore part 4 (backprop ninja), one batch of 32\n"
        "arrows run forward; red labels: the gradient flowing back along each arrow"
    )
    print(viz.render(out["loss"], args.out, names=out, title=title))


if __name__ == "__main__":
    main()
