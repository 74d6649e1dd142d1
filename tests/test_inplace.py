"""In-place ops and index assignment keep torch's promises, and backward refuses stale values.

Without a gradient (grad mode off, or no tensor involved requires one) an in-place op writes
into the tensor's array, so every view sees it; a leaf that requires grad refuses outside
no_grad; on a non-leaf the op is recorded and the gradient is torch's. An entry whose saved
value was changed in place since refuses to backpropagate, naming the op and its tape entry.
"""

import numpy as np
import pytest
from checks import check_torch

import tape

torch = pytest.importorskip("torch")


def iadd(x, y):
    x += y
    return x


def isub(x, y):
    x -= y
    return x


def imul(x, y):
    x *= y
    return x


def idiv(x, y):
    x /= y
    return x


IN_PLACE = {
    "+=": iadd,
    "-=": isub,
    "*=": imul,
    "/=": idiv,
    "add_": lambda x, y: x.add_(y),
    "add_ alpha": lambda x, y: x.add_(y, alpha=-2.0),
    "sub_": lambda x, y: x.sub_(y),
    "mul_": lambda x, y: x.mul_(y),
    "div_": lambda x, y: x.div_(y),
    "zero_": lambda x, y: x.zero_(),
    "fill_": lambda x, y: x.fill_(0.25),
    "clamp_": lambda x, y: x.clamp_(-0.5, 0.5),
    "clamp_ tensor": lambda x, y: x.clamp_(min=y),
    "copy_": lambda x, y: x.copy_(y),
    "exp_": lambda x, y: x.exp_(),
}
VALUES = np.array([[0.5, -1.0, 2.0], [1.5, -0.25, 0.75]])
OTHER = np.array([0.25, 2.0, -0.5])


def run_in_place(lib, name, requires_grad, under_no_grad):
    """x, a view of its second row taken before the op, and what the op returned."""
    x = lib.tensor(VALUES.copy(), requires_grad=requires_grad)
    y = lib.tensor(OTHER.copy())
    row = x[1]
    if under_no_grad:
        with lib.no_grad():
            returned = IN_PLACE[name](x, y)
    else:
        returned = IN_PLACE[name](x, y)
    return x, row, returned


@pytest.mark.parametrize("name", IN_PLACE)
@pytest.mark.parametrize(
    ("requires_grad", "under_no_grad"),
    [(False, False), (True, True), (False, True)],
    ids=["no gradient needed", "leaf under no_grad", "under no_grad"],
)
def test_in_place_ops_without_a_gradient_write_through_to_views_like_torch(
    name, requires_grad, under_no_grad
):
    ours = run_in_place(tape, name, requires_grad, under_no_grad)
    theirs = run_in_place(torch, name, requires_grad, under_no_grad)
    x, row, returned = ours
    assert returned is x, "an in-place op returns the tensor itself"
    np.testing.assert_allclose(x.array, theirs[0].detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(row.array, theirs[1].detach().numpy(), rtol=1e-6)  # the view saw it
    assert x.is_leaf and x.requires_grad == requires_grad and x.grad_fn is None


@pytest.mark.parametrize("name", IN_PLACE)
def test_a_leaf_that_requires_grad_refuses_in_place_ops_like_torch(name):
    for lib in (tape, torch):
        with pytest.raises(RuntimeError, match="leaf"):
            run_in_place(lib, name, requires_grad=True, under_no_grad=False)


@pytest.mark.parametrize("key", [0, (slice(None), 1), np.array([True, False])])
def test_a_leaf_that_requires_grad_refuses_index_assignment_like_torch(key):
    for lib in (tape, torch):
        w = lib.tensor(VALUES.copy(), requires_grad=True)
        with pytest.raises(RuntimeError, match="leaf"):
            w[key] = 0.0


def test_an_in_place_op_under_no_grad_leaves_a_leaf_a_leaf_with_its_gradient():
    w = tape.tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    with tape.no_grad():
        w -= 0.5 * w.grad
    assert w.is_leaf and w.requires_grad and w.grad_fn is None
    np.testing.assert_array_equal(w.array, [0.0, 0.0])
    np.testing.assert_array_equal(w.grad.array, [2.0, 4.0])


@pytest.mark.parametrize("name", [n for n in IN_PLACE if n not in ("zero_", "fill_", "copy_")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_ops_on_a_non_leaf_are_recorded_with_torchs_gradient(name, dtype):
    def fn(lib, x, y):
        h = x * 2.0
        before = id(h)
        h = IN_PLACE[name](h, y)
        assert id(h) == before
        return h * x

    check_torch(fn, VALUES, OTHER, dtype=dtype)


@pytest.mark.parametrize("name", ["zero_", "fill_", "copy_"])
def test_overwriting_a_non_leaf_cuts_the_gradient_to_what_it_held_like_torch(name):
    def fn(lib, x, y):
        h = x * 2.0
        return IN_PLACE[name](h, y * 3.0) * x

    check_torch(fn, VALUES, OTHER)


def row_of_zeros_from_x(lib, x):
    logits = lib.zeros((3, 4), dtype=x.dtype)
    logits[1] = x * 2.0
    return logits


def element_of_a_product(lib, x):
    y = x * x
    y[0] = 0.0
    return y


def mask_of_a_product(lib, x):
    y = x * x
    y[x > 0.5] = x[x > 0.5] ** 3
    return y


def broadcast_column(lib, x):
    y = x.view(4, 1).expand(4, 4) + 0.0
    y[:, 0] = x[0]
    return y


ASSIGNMENTS = {
    f.__name__: f for f in (row_of_zeros_from_x, element_of_a_product, mask_of_a_product, broadcast_column)
}


@pytest.mark.parametrize("name", ASSIGNMENTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_index_assignment_on_a_non_leaf_is_recorded_with_torchs_gradient(name, dtype):
    checked = check_torch(ASSIGNMENTS[name], np.array([0.25, 1.5, -0.75, 1.0]), dtype=dtype)
    assert "index_put" in {entry.op.name for entry in tape.wengert_list(checked.out)}


def test_setting_an_element_of_exp_gives_the_gradient_of_the_out_of_place_program():
    # torch refuses y = x.exp(); y[0] = 0 (exp saved y); tape records the assignment out of
    # place, so exp's saved output is intact and the gradient is the out-of-place program's
    x = tape.tensor([1.0, 2.0, 3.0], dtype=tape.float64, requires_grad=True)
    y = x.exp()
    y[0] = 0.0
    (y * y).sum().backward()
    t = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    (torch.cat([torch.zeros(1, dtype=t.dtype), t.exp()[1:]]) ** 2).sum().backward()
    np.testing.assert_allclose(x.grad.array, t.grad.numpy(), rtol=1e-15)


def test_the_notebooks_index_updates_on_tensors_without_gradients_match_torch():
    Yb = np.array([0, 2, 1, 2])
    results = []
    for lib in (tape, torch):
        dlogits = lib.ones((4, 3)) * 0.5
        dlogits[range(4), lib.tensor(Yb)] -= 1
        N = lib.zeros((3, 3), dtype=lib.int32)
        for ix1, ix2 in [(1, 2), (1, 2), (0, 1)]:
            N[ix1, ix2] += 1
        results.append((np.asarray(dlogits), np.asarray(N)))
    (d_ours, n_ours), (d_theirs, n_theirs) = results
    np.testing.assert_array_equal(d_ours, d_theirs)
    np.testing.assert_array_equal(n_ours, n_theirs)
    assert n_ours.dtype == np.int32


def test_an_element_taken_with_ints_is_a_view_as_in_torch():
    for lib in (tape, torch):
        x = lib.zeros((2, 3))
        element = x[1, 2]
        element += 4.0
        assert x[1, 2].item() == 4.0


# ---------------------------------------------------------------- the version counter


def exp_output_scaled(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    with lib.no_grad():
        y.mul_(2)
    return y.sum(), y


def weight_scaled_after_matmul(lib):
    W = lib.tensor(np.ones((2, 2)), requires_grad=True)
    h = lib.tensor(np.ones((3, 2)), requires_grad=True) * 2.0
    out = (h @ W).sum()
    with lib.no_grad():
        W *= 2
    return out, W


def view_of_a_saved_input_changed(lib):
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = (x * x).sum()
    with lib.no_grad():
        x[1:].add_(1.0)
    return out, x


STALE = {
    "exp's output": (exp_output_scaled, "exp", "its output"),
    "matmul's weight": (weight_scaled_after_matmul, "matmul", "input 1"),
    "a view of mul's input": (view_of_a_saved_input_changed, "mul", "input 0"),
}


@pytest.mark.parametrize("name", STALE)
def test_backward_refuses_a_value_changed_in_place_after_an_entry_saved_it_like_torch(name):
    make, op, which = STALE[name]
    out, changed = make(tape)
    entry = next(e for e in tape.wengert_list(out) if e.op.name == op)
    with pytest.raises(RuntimeError, match="modified by an inplace operation") as error:
        out.backward()
    assert f"{which} of '{op}' (tape entry {entry.index})" in str(error.value)
    assert str(changed.shape) in str(error.value)
    out, _ = make(torch)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()


def add_input_changed(lib):
    a = lib.tensor([1.0, 2.0], requires_grad=True)
    b = lib.tensor([3.0, 4.0])
    out = ((a + b) * 3.0).sum()
    with lib.no_grad():
        a += 1
    b += 1
    return out, a


def copy_by_an_index_array_changed(lib):
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = (x * x).sum()
    with lib.no_grad():
        copy = x[[0, 1]]
        copy += 1
    return out, x


def data_changed(lib):
    p = lib.tensor([1.0, 2.0], requires_grad=True)
    out = (p * p).sum()
    p.data += 1  # .data is not tracked (torch): the gradient reads the new values
    return out, p


@pytest.mark.parametrize("make", [add_input_changed, copy_by_an_index_array_changed, data_changed])
def test_changing_what_no_entry_saved_backpropagates_like_torch(make):
    out, x = make(tape)
    out.backward()
    out_t, x_t = make(torch)
    out_t.backward()
    np.testing.assert_allclose(x.grad.array, x_t.grad.numpy(), rtol=1e-6)


def test_an_entry_recorded_after_the_change_backpropagates_like_torch():
    grads = []
    for lib in (tape, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x * 1.0
        with lib.no_grad():
            y.mul_(3.0)
        y.exp().sum().backward()  # exp saved the changed values: nothing is stale
        grads.append(np.asarray(x.grad))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6)
    np.testing.assert_allclose(grads[0], np.exp([3.0, 6.0]), rtol=1e-6)


READ_BEFORE_THE_CHANGE = {
    "add then +=": lambda lib, x: (lambda h: ((h + 3), h.add_(1)))(x * 2),
    "mul then +=": lambda lib, x: (lambda h: ((h * 3), h.add_(1)))(x * 2),
    "exp then index assignment": lambda lib, x: (lambda h: (h.exp(), h.__setitem__(0, 5.0), h))(x * 2),
}


@pytest.mark.parametrize("name", READ_BEFORE_THE_CHANGE)
def test_ops_that_read_a_tensor_before_an_in_place_change_send_their_gradient_to_the_old_value(name):
    program = READ_BEFORE_THE_CHANGE[name]

    def fn(lib, x):
        parts = program(lib, x)
        return parts[0].sum() + parts[-1].sum()  # both the earlier reader and the changed tensor

    check_torch(fn, np.array([1.0, 2.0]))


def write_view_and_rename(z):
    v = z[0:1]
    v += 1  # v is rebound to the result; z must see it too


@pytest.mark.parametrize(
    "write",
    [
        lambda z: z[0:1].mul_(2),
        lambda z: z[1].add_(5),
        lambda z: z[0:1].__setitem__(0, 7.0),
        write_view_and_rename,
    ],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_view_taken_by_indexing_carries_an_in_place_change_into_its_base_like_torch(write, dtype):
    """torch's CopySlices: the base and its gradient see the change (tape used to change the
    view alone, so that the base's later uses and their gradients silently missed it)."""
    results = []
    for lib in (tape, torch):
        x = lib.tensor([0.5, 1.0], dtype=getattr(lib, dtype), requires_grad=True)
        z = x * 3
        write(z)
        (z * z).sum().backward()
        results.append((z.detach().numpy(), x.grad.numpy()))
    (z_ours, grad_ours), (z_theirs, grad_theirs) = results
    np.testing.assert_allclose(z_ours, z_theirs, rtol=1e-6)
    np.testing.assert_allclose(grad_ours, grad_theirs, rtol=1e-6)


# ---------------------------------------------------------------- views of a tensor changed in place
# With a gradient involved an in-place op gives the tensor a new array; its views are re-taken
# from it, so that they see the change and their gradient flows through the op, as in torch.

VIEWS = {
    "slice": lambda t: t[1:],
    "int index": lambda t: t[1],
    "element": lambda t: t[1, 2],
    "view": lambda t: t.view(3, 2),
    "reshape": lambda t: t.reshape(-1),
    "unsqueeze": lambda t: t.unsqueeze(1),
    "squeeze": lambda t: t[:1].squeeze(0),
    "flatten": lambda t: t.flatten(),
    "unflatten": lambda t: t.flatten().unflatten(0, (3, 2)),
    "transpose": lambda t: t.transpose(0, 1),
    "permute": lambda t: t.permute(1, 0),
    "t": lambda t: t.t(),
    "T": lambda t: t.T,
    "expand": lambda t: t.unsqueeze(0).expand(4, 2, 3),
    "unbind": lambda t: t.unbind(1)[2],
    "chunk": lambda t: t.chunk(3, dim=1)[1],
    "view of a view of a view": lambda t: t.t()[1:].unsqueeze(0),
}
# torch refuses to re-take the outputs of unbind and chunk (functions that return several views)
# after an in-place change; tape treats them as the indexing they are, so torch is asked for that
AS_INDEXING = {"unbind": lambda t: t[:, 2], "chunk": lambda t: t[:, 1:2]}


def take(lib, view, t):
    return AS_INDEXING.get(view, VIEWS[view])(t) if lib is torch else VIEWS[view](t)


X = np.array([[0.5, -1.0, 2.0], [1.5, -0.25, 0.75]])
Y = np.array([[1.25, 0.5, -2.0], [0.25, 3.0, -1.5]])


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_view_sees_its_base_changed_in_place_and_its_gradient_flows_through_the_change_like_torch(
    view, dtype
):
    """tape used to leave the view with the old values and the old gradient path, silently."""

    def fn(lib, x, y):
        z = x * 1.5
        v = take(lib, view, z)
        z.mul_(y)
        return v * v

    check_torch(fn, X, Y, dtype=dtype)


@pytest.mark.parametrize("view", VIEWS)
def test_a_view_sees_its_base_changed_by_index_assignment_like_torch(view):
    def fn(lib, x, y):
        z = x * 1.5
        v = take(lib, view, z)
        z[:, 1] = y[0] * 2.0
        return v.exp()

    check_torch(fn, X, np.array([[0.5, -1.0]]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_detached_tensor_sees_its_source_changed_in_place_and_stays_a_constant_like_torch(dtype):
    """detach() shares memory: tape used to leave the detached tensor with the old values."""

    def fn(lib, x, y):
        z = x * 1.5
        d = z.detach()
        z.mul_(y)
        return z * d + d  # d enters as a constant: no gradient flows through it

    check_torch(fn, X, Y, dtype=dtype)


def test_a_view_of_a_temporary_view_sees_the_change_like_torch():
    def fn(lib, x, y):
        z = x * 1.5
        v = z.t()[2]  # z.t() itself is gone: v is still a view of z
        z.add_(y)
        return v * 3.0

    check_torch(fn, X, Y)


WRITES = {name: take for name, take in VIEWS.items() if name != "expand"}


@pytest.mark.parametrize("view", WRITES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_view_changed_in_place_changes_its_base_and_every_other_view_of_it_like_torch(view, dtype):
    """torch's CopySlices for every kind of view: tape carried only views taken by indexing."""

    def fn(lib, x, y):
        z = x * 1.5
        other, crossing = z.t(), z[:, 1:]
        v = take(lib, view, z)
        v.mul_(y.sum())
        v += 1.0
        return lib.cat([z.flatten(), other.flatten(), crossing.flatten(), v.flatten()])

    check_torch(fn, X, Y, dtype=dtype)


@pytest.mark.parametrize("view", WRITES)
def test_a_view_of_a_buffer_that_needs_no_gradient_takes_one_from_an_in_place_change_like_torch(view):
    def fn(lib, x):
        buffer = lib.zeros((2, 3), dtype=x.dtype)
        v = take(lib, view, buffer)
        sibling = buffer[1]
        v.add_(x.sum())
        return lib.cat([buffer.flatten(), sibling, v.flatten()])

    check_torch(fn, np.array([0.5, 2.0]))


def test_a_view_read_before_its_base_changed_sends_its_gradient_to_the_old_value_like_torch():
    def fn(lib, x, y):
        z = x * 1.5
        v = z[0]
        before = v * 3.0
        z.mul_(y)
        return before + v

    check_torch(fn, X, Y)


def test_a_view_changed_twice_through_different_views_like_torch():
    def fn(lib, x, y):
        z = x * 1.5
        a, b = z.t(), z.view(3, 2)
        a.mul_(y.t())
        b[0] = 0.0
        z.add_(1.0)
        return lib.cat([a.flatten(), b.flatten(), z.flatten()])

    check_torch(fn, X, Y)


def test_a_reshape_that_copies_is_no_view_and_keeps_its_values_like_torch():
    def fn(lib, x, y):
        z = x * 1.5
        copy = z.t().reshape(-1)  # z.t() is not contiguous: reshape copies, in torch as in NumPy
        z.mul_(y)
        copy.add_(y.sum())  # and a change to the copy is none to z
        return lib.cat([copy, z.flatten()])

    check_torch(fn, X, Y)


def test_views_see_a_change_made_without_a_gradient_after_one_made_with_it_like_torch():
    results = []
    for lib in (tape, torch):
        x = lib.tensor(X.copy(), requires_grad=True)
        z = x * 1.5
        v, w = z[1], z.t()
        z.mul_(2.0)
        with lib.no_grad():
            z.add_(1.0)  # writes the array the views were re-taken from
            w[0].mul_(-1.0)
        results.append([np.array(t.detach().numpy()) for t in (z, v, w)])
    for ours, theirs in zip(*results):
        np.testing.assert_array_equal(ours, theirs)


def test_a_view_re_taken_after_a_change_refuses_backward_once_its_saved_value_changed_like_torch():
    for lib in (tape, torch):
        x = lib.tensor(X.copy(), requires_grad=True)
        z = x * 1.5
        v = z[0]
        z.mul_(2.0)
        out = (v * v).sum()  # mul saves v: a view of z's new values
        with lib.no_grad():
            z.add_(1.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            out.backward()


def test_a_change_without_a_gradient_after_one_with_it_leaves_the_old_values_saved_like_torch():
    """The array an in-place op replaced is still the one its entry saved: writing the new one
    must not make backward refuse (tape refused, though nothing saved had changed)."""

    def fn(lib, x, y):
        z = x * 1.5
        v = z[1:]
        z.mul_(y)  # mul saves z's old values, for y's gradient
        with lib.no_grad():
            z.add_(1.0)
            v.mul_(2.0)
        return z * 1.0

    check_torch(fn, X, Y)


def no_grad_view_then_base_changed(lib, x):
    z = x * 1.5
    with lib.no_grad():
        v = z[0]
    z.mul_(2.0)
    return (v * 3.0).sum()


def no_grad_view_changed(lib, x):
    z = x * 1.5
    with lib.no_grad():
        v = z.t()
    v.mul_(x.t())


def expanded_view_changed(lib, x):
    z = x * 1.5
    z[0].expand(2, 3).mul_(x)


def view_of_a_leaf_changed(lib, x):
    x.t()[0].mul_(2.0)


REFUSED = {
    "a view taken under no_grad, its base changed": (
        no_grad_view_then_base_changed,
        r"a view \(gather, shape \(3,\)\) taken under no_grad of a tensor of shape \(2, 3\).*mul_",
        "no_grad mode",
    ),
    "a view taken under no_grad, changed": (
        no_grad_view_changed,
        r"mul_: this tensor \(shape \(3, 2\)\) is a view taken under no_grad \(by transpose",
        "no_grad mode",
    ),
    "an expanded view, changed": (
        expanded_view_changed,
        r"mul_: this tensor \(shape \(2, 3\)\) is an expanded view of a tensor of shape \(3,\)",
        "single memory location",
    ),
    "a view of a leaf, changed": (
        view_of_a_leaf_changed,
        r"mul_: a view \(gather, shape \(3,\)\) of a leaf tensor that requires grad|"
        r"mul_: a view \(transpose, shape \(3, 2\)\) of a leaf tensor that requires grad",
        "leaf Variable",
    ),
}


@pytest.mark.parametrize("name", REFUSED)
def test_what_torch_refuses_with_views_changed_in_place_is_refused_with_the_op_and_shapes(name):
    program, ours, theirs = REFUSED[name]
    for lib, message in ((tape, ours), (torch, theirs)):
        x = lib.tensor(X.copy(), requires_grad=True)
        with pytest.raises(RuntimeError, match=message):
            out = program(lib, x)
            if out is not None:
                out.backward()


def test_a_view_taken_under_no_grad_keeps_its_values_current_outside_a_gradient():
    x = tape.tensor(X.copy(), requires_grad=True)
    z = x * 1.5
    with tape.no_grad():
        v = z[0]
    z.mul_(2.0)
    np.testing.assert_array_equal(v.array, X[0] * 3.0)  # torch too; only a gradient through it raises
    with tape.no_grad():
        np.testing.assert_array_equal((v * 2.0).array, X[0] * 6.0)


def test_views_taken_in_a_loop_are_not_kept_once_gone():
    data = tape.zeros((100, 4))
    for i in range(2000):
        (data[i % 100] * 2.0).sum()
    assert len(data.version) < 200  # the version list holds the live views only, now and then pruned
