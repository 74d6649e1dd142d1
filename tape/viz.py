"""The graph exporter: the recorded tape drawn as DOT and, through Graphviz, as SVG.

    from tape import viz
    loss.backward()
    viz.render(loss, "graph.svg", names=locals())

One node per tensor (name, shape, dtype; after backward its gradient's shape and norm) and one
per op. The edge from a tensor into an op is labelled with the gradient that flows back along
it, so broadcasting shows: the bias ``b1`` (64,) receives ``∇ (64,) = Σ (32, 64)``, its
gradient summed from the op's (32, 64) output gradient. Hovering (SVG tooltips) gives value and
gradient statistics. Entries recorded inside ``tape.scope`` (every nn module call) are drawn
as nested clusters, or with ``collapse_modules=True`` as one node per module.

The exporter only reads the tape: it never changes a tensor or an entry. Node ids come from
the tape order, never from ``id()``, so the same program gives byte-identical DOT. ``to_dot``
needs nothing but NumPy; ``render`` runs the Graphviz ``dot`` program.
"""

from __future__ import annotations

import html
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tape.atomic import write_bytes, write_text
from tape.op import Op
from tape.tensor import Tensor
from tape.wengert import Entry, ancestors

__all__ = ["GraphvizNotFoundError", "render", "to_dot"]

FONT = "Helvetica,Arial,sans-serif"

# fill colours: what a node *is* reads at a glance, before any label is read
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
CLUSTER_FILLS = ("#f8f9fa", "#eef2f6")  # alternate with depth so nested modules stand apart


class GraphvizNotFoundError(RuntimeError):
    """The Graphviz ``dot`` program is not on PATH (the DOT source was written anyway)."""


def to_dot(
    root: Tensor | Sequence[Tensor],
    names: Mapping[str, Any] | None = None,
    *,
    parity: Any = None,
    collapse_modules: bool | int = False,
    rankdir: str = "TB",
    title: str | None = None,
) -> str:
    """The DOT source of everything ``root`` (a tensor or several) depends on.

    ``names`` maps names to tensors (``locals()`` works: anything that is not a tensor is
    ignored) and wins over a tensor's own ``.name``. ``parity`` is a
    ``tape.parity.ParityReport``: tensors with a row are filled green where the gradient
    matches torch and red where it does not. ``collapse_modules=True`` draws each innermost
    ``tape.scope`` (each nn module) as one node; an int ``d`` collapses at depth ``d``
    (1: each top-level module). ``rankdir`` is Graphviz's: "TB" top to bottom, "LR" left to right.
    ``title`` is drawn above the graph.
    """
    roots = (root,) if isinstance(root, Tensor) else tuple(root)
    return _Drawing(roots, names or {}, parity, collapse_modules).dot(rankdir, title)


def render(
    root: Tensor | Sequence[Tensor],
    path: str | os.PathLike,
    names: Mapping[str, Any] | None = None,
    format: str = "svg",
    **options: Any,
) -> Path:
    """Draw ``root``'s graph into ``path`` with Graphviz ``dot``; returns ``path``.

    The DOT source is written beside it (``path`` with the suffix ``.dot``), so a missing
    Graphviz still leaves something to render elsewhere. ``options`` are ``to_dot``'s. Both
    files are written atomically: a temporary file in the same directory, then a rename.
    """
    import graphviz  # the Python package drives the binary; imported here so tape loads without it

    if format not in graphviz.FORMATS:
        raise ValueError(f"render: unknown format {format!r}; Graphviz writes {sorted(graphviz.FORMATS)}")
    path = Path(path)
    dot_path = path.with_suffix(".dot")
    source = to_dot(root, names, **options)
    write_text(dot_path, source)
    if format == "dot":
        return dot_path
    try:
        drawing = graphviz.pipe("dot", format, source.encode("utf-8"))
    except graphviz.ExecutableNotFound:
        raise GraphvizNotFoundError(
            f"render: the Graphviz program `dot` is not on PATH, so {path} was not drawn; the DOT "
            f"source is in {dot_path}. Install Graphviz (Debian/Ubuntu: `apt-get install graphviz`, "
            "macOS: `brew install graphviz`, others: https://graphviz.org/download/) and run "
            f"render again, or draw it yourself: dot -T{format} {dot_path} -o {path}"
        ) from None
    except graphviz.CalledProcessError as e:
        detail = (e.stderr or b"").decode("utf-8", "replace").strip()
        raise RuntimeError(f"render: `dot -T{format}` failed on {dot_path}:\n{detail}") from None
    write_bytes(path, drawing)
    return path


# ---------------------------------------------------------------- building the drawing


class _Drawing:
    """Nodes, edges and clusters for one graph, decided from the tape before any DOT is written.

    Tensors are looked up by ``id()`` while drawing (they are all alive: the roots hold
    them), but the ids that reach the DOT are positions in the tape order.
    """

    def __init__(
        self,
        roots: tuple[Tensor, ...],
        names: Mapping[str, Any],
        parity: Any,
        collapse: bool | int,
    ) -> None:
        self.roots = roots
        self.root_ids = {id(t) for t in roots}
        self.names: dict[int, str] = {}
        for name, value in names.items():
            if isinstance(value, Tensor):
                self.names.setdefault(id(value), name)
        self.parity = {row.name: row for row in parity} if parity is not None else {}
        self.entries = ancestors(roots)
        self.collapse = collapse

        self.nodes: dict[tuple[str, ...], list[str]] = {}  # cluster path -> node statements
        self.edges: list[str] = []
        self.cluster_ids: dict[tuple[str, ...], int] = {}
        self.tensor_ids: dict[int, str] = {}
        self.tensors: list[Tensor] = []
        self._number_tensors()
        self.group = [self._group_of(entry, i) for i, entry in enumerate(self.entries)]
        self.readers = self._readers()
        self.producer = {id(e.output()): group for e, group in zip(self.entries, self.group)}
        self._draw()

    # ------------------------------------------------------------ tape order and grouping
    def _number_tensors(self) -> None:
        """Tensor ids in the order the tape first mentions them: inputs, then the output."""
        for entry in self.entries:
            for x in entry.inputs:
                if isinstance(x, Tensor):
                    self._tensor_id(x)
            self._tensor_id(entry.output())
        for t in self.roots:
            self._tensor_id(t)

    def _tensor_id(self, t: Tensor) -> str:
        key = id(t)
        if key not in self.tensor_ids:
            self.tensor_ids[key] = f"t{len(self.tensors)}"
            self.tensors.append(t)
        return self.tensor_ids[key]

    def _group_of(self, entry: Entry, position: int) -> str:
        """The node an entry is drawn in: its own op node, or its collapsed module's node."""
        key = self._module_key(entry)
        if key is None:
            return f"op{position}"
        return f"module{self._cluster_id(key)}"

    def _module_key(self, entry: Entry) -> tuple[str, ...] | None:
        if not self.collapse or entry.scope is None:
            return None
        path = self._scope_path(entry)
        depth = len(path) if self.collapse is True else int(self.collapse)
        return path[:depth]

    def _cluster_id(self, path: tuple[str, ...]) -> int:
        """Clusters (and collapsed modules) are numbered by their first appearance on the tape."""
        for depth in range(1, len(path) + 1):
            self.cluster_ids.setdefault(path[:depth], len(self.cluster_ids))
        return self.cluster_ids[path]

    def _readers(self) -> dict[int, list[tuple[Entry, str]]]:
        """For each tensor, the entries that read it and their nodes, in tape order."""
        readers: dict[int, list[tuple[Entry, str]]] = {}
        for entry, group in zip(self.entries, self.group):
            for x in entry.inputs:
                if isinstance(x, Tensor):
                    readers.setdefault(id(x), []).append((entry, group))
        return readers

    def _folded_into(self, t: Tensor) -> str | None:
        """The collapsed module a parameter is drawn inside of, when only that module reads it."""
        groups = {group for _, group in self.readers.get(id(t), ())}
        if t.grad_fn is not None or not t.requires_grad or id(t) in self.root_ids or len(groups) != 1:
            return None
        (reader,) = groups
        return reader if reader.startswith("module") else None

    # ------------------------------------------------------------ nodes and edges
    def _draw(self) -> None:
        """Nodes in tape order (an op's new inputs, the op, its output), so the layout follows it."""
        modules = self._module_contents()
        drawn: set[str] = set()  # node ids already emitted
        crossing: set[tuple[int, str]] = set()  # (tensor, module) edges already drawn
        for position, (entry, group) in enumerate(zip(self.entries, self.group)):
            for x in entry.inputs:
                if isinstance(x, Tensor):
                    self._draw_tensor(x, drawn)
            if group not in drawn:
                drawn.add(group)
                if group in modules:
                    key = modules[group]["key"]
                    self._add_node(key[:-1], self._module_statement(group, key, modules[group]))
                else:
                    self._add_node(self._node_cluster(entry), _op_statement(group, entry, position))
            self._input_edges(entry, group, crossing)
            out = entry.output()
            if self._visible(out):
                self._draw_tensor(out, drawn)
                self.edges.append(f"{group} -> {self.tensor_ids[id(out)]}")
        for t in self.roots:  # a root that is a leaf has no entry
            self._draw_tensor(t, drawn)

    def _module_contents(self) -> dict[str, dict[str, Any]]:
        """For each collapsed module: its scope path, its ops and the parameters only it reads."""
        modules: dict[str, dict[str, Any]] = {}
        for entry, group in zip(self.entries, self.group):
            if group.startswith("module"):
                contents = modules.setdefault(
                    group, {"key": self._module_key(entry), "ops": [], "leaves": []}
                )
                contents["ops"].append(entry.op.name)
        for t in self.tensors:
            folded = self._folded_into(t)
            if folded is not None:
                modules[folded]["leaves"].append(t)
        return modules

    def _draw_tensor(self, t: Tensor, drawn: set[str]) -> None:
        node_id = self.tensor_ids[id(t)]
        if node_id not in drawn and self._visible(t):
            drawn.add(node_id)
            self._add_node(self._tensor_cluster(t), self._tensor_statement(t))

    def _visible(self, t: Tensor) -> bool:
        """Whether a tensor gets its own node: a collapsed module's internals do not."""
        made_by = self.producer.get(id(t))
        if made_by is None:
            return self._folded_into(t) is None
        if made_by.startswith("op"):
            return True
        return id(t) in self.root_ids or any(group != made_by for _, group in self.readers.get(id(t), ()))

    def _input_edges(self, entry: Entry, group: str, crossing: set[tuple[int, str]]) -> None:
        """One edge per tensor input, labelled with the gradient that flows back along it."""
        out = entry.output()
        carries_gradient = _gradient_positions(entry)
        for k, x in enumerate(entry.inputs):
            if not isinstance(x, Tensor):
                continue
            if group.startswith("module"):
                # inside a collapsed module only the tensors crossing its border are edges
                if self.producer.get(id(x)) == group or self._folded_into(x) == group:
                    continue
                if (id(x), group) in crossing:
                    continue
                crossing.add((id(x), group))
                module = self._module_key(entry)[-1]
                label, tooltip = f"∇ {_shape(x.shape)}", f"gradient {_shape(x.shape)} into {module}"
            else:
                label, tooltip = _gradient_label(entry.op, x.shape, out.shape)
                tooltip = f"{tooltip}, into {self._name(x) or 'input ' + str(k)}"
            if k in carries_gradient:
                attributes = {"label": label, "tooltip": tooltip, "fontcolor": COLOURS["gradient"]}
            else:
                attributes = {"style": "dashed", "color": "#868e96", "tooltip": "no gradient flows here"}
            self.edges.append(f"{self.tensor_ids[id(x)]} -> {group} {_attributes(attributes)}")

    def _add_node(self, cluster: tuple[str, ...], statement: str) -> None:
        if self.collapse:
            # a collapsed drawing is flat: each module is already one node, and Graphviz lays
            # out a cluster of thousands of nodes in minutes where the flat graph takes a second
            cluster = ()
        if cluster:
            self._cluster_id(cluster)
        self.nodes.setdefault(cluster, []).append(statement)

    def _scope_path(self, entry: Entry) -> tuple[str, ...]:
        return tuple(entry.scope.split("/")) if entry.scope else ()

    def _node_cluster(self, entry: Entry) -> tuple[str, ...]:
        """The cluster of the node an entry is drawn in (a collapsed module sits in its parent)."""
        key = self._module_key(entry)
        return key[:-1] if key is not None else self._scope_path(entry)

    def _tensor_cluster(self, t: Tensor) -> tuple[str, ...]:
        """An op's output sits in the op's scope; a parameter in the scope of all its readers."""
        if t.grad_fn is not None:
            return self._node_cluster(t.grad_fn)
        readers = [entry for entry, _ in self.readers.get(id(t), ())]
        if not t.requires_grad or not readers:
            return ()
        paths = [self._node_cluster(entry) for entry in readers]
        common = paths[0]
        for p in paths[1:]:
            n = 0
            while n < min(len(common), len(p)) and common[n] == p[n]:
                n += 1
            common = common[:n]
        return common

    def _name(self, t: Tensor) -> str | None:
        return self.names.get(id(t)) or t.name

    # ------------------------------------------------------------ statements
    def _tensor_statement(self, t: Tensor) -> str:
        name = self._name(t)
        node_id = self.tensor_ids[id(t)]
        kind = _kind(t, id(t) in self.root_ids)
        lines = [f"<B>{_escape(name)}</B>"] if name else []
        lines.append(_small(f"{t.dtype} {_shape(t.shape)}"))
        if t.ndim == 0 and t.dtype.kind in "fiub":
            lines.append(_small(f"= {_number(t.item())}"))
        if t.grad is not None:
            norm = float(np.linalg.norm(np.asarray(t.grad, dtype=np.float64).ravel()))
            lines.append(_small(f"∇ {_shape(np.shape(t.grad))} ‖∇‖ {_number(norm)}", COLOURS["gradient"]))
        attributes = {
            "label": "<" + "<BR/>".join(lines) + ">",
            "fillcolor": COLOURS[kind],
            "tooltip": self._tensor_tooltip(t, name, kind),
        }
        row = self.parity.get(name) if name else None
        if row is not None and row.grad_approx is not None:
            attributes["fillcolor"] = COLOURS["parity_ok" if row.ok else "parity_bad"]
            if not row.ok:
                attributes |= {"color": COLOURS["gradient"], "penwidth": "2.5"}
        if kind == "root":
            attributes.setdefault("penwidth", "2")
        if kind == "intermediate" and not name:  # an unnamed step: keep it small, it is only a shape
            attributes |= {"height": "0.2", "margin": "0.06,0.02", "color": "#adb5bd"}
        return f"{node_id} {_attributes(attributes, html_label=True)}"

    def _tensor_tooltip(self, t: Tensor, name: str | None, kind: str) -> str:
        made_by = f"output of {t.grad_fn.op.name}" if t.grad_fn is not None else kind
        lines = [f"{name or 'unnamed'}: {t.dtype} {_shape(t.shape)} ({made_by})"]
        lines.append("value: " + _statistics(t.array))
        if t.grad is not None:
            lines.append("grad: " + _statistics(t.grad))
        elif t.requires_grad:
            lines.append("grad: not kept (call retain_grad() before backward for intermediates)")
        row = self.parity.get(name) if name else None
        if row is not None:
            verdict = "matches torch" if row.ok else "DOES NOT match torch"
            lines.append(f"parity: gradient {verdict}, maxdiff {_number(row.grad_maxdiff)}")
        return "\n".join(lines)

    def _module_statement(self, group: str, key: tuple[str, ...], parts: dict[str, Any]) -> str:
        ops = parts["ops"]
        counted = f"{len(ops)} op{'s' if len(ops) > 1 else ''}"
        lines = [f"<B>{_escape(key[-1])}</B>", _small(f"{counted}: {_summary(ops)}")]
        tooltip = ["/".join(key), f"{counted}: {', '.join(ops)}"]
        for leaf in parts["leaves"]:
            name = self._name(leaf) or "unnamed"
            grad = f", ∇ {_shape(np.shape(leaf.grad))}" if leaf.grad is not None else ""
            lines.append(_small(f"{name} {_shape(leaf.shape)}{grad}"))
            tooltip.append(f"{name} value: {_statistics(leaf.array)}")
            if leaf.grad is not None:
                tooltip.append(f"{name} grad: {_statistics(leaf.grad)}")
        attributes = {
            "label": "<" + "<BR/>".join(lines) + ">",
            "shape": "box3d",
            "fillcolor": COLOURS["module"],
            "tooltip": "\n".join(tooltip),
        }
        return f"{group} {_attributes(attributes, html_label=True)}"

    # ------------------------------------------------------------ output
    def dot(self, rankdir: str, title: str | None) -> str:
        lines = [
            "digraph tape {",
            f'  graph [rankdir={rankdir} fontname="{FONT}" nodesep=0.25 ranksep=0.3 newrank=true]',
            f'  node [fontname="{FONT}" fontsize=11 shape=box style="rounded,filled" margin="0.1,0.04"]',
            f'  edge [fontname="{FONT}" fontsize=9 arrowsize=0.6 color="#495057"]',
        ]
        lines += self._cluster_lines((), "  ")
        lines += [f"  {edge}" for edge in self.edges]
        if title:  # last, so that clusters do not inherit it
            lines.append(f"  graph [label={_quote(title)} labelloc=t fontsize=14]")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _cluster_lines(self, path: tuple[str, ...], indent: str, children: dict | None = None) -> list[str]:
        if children is None:  # clusters holding a node, and their parents: empty ones are not drawn
            children = {}
            for held in sorted((p for p in self.nodes if p), key=self.cluster_ids.__getitem__):
                for depth in range(len(held)):
                    siblings = children.setdefault(held[:depth], [])
                    if held[: depth + 1] not in siblings:
                        siblings.append(held[: depth + 1])
        lines = [f"{indent}{statement}" for statement in self.nodes.get(path, [])]
        for child in sorted(children.get(path, []), key=self.cluster_ids.__getitem__):
            fill = CLUSTER_FILLS[len(path) % len(CLUSTER_FILLS)]
            lines.append(f"{indent}subgraph cluster_{self.cluster_ids[child]} {{")
            lines.append(
                f"{indent}  graph [label={_quote(child[-1])} tooltip={_quote('/'.join(child))} "
                f'style="rounded,filled" fillcolor="{fill}" color="#adb5bd" fontsize=12 labeljust=l]'
            )
            lines += self._cluster_lines(child, indent + "  ", children)
            lines.append(f"{indent}}}")
        return lines


# ---------------------------------------------------------------- small pieces


def _gradient_positions(entry: Entry) -> set[int]:
    """The input positions a gradient flows back to (each edge keeps its input's position)."""
    return {k for k, _, _ in entry.edges}


def _gradient_label(op: Op, input_shape: tuple, output_shape: tuple) -> tuple[str, str]:
    """Edge label and tooltip for the gradient into an input, from the shapes alone."""
    shape_in, shape_out = _shape(input_shape), _shape(output_shape)
    if input_shape == output_shape:
        return f"∇ {shape_in}", f"gradient {shape_in}"
    if op.broadcasts:  # declared by the op: the sweep sums its gradient over the broadcast axes
        return (
            f"∇ {shape_in} = Σ {shape_out}",
            f"gradient {shape_in}: the {shape_out} gradient of the output summed over the broadcast axes",
        )
    return (
        f"∇ {shape_in} from {shape_out}",
        f"gradient {shape_in}, computed from the {shape_out} output gradient",
    )


def _op_statement(node_id: str, entry: Entry, position: int) -> str:
    """An op node: its name, with any constant operands in place (``mul(0.03125, •)``)."""
    label = entry.op.name
    if any(not isinstance(x, Tensor) for x in entry.inputs):
        label += "(" + ", ".join("•" if isinstance(x, Tensor) else _constant(x) for x in entry.inputs) + ")"
    scope = f" in {entry.scope}" if entry.scope else ""
    attributes = {
        "label": label,
        "shape": "ellipse",
        "style": "filled",
        "fillcolor": COLOURS["op"],
        "fontsize": "10",
        "height": "0.3",
        "tooltip": f"tape entry {position}: {entry.op.name}{scope}",
    }
    return f"{node_id} {_attributes(attributes)}"


def _kind(t: Tensor, is_root: bool) -> str:
    if is_root:
        return "root"
    if t.grad_fn is not None:
        return "intermediate"
    return "parameter" if t.requires_grad else "data"


def _statistics(array: Any) -> str:
    values = np.asarray(array)
    if values.size == 0:
        return "empty"
    values = values.astype(np.float64)
    return (
        f"mean {_number(values.mean())}, std {_number(values.std())}, "
        f"min {_number(values.min())}, max {_number(values.max())}"
    )


def _summary(op_names: Iterable[str]) -> str:
    counts = Counter(op_names)  # first-seen order, as the ops were recorded
    return ", ".join(name if n == 1 else f"{n}× {name}" for name, n in counts.items())


def _shape(shape: tuple) -> str:
    return str(tuple(int(n) for n in shape))


def _number(x: float) -> str:
    return f"{float(x):.4g}"


def _constant(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{list(value.shape)}"
    if isinstance(value, float):
        return _number(value)
    return repr(value)


def _small(text: str, colour: str = "#495057") -> str:
    return f'<FONT POINT-SIZE="9" COLOR="{colour}">{_escape(text)}</FONT>'


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _quote(text: str) -> str:
    """A DOT double-quoted string; newlines become DOT's centred line break."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attributes(attributes: Mapping[str, str], html_label: bool = False) -> str:
    parts = []
    for key, value in attributes.items():
        literal = value if key == "label" and html_label else _quote(value)
        parts.append(f"{key}={literal}")
    return "[" + " ".join(parts) + "]"
