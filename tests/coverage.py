"""Which registered ops each test proves, against torch ("torch") or finite differences ("fd"),
and their second derivatives (create_graph) likewise ("torch2", "fd2").

Decorate a test with the ops it proves; ``tests/test_coverage.py`` fails if an op of
``tape.REGISTRY`` lacks either kind::

    @covers("torch", "tanh")
    @given(...)
    def test_tanh_matches_torch(...):
        check_torch(lambda lib, x: lib.tanh(x), x)

    @covers("fd", "add", "sub", "mul", "div", each="name")   # parametrizes name over the ops
    def test_binary_finite_differences(name):
        check_finite_differences(BINARY[name], a, b)

A declaration cannot lie: while the test runs, every ``check_torch`` (kind "torch"),
``check_finite_differences`` (kind "fd"), ``check_second_order_torch`` ("torch2") and
``check_second_order_finite_differences`` ("fd2") call in ``tests/checks.py`` asserts that each declared
op appears in the Wengert list of the output it checked, and the test fails if it declared a
kind but never called that kind's check. With ``each="arg"`` the decorator parametrizes the
test's argument ``arg`` over the op names and each case must show its own op. Stacking
``covers`` on one test (e.g. one "torch", one "fd") merges the declarations. Put ``covers``
above ``@given`` and ``@pytest.mark.parametrize``.

API (stable; other test files use it):
    KINDS                                 ("torch", "fd", "torch2", "fd2")
    COVERAGE: dict[str, set[str]]         op name -> kinds declared by the imported test modules
    covers(kind, *op_names, each=None)    the decorator
    required_ops(kind) -> set[str]        ops the running test declared for ``kind`` (checks.py)
    record_check(kind, op_names)          called by the check helpers: asserts the declaration
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest

KINDS = ("torch", "fd", "torch2", "fd2")  # "2": second derivatives (create_graph)

COVERAGE: dict[str, set[str]] = {}


@dataclass(frozen=True)
class Declaration:
    kind: str
    op_names: tuple[str, ...]
    each: str | None  # the test argument that selects one op per case, or None for all of them


@dataclass
class _Running:
    required: dict[str, set[str]]  # kind -> ops every check of that kind must show
    checks: dict[str, int]  # kind -> number of checks made so far


_running: list[_Running] = []  # a stack: the innermost declared test that is running


def covers(kind: str, *op_names: str, each: str | None = None) -> Callable[[Callable], Callable]:
    """Declare that the decorated test proves ``op_names`` by checks of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"covers: kind must be one of {KINDS}, got {kind!r}")
    if not op_names:
        raise ValueError("covers: name at least one op")

    def decorate(test: Callable) -> Callable:
        for name in op_names:
            COVERAGE.setdefault(name, set()).add(kind)
        declaration = Declaration(kind, op_names, each)
        if hasattr(test, "__covers__"):  # stacked: the outer wrapper already runs the checks
            test.__covers__.append(declaration)
            run = test
        else:

            @functools.wraps(test)
            def run(*args: Any, **kwargs: Any) -> Any:
                state = _Running(_required(run.__covers__, kwargs), dict.fromkeys(KINDS, 0))
                _running.append(state)
                try:
                    result = test(*args, **kwargs)
                finally:
                    _running.pop()
                for kind_, ops in state.required.items():
                    assert not ops or state.checks[kind_], (
                        f"{test.__name__} declares covers({kind_!r}, {', '.join(sorted(ops))}) "
                        f"but made no {kind_} check"
                    )
                return result

            run.__covers__ = [declaration]
        if each is not None:
            run = pytest.mark.parametrize(each, op_names)(run)
        return run

    return decorate


def _required(declarations: Iterable[Declaration], kwargs: dict[str, Any]) -> dict[str, set[str]]:
    required: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for d in declarations:
        if d.each is None:
            required[d.kind].update(d.op_names)
        else:
            required[d.kind].add(kwargs[d.each])
    return required


def required_ops(kind: str) -> set[str]:
    """The ops the running declared test promised for ``kind`` (empty outside one)."""
    return set(_running[-1].required[kind]) if _running else set()


def record_check(kind: str, op_names: Iterable[str]) -> None:
    """Count one check of ``kind`` whose output's Wengert list holds ``op_names``."""
    if not _running:
        return
    state = _running[-1]
    missing = state.required[kind] - set(op_names)
    assert not missing, (
        f"covers({kind!r}, ...) declares {sorted(missing)} but the checked output's Wengert list "
        f"only holds {sorted(set(op_names))}"
    )
    state.checks[kind] += 1
