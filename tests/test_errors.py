"""Bad input raises a clear error naming the op and the shapes, never a deep NumPy traceback."""

import numpy as np
import pytest

import tape


def ones(*shape, requires_grad=True):
    return tape.tensor(np.ones(shape), requires_grad=requires_grad)


CASES = {
    "matmul of (3, 4) and (5, 2)": (
        lambda: ones(3, 4) @ ones(5, 2),
        ValueError,
        r"matmul: shapes \(3, 4\) and \(5, 2\) cannot be multiplied",
    ),
    "matmul vector of the wrong length": (
        lambda: ones(2, 3, 4) @ ones(5),
        ValueError,
        r"matmul: shapes \(2, 3, 4\) and \(5,\)",
    ),
    "matmul batch dims": (
        lambda: tape.matmul(ones(2, 3, 4), ones(3, 4, 5)),
        ValueError,
        r"matmul: the batch dimensions of shapes \(2, 3, 4\) and \(3, 4, 5\)",
    ),
    "matmul with a scalar": (lambda: ones(3, 4) @ 2.0, ValueError, r"matmul: .*\(3, 4\) and \(\)"),
    "adding (3, 4) and (3,)": (
        lambda: ones(3, 4) + ones(3),
        ValueError,
        r"add: shapes \(3, 4\) and \(3,\) cannot be broadcast",
    ),
    "dividing an array by a tensor": (
        lambda: np.ones(5) / ones(2),
        ValueError,
        r"div: shapes \(5,\) and \(2,\) cannot be broadcast",
    ),
    "view to an impossible shape": (
        lambda: ones(3, 4).view(5, 2),
        ValueError,
        r"view: cannot view a tensor of shape \(3, 4\) \(12 elements\) as shape \(5, 2\)",
    ),
    "view with two -1": (lambda: ones(3, 4).view(-1, -1), ValueError, r"view: .*\(3, 4\).*\(-1, -1\)"),
    "an out-of-range index": (
        lambda: ones(3, 4)[3],
        IndexError,
        r"gather: cannot index a tensor of shape \(3, 4\) with \[3\]: index 3 is out of bounds",
    ),
    "an out-of-range index array": (
        lambda: ones(3, 4)[range(3), tape.tensor([0, 4, 1])],
        IndexError,
        r"gather: .*shape \(3, 4\) with \[int64 array of shape \(3,\), int64 array of shape \(3,\)\]",
    ),
    "float indices": (lambda: ones(3, 4)[np.array([0.5])], IndexError, "gather: indices must be integers"),
    "requires_grad on an integer tensor": (
        lambda: tape.tensor([1, 2], requires_grad=True),
        RuntimeError,
        r"requires_grad: only floating point tensors .* int64 of shape \(2,\)",
    ),
    "backward on a non-scalar without a gradient": (
        lambda: (ones(3, 4) * 2.0).backward(),
        RuntimeError,
        r"backward: a gradient can only be implied for a one-element output.*shape \(3, 4\)",
    ),
    "a gradient of the wrong shape": (
        lambda: (ones(3, 4) * 2.0).backward(gradient=np.ones(4)),
        ValueError,
        r"backward: gradient has shape \(4,\) but the output has shape \(3, 4\)",
    ),
    "backward on a tensor without gradient": (
        lambda: ones(2, requires_grad=False).sum().backward(),
        RuntimeError,
        r"backward: this tensor \(shape \(\)\) does not require grad",
    ),
    "a dim out of range": (
        lambda: ones(3, 4).sum(dim=2),
        IndexError,
        r"sum: dim 2 is out of range for a tensor of shape \(3, 4\)",
    ),
    "a repeated dim": (lambda: ones(3, 4).mean(dim=(0, -2)), ValueError, r"mean: dim \(0, -2\) repeats"),
    "max along a tuple": (lambda: ones(3, 4).max(dim=(0, 1)), TypeError, "max: dim must be an int"),
    "max of nothing": (lambda: ones(0).max(), RuntimeError, r"max: .*empty tensor of shape \(0,\)"),
    "not a permutation": (
        lambda: ones(3, 4).permute(0, 0),
        ValueError,
        r"permute: \(0, 0\) is not a permutation .* shape \(3, 4\)",
    ),
    "transpose out of range": (
        lambda: ones(3, 4).transpose(0, 2),
        IndexError,
        r"transpose: dim 2 .*\(3, 4\)",
    ),
    "an unsupported operand": (lambda: ones(2) + "1", TypeError, "add: unsupported operand of type str"),
    "mean of integers": (lambda: tape.tensor([1, 2]).mean(), TypeError, "mean: needs a floating point"),
    "strings": (lambda: tape.tensor(["a"]), TypeError, "tensor: cannot make a tensor of <U1"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_raises_a_clear_error(case):
    make, error, message = CASES[case]
    with pytest.raises(error, match=message) as raised:
        make()
    assert raised.value.__context__ is None or raised.value.__suppress_context__, (
        "NumPy's error leaks through"
    )


def test_a_failed_op_records_nothing_and_leaves_its_inputs_usable():
    a = ones(3, 4)
    with pytest.raises(ValueError):
        a + ones(3)
    (a * 2.0).sum().backward()
    np.testing.assert_array_equal(a.grad, np.full((3, 4), 2.0))
