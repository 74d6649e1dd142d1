"""The table of every primitive in ``docs/vjp.md``, written from the registry.

Each op's doc line is its forward's docstring (``out = ...; dx = ...``), so the table cannot
drift from the code: ``python -m tape.docs`` rewrites it, and a test fails while it is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

import tape
from tape.atomic import write_text

BEGIN = "<!-- primitives: written by python -m tape.docs -->"
END = "<!-- end of primitives -->"
PAGE = Path(__file__).resolve().parent.parent / "docs" / "vjp.md"


def primitives_table() -> str:
    """One row per registered primitive: its name, where it lives, its forward and VJP."""
    rows = [
        "| op | file | forward; VJP | broadcasts | differentiated (create_graph) by |",
        "|---|---|---|---|---|",
    ]
    for op in tape.REGISTRY.values():
        where = Path(sys.modules[op.forward.__module__].__file__).name
        doc = op.doc.replace("|", "\\|")  # a bare | would end the table cell, even in code
        broadcasts = "yes" if op.broadcasts else ""
        rows.append(f"| `{op.name}` | `{where}` | `{doc}` | {broadcasts} | {second_order(op)} |")
    return "\n".join([BEGIN, *rows, END])


def second_order(op: tape.Op) -> str:
    """How the op's VJP runs under create_graph (see "Second derivatives" in docs/vjp.md)."""
    vjp = "its graph VJP" if op.graph_vjps else "its VJP on tensors"
    return f"{vjp}, saved values rebuilt on the tape" if op.graph_saved else vjp


def updated(page: str) -> str:
    start, end = page.index(BEGIN), page.index(END) + len(END)
    return page[:start] + primitives_table() + page[end:]


if __name__ == "__main__":
    write_text(PAGE, updated(PAGE.read_text()))
    print(f"wrote the table of {len(tape.REGISTRY)} primitives into {PAGE}")
