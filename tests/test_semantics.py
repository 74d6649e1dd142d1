"""Tensors behave as torch's: conversions, comparisons, indexing, precision and grad mode.

Each test runs the same code on tape and on torch where torch defines the answer, and says so
where tape promises more (index arrays are copied) than torch does.
"""

import threading

import numpy as np
import pytest
from checks import check_torch

import tape

torch = pytest.importorskip("torch")

LIBS = pytest.mark.parametrize("lib", [tape, torch], ids=["tape", "torch"])

# ---------------------------------------------------------------- .data and .grad


@LIBS
def test_data_and_grad_are_tensors_sharing_the_parameters_memory(lib):
    p = lib.tensor([1.0, 2.0, 4.0], requires_grad=True)
    (p * lib.tensor([1.0, 2.0, 6.0])).sum().backward()
    assert isinstance(p.data, lib.Tensor) and isinstance(p.grad, lib.Tensor)
    assert not p.data.requires_grad and not p.grad.requires_grad
    p.data += 1  # the update of a hand-written optimizer
    p.data -= 0.5 * p.grad
    np.testing.assert_allclose(np.asarray(p.detach()), [1.5, 2.0, 2.0])
    assert p.is_leaf and p.requires_grad
    assert p.grad.std().item() == pytest.approx(np.std([1.0, 2.0, 6.0], ddof=1))  # n - 1, as torch
    p.grad.zero_()
    np.testing.assert_array_equal(np.asarray(p.grad), [0.0, 0.0, 0.0])


def test_assigning_data_replaces_the_values_and_keeps_the_tensor():
    p = tape.tensor([1.0, 2.0], requires_grad=True)
    p.data = tape.tensor([5.0, 6.0])
    np.testing.assert_array_equal(p.array, [5.0, 6.0])
    assert p.requires_grad and p.is_leaf


# ---------------------------------------------------------------- conversions


@LIBS
def test_one_element_tensors_convert_to_python_numbers_like_torch(lib):
    loss, vector, count = lib.tensor(2.71828), lib.tensor([2.5]), lib.tensor([3])
    np.testing.assert_array_equal(np.asarray(lib.tensor([[1.0, 2.0]])), [[1.0, 2.0]])
    assert np.asarray(lib.tensor([1.0, 2.0])).dtype == np.float32
    assert float(loss) == pytest.approx(2.71828) and float(vector) == 2.5
    assert int(vector) == 2 and int(count) == 3 and type(int(count)) is int
    assert "%.4f" % loss == "2.7183" and "%.1f" % vector == "2.5"  # noqa: UP031 (the notebook's style)
    assert f"{loss:.2f}" == "2.72" and f"{loss}" == f"{loss.item()}"
    assert bool(lib.tensor([0.5])) and not bool(lib.tensor(0.0)) and bool(count)
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(lib.tensor([1.0, 2.0]))


def test_converting_a_many_element_tensor_to_a_number_names_its_shape_with_torchs_error_class():
    for convert, error in [(float, ValueError), (int, ValueError), (lambda t: t.item(), RuntimeError)]:
        with pytest.raises(error, match=r"one-element.*\(2,\)"):
            convert(tape.tensor([1.0, 2.0]))
        with pytest.raises(error):
            convert(torch.tensor([1.0, 2.0]))


def test_only_a_0_d_tensor_formats_as_a_number_like_torch():
    assert f"{tape.tensor(1.23456):.2f}" == f"{torch.tensor(1.23456):.2f}" == "1.23"
    for lib in (tape, torch):
        with pytest.raises(TypeError):
            f"{lib.tensor([1.5]):.2f}"


def test_np_asarray_shares_the_tensors_memory():
    t = tape.tensor([1.0, 2.0])
    np.asarray(t)[0] = 5.0
    assert t[0].item() == 5.0


# ---------------------------------------------------------------- comparisons and hashing


@LIBS
def test_comparisons_and_logic_are_elementwise_bool_tensors_like_torch(lib):
    x, y = lib.tensor([1.0, -2.0, 3.0]), lib.tensor([1.0, 2.0, -3.0])
    results = {
        "==": x == y,
        "!=": x != y,
        ">0": x > 0,
        "<=": x <= y,
        "&": (x > 0) & (y > 0),
        "|": (x > 0) | (y > 0),
        "~": ~(x > 0),
        "^": (x > 0) ^ (y > 0),
    }
    expected = {
        "==": [True, False, False],
        "!=": [False, True, True],
        ">0": [True, False, True],
        "<=": [True, True, False],
        "&": [True, False, False],
        "|": [True, True, True],
        "~": [False, True, False],
        "^": [False, True, True],
    }
    for name, result in results.items():
        assert isinstance(result, lib.Tensor) and result.dtype == lib.bool, name
        assert np.asarray(result).tolist() == expected[name], name
    assert ((x > 0).sum()).item() == 2


@LIBS
def test_hash_is_identity_so_tensors_key_sets_and_dicts(lib):
    a, b = lib.tensor([1.0, 2.0]), lib.tensor([1.0, 2.0])
    assert len({a, b, a}) == 2
    names = {a: "a", b: "b"}
    assert names[a] == "a" and names[b] == "b"
    assert a in [a] and hash(a) == hash(a)


# ---------------------------------------------------------------- indexing


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ints_mixed_with_index_arrays_index_in_torchs_order(dtype):
    x = np.arange(24.0).reshape(2, 3, 4)
    out = check_torch(lambda lib, x: x[0, :, [0, 1]], x, dtype=dtype).out
    assert out.shape == (3, 2)  # NumPy alone would give (2, 3)
    out = check_torch(lambda lib, x: x[1, [2, 0], -1], x, dtype=dtype).out
    assert out.shape == (2,)


@pytest.mark.filterwarnings("ignore:indexing with dtype torch.uint8:UserWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_uint8_index_is_a_mask_like_torch(dtype):
    mask = np.array([1, 0, 1, 1], dtype=np.uint8)
    out = check_torch(lambda lib, x, m: x[m], np.arange(8.0).reshape(4, 2), mask, dtype=dtype).out
    assert out.shape == (3, 2)


def test_index_arrays_are_copied_so_changing_them_later_moves_no_gradient():
    # torch shares the NumPy index's memory (the gradient would go to row 2); tape copies it
    x = tape.tensor(np.ones((3, 2)), requires_grad=True)
    idx = np.array([0, 1])
    y = x[idx]
    idx[:] = 2
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.array, [[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    rows = tape.tensor([0, 1])
    z = x[rows]
    rows[0] = 2  # an index tensor changed in place: torch refuses at backward, tape copied it
    z.sum().backward()
    np.testing.assert_array_equal(x.grad.array, [[2.0, 2.0], [2.0, 2.0], [0.0, 0.0]])


# ---------------------------------------------------------------- precision


FLOAT16_REDUCTIONS = {
    "mean": lambda x: x.mean(),
    "max of ties": lambda x: x.max(),  # on constant values: every element shares the maximum
    "min of ties": lambda x: x.min(),
    "var": lambda x: x.var(),
    "std": lambda x: x.std(),
    "mean over a dim": lambda x: x.view(1, -1).mean(1).sum(),
}


@pytest.mark.parametrize("name", FLOAT16_REDUCTIONS)
def test_float16_reductions_over_more_elements_than_float16_counts_match_torch(name):
    # 70,000 > 65,504, float16's largest finite value: a count in float16 is inf, and 1/inf is 0
    if "ties" in name:
        values = np.full(70_000, 0.5, dtype=np.float16)
    else:
        values = np.random.default_rng(0).uniform(-1.0, 1.0, 70_000).astype(np.float16)
    results = []
    for lib in (tape, torch):
        x = lib.tensor(values, requires_grad=True)
        out = FLOAT16_REDUCTIONS[name](x)
        out.backward()
        results.append((out.item(), np.asarray(x.grad, dtype=np.float64)))
    (value, grad), (torch_value, torch_grad) = results
    assert value == pytest.approx(torch_value, rel=2e-3)
    assert np.abs(grad).max() > 0
    np.testing.assert_allclose(grad, torch_grad, rtol=2e-2, atol=1e-7)


def test_the_denominators_gradient_of_tiny_float32_quotients_is_torchs():
    a, b = np.array([1e-30, 3e-38]), np.array([1e-30, 2e-38])  # b * b underflows to 0 in float32
    checked = check_torch(lambda lib, a, b: a / b, a, b, dtype=np.float32)
    assert np.all(np.isfinite(checked.inputs[1].grad.array))
    assert checked.inputs[1].grad.array[0] == pytest.approx(-1e30 * checked.upstream[0], rel=1e-6)


# ---------------------------------------------------------------- shapes at the edges


@LIBS
def test_transposing_a_0d_tensor_with_dims_0_and_minus_1_is_the_tensor(lib):
    out = lib.tensor(1.5).transpose(0, -1)
    assert out.shape == () and out.item() == 1.5


@LIBS
@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_along_a_dim_of_a_tensor_with_an_empty_other_dim_is_empty_like_torch(lib, name, keepdim):
    x = lib.zeros((0, 3), requires_grad=True)
    result = getattr(x, name)(1, keepdim=keepdim)
    assert tuple(result.values.shape) == ((0, 1) if keepdim else (0,))
    assert tuple(result.indices.shape) == tuple(result.values.shape)
    result.values.sum().backward()
    assert tuple(x.grad.shape) == (0, 3)


@LIBS
def test_max_of_an_empty_dim_or_tensor_raises_like_torch(lib):
    with pytest.raises(IndexError):
        lib.zeros((3, 0)).max(1)
    with pytest.raises(RuntimeError):
        lib.zeros((0, 3)).max()


@LIBS
def test_max_with_keepdim_but_no_dim_is_a_type_error_like_torch(lib):
    with pytest.raises(TypeError):
        lib.zeros((2, 3)).max(keepdim=True)


SAVING_NOTHING = {
    "add": lambda x: (x + 1.0).sum(),
    "view and expand": lambda x: x.view(2, 1).expand(2, 3).sum(),
    "transpose and mean": lambda x: x.view(1, 2).t().mean(),
    "neg and sub": lambda x: (-x - 2.0).sum(),
}


@pytest.mark.parametrize("name", SAVING_NOTHING)
def test_a_second_backward_through_a_graph_that_saved_no_array_works_like_torch(name):
    grads = []
    for lib in (tape, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        out = SAVING_NOTHING[name](x)
        out.backward()
        out.backward()
        grads.append(np.asarray(x.grad))
    np.testing.assert_array_equal(grads[0], grads[1])


@LIBS
def test_a_second_backward_through_a_graph_that_saved_arrays_raises_like_torch(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    out = x.exp().sum()
    out.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        out.backward()


# ---------------------------------------------------------------- grad mode and errors


@LIBS
def test_no_grad_in_one_thread_does_not_stop_recording_in_another(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    inside, release, seen = threading.Event(), threading.Event(), {}

    def worker():
        with lib.no_grad():
            seen["worker"] = (x * 2).requires_grad
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert inside.wait(10)
        seen["main"] = (x * 2).requires_grad
        seen["main enabled"] = lib.is_grad_enabled()
    finally:
        release.set()
        thread.join()
    assert seen == {"worker": False, "main": True, "main enabled": True}


SHAPE_ERRORS = {
    "broadcast": lambda lib: lib.ones(2, 3) + lib.ones(4),
    "matmul": lambda lib: lib.ones(2, 3) @ lib.ones(4, 2),
    "view": lambda lib: lib.ones(2, 3).view(4),
    "expand": lambda lib: lib.ones(2, 3).expand(4, 3),
    "cat": lambda lib: lib.cat([lib.ones(2, 3), lib.ones(2, 4)]),
    "where": lambda lib: lib.where(lib.ones(2, dtype=lib.bool), lib.ones(3), lib.ones(2)),
    "clamp": lambda lib: lib.ones(2, 3).clamp(min=lib.ones(4)),
}


@pytest.mark.parametrize("name", SHAPE_ERRORS)
def test_shape_errors_are_runtime_errors_as_in_torch_and_value_errors_as_before(name):
    with pytest.raises(tape.ShapeError) as error:
        SHAPE_ERRORS[name](tape)
    assert isinstance(error.value, RuntimeError) and isinstance(error.value, ValueError)
    assert name in str(error.value) or "shape" in str(error.value)
    with pytest.raises(RuntimeError):
        SHAPE_ERRORS[name](torch)


def test_a_shape_is_a_tuple_that_prints_like_torchs_size():
    shape = tape.zeros(3, 4).shape
    assert shape == (3, 4) and shape[0] == 3 and isinstance(shape, tuple)
    assert repr(shape) == repr(torch.zeros(3, 4).shape).replace("torch", "tape") == "tape.Size([3, 4])"
    assert tape.zeros(3, 4).size() == shape and shape.numel() == 12
    assert f"{shape}" == "(3, 4)"  # inside error messages, the plain tuple


def test_a_tensor_prints_in_lines_as_wide_as_torchs():
    assert repr(tape.arange(27).view(1, 27)) == repr(torch.arange(27).view(1, 27))
