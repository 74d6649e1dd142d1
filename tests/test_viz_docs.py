"""docs/graph.md: its commands run as written, and redrawing the notebook graph leaves docs/ unchanged."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from viz_graphs import SVG, needs_dot

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "graph.md").read_text()
COMMITTED_DOT = ROOT / "docs" / "notebook_graph.dot"


def draw_command() -> list[str]:
    (command,) = re.findall(r"^    (python .*draw_notebook_graph.*)$", PAGE, flags=re.MULTILINE)
    return shlex.split(command)


def run_from_root(command: list[str], tmp_path: Path, **env: str) -> Path:
    """``command`` run as a reader would, from the repository, writing the DOT source into tmp_path."""
    out = tmp_path / "notebook_graph.dot"
    argv = [sys.executable if command[0] == "python" else command[0], *command[1:], "--out", str(out)]
    subprocess.run(argv, cwd=ROOT, env={**os.environ, **env}, check=True, capture_output=True)
    return out


def test_the_draw_command_runs_as_written_and_gives_the_committed_drawing(tmp_path):
    assert draw_command() == ["python", "-m", "experiments.draw_notebook_graph"]
    drawn = run_from_root(draw_command(), tmp_path)
    assert drawn.read_text() == COMMITTED_DOT.read_text(), "run python -m experiments.draw_notebook_graph"


def test_the_drawing_is_the_same_with_another_cpus_kernels(tmp_path):
    # OpenBLAS (NumPy's BLAS) picks kernels by CPU; the float32 matmuls then differ in their last bits
    drawn = run_from_root(draw_command(), tmp_path, OPENBLAS_CORETYPE="Prescott")
    assert drawn.read_text() == COMMITTED_DOT.read_text()


def test_the_committed_svg_shows_the_op_parameters():
    root = ET.parse(ROOT / "docs" / "notebook_graph.svg").getroot()
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert {"pow(•, -0.5)", "sum(•, dim=0, keepdim=True)", "gather(•, index=int64[32, 3])"} <= texts
    assert "∇ (64,) ‖∇‖ ≈ 0" in texts  # b1: rounding noise, not digits that differ between machines


@needs_dot
def test_the_example_at_the_top_of_graph_md_runs_as_written(tmp_path):
    example = re.search(r"```python\n(.*?)```", PAGE, flags=re.DOTALL).group(1)
    subprocess.run(
        [sys.executable, "-c", example],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
        capture_output=True,
    )
    assert (tmp_path / "graph.svg").read_text().lstrip().startswith("<?xml")
    assert "pow(•, 2)" in (tmp_path / "graph.dot").read_text()
