"""The DOT writer: a ``Drawing`` as Graphviz source, styled, every piece of user text escaped.

``to_dot`` needs nothing but NumPy. Colours say what a node *is* before any label is read;
the texts come from ``tape.viz.labels`` and pass through ``tape.viz.escape`` on the way out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tape.tensor import Tensor
from tape.viz import labels
from tape.viz.escape import html_text, quoted
from tape.viz.model import Cluster, Drawing, Edge, ModuleNode, OpNode, TensorNode, build

FONT = "Helvetica,Arial,sans-serif"
RANKDIRS = ("TB", "LR", "BT", "RL")  # Graphviz's, the only values it accepts
DIGITS = 3  # significant digits of the numbers shown: enough to read, few enough to be stable

COLOURS = {
    "parameter": "#cfe2ff",  # leaves that require a gradient: what training changes
    "data": "#f1f3f5",  # leaves without a gradient: inputs, targets
    "intermediate": "#fff9db",
    "root": "#ffd8a8",
    "op": "#e9ecef",
    "module": "#e5dbff",
    "parity_ok": "#b2f2bb",
    "parity_bad": "#ff8787",
    "gradient": "#c92a2a",  # edge labels: the gradient flows against the arrow
}
TEXT_GREY = "#495057"
CLUSTER_FILLS = ("#f8f9fa", "#eef2f6")  # alternate with depth so nested modules stand apart


def to_dot(
    root: Tensor | Sequence[Tensor],
    names: Mapping[str, Any] | None = None,
    *,
    parity: Any = None,
    collapse_modules: bool | int = False,
    rankdir: str = "TB",
    title: str | None = None,
    digits: int = DIGITS,
) -> str:
    """The DOT source of everything ``root`` (a tensor or several) depends on.

    ``names`` maps names to tensors (``locals()`` works: anything that is not a tensor is
    ignored) and wins over a tensor's own ``.name``. ``parity`` is a
    ``tape.parity.ParityReport``: tensors with a row are filled green where the gradient
    matches torch and red where it does not. ``collapse_modules=True`` draws each innermost
    ``tape.scope`` (each nn module) as one node; an int ``d`` collapses at depth ``d``
    (1: each top-level module). ``rankdir`` is Graphviz's: "TB" top to bottom, "LR" left to
    right, "BT", "RL". ``title`` is drawn above the graph. Numbers show ``digits`` significant
    digits.
    """
    drawing = build(roots_of(root), names or {}, collapse_modules)
    return write(drawing, parity=parity, rankdir=rankdir, title=title, digits=digits)


def roots_of(root: Tensor | Sequence[Tensor]) -> tuple[Tensor, ...]:
    roots = (root,) if isinstance(root, Tensor) else tuple(root)
    if not roots or not all(isinstance(t, Tensor) for t in roots):
        raise TypeError(f"viz: root must be a tensor or a sequence of tensors, got {root!r:.80}")
    return roots


def write(
    drawing: Drawing,
    *,
    parity: Any = None,
    rankdir: str = "TB",
    title: str | None = None,
    digits: int = DIGITS,
) -> str:
    """The DOT source of ``drawing``; the options are ``to_dot``'s."""
    if rankdir not in RANKDIRS:
        raise ValueError(f"viz: rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    if not isinstance(digits, int) or not 1 <= digits <= 17:
        raise ValueError(f"viz: digits must be an int from 1 to 17, got {digits!r}")
    style = _Style({row.name: row for row in parity} if parity is not None else {}, digits)
    lines = [
        "digraph tape {",
        f'  graph [rankdir={rankdir} fontname="{FONT}" nodesep=0.25 ranksep=0.3 newrank=true]',
        f'  node [fontname="{FONT}" fontsize=11 shape=box style="rounded,filled" margin="0.1,0.04"]',
        f'  edge [fontname="{FONT}" fontsize=9 arrowsize=0.6 color="#495057"]',
    ]
    lines += _cluster_lines(drawing, style)
    lines += [f"  {style.edge(edge)}" for edge in drawing.edges]
    if title:  # last, so that clusters do not inherit it
        lines.append(f"  graph [label={quoted(title.splitlines())} labelloc=t fontsize=14]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _cluster_lines(drawing: Drawing, style: _Style) -> list[str]:
    """Nodes grouped into nested ``subgraph cluster_N`` blocks, in tape order."""
    statements: dict[Cluster, list[str]] = {}
    for node in drawing.nodes:
        statements.setdefault(node.cluster, []).append(style.node(node))
    children: dict[Cluster, list[Cluster]] = {}
    for cluster in drawing.clusters():
        children.setdefault(cluster[:-1], []).append(cluster)

    def block(path: Cluster, indent: str) -> list[str]:
        lines = [f"{indent}{statement}" for statement in statements.get(path, [])]
        for child in children.get(path, []):
            fill = CLUSTER_FILLS[len(path) % len(CLUSTER_FILLS)]
            lines.append(f"{indent}subgraph cluster_{drawing.cluster_ids[child]} {{")
            lines.append(
                f"{indent}  graph [label={quoted(child[-1])} tooltip={quoted('/'.join(child))} "
                f'style="rounded,filled" fillcolor="{fill}" color="#adb5bd" fontsize=12 labeljust=l]'
            )
            lines += block(child, indent + "  ")
            lines.append(f"{indent}}}")
        return lines

    return block((), "  ")


class _Style:
    """Statements for nodes and edges: labels from ``labels``, colours, escaping."""

    def __init__(self, parity: Mapping[str, Any], digits: int) -> None:
        self.parity = parity
        self.digits = digits

    def node(self, node: TensorNode | OpNode | ModuleNode) -> str:
        if isinstance(node, TensorNode):
            return self.tensor(node)
        if isinstance(node, OpNode):
            return self.op(node)
        return self.module(node)

    def tensor(self, node: TensorNode) -> str:
        t, name, kind = node.tensor, node.name, node.kind
        lines = [f"<B>{html_text(name)}</B>"] if name else []
        lines += [_small(text) for text in labels.tensor_lines(t, self.digits)]
        gradient = labels.gradient_line(t, self.digits)
        if gradient is not None:
            lines.append(_small(gradient, COLOURS["gradient"]))
        row = self.parity.get(name) if name else None
        attributes = {
            "label": _html(lines),
            "fillcolor": quoted(COLOURS[kind]),
            "tooltip": quoted(labels.tensor_tooltip(t, name, kind, row, self.digits)),
        }
        if row is not None and row.grad_approx is not None:
            attributes["fillcolor"] = quoted(COLOURS["parity_ok" if row.ok else "parity_bad"])
            if not row.ok:
                attributes |= {"color": quoted(COLOURS["gradient"]), "penwidth": '"2.5"'}
        if kind == "root":
            attributes.setdefault("penwidth", '"2"')
        if kind == "intermediate" and not name:  # an unnamed step: keep it small, it is only a shape
            attributes |= {"height": '"0.2"', "margin": '"0.06,0.02"', "color": '"#adb5bd"'}
        return f"{node.id} {_attributes(attributes)}"

    def op(self, node: OpNode) -> str:
        attributes = {
            "label": quoted(labels.op_label(node.entry)),
            "shape": '"ellipse"',
            "style": '"filled"',
            "fillcolor": quoted(COLOURS["op"]),
            "fontsize": '"10"',
            "height": '"0.3"',
            "tooltip": quoted(labels.op_tooltip(node.entry, node.position)),
        }
        return f"{node.id} {_attributes(attributes)}"

    def module(self, node: ModuleNode) -> str:
        ops = [entry.op.name for entry in node.entries]
        lines = [f"<B>{html_text(node.path[-1])}</B>", _small(labels.op_summary(ops))]
        tooltip = ["/".join(node.path), f"{labels.op_count(len(ops))}: {', '.join(ops)}"]
        for leaf, name in node.leaves:
            lines.append(_small(labels.leaf_line(leaf, name)))
            tooltip += labels.leaf_tooltip(leaf, name, self.digits)
        attributes = {
            "label": _html(lines),
            "shape": '"box3d"',
            "fillcolor": quoted(COLOURS["module"]),
            "tooltip": quoted(tooltip),
        }
        return f"{node.id} {_attributes(attributes)}"

    def edge(self, edge: Edge) -> str:
        arrow = f"{edge.source} -> {edge.target}"
        if edge.tensor is None:  # an op's output
            return arrow
        if not edge.gradient:
            attributes = {"style": "dashed", "color": "#868e96", "tooltip": "no gradient flows here"}
        elif isinstance(edge.into, ModuleNode):
            size = labels.shape(edge.tensor.shape)
            module = edge.into.path[-1]
            attributes = {"label": f"∇ {size}", "tooltip": f"gradient {size} into {module}"}
        else:
            entry = edge.into.entry
            label, tooltip = labels.gradient_label(entry.op, edge.tensor.shape, entry.output().shape)
            attributes = {"label": label, "tooltip": f"{tooltip}, into {edge.name}"}
        if edge.gradient:
            attributes["fontcolor"] = COLOURS["gradient"]
        return f"{arrow} {_attributes({k: quoted(v) for k, v in attributes.items()})}"


def _small(text: str, colour: str = TEXT_GREY) -> str:
    return f'<FONT POINT-SIZE="9" COLOR="{colour}">{html_text(text)}</FONT>'


def _html(lines: list[str]) -> str:
    return "<" + "<BR/>".join(lines) + ">"


def _attributes(attributes: Mapping[str, str]) -> str:
    """``[key=value ...]`` from values already written as DOT (quoted strings or HTML labels)."""
    return "[" + " ".join(f"{key}={value}" for key, value in attributes.items()) + "]"
