"""The graph exporter: DOT content, determinism, clusters, parity colours and rendered SVG structure."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import tape
from experiments import notebook
from tape import viz
from tape.parity import ParityReport, ParityRow

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"

# rendering tests run for real in CI (which installs Graphviz); elsewhere they skip without `dot`
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None and not os.environ.get("CI"),
    reason="Graphviz `dot` is not installed (CI installs it and runs these tests)",
)


def notebook_graph(backward: bool = True, retain: bool = True) -> dict:
    """The notebook's forward pass (float32), after backward with every intermediate retained."""
    out = notebook.run(tape)
    if retain:
        for t in out.values():
            if isinstance(t, tape.Tensor) and not t.is_leaf:
                t.retain_grad()
    if backward:
        out["loss"].backward()
    return out


def node_line(dot: str, name: str) -> str:
    """The DOT statement of the tensor node labelled ``name``."""
    (line,) = [line for line in dot.splitlines() if f"<B>{name}</B>" in line and "->" not in line]
    return line


def node_id(dot: str, name: str) -> str:
    return node_line(dot, name).split()[0]


def edges_from(dot: str, source: str) -> list[str]:
    return [line.strip() for line in dot.splitlines() if line.strip().startswith(f"{source} -> ")]


def small_model():
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


# ---------------------------------------------------------------- DOT content


def test_every_named_tensor_appears_with_its_shape_and_dtype():
    out = notebook_graph()
    dot = viz.to_dot(out["loss"], names=out)  # locals(): `lib` and `n` are not tensors, ignored
    for name in ["C", "W1", "b1", "emb", "embcat", "hprebn", "bnvar_inv", "logits", "probs", "loss"]:
        t = out[name]
        assert f"float32 {tuple(t.shape)}" in node_line(dot, name)
    assert "float32 (32, 64)" in node_line(dot, "hprebn")
    assert "float32 (64,)" in node_line(dot, "b1")


def test_one_node_per_op_with_forward_op_names():
    out = notebook_graph()
    dot = viz.to_dot(out["loss"], names=out)
    op_nodes = re.findall(r'^\s*(op\d+) \[label="([^"]+)"', dot, flags=re.MULTILINE)
    assert len(op_nodes) == len(tape.wengert_list(out["loss"]))
    op_names = {label.split("(")[0] for _, label in op_nodes}
    assert {"matmul", "add", "tanh", "sum", "max_dim", "gather", "exp", "log", "mean"} <= op_names
    # constant operands are shown in place
    assert 'label="mul(0.03125, •)"' in dot and 'label="add(•, 1e-05)"' in dot


def test_broadcast_bias_edge_shows_the_gradient_summed_from_the_output_gradient():
    out = notebook_graph()
    dot = viz.to_dot(out["loss"], names=out)
    (b1_edge,) = edges_from(dot, node_id(dot, "b1"))
    assert 'label="∇ (64,) = Σ (32, 64)"' in b1_edge
    (w1_edge,) = edges_from(dot, node_id(dot, "W1"))
    assert 'label="∇ (30, 64) from (32, 64)"' in w1_edge  # matmul: computed, not summed
    hprebn_edges = edges_from(dot, node_id(dot, "hprebn"))
    assert any('label="∇ (32, 64)"' in e for e in hprebn_edges)


def test_gradient_shape_and_norm_appear_after_backward_only():
    before = notebook_graph(backward=False)
    dot = viz.to_dot(before["loss"], names=before)
    assert "‖∇‖" not in dot
    after = notebook_graph()
    dot = viz.to_dot(after["loss"], names=after)
    norm = float(np.linalg.norm(after["W1"].grad.numpy().astype(np.float64)))
    assert f"∇ (30, 64) ‖∇‖ {norm:.4g}" in node_line(dot, "W1")
    assert "∇ (32, 64) ‖∇‖" in node_line(dot, "hprebn")  # a retained intermediate


def test_leaves_parameters_and_intermediates_look_different():
    m = small_model()
    dot = viz.to_dot(m["loss"], names={"x": m["x"], "loss": m["loss"]})
    fill = lambda name: re.search(r'fillcolor="(#\w+)"', node_line(dot, name)).group(1)
    assert fill("0.weight") == viz.COLOURS["parameter"]
    assert fill("x") == viz.COLOURS["data"]
    assert fill("loss") == viz.COLOURS["root"]
    unnamed = [line for line in dot.splitlines() if "(output of add)" in line]
    assert unnamed and viz.COLOURS["intermediate"] in unnamed[0]
    # the data input carries no gradient: a dashed edge without a label
    (x_edge,) = edges_from(dot, node_id(dot, "x"))
    assert "dashed" in x_edge and "label=" not in x_edge


def test_names_override_a_tensors_own_name_and_non_tensors_are_ignored():
    m = small_model()
    dot = viz.to_dot(m["loss"])
    assert "<B>0.weight</B>" in dot  # the tensor's .name, as nn sets it
    dot = viz.to_dot(m["loss"], names={"W_in": m["w0"], "n": 3, "lib": tape, "arr": np.ones(2)})
    assert "<B>W_in</B>" in dot and "<B>0.weight</B>" not in dot


def test_tooltips_carry_value_and_gradient_statistics():
    out = notebook_graph()
    dot = viz.to_dot(out["loss"], names=out)
    w1 = out["W1"]
    tooltip = re.search(r'tooltip="([^"]*)"', node_line(dot, "W1")).group(1)
    value, grad = w1.array.astype(np.float64), w1.grad.numpy().astype(np.float64)
    assert f"value: mean {value.mean():.4g}, std {value.std():.4g}" in tooltip
    assert f"min {value.min():.4g}, max {value.max():.4g}" in tooltip
    assert f"grad: mean {grad.mean():.4g}, std {grad.std():.4g}" in tooltip


def test_the_exporter_does_not_change_the_tape():
    out = notebook_graph(retain=False)
    loss = out["loss"]
    entries = tape.wengert_list(loss).entries
    before = [(e.retain, e.saved, e.scope, e.inputs, e.edges) for e in entries]
    tensors = [t for t in out.values() if isinstance(t, tape.Tensor)]
    grads = [None if t.grad is None else t.grad.numpy().copy() for t in tensors]
    datas = [t.array.copy() for t in tensors]
    viz.to_dot(loss, names=out, collapse_modules=True)
    assert [(e.retain, e.saved, e.scope, e.inputs, e.edges) for e in entries] == before
    for t, g, d in zip(tensors, grads, datas):
        assert (t.grad is None) == (g is None)
        if g is not None:
            np.testing.assert_array_equal(t.grad, g)
        np.testing.assert_array_equal(t.array, d)
    assert all(not e.retain for e in entries)


def test_a_leaf_root_is_one_node():
    x = tape.tensor([1.0, 2.0], requires_grad=True)
    dot = viz.to_dot(x, names={"x": x})
    assert "<B>x</B>" in dot and "->" not in dot


# ---------------------------------------------------------------- determinism


def test_same_program_gives_identical_dot_in_one_process():
    first, second = notebook_graph(), notebook_graph()
    assert viz.to_dot(first["loss"], names=first) == viz.to_dot(second["loss"], names=second)


def test_same_program_gives_byte_identical_dot_in_two_processes(tmp_path):
    program = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        from test_viz import notebook_graph, small_model
        from tape import viz
        out = notebook_graph()
        m = small_model()
        sys.stdout.buffer.write(viz.to_dot(out["loss"], names=out).encode())
        sys.stdout.buffer.write(viz.to_dot(m["loss"], collapse_modules=True).encode())
        """
    )
    tests = str(Path(__file__).parent)
    runs = [
        subprocess.run(
            [sys.executable, "-c", program, tests],
            capture_output=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    ]
    assert runs[0] == runs[1] and len(runs[0]) > 1000
    assert b"0x" not in runs[0]  # no id() or addresses leak into the output


# ---------------------------------------------------------------- modules


def test_scopes_become_nested_clusters():
    m = small_model()
    dot = viz.to_dot(m["loss"])
    lines = [line.strip() for line in dot.splitlines()]
    labels = [
        re.search(r'label="([^"]+)"', line).group(1) for line in lines if line.startswith("graph [label=")
    ]
    assert labels == ["Sequential", "Linear 0", "Tanh 1", "Linear 2"]
    # Linear 0 is nested in Sequential and holds its parameters and ops; the final mul is outside
    body = dot[dot.index("subgraph cluster_0") :]
    linear0 = body[body.index('label="Linear 0"') : body.index('label="Tanh 1"')]
    assert "<B>0.weight</B>" in linear0 and "<B>0.bias</B>" in linear0 and 'label="matmul"' in linear0
    depth, depth_of_mul = 0, None
    for line in lines:
        depth += line.count("{") - line.count("}")
        if 'label="mul"' in line:
            depth_of_mul = depth
    assert depth_of_mul == 1  # only inside `digraph {`


def test_collapse_modules_draws_each_module_as_one_node():
    m = small_model()
    dot = viz.to_dot(m["loss"], names={"x": m["x"], "loss": m["loss"]}, collapse_modules=True)
    modules = re.findall(r"^\s*(module\d+) \[label=<<B>([^<]+)</B>", dot, flags=re.MULTILINE)
    assert [name for _, name in modules] == ["Linear 0", "Tanh 1", "Linear 2"]
    assert 'label="matmul"' not in dot and 'label="tanh"' not in dot  # inner ops are folded
    linear0 = node_line(dot, "Linear 0")
    assert "2 ops: matmul, add" in linear0 and "0.weight (4, 5), ∇ (4, 5)" in linear0
    assert "subgraph" not in dot  # flat: Graphviz lays out thousands of module nodes in seconds
    # the data input stays outside and enters the first module; module outputs link modules
    (x_edge,) = edges_from(dot, node_id(dot, "x"))
    assert x_edge.startswith(f"{node_id(dot, 'x')} -> {modules[0][0]} ")
    tanh_inputs = [line for line in dot.splitlines() if f"-> {modules[1][0]} " in line]
    assert len(tanh_inputs) == 1 and 'label="∇ (8, 5)"' in tanh_inputs[0]
    # collapsing at depth 1 makes the whole Sequential one node
    dot1 = viz.to_dot(m["loss"], collapse_modules=1)
    assert "subgraph" not in dot1 and "4 ops: 2× matmul, add, tanh" in node_line(dot1, "Sequential")


def test_real_nn_model_is_drawn_with_module_clusters():
    import nn

    g = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(4, 5, generator=g), nn.Tanh(), nn.Linear(5, 3, generator=g))
    loss = (model(tape.tensor(g.standard_normal((8, 4)), dtype=tape.float32)) ** 2).mean()
    loss.backward()
    dot = viz.to_dot(loss)
    assert "subgraph cluster_" in dot
    for name, _ in model.named_parameters():
        assert f"<B>{name}</B>" in dot
    collapsed = viz.to_dot(loss, collapse_modules=True)
    assert collapsed.count("box3d") >= 3


# ---------------------------------------------------------------- parity colours


def test_parity_report_colours_matching_gradients_green_and_wrong_ones_red():
    out = notebook_graph()

    def row(name: str, maxdiff: float, ok: bool) -> ParityRow:
        return ParityRow(name, tuple(out[name].shape), 0.0, ok, ok, maxdiff, 1.0)

    report = ParityReport([row("W1", 0.0, True), row("b1", 0.5, False), row("h", 0.0, True)], np.float32)
    dot = viz.to_dot(out["loss"], names=out, parity=report)
    assert f'fillcolor="{viz.COLOURS["parity_ok"]}"' in node_line(dot, "W1")
    assert f'fillcolor="{viz.COLOURS["parity_ok"]}"' in node_line(dot, "h")
    b1 = node_line(dot, "b1")
    assert f'fillcolor="{viz.COLOURS["parity_bad"]}"' in b1 and "DOES NOT match torch, maxdiff 0.5" in b1
    assert f'fillcolor="{viz.COLOURS["parameter"]}"' in node_line(dot, "W2")  # no row: usual colour


# ---------------------------------------------------------------- rendering


@needs_dot
def test_rendered_svg_has_a_node_per_dot_node_with_titles_text_and_tooltips(tmp_path):
    out = notebook_graph()
    path = viz.render(out["loss"], tmp_path / "graph.svg", names=out)
    assert path == tmp_path / "graph.svg"
    dot = (tmp_path / "graph.dot").read_text()
    root = ET.parse(path).getroot()
    nodes = [g for g in root.iter(f"{SVG}g") if g.get("class") == "node"]
    dot_nodes = re.findall(r"^\s*(\w+) \[label=", dot, flags=re.MULTILINE)
    assert sorted(n.find(f"{SVG}title").text for n in nodes) == sorted(dot_nodes)
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert {"W1", "b1", "hprebn", "loss", "matmul", "∇ (64,) = Σ (32, 64)"} <= texts
    tooltips = [a.get(f"{XLINK}title") for a in root.iter(f"{SVG}a")]
    assert any(t and t.startswith("W1: float32 (30, 64)") and "\ngrad: mean" in t for t in tooltips)
    edges = [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]
    assert len(edges) == len(re.findall(r" -> ", dot))


@needs_dot
def test_rendered_collapsed_svg_and_other_formats(tmp_path):
    m = small_model()
    svg = viz.render(m["loss"], tmp_path / "model.svg", collapse_modules=True, title="a small model")
    root = ET.parse(svg).getroot()
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert {"Linear 0", "Tanh 1", "Linear 2", "a small model"} <= texts
    png = viz.render(m["loss"], tmp_path / "model.png", format="png")
    assert png.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.dot", "model.png", "model.svg"]
    umask = os.umask(0)
    os.umask(umask)
    for written in tmp_path.iterdir():  # the usual permissions, not a temporary file's 0600
        assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~umask, written


def test_missing_graphviz_raises_how_to_install_and_still_writes_the_dot_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    m = small_model()
    with pytest.raises(viz.GraphvizNotFoundError) as caught:
        viz.render(m["loss"], tmp_path / "out" / "graph.svg")
    message = str(caught.value)
    assert "apt-get install graphviz" in message and "brew install graphviz" in message
    assert "https://graphviz.org/download/" in message
    written = tmp_path / "out" / "graph.dot"
    assert written.read_text() == viz.to_dot(m["loss"])
    assert sorted(p.name for p in written.parent.iterdir()) == ["graph.dot"]  # no temp files left


@needs_dot
def test_a_failing_dot_leaves_no_partial_output(tmp_path, monkeypatch):
    m = small_model()
    monkeypatch.setattr(viz, "to_dot", lambda *args, **kwargs: "digraph { a -> }")  # a syntax error
    with pytest.raises(RuntimeError, match=r"`dot -Tsvg` failed on .*graph\.dot:\n.*syntax error"):
        viz.render(m["loss"], tmp_path / "graph.svg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.dot"]


def test_an_unknown_format_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"render: unknown format 'nosuchformat'; Graphviz writes \[.*'svg'"):
        viz.render(small_model()["loss"], tmp_path / "graph.x", format="nosuchformat")
    assert not list(tmp_path.iterdir())
