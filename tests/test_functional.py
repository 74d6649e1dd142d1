"""nn.functional against torch.nn.functional: every function's value and gradients in float32
and float64, torch's reductions and edge cases (ignore_index, label smoothing, weights,
probability targets), and the errors torch raises."""

import numpy as np
import pytest
from checks import assert_close, check_finite_differences, check_torch

import nn
import nn.functional as F
import tape

torch = pytest.importorskip("torch")
TF = torch.nn.functional

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum", "none"]


def rng(seed=0):
    return np.random.default_rng(seed)


def functional(lib):
    """``F`` of the library under test: nn.functional for tape, torch.nn.functional for torch."""
    return F if lib is tape else TF


def constant(lib, array):
    """A tensor of ``lib`` that requires no gradient (class weights and such)."""
    return lib.tensor(array) if array is not None else None


# ---------------------------------------------------------------- cross-entropy and nll


LOGITS = rng(1).standard_normal((6, 5))
TARGETS = np.array([0, 4, -100, 2, 2, 1])  # one ignored (torch's default ignore_index)
CLASS_WEIGHTS = rng(2).random(5) + 0.5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_matches_torch_with_ignore_index_weights_and_smoothing(
    dtype, reduction, label_smoothing, weighted
):
    weight = CLASS_WEIGHTS.astype(dtype) if weighted else None

    def loss(lib, x, y):
        return functional(lib).cross_entropy(
            x, y, weight=constant(lib, weight), reduction=reduction, label_smoothing=label_smoothing
        )

    check_torch(loss, LOGITS, TARGETS, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_of_2d_logits_and_a_plain_mean_is_the_one_fused_entry(dtype):
    targets = np.array([0, 4, 3, 2, 2, 1])
    checked = check_torch(lambda lib, x, y: functional(lib).cross_entropy(x, y), LOGITS, targets, dtype=dtype)
    assert [e.op.name for e in tape.wengert_list(checked.out)] == ["cross_entropy"]
    assert nn.cross_entropy is F.cross_entropy  # nn.cross_entropy keeps working


def test_cross_entropy_ignores_an_index_inside_the_class_range():
    targets = np.array([0, 4, 2, 2, 3, 1])
    check_torch(lambda lib, x, y: functional(lib).cross_entropy(x, y, ignore_index=2), LOGITS, targets)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(3, 5, 4), (3, 5, 4, 2)])
def test_cross_entropy_and_nll_take_the_class_dim_1_of_nd_input(reduction, shape):
    g = rng(3)
    x = g.standard_normal(shape)
    y = g.integers(0, 5, (shape[0], *shape[2:]))
    y.flat[0] = -100
    for name in ("cross_entropy", "nll_loss"):
        check_torch(
            lambda lib, x, y, name=name: getattr(functional(lib), name)(x, y, reduction=reduction), x, y
        )
    check_torch(
        lambda lib, x, y: functional(lib).cross_entropy(x, y, reduction=reduction, label_smoothing=0.1), x, y
    )


def test_cross_entropy_of_one_sample_without_a_batch_dim():
    check_torch(
        lambda lib, x, y: functional(lib).cross_entropy(x, y, label_smoothing=0.1), LOGITS[0], np.array(3)
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.2}, {"weighted": True}])
def test_cross_entropy_against_class_probabilities(dtype, reduction, options):
    """Probability targets shaped as the input; the target's gradient too."""
    probabilities = rng(4).random((6, 5))
    probabilities /= probabilities.sum(1, keepdims=True)
    weight = CLASS_WEIGHTS.astype(dtype) if options.get("weighted") else None
    smoothing = options.get("label_smoothing", 0.0)

    def loss(lib, x, p):
        return functional(lib).cross_entropy(
            x, p, weight=constant(lib, weight), reduction=reduction, label_smoothing=smoothing
        )

    check_torch(loss, LOGITS, probabilities, dtype=dtype)


@pytest.mark.parametrize(
    ("name", "options"),
    [("cross_entropy", {}), ("cross_entropy", {"label_smoothing": 0.1}), ("nll_loss", {})],
)
def test_every_target_ignored_gives_nan_and_a_zero_gradient_as_torch(name, options):
    checked = check_torch(
        lambda lib, x, y: getattr(functional(lib), name)(x, y, **options), LOGITS, np.full(6, -100)
    )
    assert np.isnan(checked.out.item())
    np.testing.assert_array_equal(checked.inputs[0].grad.array, np.zeros((6, 5)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_with_class_weights_matches_torch(dtype, reduction):
    def loss(lib, x, y):
        weight = constant(lib, CLASS_WEIGHTS.astype(dtype))
        return functional(lib).nll_loss(x.log_softmax(1), y, weight=weight, reduction=reduction)

    check_torch(loss, LOGITS, TARGETS, dtype=dtype)


@pytest.mark.parametrize(("size_average", "reduce"), [(False, None), (None, False), (True, True)])
def test_the_deprecated_size_average_and_reduce_pick_the_reduction_as_torch(size_average, reduce):
    def loss(lib, x, y):
        with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
            return functional(lib).cross_entropy(x, y, size_average=size_average, reduce=reduce)

    check_torch(loss, LOGITS, TARGETS)


@pytest.mark.parametrize(
    ("targets", "error", "message"),
    [
        (np.array([0, 5, 1, 1, 1, 1]), IndexError, r"cross_entropy: target 5 is out of bounds for 5 classes"),
        (np.array([0, -1, 1, 1, 1, 1]), IndexError, r"target -1 is out of bounds"),
        (np.array([0, 1, 2]), ValueError, r"got shapes \(6, 5\) and \(3,\)"),
        (np.array([0.5, 1, 2, 0, 0, 0]), ValueError, "probability targets must have the input's shape"),
    ],
)
def test_cross_entropy_rejects_bad_targets(targets, error, message):
    logits = tape.tensor(LOGITS, requires_grad=True)
    with pytest.raises(error, match=message):
        F.cross_entropy(logits, targets, label_smoothing=0.1)  # the composite path
    with pytest.raises((error, RuntimeError)):  # torch says RuntimeError for a target of the wrong dtype
        TF.cross_entropy(torch.tensor(LOGITS), torch.tensor(targets), label_smoothing=0.1)


def test_cross_entropy_rejects_a_bad_reduction_and_smoothing():
    logits = tape.tensor(LOGITS)
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.cross_entropy(logits, TARGETS, reduction="average")
    with pytest.raises(ValueError, match=r"label_smoothing must be between 0\.0 and 1\.0"):
        F.cross_entropy(logits, TARGETS, label_smoothing=1.5)


# ---------------------------------------------------------------- softmax, one_hot, activations


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_and_log_softmax_match_torch(dtype, name, dim):
    x = rng(5).standard_normal((4, 6))
    check_torch(lambda lib, x: getattr(functional(lib), name)(x, dim=dim), x, dtype=dtype)


def test_softmax_without_dim_warns_and_picks_torchs_implicit_dim():
    x = rng(6).standard_normal((2, 3, 4))
    with pytest.warns(UserWarning, match="implicit dimension"):
        ours = F.softmax(tape.tensor(x))
    with pytest.warns(UserWarning):
        theirs = TF.softmax(torch.tensor(x))
    assert_close(ours.array, theirs.numpy())


def test_softmax_with_a_dtype_casts_first():
    x = rng(7).standard_normal((3, 4)).astype(np.float32)
    check_torch(lambda lib, x: functional(lib).log_softmax(x, 1, dtype=lib.float64), x, dtype=np.float32)


def test_one_hot_matches_torch_and_is_int64():
    labels = np.array([[0, 3], [2, 1]])
    for num_classes in (-1, 6):
        ours = F.one_hot(tape.tensor(labels), num_classes)
        theirs = TF.one_hot(torch.tensor(labels), num_classes)
        assert ours.dtype == np.int64 and not ours.requires_grad
        np.testing.assert_array_equal(ours.array, theirs.numpy())
    assert F.one_hot(tape.tensor(labels)).shape == (2, 2, 4)  # -1: the largest class + 1
    assert F.one_hot(np.zeros(0, np.int64), 3).shape == (0, 3)


@pytest.mark.parametrize(
    ("labels", "num_classes", "message"),
    [
        ([3], 3, r"smaller than num_classes \(3\)"),
        ([-1], -1, "non-negative"),
        ([], -1, "empty"),
        ([1.0], 3, "integer"),
    ],
)
def test_one_hot_rejects_what_torch_rejects(labels, num_classes, message):
    with pytest.raises(RuntimeError, match=message):
        F.one_hot(np.array(labels, dtype=np.float64 if message == "integer" else np.int64), num_classes)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
def test_activations_match_torch(dtype, name):
    x = rng(8).standard_normal((5, 7))
    check_torch(lambda lib, x: getattr(functional(lib), name)(x), x, dtype=dtype)


def test_relu_in_place_changes_the_input():
    x = tape.tensor([-1.0, 2.0])
    assert F.relu(x, inplace=True) is x
    np.testing.assert_array_equal(x.array, [0.0, 2.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_tanh_approximation_matches_torch(dtype):
    x = rng(9).standard_normal((4, 5)) * 2
    check_torch(lambda lib, x: functional(lib).gelu(x, approximate="tanh"), x, dtype=dtype)


def test_exact_gelu_says_what_tape_lacks():
    with pytest.raises(NotImplementedError, match="erf"):
        F.gelu(tape.tensor([1.0]))


# ---------------------------------------------------------------- pointwise losses


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
@pytest.mark.parametrize("weighted", [False, True])
def test_mse_and_l1_loss_match_torch(dtype, reduction, name, weighted):
    g = rng(10)
    x, target = g.standard_normal((4, 3)), g.standard_normal((4, 3))
    weight = (g.random((4, 3)) + 0.5).astype(dtype) if weighted else None

    def loss(lib, x, target):
        return getattr(functional(lib), name)(x, target, reduction=reduction, weight=constant(lib, weight))

    check_torch(loss, x, target, dtype=dtype)  # the target requires a gradient too


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy_matches_torch(dtype, reduction, weighted):
    g = rng(11)
    x, target = g.uniform(0.05, 0.95, (4, 3)), g.random((4, 3))
    # (3,) class weights broadcast over the rows, as torch allows
    weight = (g.random(3) + 0.5).astype(dtype) if weighted else None

    def loss(lib, x, target):
        return functional(lib).binary_cross_entropy(x, target, constant(lib, weight), reduction=reduction)

    check_torch(loss, x, target, dtype=dtype)


def test_binary_cross_entropy_clamps_the_log_at_minus_100_as_torch():
    check_torch(
        lambda lib, x, t: functional(lib).binary_cross_entropy(x, t, reduction="none"),
        np.array([0.0, 1.0, 0.5]),
        np.array([1.0, 0.0, 1.0]),
        requires_grad=[False, False],
    )
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.binary_cross_entropy(tape.tensor([1.5]), tape.tensor([1.0]))


# ---------------------------------------------------------------- layers


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape", [(8, 30), (30,), (2, 4, 30)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_takes_torchs_weight_layout(dtype, x_shape, bias):
    g = rng(12)
    inputs = [g.standard_normal(x_shape), g.standard_normal((20, 30))] + (
        [g.standard_normal(20)] if bias else []
    )
    check_torch(lambda lib, *a: functional(lib).linear(*a), *inputs, dtype=dtype)


def test_linear_names_the_layout_when_shapes_do_not_fit():
    with pytest.raises(
        ValueError, match=r"weight \(out_features, in_features\), got shapes \(8, 30\) and \(30, 20\)"
    ):
        F.linear(tape.tensor(np.zeros((8, 30))), tape.tensor(np.zeros((30, 20))))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_torch_and_padding_rows_get_no_gradient(dtype, padding_idx):
    g = rng(13)
    index = np.array([[0, 2, 4], [2, 2, 1]])

    def lookup(lib, weight, index):
        return functional(lib).embedding(index, weight, padding_idx=padding_idx)

    checked = check_torch(lookup, g.standard_normal((5, 3)), index, dtype=dtype)
    if padding_idx is not None:
        np.testing.assert_array_equal(checked.inputs[0].grad.array[padding_idx], 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tape_embedding_is_torch_embedding_and_keeps_its_own_copy_of_the_indices(dtype):
    index = np.array([[0, 2, 4], [2, 2, 1]])
    check_torch(
        lambda lib, weight, index: lib.embedding(weight, index),
        rng(13).standard_normal((5, 3)),
        index,
        dtype=dtype,
    )
    weight = tape.tensor(np.ones((5, 3)), requires_grad=True)
    rows = tape.embedding(weight, index)
    index[:] = 0  # changed after the lookup: the gradient still goes to the rows looked up
    rows.sum().backward()
    np.testing.assert_array_equal(weight.grad.array[:, 0], [1, 1, 3, 0, 1])


@pytest.mark.parametrize("bad", [5, -1])
def test_embedding_refuses_indices_out_of_range_including_negatives(bad):
    weight = tape.tensor(np.zeros((5, 3)), requires_grad=True)
    with pytest.raises(
        IndexError, match=rf"embedding: index {bad} is out of range .* 5 embeddings \(valid: 0 to 4\)"
    ):
        F.embedding(np.array([0, bad]), weight)
    with pytest.raises(IndexError, match=rf"embedding: index {bad} is out of range"):
        tape.embedding(weight, np.array([[0], [bad]]))
    with pytest.raises(IndexError):
        TF.embedding(torch.tensor([0, bad]), torch.zeros(5, 3))


def test_pad_is_tapes_with_torchs_default_value():
    x = rng(14).standard_normal((2, 3))
    check_torch(lambda lib, x: functional(lib).pad(x, (1, 2)), x)
    check_torch(lambda lib, x: functional(lib).pad(x, (1, 2), value=None), x)  # tape.pad would pad with nan
    check_torch(lambda lib, x: functional(lib).pad(x, (1, 0, 0, 1), value=3.0), x)


def test_convolution_and_pooling_are_tapes():
    assert (F.conv1d, F.conv2d, F.max_pool2d, F.avg_pool2d) == (
        tape.conv1d,
        tape.conv2d,
        tape.max_pool2d,
        tape.avg_pool2d,
    )


# ---------------------------------------------------------------- dropout


def test_dropout_in_evaluation_or_with_p_0_is_the_identity():
    x = tape.tensor(np.ones((3, 4)), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x


def test_dropout_zeroes_about_p_and_scales_the_rest_by_1_over_1_minus_p():
    tape.manual_seed(0)
    x = tape.tensor(np.ones((200, 500)), requires_grad=True)
    out = F.dropout(x, p=0.3)
    kept = out.array != 0
    assert abs(1 - kept.mean() - 0.3) < 0.01  # 100,000 draws: the standard error is 0.0015
    np.testing.assert_allclose(out.array[kept], 1 / 0.7)
    out.backward(np.full(out.shape, 2.0))
    np.testing.assert_allclose(x.grad.array, np.where(kept, 2 / 0.7, 0))  # the gradient goes through the mask


def test_dropout_follows_tapes_seed_and_p_1_zeroes_everything():
    x = tape.tensor(np.ones(50, np.float32))
    tape.manual_seed(3)
    first = F.dropout(x, 0.5).array
    tape.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(x, 0.5).array, first)
    assert first.dtype == np.float32
    np.testing.assert_array_equal(F.dropout(x, 1.0).array, np.zeros(50))
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, 1.5)


# ---------------------------------------------------------------- normalisation


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("normalized_shape", [(6,), (4, 6)])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_matches_torch(dtype, normalized_shape, affine):
    g = rng(15)
    x = g.standard_normal((3, 4, 6)) * 2 + 1
    params = [g.standard_normal(normalized_shape), g.standard_normal(normalized_shape)] if affine else []

    def norm(lib, x, *params):
        return functional(lib).layer_norm(x, normalized_shape, *params, eps=1e-5)

    check_torch(norm, x, *params, dtype=dtype)


def test_layer_norm_finite_differences():
    g = rng(16)
    check_finite_differences(
        lambda lib, x, w, b: F.layer_norm(x, (4,), w, b),
        g.standard_normal((3, 4)),
        g.standard_normal(4),
        g.standard_normal(4),
    )


def test_layer_norm_refuses_a_shape_that_is_not_trailing():
    with pytest.raises(ValueError, match=r"normalized_shape \(3,\) must be the trailing dims"):
        F.layer_norm(tape.tensor(np.zeros((3, 4))), 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8, 3), (8, 3, 5), (4, 3, 2, 5)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_in_training_matches_torch_and_updates_the_running_statistics(dtype, shape, affine):
    """Channels at dim 1, every other dim a batch dim, the biased variance: torch's batch norm."""
    g = rng(17)
    x = g.standard_normal(shape) * 2 + 1
    params = [g.standard_normal(3), g.standard_normal(3)] if affine else []
    name = np.dtype(dtype).name
    running = {
        lib: (lib.zeros(3, dtype=getattr(lib, name)), lib.ones(3, dtype=getattr(lib, name)))
        for lib in (tape, torch)
    }

    def norm(lib, x, *params):
        mean, var = running[lib]
        return functional(lib).batch_norm(x, mean, var, *params, training=True, momentum=0.2)

    check_torch(norm, x, *params, dtype=dtype)
    for ours, theirs in zip(running[tape], running[torch]):
        assert_close(ours.array, theirs.numpy())


@pytest.mark.parametrize("shape", [(8, 3), (8, 3, 5)])
def test_batch_norm_in_evaluation_uses_the_running_statistics(shape):
    g = rng(18)
    mean, var = g.standard_normal(3), g.random(3) + 0.5
    x, w, b = g.standard_normal(shape), g.standard_normal(3), g.standard_normal(3)

    def norm(lib, x, w, b):
        return functional(lib).batch_norm(x, lib.tensor(mean), lib.tensor(var), w, b, training=False)

    check_torch(norm, x, w, b)


def test_batch_norm_of_3d_input_finite_differences():
    """The fused batchnorm's VJP over two batch dims, through the permutes around it."""
    g = rng(19)
    check_finite_differences(
        lambda lib, x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        g.standard_normal((3, 2, 4)),
        g.standard_normal(2),
        g.standard_normal(2),
    )


@pytest.mark.parametrize("unbiased", [True, False])
def test_the_fused_batchnorm_over_two_batch_dims_is_the_lectures_formula(unbiased):
    g = rng(20)
    x, gain, bias = g.standard_normal((4, 5, 6)) * 3 + 1, g.standard_normal(6), g.standard_normal(6)

    def lecture(lib, x, gain, bias):
        if lib is tape:
            return tape.batchnorm(x, gain, bias, 1e-5, unbiased, dim=(0, 1))
        mean, var = x.mean((0, 1), keepdim=True), x.var((0, 1), keepdim=True, unbiased=unbiased)
        return gain * (x - mean) / torch.sqrt(var + 1e-5) + bias

    for dtype in DTYPES:
        checked = check_torch(lecture, x, gain, bias, dtype=dtype)
        assert [e.op.name for e in tape.wengert_list(checked.out)] == ["batchnorm"]


def test_the_fused_batchnorm_asks_which_dims_are_the_batch():
    x = tape.tensor(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"\(n, length, features\) for dim=\(0, 1\).*got dim=0"):
        tape.batchnorm(x, np.ones(4), np.zeros(4))
    with pytest.raises(ValueError, match="more than 1 value per feature"):
        tape.batchnorm(tape.tensor(np.zeros((1, 1, 4))), np.ones(4), np.zeros(4), dim=(0, 1))
