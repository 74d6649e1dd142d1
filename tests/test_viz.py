"""The graph exporter's DOT: content, op parameters, rounded numbers, determinism, clusters, parity.

Rendering (files, formats, Graphviz failures, size limits) is in test_viz_render.py, escaping in
test_viz_text.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from viz_graphs import edges_from, node_id, node_line, notebook_graph, op_labels, small_model

import tape
from tape import viz
from tape.parity import ParityReport, ParityRow

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
    assert f"∇ (30, 64) ‖∇‖ {norm:.3g}" in node_line(dot, "W1")
    assert "∇ (32, 64) ‖∇‖" in node_line(dot, "hprebn")  # a retained intermediate
    assert f"‖∇‖ {norm:.5g}" in viz.to_dot(after["loss"], names=after, digits=5)


# ---------------------------------------------------------------- op parameters


def test_ops_are_labelled_with_their_parameters_while_the_tape_holds_them():
    out = notebook_graph(retain_graph=True)  # backward keeps what the ops saved
    labels = op_labels(viz.to_dot(out["loss"], names=out))
    assert labels == op_labels(viz.to_dot(notebook_graph(backward=False)["loss"]))  # as before backward
    assert "pow(•, -0.5)" in labels  # bnvar_inv = (bnvar + 1e-5) ** -0.5
    assert "pow(•, 2)" in labels and "pow(•, -1)" in labels
    assert labels.count("sum(•, dim=0, keepdim=True)") == 2 and "sum(•, dim=1, keepdim=True)" in labels
    assert "max_dim(•, dim=1, keepdim=True)" in labels  # not its saved argmax: that is no parameter
    assert "gather(•, index=int64[32, 3])" in labels  # C[Xb]
    assert "gather(•, index=(int64[32], int64[32]))" in labels  # logprobs[range(n), Yb]
    assert "mean(•, dim=0)" in labels  # keepdim=False is the default: not shown
    assert "tanh" in labels and "matmul" in labels  # nothing to add


def test_after_backward_frees_the_tape_ops_keep_their_parameters():
    out = notebook_graph()  # backpropagated without retain_graph: every saved array is freed
    assert "(freed)" in str(tape.wengert_list(out["loss"]))
    dot = viz.to_dot(out["loss"], names=out)
    labels = op_labels(dot)
    assert "sum(•, dim=0, keepdim=True)" in labels
    assert "pow(•, -0.5)" in labels  # bnvar_inv = (bnvar + eps)**-0.5: the exponent survives backward
    assert "gather(•, index=int64[32, 3])" in labels  # the index array is freed, its shape is not
    assert "max_dim(•, dim=1, keepdim=True)" in labels
    assert "freed" not in dot


def test_op_parameters_of_other_ops():
    x = tape.tensor(np.arange(24.0).reshape(2, 3, 4), requires_grad=True)
    ops = [
        (x.permute(2, 0, 1), "transpose(•, axes=(2, 0, 1))"),
        (x.flip(0), "flip(•, dim=0)"),
        (x.cumsum(2), "cumsum(•, dim=2)"),
        (x.sum(dim=(0, 2)), "sum(•, dim=(0, 2))"),
        (x[0].tril(1), "tril(•, diagonal=1)"),
        (x[:, 1:, ::2], "gather(•, index=(:, 1:, ::2))"),
    ]
    for t, label in ops:
        assert label in op_labels(viz.to_dot(t)), (label, op_labels(viz.to_dot(t)))


# ---------------------------------------------------------------- numbers


def test_numbers_are_rounded_so_that_rounding_noise_does_not_show():
    out = notebook_graph()
    dot = viz.to_dot(out["loss"], names=out)
    # b1's gradient is batchnorm cancelling it: 7e-09 on one CPU, 6e-09 on another
    b1 = node_line(dot, "b1")
    assert "∇ (64,) ‖∇‖ ≈ 0" in b1 and "too small to change the values (it cancelled out" in b1
    assert np.linalg.norm(out["b1"].grad.numpy()) < 1e-7
    # a mean that cancels out (bndiff = hprebn - its mean) is 0 to the precision of its values
    assert "value: mean 0, std 1.53," in node_line(dot, "bndiff")
    assert f"= {out['loss'].item():.3g}<" in node_line(dot, "loss")  # 0-d values: 3 significant digits
    assert "‖∇‖ ≈ 0" not in node_line(dot, "W1")


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
    # the mean to 3 digits of the largest magnitude (1.11: two decimals), the rest to 3 digits
    assert f"value: mean {value.mean():.2f}, std {value.std():.3g}" in tooltip
    assert f"min {value.min():.3g}, max {value.max():.3g}" in tooltip
    assert f"grad: mean {grad.mean():.4f}, std {grad.std():.3g}" in tooltip


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


def test_the_exporter_reads_no_private_field_of_another_module():
    import ast

    for module in Path(viz.__file__).parent.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                assert isinstance(node.value, ast.Name) and node.value.id == "self", (module.name, node.attr)
            if isinstance(node, ast.ImportFrom) and node.module and not node.module.startswith("tape.viz"):
                private = [alias.name for alias in node.names if alias.name.startswith("_")]
                assert not private, (module.name, node.module, private)


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
        from viz_graphs import notebook_graph, small_model
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
