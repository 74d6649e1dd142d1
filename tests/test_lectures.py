"""The makemore lecture notebooks run on tape with the learner's two renames and print what torch prints.

Each notebook runs on torch and on tape in this process, 1000 training steps at most
(``MAX_STEPS``) on every eighth name (``names_subset``), both seeded alike. Every cell that runs on
torch must run on tape, and where both run they must print the same words (sampled names, labels)
and the same numbers within float32 tolerance (``compare_output``: float32 round-off, and one unit
in the last digit printed).

One excuse is allowed, and checked: a cell whose output torch itself changes when its float32
matmul is accumulated in float64 (``float64_matmul``, another valid float32 result) by more than a
tenth of that tolerance is chaotic at this step count, and any correct float32 engine may print
otherwise there. Part 2 trains from an unscaled initialisation: after 1000 steps its losses and
samples depend on round-off. Such a cell has to run; its numbers are not compared. The perturbed
run is only made for a notebook where tape prints otherwise.

The runner's own behaviour (renames, loop cap, error capture, command line) is tested on small
notebooks written here.
"""

import contextlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from experiments import lectures
from experiments.lectures import (
    CellTimeoutError,
    cap_length,
    capped,
    compare_output,
    numbers,
    prepare,
    run_notebook,
    to_tape,
    words,
)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = [
    "makemore_part1_bigrams",
    "makemore_part2_mlp",
    "makemore_part3_bn",
    "makemore_part4_backprop",
    "makemore_part5_cnn1",
]
MAX_STEPS = 1000
SEED = 1234
CELL_TIMEOUT = 120.0  # a sampling `while True` that never samples '.' must not hang the suite
RTOL, ATOL = 1e-4, 1e-6


@contextlib.contextmanager
def one_torch_thread():
    # torch's two-thread pool stalls whenever the other core is busy (this machine has two)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def float64_matmul():
    """torch's float32 `@` accumulated in float64 and rounded: another valid float32 result."""
    original = torch.Tensor.__matmul__

    def matmul(a, b):
        if isinstance(b, torch.Tensor) and a.dtype == b.dtype == torch.float32:
            return original(a.double(), b.double()).float()
        return original(a, b)

    torch.Tensor.__matmul__ = matmul
    try:
        yield
    finally:
        torch.Tensor.__matmul__ = original


@pytest.fixture(scope="module")
def names_subset(tmp_path_factory):
    """Every eighth name: the datasets and the full-split evaluations shrink eightfold."""
    names = lectures.find_data().read_text().splitlines()
    path = tmp_path_factory.mktemp("lectures") / "names.txt"
    path.write_text("\n".join(names[::8]) + "\n")
    return path


@pytest.fixture(scope="module")
def runs(names_subset):
    """runs(name, backend, perturbed=False): each notebook's runs, made once, when first asked for."""
    cache = {}

    def get(name, backend, perturbed=False):
        key = (name, backend, perturbed)
        if key not in cache:
            path = lectures.LECTURES_DIR / f"{name}.ipynb"
            with one_torch_thread(), float64_matmul() if perturbed else contextlib.nullcontext():
                cache[key] = run_notebook(
                    path, backend, MAX_STEPS, names_subset, SEED, cell_timeout=CELL_TIMEOUT
                )
        return cache[key]

    return get


def chaotic(runs, name, index):
    """Whether torch's own output of that cell moves under the float64-matmul perturbation."""
    reference, perturbed = runs(name, "torch").cell(index), runs(name, "torch", perturbed=True).cell(index)
    return (
        not perturbed.ok
        or compare_output(reference.output, perturbed.output, RTOL / 10, ATOL / 10) is not None
    )


def describe(cell):
    return (
        f"cell {cell.index}: {cell.error.summary(cell.index)}"
        if cell.error
        else f"cell {cell.index}: {cell.status}"
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_cell_that_runs_on_torch_runs_on_tape(runs, name):
    torch_run, tape_run = runs(name, "torch"), runs(name, "tape")
    assert torch_run.total == tape_run.total
    assert torch_run.ok_count > 0.8 * torch_run.total, torch_run.table()  # the reference itself runs
    failing = [tape_run.cell(c.index) for c in torch_run.cells if c.ok and not tape_run.cell(c.index).ok]
    if failing:
        pytest.fail(f"{len(failing)} cells fail on tape only:\n" + "\n".join(map(describe, failing)), False)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_tape_prints_the_numbers_and_names_torch_prints(runs, name):
    torch_run, tape_run = runs(name, "torch"), runs(name, "tape")
    mismatches = []
    for reference in torch_run.cells:
        cell = tape_run.cell(reference.index)
        if not (reference.ok and cell.ok):
            continue  # running is the other test's business
        difference = compare_output(reference.output, cell.output, RTOL, ATOL)
        if difference is not None and not chaotic(runs, name, reference.index):
            mismatches.append(f"cell {reference.index}: {difference}\n  torch: {reference.output[:300]!r}")
    if mismatches:
        pytest.fail(f"{len(mismatches)} cells print otherwise on tape:\n" + "\n".join(mismatches), False)


def test_only_part_2s_output_after_training_is_chaotic(runs):
    """The excuse is narrow: in part 2 it covers the losses and samples after training, no more."""
    name = "makemore_part2_mlp"
    excused = [c.index for c in runs(name, "torch").cells if c.ok and chaotic(runs, name, c.index)]
    assert set(excused) <= {30, 31, 35}, excused  # train loss, dev loss, 20 samples


def test_the_compared_output_includes_losses_and_samples(runs):
    """Part 5 prints the step-0 loss, the split losses and 20 names, as the lecture shows them."""
    torch_run = runs("makemore_part5_cnn1", "torch")
    patterns = {
        10: r"^ +0/ 200000: \d\.\d{4}\n$",
        13: r"^train \d\.\d+\nval \d\.\d+\n$",
        14: r"^([a-z]+\.\n){20}$",
    }
    for index, pattern in patterns.items():
        assert re.match(pattern, torch_run.cell(index).output), torch_run.cell(index).output


# ---------------------------------------------------------------------------------------------
# the runner itself


def write_notebook(path, *cells):
    """A minimal nbformat-4 notebook; the markdown cell is not a code cell and is not counted."""
    code = [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": c}
        for c in cells
    ]
    markdown = {"cell_type": "markdown", "metadata": {}, "source": ["# title"]}
    notebook = {"cells": [markdown, *code], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(notebook))
    return path


@pytest.fixture
def names(tmp_path):
    path = tmp_path / "few.txt"
    path.write_text("emma\nolivia\nava\n")
    return path


def run_cells(tmp_path, names, *cells, **kwargs):
    return run_notebook(write_notebook(tmp_path / "nb.ipynb", *cells), data=names, **kwargs)


def test_rename_is_the_learners_two_renames():
    assert to_tape("import torch.nn.functional as F") == "import nn.functional as F"
    assert to_tape("torch.nn.functional.cross_entropy(x, y)") == "nn.functional.cross_entropy(x, y)"
    assert (
        to_tape("import torch\ng = torch.Generator().manual_seed(1)")
        == "import tape\ng = tape.Generator().manual_seed(1)"
    )
    assert (
        to_tape("x = torch.randn((27, 27), dtype=torch.float32)")
        == "x = tape.randn((27, 27), dtype=tape.float32)"
    )
    assert to_tape("(torch.zeros(3),torch.ones(2))") == "(tape.zeros(3),tape.ones(2))"


@pytest.mark.parametrize(
    "source",
    ["import torchvision", "my_torch = 1", "torch_dtype = 2", "x.torch(3)", "pytorch", "torch2 = torch_"],
)
def test_rename_leaves_other_words_alone(source):
    assert to_tape(source) == source


def test_torch_backend_runs_the_code_unchanged_but_for_magics():
    source = "%matplotlib inline\nimport torch.nn.functional as F\n!pip install torch\nx = torch.ones(2)\n"
    assert prepare(source, "torch") == "pass\nimport torch.nn.functional as F\npass\nx = torch.ones(2)\n"
    assert prepare(source, "tape") == "pass\nimport nn.functional as F\npass\nx = tape.ones(2)\n"


def test_a_magic_alone_in_a_block_leaves_valid_code(tmp_path, names):
    run = run_cells(tmp_path, names, "for i in range(2):\n    %time\nprint('done')")
    assert run.cell(1).ok, run.cell(1).error
    assert run.cell(1).stdout == "done\n"


def test_a_training_loop_is_cut_at_a_multiple_of_1000():
    assert cap_length(200_000, 1000) == 1000
    assert cap_length(200_000, 10) == 1000  # lossi.view(-1, 1000) still works afterwards
    assert cap_length(200_000, 2500) == 3000
    assert cap_length(10**9, 5) == 1000
    assert cap_length(1001, 10) == 10  # not a multiple of 1000: cut at N
    assert cap_length(500, 10) == 10
    assert cap_length(32, 1000) == 32  # loops within the cap are untouched
    assert capped(range(5, 10**9, 2), 3) == range(5, 11, 2)  # len 499999998: not a multiple of 1000
    assert capped(range(3, 2003), 1) == range(3, 1003)
    assert capped([1, 2, 3], 1) == [1, 2, 3]  # only ranges


def test_a_billion_step_loop_finishes_and_later_cells_see_the_capped_history(tmp_path, names):
    start = time.perf_counter()
    run = run_cells(
        tmp_path,
        names,
        "lossi = []\nfor i in range(10**9):\n    lossi.append(i)",
        "import numpy as np\nprint(np.array(lossi).reshape(-1, 1000).mean(1))",
        max_steps=5,
    )
    assert time.perf_counter() - start < 10
    assert [c.status for c in run.cells] == ["ok", "ok"], run.table()
    assert run.cell(2).stdout == "[499.5]\n"


def test_range_outside_for_headers_is_untouched(tmp_path, names):
    run = run_cells(
        tmp_path,
        names,
        "n = 50\nxs = list(range(n))\nys = [i for i in range(n)]\nzs = sum(range(n))\nr = range(n)",
        "print(len(xs), len(ys), zs, len(r))",
        "def train(steps):\n    k = 0\n    for _ in range(steps):\n        k += 1\n    return k",
        "print(train(100))",
        "for i in range(3):\n    pass\nprint(i)",
        max_steps=10,
    )
    assert [c.stdout for c in run.cells] == ["", "50 50 1225 50\n", "", "10\n", "2\n"]


def test_without_max_steps_nothing_is_capped(tmp_path, names):
    run = run_cells(tmp_path, names, "k = 0\nfor i in range(2500):\n    k += 1\nprint(k)")
    assert run.cell(1).stdout == "2500\n"


def test_a_failing_cell_is_recorded_and_the_next_cell_runs(tmp_path, names):
    run = run_cells(
        tmp_path,
        names,
        "print('before')\nx = 1 / 0\nprint('after')",
        "words = open('names.txt').read().splitlines()\nprint(len(words))",
        "def f():\n    return {}['missing']\nf()",
        "x = (1,",
    )
    first, second, third, fourth = run.cells
    assert (first.status, first.stdout) == ("error", "before\n")
    assert (first.error.type, first.error.message, first.error.line) == (
        "ZeroDivisionError",
        "division by zero",
        2,
    )
    assert first.error.source_line == "x = 1 / 0"
    assert "<cell 1>" in first.error.traceback and "x = 1 / 0" in first.error.traceback
    assert (second.status, second.stdout) == ("ok", "3\n")  # the working directory holds --data
    assert (third.error.type, third.error.line) == ("KeyError", 2)  # the deepest line of the cell
    assert (fourth.error.type, fourth.error.line) == ("SyntaxError", 1)
    assert (run.ok_count, run.total) == (1, 4)
    assert "1/4 cells ok" in run.summary()


def test_a_failure_inside_a_function_of_an_earlier_cell_points_at_that_cell(tmp_path, names):
    run = run_cells(tmp_path, names, "def init(n):\n    return undefined_name(n)", "x = 1\nw = init(3)")
    error = run.cell(2).error
    assert (error.type, error.cell, error.line, error.source_line) == (
        "NameError",
        1,
        2,
        "    return undefined_name(n)",
    )
    assert error.summary(2).startswith("line 2 of cell 1: return undefined_name(n)  ->  NameError")
    assert error.summary(1).startswith("line 2: return undefined_name(n)")


def test_exit_in_a_cell_ends_the_cell_not_the_run(tmp_path, names):
    run = run_cells(tmp_path, names, "raise SystemExit(3)", "print('still here')")
    assert run.cell(1).error.type == "SystemExit"
    assert run.cell(2).stdout == "still here\n"


def test_a_file_that_is_not_a_notebook_is_refused(tmp_path, names):
    path = tmp_path / "list.ipynb"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a Jupyter notebook"):
        run_notebook(path, data=names)


def test_stop_on_error_skips_the_rest(tmp_path, names):
    run = run_cells(tmp_path, names, "x = 1", "raise ValueError('no')", "print('never')", stop_on_error=True)
    assert [c.status for c in run.cells] == ["ok", "error", "skipped"]
    assert run.cell(3).stdout == ""


def test_a_cell_that_never_ends_times_out(tmp_path, names):
    run = run_cells(tmp_path, names, "while True:\n    pass", "print('next')", cell_timeout=0.5)
    assert run.cell(1).error.type == CellTimeoutError.__name__
    assert run.cell(2).stdout == "next\n"


def test_the_last_expression_is_displayed_unless_the_line_ends_with_a_semicolon(tmp_path, names):
    run = run_cells(tmp_path, names, "x = [1, 2]\nx", "x;", "print('p')\nNone", "x # a comment", "x = 3")
    assert [c.result for c in run.cells] == ["[1, 2]", None, None, "[1, 2]", None]
    assert run.cell(3).output == "p\n"
    assert run.cell(1).output == "[1, 2]\n"


def test_plots_do_not_block_and_the_namespace_is_a_kernels(tmp_path, names):
    run = run_cells(
        tmp_path,
        names,
        "import matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.show()",
        "print(__name__, plt.get_backend())",
    )
    assert [c.status for c in run.cells] == ["ok", "ok"], run.table()
    assert run.cell(2).stdout.lower() == "__main__ agg\n"


def test_a_seeded_run_is_reproducible_in_process(tmp_path, names):
    cells = ("import torch, random\nprint(torch.randn(3), random.random())",)
    first, second = (run_cells(tmp_path, names, *cells, backend="torch", seed=7) for _ in range(2))
    assert first.cell(1).stdout == second.cell(1).stdout
    assert first.cell(1).ok


def test_the_tape_backend_imports_this_checkouts_tape(tmp_path, names):
    run = run_cells(tmp_path, names, "import torch\nprint(torch.__file__)")
    assert run.cell(1).stdout.strip() == str(ROOT / "tape" / "__init__.py"), run.table()


def test_output_comparison_tolerates_round_off_and_repr_details():
    assert compare_output("tensor(2.1260, grad_fn=<NllLossBackward0>)", "tensor(2.1261)") is None
    assert compare_output("tensor([0.6064, 0.3033])", "tensor([0.60640323, 0.30330002])") is None
    assert compare_output("torch.Size([27, 27])", "(27, 27)") is None
    assert compare_output("maxdiff: 5.122274160385132e-09", "maxdiff: 0.0") is None  # round-off itself
    assert compare_output("exact: True  | maxdiff: 0.0", "exact: False | maxdiff: 1e-9") is None
    assert (
        compare_output("<matplotlib.lines.Line2D at 0x7feda5f10250>", "<matplotlib.lines.Line2D at 0x1>")
        is None
    )
    assert compare_output("train 2.0674145221710205", "train 2.0675") is None


def test_output_comparison_catches_real_differences():
    assert compare_output("tensor(2.1260)", "tensor(2.1290)") is not None
    assert compare_output("tensor([1, 2])", "tensor([1, 3])") is not None  # integers are exact
    assert compare_output("mor.\naxx.", "mor.\naxy.") is not None  # sampled names are exact
    assert compare_output("tensor([1, 2])", "tensor([1, 2, 3])") is not None
    assert compare_output("tensor([1, 2], dtype=torch.int32)", "tensor([1, 2])") is not None
    assert compare_output("train 2.0674145221710205", "train 2.0694145221710205") is not None


def test_numbers_and_words_ignore_identifiers_and_addresses():
    text = "log_likelihood=tensor(-559951.5625, grad_fn=<AddBackward0>) float32 Line2D at 0x7f3a -1e-05"
    assert numbers(text) == ["-559951.5625", "-1e-05"]
    assert words(text) == ["log_likelihood", "float32", "Line2D", "at"]


def test_command_line_prints_the_table_and_the_summary(tmp_path, names):
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        "%matplotlib inline\nimport torch\nwords = open('names.txt').read().splitlines()",
        "print(len(words))",
        "1 / 0",
        "for i in range(10**9):\n    pass\ni",
    )
    out = tmp_path / "run.json"
    args = [str(notebook), "--max-steps", "5", "--data", str(names), "--json", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "experiments.lectures", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr  # a cell failed
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["cell", "status", "seconds", "error"]
    assert lines[3].split()[:2] == ["3", "error"] and "ZeroDivisionError: division by zero" in lines[3]
    assert lines[-1].startswith("nb.ipynb on tape: 3/4 cells ok in ")
    result = json.loads(out.read_text())
    assert [c["status"] for c in result["cells"]] == ["ok", "ok", "error", "ok"]
    assert result["cells"][1]["stdout"] == "3\n"
    assert result["cells"][3]["result"] == "999"
    assert result["cells"][0]["source"].startswith("pass\nimport tape\n")


def test_command_line_refuses_a_missing_names_file(tmp_path):
    notebook = write_notebook(tmp_path / "nb.ipynb", "x = 1")
    args = [str(notebook), "--data", str(tmp_path / "missing.txt")]
    done = subprocess.run(
        [sys.executable, "-m", "experiments.lectures", *args], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "names.txt not found" in done.stderr
