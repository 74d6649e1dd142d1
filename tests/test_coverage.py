"""Every registered op is proved against torch and against finite differences, honestly: its
gradient and its second derivatives (create_graph)."""

import importlib
from pathlib import Path

import numpy as np
import pytest
from checks import (
    check_finite_differences,
    check_second_order_finite_differences,
    check_second_order_torch,
    check_torch,
)
from coverage import COVERAGE, KINDS, covers

import tape

TESTS = Path(__file__).parent


def test_every_registered_op_is_covered_against_torch_and_finite_differences():
    for path in sorted(TESTS.glob("test_*.py")):
        importlib.import_module(path.stem)
    missing = {
        name: sorted(set(KINDS) - COVERAGE.get(name, set()))
        for name in tape.REGISTRY
        if not set(KINDS) <= COVERAGE.get(name, set())
    }
    assert not missing, f"ops without coverage (op: missing kinds): {missing}"


@pytest.fixture(autouse=True)
def isolated_coverage():
    """The decorators applied inside these tests must not count as coverage of real tests."""
    saved = {name: set(kinds) for name, kinds in COVERAGE.items()}
    yield
    COVERAGE.clear()
    COVERAGE.update(saved)


def tanh(lib, x):
    return lib.tanh(x)


@pytest.mark.parametrize("check", [check_torch, check_finite_differences])
def test_a_declaration_that_the_checked_output_does_not_show_fails(check):
    kind = "torch" if check is check_torch else "fd"

    @covers(kind, "exp")
    def lying_test():
        check(tanh, np.linspace(-1.0, 1.0, 3))

    with pytest.raises(AssertionError, match=r"declares \['exp'\]"):
        lying_test()


def test_a_declared_test_that_makes_no_check_fails():
    @covers("fd", "tanh")
    def test_without_fd_check():
        check_torch(tanh, np.linspace(-1.0, 1.0, 3))

    with pytest.raises(AssertionError, match="made no fd check"):
        test_without_fd_check()


def test_each_parametrizes_the_test_and_each_case_must_show_its_own_op():
    @covers("torch", "tanh", "exp", each="name")
    def test_unary(name):
        check_torch(tanh, np.linspace(-1.0, 1.0, 3))

    (mark,) = test_unary.pytestmark
    assert mark.args == ("name", ("tanh", "exp"))
    test_unary(name="tanh")
    with pytest.raises(AssertionError, match=r"declares \['exp'\]"):
        test_unary(name="exp")


def test_a_wrong_gradient_fails_the_checks():
    wrong = tape.Op("wrong_tanh", tape.REGISTRY["tanh"].forward, ("h",))
    wrong.defvjp(lambda dh, h: dh * (1.0 + h * h))  # the sign of h*h is wrong
    x = np.linspace(-1.0, 1.0, 5)
    for check in (check_torch, check_finite_differences):
        with pytest.raises(AssertionError, match="gradient of input 0"):
            check(lambda lib, x: tape.apply(wrong, [x]) if lib is tape else lib.tanh(x), x)


def test_a_vjp_that_reads_a_detached_saved_value_fails_the_second_order_checks():
    # tanh's VJP is right to first order, but with h detached d(dx)/dx loses the -2h (1 - h^2) dh term
    detached = tape.Op("detached_tanh", tape.REGISTRY["tanh"].forward, ("h",))
    detached.defvjp(lambda dh, h: dh * (1.0 - np.asarray(h) * np.asarray(h)))
    x = np.linspace(-1.0, 1.0, 5)
    for check in (check_second_order_torch, check_second_order_finite_differences):
        with pytest.raises(AssertionError, match="derivative"):
            check(lambda lib, x: tape.apply(detached, [x]) if lib is tape else lib.tanh(x), x)
