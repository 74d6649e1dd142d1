"""viz.render: the file and its format, Graphviz missing, failing, crashing or hanging, graphs too large.

A fake ``dot`` (a shell script first on PATH) stands in for Graphviz where its failures are
tested, so these run in a second without Graphviz; the real one draws the SVG, PNG and PDF.
"""

from __future__ import annotations

import os
import stat
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from viz_graphs import SVG, XLINK, chain, needs_dot, notebook_graph, small_model

from tape import viz

posix_only = pytest.mark.skipif(os.name != "posix", reason="the fake dot is a shell script")


@pytest.fixture
def fake_dot(tmp_path, monkeypatch):
    """Install a ``dot`` that runs ``body`` (sh), first on PATH; returns the directory it logs into."""

    def install(body: str) -> Path:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        script = bin_dir / "dot"
        script.write_text(f"#!/bin/sh\necho $$ > {bin_dir}/pid\n{body}\n")
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
        return bin_dir

    return install


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != "bin")


# ---------------------------------------------------------------- the file and its format


@posix_only
def test_the_format_comes_from_the_extension(tmp_path, fake_dot):
    fake_dot('cat > /dev/null; printf "image for $1"')
    loss = small_model()["loss"]
    for name in ["g.png", "g.pdf", "g.svg", "g.PNG"]:
        assert viz.render(loss, tmp_path / name) == tmp_path / name
        assert (tmp_path / name).read_text() == f"image for -T{name[2:].lower()}"
    assert (tmp_path / "g.dot").read_text() == viz.to_dot(loss)  # the source beside each of them


def test_a_dot_file_gets_the_dot_source_and_graphviz_is_not_needed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    loss = small_model()["loss"]
    assert viz.render(loss, tmp_path / "g.dot") == tmp_path / "g.dot"
    assert (tmp_path / "g.dot").read_text() == viz.to_dot(loss)  # not an SVG written over it
    assert listing(tmp_path) == ["g.dot"]


@posix_only
def test_a_format_for_a_name_without_extension(tmp_path, fake_dot):
    fake_dot('cat > /dev/null; printf "image for $1"')
    viz.render(small_model()["loss"], tmp_path / "graph", format="svg")
    assert (tmp_path / "graph").read_text() == "image for -Tsvg"
    viz.render(small_model()["loss"], tmp_path / "graph.v2", format="svg")  # .v2 is no format: kept
    assert listing(tmp_path) == ["graph", "graph.dot", "graph.v2", "graph.v2.dot"]


@pytest.mark.parametrize(
    ("name", "format", "message"),
    [
        ("g.png", "svg", r"format='svg' contradicts the name 'g\.png'; name the file 'g\.svg'"),
        ("g.dot", "svg", r"format='svg' contradicts the name 'g\.dot'"),
        ("g.svg", "nosuchformat", r"unknown format 'nosuchformat'; render writes svg, png, pdf, dot"),
        ("graph", None, r"cannot tell the format from the name 'graph'; end it with \.svg, \.png"),
        ("g.txt", None, r"cannot tell the format from the name 'g\.txt'"),
    ],
)
def test_a_format_that_does_not_fit_the_name_is_refused_before_anything_is_written(
    tmp_path, name, format, message
):
    with pytest.raises(ValueError, match=message):
        viz.render(small_model()["loss"], tmp_path / name, format=format)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("path", ["", ".", "..", "out/", "out"])
def test_a_directory_is_refused_and_nothing_is_written_beside_it(tmp_path, monkeypatch, path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    with pytest.raises(
        ValueError, match=r"is a directory, not a file: name the file to draw, e\.g\. graph\.svg"
    ):
        viz.render(small_model()["loss"], path)
    assert listing(tmp_path) == ["out"] and listing(tmp_path / "out") == []


# ---------------------------------------------------------------- Graphviz missing, failing, hanging


def test_missing_graphviz_raises_how_to_install_and_still_writes_the_dot_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    m = small_model()
    with pytest.raises(viz.GraphvizNotFoundError) as caught:
        viz.render(m["loss"], tmp_path / "out" / "graph.svg")
    message = str(caught.value)
    assert "apt-get install graphviz" in message and "brew install graphviz" in message
    assert "https://graphviz.org/download/" in message
    assert isinstance(caught.value, viz.RenderError)
    written = tmp_path / "out" / "graph.dot"
    assert written.read_text() == viz.to_dot(m["loss"])
    assert listing(written.parent) == ["graph.dot"]  # no temp files left


@posix_only
def test_a_failing_dot_raises_its_exit_status_and_stderr_and_leaves_no_partial_output(tmp_path, fake_dot):
    fake_dot('cat > /dev/null; printf "partial"; echo "Error: <stdin>: syntax error in line 3" >&2; exit 3')
    with pytest.raises(viz.GraphvizError) as caught:
        viz.render(small_model()["loss"], tmp_path / "graph.svg")
    message = str(caught.value)
    assert message.startswith("render: `dot -Tsvg` on ") and "graph.dot (16 nodes in 4 clusters)" in message
    assert "failed with exit status 3:\nError: <stdin>: syntax error in line 3" in message
    assert caught.value.returncode == 3 and "syntax error" in caught.value.stderr
    assert listing(tmp_path) == ["graph.dot"]


@posix_only
def test_a_crashing_dot_names_the_signal(tmp_path, fake_dot):
    fake_dot("cat > /dev/null; kill -SEGV $$")
    with pytest.raises(
        viz.GraphvizError, match=r"was killed by SIGSEGV \(Graphviz crashes or runs out of memory"
    ):
        viz.render(small_model()["loss"], tmp_path / "graph.svg")
    assert listing(tmp_path) == ["graph.dot"]


@posix_only
def test_a_hanging_dot_is_stopped_after_the_timeout(tmp_path, fake_dot):
    bin_dir = fake_dot("exec sleep 60")
    start = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        viz.render(small_model()["loss"], tmp_path / "graph.svg", timeout=0.5)
    assert time.monotonic() - start < 10
    assert isinstance(caught.value, viz.RenderTimeoutError)
    assert "did not finish within 0.5 s and was stopped" in str(caught.value)
    assert "collapse_modules=True" in str(caught.value) and "timeout=" in str(caught.value)
    with pytest.raises(ProcessLookupError):  # killed, not left running
        os.kill(int((bin_dir / "pid").read_text()), 0)
    assert listing(tmp_path) == ["graph.dot"]


# ---------------------------------------------------------------- graphs too large for Graphviz


@posix_only
def test_a_graph_with_too_many_nodes_is_refused_before_dot_runs(tmp_path, fake_dot):
    bin_dir = fake_dot("exit 1")
    root = chain(5_001)  # 10,003 nodes: past the default limit (dot 2.43 crashes on a chain of 20,000)
    with pytest.raises(viz.GraphTooLargeError) as caught:
        viz.render(root, tmp_path / "graph.svg")
    message = str(caught.value)
    assert "the graph has 10,003 nodes in 0 clusters, more than max_nodes=10,000" in message
    assert "collapse_modules=True" in message and "max_nodes=None" in message
    assert not (bin_dir / "pid").exists()  # Graphviz was never started
    assert listing(tmp_path) == ["graph.dot"]  # the source is there to draw some other way


@posix_only
def test_too_many_module_clusters_are_collapsed_with_a_warning(tmp_path, fake_dot):
    fake_dot('cat > /dev/null; printf "<svg/>"')
    root = chain(501, scoped=True)  # one scope per op: 501 clusters, past the default of 500
    with pytest.warns(
        viz.CollapsedWarning,
        match=r"1,003 nodes in 501 clusters are more .* \(collapse_modules=True\): 1,002 nodes",
    ):
        viz.render(root, tmp_path / "graph.svg")
    dot = (tmp_path / "graph.dot").read_text()
    assert "subgraph" not in dot and dot.count("box3d") == 501
    viz.render(root, tmp_path / "full.svg", max_clusters=None)  # lifted: drawn in full
    assert (tmp_path / "full.dot").read_text().count("subgraph") == 501


@posix_only
def test_limits_can_be_set(tmp_path, fake_dot):
    fake_dot('cat > /dev/null; printf "<svg/>"')
    with pytest.raises(viz.GraphTooLargeError, match="more than max_nodes=5"):
        viz.render(chain(3), tmp_path / "graph.svg", max_nodes=5)
    viz.render(chain(3), tmp_path / "graph.svg", max_nodes=None)
    assert (tmp_path / "graph.svg").read_text() == "<svg/>"


# ---------------------------------------------------------------- real Graphviz


@needs_dot
def test_rendered_svg_has_a_node_per_dot_node_with_titles_text_and_tooltips(tmp_path):
    import re

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
def test_rendered_collapsed_svg_png_and_pdf(tmp_path):
    m = small_model()
    svg = viz.render(m["loss"], tmp_path / "model.svg", collapse_modules=True, title="a small model")
    root = ET.parse(svg).getroot()
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert {"Linear 0", "Tanh 1", "Linear 2", "a small model"} <= texts
    assert viz.render(m["loss"], tmp_path / "model.png").read_bytes().startswith(b"\x89PNG")
    assert viz.render(m["loss"], tmp_path / "model.pdf").read_bytes().startswith(b"%PDF")
    assert listing(tmp_path) == ["model.dot", "model.pdf", "model.png", "model.svg"]
    umask = os.umask(0)
    os.umask(umask)
    for written in tmp_path.iterdir():  # the usual permissions, not a temporary file's 0600
        assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~umask, written
