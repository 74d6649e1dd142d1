"""The drawing as data: the nodes, edges and clusters of a graph, decided from the tape alone.

``build`` walks the entries the roots depend on through the tape's public accessors (a
tensor's ``grad_fn``, ``requires_grad``, ``name``; an entry's ``inputs``, ``edges``,
``output()``, ``scope``) and never changes them. Nothing here knows DOT: ``tape.viz.dot``
writes a ``Drawing``. Tensors are looked up by ``id()`` while building (they are all alive:
the roots hold them), but the ids that reach the drawing are positions in the tape order
(``t3``, ``op7``, ``module2``), so the same program gives the same drawing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tape.tensor import Tensor
from tape.wengert import Entry, ancestors

Cluster = tuple[str, ...]  # a scope path, ("Sequential", "Linear 2"); () is the top level


@dataclass(frozen=True)
class TensorNode:
    id: str
    tensor: Tensor
    name: str | None
    kind: str  # "parameter", "data", "intermediate" or "root"
    cluster: Cluster


@dataclass(frozen=True)
class OpNode:
    id: str
    entry: Entry
    position: int  # the entry's line in print(tape.wengert_list(root))
    cluster: Cluster


@dataclass
class ModuleNode:
    """A collapsed module: its ops and the parameters only it reads, drawn as one node."""

    id: str
    path: Cluster
    cluster: Cluster
    entries: list[Entry] = field(default_factory=list)
    leaves: list[tuple[Tensor, str | None]] = field(default_factory=list)


Node = TensorNode | OpNode | ModuleNode


@dataclass(frozen=True)
class Edge:
    """Forward: input -> op, op -> output. An input edge carries the input's gradient back."""

    source: str
    target: str
    tensor: Tensor | None = None  # the input, on an input edge
    name: str | None = None  # the input's name
    into: Node | None = None  # the op or module reading it
    gradient: bool = False  # whether a gradient flows back along it


@dataclass
class Drawing:
    nodes: list[Node]
    edges: list[Edge]
    cluster_ids: dict[Cluster, int]  # numbered by first appearance on the tape
    flat: bool  # collapsed drawings have no clusters

    def clusters(self) -> list[Cluster]:
        """The clusters drawn: those holding a node, and their parents, in tape order."""
        held = {node.cluster[:depth] for node in self.nodes for depth in range(1, len(node.cluster) + 1)}
        return sorted(held, key=self.cluster_ids.__getitem__)


def build(roots: Sequence[Tensor], names: Mapping[str, Any], collapse: bool | int) -> Drawing:
    """The drawing of everything ``roots`` depend on; ``collapse`` as ``to_dot``'s ``collapse_modules``."""
    if isinstance(collapse, int) and not isinstance(collapse, bool) and collapse < 0:
        raise ValueError(f"collapse_modules: a depth must be 1 or more, got {collapse}")
    return _Builder(tuple(roots), names, collapse).drawing()


class _Builder:
    def __init__(self, roots: tuple[Tensor, ...], names: Mapping[str, Any], collapse: bool | int) -> None:
        self.roots = roots
        self.root_ids = {id(t) for t in roots}
        self.names: dict[int, str] = {}
        for name, value in names.items():
            if isinstance(value, Tensor):
                self.names.setdefault(id(value), name)
        self.collapse = collapse
        self.entries = ancestors(roots)
        self.cluster_ids: dict[Cluster, int] = {}
        self.tensor_ids: dict[int, str] = {}
        self.tensors: list[Tensor] = []
        self._number_tensors()
        self.group = [self._group_of(entry, i) for i, entry in enumerate(self.entries)]
        self.readers = self._readers()
        self.producer = {id(e.output()): group for e, group in zip(self.entries, self.group)}
        self.modules = self._modules()
        self.edges: list[Edge] = []

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
        if id(t) not in self.tensor_ids:
            self.tensor_ids[id(t)] = f"t{len(self.tensors)}"
            self.tensors.append(t)
        return self.tensor_ids[id(t)]

    def _group_of(self, entry: Entry, position: int) -> str:
        """The node an entry is drawn in: its own op node, or its collapsed module's node."""
        key = self._module_key(entry)
        return f"op{position}" if key is None else f"module{self._cluster_id(key)}"

    def _module_key(self, entry: Entry) -> Cluster | None:
        if not self.collapse or entry.scope is None:
            return None
        path = _scope_path(entry)
        depth = len(path) if self.collapse is True else int(self.collapse)
        return path[:depth]

    def _cluster_id(self, path: Cluster) -> int:
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

    def _modules(self) -> dict[str, ModuleNode]:
        """Each collapsed module with its entries and the parameters only it reads."""
        modules: dict[str, ModuleNode] = {}
        for entry, group in zip(self.entries, self.group):
            if group.startswith("module"):
                if group not in modules:
                    modules[group] = ModuleNode(group, self._module_key(entry), cluster=())  # flat
                modules[group].entries.append(entry)
        for t in self.tensors:
            folded = self._folded_into(t)
            if folded is not None:
                modules[folded].leaves.append((t, self._name(t)))
        return modules

    # ------------------------------------------------------------ nodes and edges
    def drawing(self) -> Drawing:
        """Nodes in tape order (an op's new inputs, the op, its output), so the layout follows it."""
        drawn: dict[str, Node] = {}
        crossing: set[tuple[int, str]] = set()  # (tensor, module) edges already drawn
        for position, (entry, group) in enumerate(zip(self.entries, self.group)):
            for x in entry.inputs:
                if isinstance(x, Tensor):
                    self._add_tensor(x, drawn)
            if group not in drawn:
                self._add(
                    self.modules.get(group) or OpNode(group, entry, position, self._op_cluster(entry)), drawn
                )
            self._input_edges(entry, drawn[group], crossing)
            out = entry.output()
            if self._visible(out):
                self._add_tensor(out, drawn)
                self.edges.append(Edge(group, self.tensor_ids[id(out)]))
        for t in self.roots:  # a root that is a leaf has no entry
            self._add_tensor(t, drawn)
        return Drawing(list(drawn.values()), self.edges, self.cluster_ids, flat=bool(self.collapse))

    def _add(self, node: Node, drawn: dict[str, Node]) -> None:
        drawn[node.id] = node
        if node.cluster:
            self._cluster_id(node.cluster)

    def _add_tensor(self, t: Tensor, drawn: dict[str, Node]) -> None:
        node_id = self.tensor_ids[id(t)]
        if node_id not in drawn and self._visible(t):
            kind = _kind(t, id(t) in self.root_ids)
            self._add(TensorNode(node_id, t, self._name(t), kind, self._tensor_cluster(t)), drawn)

    def _visible(self, t: Tensor) -> bool:
        """Whether a tensor gets its own node: a collapsed module's internals do not."""
        made_by = self.producer.get(id(t))
        if made_by is None:
            return self._folded_into(t) is None
        if made_by.startswith("op"):
            return True
        return id(t) in self.root_ids or any(group != made_by for _, group in self.readers.get(id(t), ()))

    def _input_edges(self, entry: Entry, into: Node, crossing: set[tuple[int, str]]) -> None:
        """One edge per tensor input; into a collapsed module, only those crossing its border."""
        carries_gradient = {k for k, _, _ in entry.edges}  # each edge keeps its input's position
        for k, x in enumerate(entry.inputs):
            if not isinstance(x, Tensor):
                continue
            if isinstance(into, ModuleNode):
                inside = self.producer.get(id(x)) == into.id or self._folded_into(x) == into.id
                if inside or (id(x), into.id) in crossing:
                    continue
                crossing.add((id(x), into.id))
            name = self._name(x) or f"input {k}"
            self.edges.append(Edge(self.tensor_ids[id(x)], into.id, x, name, into, k in carries_gradient))

    # ------------------------------------------------------------ clusters
    def _op_cluster(self, entry: Entry) -> Cluster:
        """The cluster an entry's node sits in. A collapsed drawing is flat: each module is
        already one node, and Graphviz lays out a cluster of thousands of nodes in minutes
        where the flat graph takes a second."""
        return () if self.collapse else _scope_path(entry)

    def _tensor_cluster(self, t: Tensor) -> Cluster:
        """An op's output sits in the op's scope; a parameter in the scope of all its readers."""
        if t.grad_fn is not None:
            return self._op_cluster(t.grad_fn)
        readers = [entry for entry, _ in self.readers.get(id(t), ())]
        if not t.requires_grad or not readers:
            return ()
        paths = [self._op_cluster(entry) for entry in readers]
        common = paths[0]
        for p in paths[1:]:
            n = 0
            while n < min(len(common), len(p)) and common[n] == p[n]:
                n += 1
            common = common[:n]
        return common

    def _name(self, t: Tensor) -> str | None:
        return self.names.get(id(t)) or t.name


def _scope_path(entry: Entry) -> Cluster:
    return tuple(entry.scope.split("/")) if entry.scope else ()


def _kind(t: Tensor, is_root: bool) -> str:
    if is_root:
        return "root"
    if t.grad_fn is not None:
        return "intermediate"
    return "parameter" if t.requires_grad else "data"
