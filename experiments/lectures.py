"""Run Karpathy's makemore lecture notebooks cell by cell, on tape or on torch, like a kernel.

    python -m experiments.lectures ../shared/reference/lectures/makemore_part2_mlp.ipynb
    python -m experiments.lectures NOTEBOOK.ipynb --backend torch --max-steps 1000 --json run.json

On tape, a cell's code gets the learner's two renames and nothing else: ``torch.nn.functional``
-> ``nn.functional``, then ``torch`` -> ``tape``. Every code cell runs in one shared namespace; a
failing cell is recorded and the next one runs, as it would in Jupyter. The value of a cell's last
expression is shown (its ``repr``) unless the line ends with ``;``, as IPython does.

``--max-steps N`` caps every ``for ... in range(T)`` statement with T > N so that a notebook runs in
seconds: it runs N iterations, or N rounded up to a multiple of 1000 when T is a multiple of 1000.
The notebooks train for a multiple of 1000 steps and afterwards average the per-step losses in
rows of 1000 (``torch.tensor(lossi).view(-1, 1000).mean(1)``), which the shorter list must still
allow. The loop's header is wrapped by a helper at run time, since T is only known then; ``range``
anywhere else (``logprobs[range(n), Yb]``, comprehensions) is left alone.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import functools
import importlib
import io
import json
import linecache
import math
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import tokenize
import traceback
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LECTURES_DIR = PROJECT_ROOT.parent / "shared" / "reference" / "lectures"
DATA_CANDIDATES = (PROJECT_ROOT / "data" / "names.txt", PROJECT_ROOT.parent / "shared" / "data" / "names.txt")
BACKENDS = ("tape", "torch")
CAP_BLOCK = 1000  # the notebooks group per-step statistics in rows of this many steps
CAP_HELPER = "__lectures_cap__"  # the name the rewritten loop headers call

_FUNCTIONAL = re.compile(r"(?<![\w.])torch\.nn\.functional(?!\w)")
_TORCH = re.compile(r"(?<![\w.])torch(?!\w)")
_MAGIC = re.compile(r"^(\s*)[%!].*$", re.MULTILINE)
_CELL_FILE = re.compile(r"<cell (\d+)>")


@dataclasses.dataclass
class CellError:
    type: str
    message: str
    cell: int  # the code cell holding the failing line: a function defined earlier may fail later
    line: int | None  # 1-based line in that cell
    source_line: str | None  # that line of the executed (renamed) code
    traceback: str

    def summary(self, index: int | None = None) -> str:
        """One line; names the cell holding the failing line when it is not ``index``."""
        where = ""
        if self.source_line:
            cell = f" of cell {self.cell}" if self.cell != index else ""
            where = f"line {self.line}{cell}: {self.source_line.strip()}  ->  "
        first = self.message.splitlines()[0] if self.message else ""
        return f"{where}{self.type}: {first}"


@dataclasses.dataclass
class CellResult:
    index: int  # 1-based among the notebook's code cells
    source: str  # the code that ran: magics stripped, renamed for tape
    status: str  # "ok", "error" or "skipped" (after an error with stop_on_error)
    seconds: float = 0.0
    stdout: str = ""
    stderr: str = ""
    result: str | None = None  # repr of the last expression, as Jupyter's Out[n]
    error: CellError | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def output(self) -> str:
        """What a learner sees under the cell: the printed text, then the displayed value."""
        return self.stdout + (self.result + "\n" if self.result is not None else "")


@dataclasses.dataclass
class NotebookRun:
    notebook: str
    backend: str
    max_steps: int | None
    seed: int | None
    seconds: float = 0.0
    cells: list[CellResult] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)  # problems outside the cells

    @property
    def ok_count(self) -> int:
        return sum(cell.ok for cell in self.cells)

    @property
    def total(self) -> int:
        return len(self.cells)

    def cell(self, index: int) -> CellResult:
        return self.cells[index - 1]

    def failed(self) -> list[CellResult]:
        return [cell for cell in self.cells if cell.status == "error"]

    def summary(self) -> str:
        name = Path(self.notebook).name
        return f"{name} on {self.backend}: {self.ok_count}/{self.total} cells ok in {self.seconds:.1f} s"

    def table(self) -> str:
        lines = [f"{'cell':>4}  {'status':7} {'seconds':>8}  error"]
        for cell in self.cells:
            error = cell.error.summary(cell.index) if cell.error else ""
            lines.append(f"{cell.index:>4}  {cell.status:7} {cell.seconds:8.2f}  {error[:160]}")
        return "\n".join(lines + self.notes)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class CellTimeoutError(Exception):
    """A cell ran longer than ``cell_timeout`` seconds (a sampling loop that never ends, say)."""


# ---------------------------------------------------------------------------------------------
# from notebook to code


def code_cells(path: str | os.PathLike) -> list[str]:
    """The source of every code cell, in order (nbformat 4: ``source`` is a string or lines)."""
    notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(notebook, dict) or "cells" not in notebook:
        raise ValueError(f"{path} is not a Jupyter notebook in nbformat 4")
    sources = (cell.get("source", "") for cell in notebook["cells"] if cell.get("cell_type") == "code")
    return [src if isinstance(src, str) else "".join(src) for src in sources]


def strip_magics(source: str) -> str:
    # `pass` keeps an indented block that held only a magic a valid block
    return _MAGIC.sub(lambda m: f"{m.group(1)}pass", source)


def to_tape(source: str) -> str:
    """The learner's two renames; an attribute (``x.torch``) or ``torchvision`` is not the module."""
    return _TORCH.sub("tape", _FUNCTIONAL.sub("nn.functional", source))


def prepare(source: str, backend: str) -> str:
    source = strip_magics(source)
    return to_tape(source) if backend == "tape" else source


# ---------------------------------------------------------------------------------------------
# capping loops


def cap_length(trips: int, max_steps: int) -> int:
    """How many of ``trips`` iterations a capped loop runs (see the module docstring)."""
    if trips <= max_steps:
        return trips
    if trips % CAP_BLOCK:
        return max_steps
    return min(trips, -(-max_steps // CAP_BLOCK) * CAP_BLOCK)


def capped(iterable: Iterable[Any], max_steps: int) -> Iterable[Any]:
    # the header is wrapped whatever `range` names at run time: only a real range is capped
    if isinstance(iterable, range):
        return iterable[: cap_length(len(iterable), max_steps)]
    return iterable


class _LoopCapper(ast.NodeTransformer):
    def visit_For(self, node: ast.For) -> ast.For:
        self.generic_visit(node)
        it = node.iter
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range":
            helper = ast.Name(id=CAP_HELPER, ctx=ast.Load())
            node.iter = ast.copy_location(ast.Call(func=helper, args=[it], keywords=[]), it)
        return node


def cap_loops(tree: ast.Module) -> ast.Module:
    return ast.fix_missing_locations(_LoopCapper().visit(tree))


# ---------------------------------------------------------------------------------------------
# running one cell


def _quiet(source: str) -> bool:
    """IPython does not display the last value when the cell's last token is ``;``."""
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in skip]
    except (tokenize.TokenError, SyntaxError):
        return False
    tokens = [t for t in tokens if t.type != tokenize.ENDMARKER]
    return bool(tokens) and tokens[-1].string == ";"


def compile_cell(source: str, filename: str, max_steps: int | None) -> tuple[Any, Any | None]:
    """The cell's statements, and its last expression apart when Jupyter would display it."""
    tree = ast.parse(source, filename)
    if max_steps is not None:
        tree = cap_loops(tree)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not _quiet(source):
        last = compile(ast.Expression(tree.body.pop().value), filename, "eval")
    return compile(tree, filename, "exec"), last


def _cell_file(index: int) -> str:
    return f"<cell {index}>"


def _error(exc: BaseException, index: int) -> CellError:
    cell, line = index, None
    if isinstance(exc, SyntaxError) and exc.filename == _cell_file(index):
        line = exc.lineno
    for frame in traceback.extract_tb(exc.__traceback__):
        match = _CELL_FILE.fullmatch(frame.filename)
        if match:  # the deepest notebook line is the call that failed, whichever cell holds it
            cell, line = int(match.group(1)), frame.lineno
    source_line = linecache.getline(_cell_file(cell), line).rstrip("\n") if line else None
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return CellError(type(exc).__name__, str(exc), cell, line, source_line or None, text)


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    # SIGALRM interrupts pure-Python loops; it exists only on POSIX and in the main thread
    usable = (
        seconds and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise CellTimeoutError(f"the cell ran longer than {seconds} s")

    handler = signal.signal(signal.SIGALRM, interrupt)
    delay, interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, handler)
        if delay:  # someone else's alarm (pytest-timeout, say) was running: give back what is left
            signal.setitimer(signal.ITIMER_REAL, max(delay - (time.monotonic() - start), 1e-3), interval)


def run_cell(
    source: str,
    namespace: dict[str, Any],
    index: int,
    max_steps: int | None = None,
    cell_timeout: float | None = None,
) -> CellResult:
    """Run prepared code in ``namespace``; an exception becomes the result's ``error``."""
    filename = _cell_file(index)
    # tracebacks (and _error) show the cell's lines, as they do in Jupyter
    lines = [line + "\n" for line in source.splitlines()]
    linecache.cache[filename] = (len(source), None, lines, filename)
    cell = CellResult(index=index, source=source, status="ok")
    stdout, stderr = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    try:
        with (
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(stderr),
            _warnings_to_stderr(),
            _time_limit(cell_timeout),
        ):
            body, last = compile_cell(source, filename, max_steps)
            exec(body, namespace)
            if last is not None:
                value = eval(last, namespace)
                cell.result = None if value is None else repr(value)
    except (Exception, SystemExit) as exc:  # exit() in a cell ends the cell, not the kernel
        cell.status, cell.error = "error", _error(exc, index)
    cell.seconds = time.perf_counter() - start
    cell.stdout, cell.stderr = stdout.getvalue(), stderr.getvalue()
    _close_figures()
    return cell


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    # Jupyter shows a cell's warnings under it; a test runner may have replaced showwarning
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        yield


def _show_warning(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _close_figures() -> None:
    # the inline backend closes a cell's figures once shown; without that they pile up
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


# ---------------------------------------------------------------------------------------------
# running a notebook


def find_data(data: str | os.PathLike | None = None) -> Path:
    candidates = [Path(data)] if data is not None else list(DATA_CANDIDATES)
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"names.txt not found at {', '.join(map(str, candidates))} (pass --data PATH)")


@contextlib.contextmanager
def _kernel(data: Path) -> Iterator[None]:
    """A scratch working directory holding names.txt, non-blocking plots, tape importable."""
    cwd, path = os.getcwd(), list(sys.path)
    show = None
    with tempfile.TemporaryDirectory(prefix="lectures-") as workdir:
        shutil.copyfile(data, Path(workdir) / "names.txt")
        with contextlib.suppress(ImportError):
            import matplotlib

            matplotlib.use("Agg", force=True)
            import matplotlib.pyplot as plt

            show, plt.show = plt.show, lambda *args, **kwargs: None
        # after the chdir, '' on sys.path no longer finds this checkout's tape and nn
        sys.path.insert(0, str(PROJECT_ROOT))
        os.chdir(workdir)
        try:
            yield
        finally:
            os.chdir(cwd)
            sys.path[:] = path
            if show is not None:
                plt.show = show
            _close_figures()


def _seed(backend: str, seed: int, notes: list[str]) -> None:
    # in-process runs follow each other, so global generators are reset as a fresh kernel would be
    random.seed(seed)
    try:
        importlib.import_module(backend).manual_seed(seed)
    except Exception as exc:
        notes.append(f"could not seed {backend}: {type(exc).__name__}: {exc}")


def run_notebook(
    path: str | os.PathLike,
    backend: str = "tape",
    max_steps: int | None = None,
    data: str | os.PathLike | None = None,
    seed: int | None = None,
    stop_on_error: bool = False,
    cell_timeout: float | None = None,
) -> NotebookRun:
    """Run every code cell of the notebook at ``path`` in one namespace and return the results.

    ``seed`` seeds Python's ``random`` and the backend's global generator before the first cell
    (``torch.manual_seed``/``tape.manual_seed``): the notebooks draw from the global generator
    without seeding it in places, and runs to be compared must start from the same state.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    run = NotebookRun(str(path), backend, max_steps, seed)
    sources = [prepare(src, backend) for src in code_cells(path)]
    namespace: dict[str, Any] = {"__name__": "__main__"}
    if max_steps is not None:
        namespace[CAP_HELPER] = functools.partial(capped, max_steps=max_steps)
    start = time.perf_counter()
    with _kernel(find_data(data)):
        if seed is not None:
            _seed(backend, seed, run.notes)
        for index, source in enumerate(sources, start=1):
            if stop_on_error and run.failed():
                run.cells.append(CellResult(index=index, source=source, status="skipped"))
                continue
            run.cells.append(run_cell(source, namespace, index, max_steps, cell_timeout))
    run.seconds = time.perf_counter() - start
    return run


# ---------------------------------------------------------------------------------------------
# comparing what two runs printed

_HEX = re.compile(r"0x[0-9a-fA-F]+")  # object addresses in reprs: differ from run to run
_ANNOTATION = re.compile(r"grad_fn=<\w+>|requires_grad=True")  # autograd bookkeeping, engine-specific
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?!\w)")
_WORD = re.compile(r"[A-Za-z_]\w*")
# the library's name and tensor-repr vocabulary, and booleans: `exact: True` in the backprop
# notebook says whether two float32 computations agree bit for bit, which may differ between
# engines whose results both agree within round-off
_IGNORED_WORDS = {"torch", "tape", "tensor", "Size", "dtype", "True", "False"}


def _clean(text: str) -> str:
    return _ANNOTATION.sub(" ", _HEX.sub(" ", text))


def numbers(text: str) -> list[str]:
    """The numbers in printed text, as written (the digits shown set the tolerance)."""
    return _NUMBER.findall(_clean(text))


def words(text: str) -> list[str]:
    """The words in printed text (sampled names, labels), without numbers and repr vocabulary."""
    return [w for w in _WORD.findall(_NUMBER.sub(" ", _clean(text))) if w not in _IGNORED_WORDS]


def _unit(number: str) -> float:
    """One unit in the last printed digit: a value rounded for printing can differ by this much."""
    mantissa, _, exponent = number.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals) if "." in mantissa else 0.0


def _is_integer(number: str) -> bool:
    return not any(c in number for c in ".eE")


def numbers_agree(expected: str, actual: str, rtol: float, atol: float) -> bool:
    if _is_integer(expected) and _is_integer(actual):
        return int(expected) == int(actual)  # counts, shapes, indices, sampled indices: exact
    a, b = float(actual), float(expected)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= atol + rtol * abs(b) + max(_unit(expected), _unit(actual))


def compare_output(expected: str, actual: str, rtol: float = 1e-4, atol: float = 1e-6) -> str | None:
    """None if ``actual`` prints the same words and numbers within tolerance, else the first difference.

    ``atol`` covers quantities that are float32 round-off themselves (a max difference of 5e-9,
    a sum that should be 0); ``rtol`` the accumulated round-off of a trained float32 network.
    """
    expected_words, actual_words = words(expected), words(actual)
    if expected_words != actual_words:
        return _first_difference("words", expected_words, actual_words)
    expected_numbers, actual_numbers = numbers(expected), numbers(actual)
    if len(expected_numbers) != len(actual_numbers):
        return f"{len(expected_numbers)} numbers expected, {len(actual_numbers)} printed"
    for i, (e, a) in enumerate(zip(expected_numbers, actual_numbers)):
        if not numbers_agree(e, a, rtol, atol):
            return f"number {i + 1} of {len(expected_numbers)}: expected {e}, printed {a}"
    return None


def _first_difference(what: str, expected: list[str], actual: list[str]) -> str:
    for i, (e, a) in enumerate(zip(expected, actual)):
        if e != a:
            return f"{what} differ at {i + 1}: expected {e!r}, printed {a!r}"
    return f"{len(expected)} {what} expected, {len(actual)} printed"


# ---------------------------------------------------------------------------------------------
# command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.lectures", description=__doc__.split("\n")[0]
    )
    parser.add_argument("notebook", type=Path, help=f"a .ipynb file (the lectures are in {LECTURES_DIR})")
    parser.add_argument("--backend", choices=BACKENDS, default="tape")
    parser.add_argument("--max-steps", type=int, default=None, metavar="N", help="cap long range loops")
    parser.add_argument("--data", type=Path, default=None, help="names.txt (default: data/names.txt)")
    parser.add_argument("--seed", type=int, default=None, help="seed random and the backend first")
    parser.add_argument("--cell-timeout", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--stop-on-error", action="store_true", help="skip the cells after a failure")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write every cell's result")
    args = parser.parse_args(argv)
    if args.max_steps is not None and args.max_steps < 1:
        parser.error("--max-steps must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run = run_notebook(
            args.notebook,
            args.backend,
            args.max_steps,
            args.data,
            args.seed,
            args.stop_on_error,
            args.cell_timeout,
        )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(run.table())
    print(run.summary())
    if args.json is not None:
        args.json.write_text(json.dumps(run.to_json(), indent=1) + "\n", encoding="utf-8")
    return 0 if run.ok_count == run.total else 1


if __name__ == "__main__":
    sys.exit(main())
