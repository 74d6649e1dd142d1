"""tape.random against torch's CPU generator: every sampler value for value, bit for bit.

Each test seeds a torch.Generator and a tape Generator alike, makes the same calls on both and
compares the arrays exactly (dtype, shape and bytes). Drawing something after each call on both
sides also proves that the two streams stay at the same position.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tape
import tape.random as tr

SIZES = [0, 1, 2, 7, 15, 16, 17, 31, 32, 33, 100, 1000, 10007]
DTYPES = [np.float32, np.float64]
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}
LECTURE_SEEDS = [2147483647, 42]


def assert_same(ours: np.ndarray, theirs) -> None:
    theirs = theirs.numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)
    assert ours.tobytes() == theirs.tobytes()  # also tells -0.0 from 0.0


def pair(seed: int) -> tuple[torch.Generator, tr.Generator]:
    return torch.Generator().manual_seed(seed), tr.Generator().manual_seed(seed)


def assert_in_step(g: torch.Generator, h: tr.Generator) -> None:
    """Both streams are at the same word (and normal cache): the next draws agree."""
    assert_same(h.randint(0, 1000, (3,)), torch.randint(0, 1000, (3,), generator=g))
    assert_same(h.randn(1, dtype=np.float64), torch.randn(1, generator=g, dtype=torch.float64))


# ---------------------------------------------------------------------- floats at every size


@pytest.mark.parametrize("seed", LECTURE_SEEDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_randn_and_rand_match_torch_at_every_size(n, dtype, seed):
    g, h = pair(seed)
    td = TORCH_DTYPE[dtype]
    assert_same(h.randn(n, dtype=dtype), torch.randn(n, generator=g, dtype=td))
    assert_same(h.rand(n, dtype=dtype), torch.rand(n, generator=g, dtype=td))
    assert_same(h.randn(n, dtype=dtype), torch.randn(n, generator=g, dtype=td))
    assert_in_step(g, h)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_normal_uniform_exponential_with_parameters_match_torch(n, dtype):
    g, h = pair(n)
    td = TORCH_DTYPE[dtype]
    assert_same(h.normal(0.3, 1.7, n, dtype=dtype), torch.normal(0.3, 1.7, (n,), generator=g, dtype=td))
    assert_same(
        h.uniform(-3.3, 7.1, n, dtype=dtype), torch.empty(n, dtype=td).uniform_(-3.3, 7.1, generator=g)
    )
    assert_same(
        h.exponential(n, lambd=2.5, dtype=dtype), torch.empty(n, dtype=td).exponential_(2.5, generator=g)
    )
    assert_same(
        h.normal(-1.25, 0.1, n, dtype=dtype), torch.empty(n, dtype=td).normal_(-1.25, 0.1, generator=g)
    )
    assert_in_step(g, h)


@pytest.mark.parametrize("dtype", DTYPES)
def test_many_normals_take_the_vectorised_kernel_exactly(dtype):
    g, h = pair(7)
    td = TORCH_DTYPE[dtype]
    n = 300_003 if dtype == np.float32 else 30_003
    assert_same(h.randn(n, dtype=dtype), torch.randn(n, generator=g, dtype=td))
    assert_same(h.normal(5.0, 0.01, n, dtype=dtype), torch.normal(5.0, 0.01, (n,), generator=g, dtype=td))


def test_sizes_are_given_as_torch_gives_them():
    g, h = pair(3)
    assert_same(h.randn(27, 10), torch.randn(27, 10, generator=g))
    assert_same(h.randn((3, 5)), torch.randn((3, 5), generator=g))
    assert_same(h.rand([2, 0, 4]), torch.rand([2, 0, 4], generator=g))
    assert_same(h.randn(), torch.randn((), generator=g))
    assert_same(h.normal(1.0, 2.0, (4, 4)), torch.normal(1.0, 2.0, (4, 4), generator=g))
    assert_same(h.uniform(0.0, 1.0, (2, 3)), torch.empty(2, 3).uniform_(generator=g))
    assert_in_step(g, h)


# ---------------------------------------------------------------------- the normal cache


def test_the_scalar_box_muller_cache_carries_across_calls_and_dtypes():
    g, h = pair(11)
    for n, dtype in [(1, np.float32), (3, np.float64), (100, np.float32), (1, np.float64), (17, np.float64)]:
        assert_same(h.randn(n, dtype=dtype), torch.randn(n, generator=g, dtype=TORCH_DTYPE[dtype]))
        assert_same(h.normal(2.0, 3.0, 5), torch.normal(2.0, 3.0, (5,), generator=g))
    assert_in_step(g, h)


def test_manual_seed_clears_the_normal_cache():
    g, h = pair(5)
    torch.randn(1, generator=g), h.randn(1)
    g.manual_seed(5), h.manual_seed(5)
    assert_same(h.randn(4), torch.randn(4, generator=g))


# ---------------------------------------------------------------------- integers


@pytest.mark.parametrize(
    ("low", "high"),
    [
        (0, 27),
        (0, 182625),
        (-7, 5),
        (0, 2**28 - 1),
        (0, 2**28),
        (-5, 2**31),
        (0, 2**32 + 1),
        (-(2**62), 2**62),
    ],
)
@pytest.mark.parametrize("n", [0, 1, 32, 1001])
def test_randint_matches_torch_for_small_and_wide_ranges(low, high, n):
    g, h = pair(low + high + n)
    assert_same(h.randint(low, high, (n,)), torch.randint(low, high, (n,), generator=g))
    assert_in_step(g, h)


def test_randint_takes_torchs_argument_forms():
    g, h = pair(2147483647)
    assert_same(h.randint(182625, (32,)), torch.randint(182625, (32,), generator=g))
    assert_same(h.randint(10, size=(2, 3)), torch.randint(10, size=(2, 3), generator=g))
    assert_same(h.randint(3, 9, size=(4,)), torch.randint(3, 9, size=(4,), generator=g))
    assert_same(tr.randint(-3, 3, (5,), generator=h), torch.randint(-3, 3, (5,), generator=g))
    assert_in_step(g, h)


def test_the_lecture_minibatch_loop_matches_torch():
    g, h = pair(2147483647)
    for _ in range(2000):
        assert_same(h.randint(0, 182625, (32,)), torch.randint(0, 182625, (32,), generator=g))


@pytest.mark.parametrize("n", [0, 1, 2, 7, 16, 100, 10007])
def test_randperm_matches_torch(n):
    g, h = pair(n + 1)
    assert_same(h.randperm(n), torch.randperm(n, generator=g))
    assert_in_step(g, h)


def test_randperm_switches_to_64_bit_randoms_where_torch_does():
    assert tr.RANDPERM_64_BIT_FROM == 214748364  # (2**32 - 1) // 20; above it torch's loop is 64-bit


# ---------------------------------------------------------------------- multinomial


def weights(rng: np.random.Generator, shape: tuple, dtype, zeros: float = 0.0) -> np.ndarray:
    w = rng.random(shape) ** 3
    w[rng.random(shape) < zeros] = 0
    w[..., 0] += 0.1  # every row keeps a positive sum
    return w.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(27,), (1, 27), (5, 27), (2,), (3, 1000)])
@pytest.mark.parametrize("num_samples", [1, 2, 20, 200])
def test_multinomial_with_replacement_matches_torch(shape, dtype, num_samples):
    g, h = pair(num_samples + shape[-1])
    w = weights(np.random.default_rng(num_samples), shape, dtype)
    assert_same(
        h.multinomial(w, num_samples, True),
        torch.multinomial(torch.from_numpy(w), num_samples, True, generator=g),
    )
    assert_in_step(g, h)


def test_the_lecture_sampling_loop_matches_torch():
    """makemore samples one character at a time: num_samples=1, replacement=True."""
    g, h = pair(2147483647 + 10)
    probs = np.random.default_rng(0).dirichlet(np.ones(27), size=50).astype(np.float32)
    for p in probs:
        assert_same(h.multinomial(p, 1, True), torch.multinomial(torch.from_numpy(p), 1, True, generator=g))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(27,), (4, 27), (3,), (2, 5000)])
@pytest.mark.parametrize("num_samples", [1, 3, 27])
@pytest.mark.parametrize("zeros", [0.0, 0.7, 0.999])
def test_multinomial_without_replacement_matches_torch_ties_included(shape, dtype, num_samples, zeros):
    num_samples = min(num_samples, shape[-1])
    g, h = pair(num_samples * shape[-1])
    w = weights(np.random.default_rng(shape[-1]), shape, dtype, zeros)
    got = h.multinomial(w, num_samples, False)
    assert_same(got, torch.multinomial(torch.from_numpy(w), num_samples, False, generator=g))
    assert all(len(set(row)) == num_samples for row in got.reshape(-1, num_samples))
    assert_in_step(g, h)


@settings(max_examples=40, deadline=None)
@given(
    categories=st.integers(1, 300),
    rows=st.sampled_from([None, 1, 3]),
    positives=st.floats(0.01, 1.0),
    fraction=st.floats(0.0, 1.0),
    replacement=st.booleans(),
    double=st.booleans(),
    seed=st.integers(0, 2**64 - 1),
)
def test_multinomial_matches_torch_on_random_weights(
    categories, rows, positives, fraction, replacement, double, seed
):
    """Few positive weights and many samples drive topk into ties among the zeros (both of its
    algorithms: k * 64 <= n selects with a heap, otherwise introselect)."""
    dtype = np.float64 if double else np.float32
    shape = (categories,) if rows is None else (rows, categories)
    w = weights(np.random.default_rng(seed % 1000), shape, dtype, zeros=1 - positives)
    num_samples = max(1, round(fraction * categories)) if not replacement else max(1, round(fraction * 50))
    g, h = pair(seed)
    expected = torch.multinomial(torch.from_numpy(w), num_samples, replacement, generator=g)
    assert_same(h.multinomial(w, num_samples, replacement), expected)
    assert_in_step(g, h)


# ---------------------------------------------------------------------- one stream, mixed calls


def test_a_mixed_sequence_of_calls_stays_in_step_with_torch():
    g, h = pair(2147483647)
    p = np.array([0.1, 0.0, 2.0, 0.5, 0.25], dtype=np.float32)
    steps = [
        (lambda: h.randn(1), lambda: torch.randn(1, generator=g)),
        (lambda: h.randint(0, 182625, (32,)), lambda: torch.randint(0, 182625, (32,), generator=g)),
        (
            lambda: h.multinomial(p, 1, True),
            lambda: torch.multinomial(torch.from_numpy(p), 1, True, generator=g),
        ),
        (lambda: h.randn(3), lambda: torch.randn(3, generator=g)),
        (lambda: h.randn(27, 10), lambda: torch.randn(27, 10, generator=g)),
        (
            lambda: h.multinomial(p, 9, True),
            lambda: torch.multinomial(torch.from_numpy(p), 9, True, generator=g),
        ),
        (lambda: h.randn(1, dtype=np.float64), lambda: torch.randn(1, generator=g, dtype=torch.float64)),
        (lambda: h.rand(5), lambda: torch.rand(5, generator=g)),
        (lambda: h.randperm(10), lambda: torch.randperm(10, generator=g)),
        (
            lambda: h.multinomial(p, 3, False),
            lambda: torch.multinomial(torch.from_numpy(p), 3, False, generator=g),
        ),
        (lambda: h.normal(1.0, 0.5, 7), lambda: torch.normal(1.0, 0.5, (7,), generator=g)),
        (lambda: h.randint(-(2**40), 2**40, (4,)), lambda: torch.randint(-(2**40), 2**40, (4,), generator=g)),
        (lambda: h.randn(2), lambda: torch.randn(2, generator=g)),
    ]
    for _ in range(3):
        for ours, theirs in steps:
            assert_same(ours(), theirs())


# ---------------------------------------------------------------------- seeds and state


@pytest.mark.parametrize(
    "seed", [0, 1, 42, 2147483647, 2**32 - 1, 2**32, 2**32 + 5, 2**63, 2**64 - 1, -1, -(2**63)]
)
def test_seeds_match_torch_including_wide_and_negative_ones(seed):
    g, h = pair(seed)
    assert h.initial_seed() == g.initial_seed()
    assert_same(h.randn(20), torch.randn(20, generator=g))
    assert_in_step(g, h)


def test_a_fresh_generator_starts_where_torchs_does():
    g, h = torch.Generator(), tr.Generator()
    assert h.initial_seed() == g.initial_seed() == 67280421310721
    assert_same(h.randn(5), torch.randn(5, generator=g))


def test_manual_seed_returns_the_generator_and_seed_reseeds():
    h = tr.Generator()
    assert h.manual_seed(3) is h
    seed = h.seed()
    assert 0 <= seed < 2**64 and h.initial_seed() == seed
    g = torch.Generator().manual_seed(seed)
    assert_same(h.randn(18), torch.randn(18, generator=g))


def test_the_default_generator_follows_manual_seed_like_torch():
    assert tr.manual_seed(42) is tr.default_generator
    torch.manual_seed(42)
    assert tr.initial_seed() == torch.initial_seed() == 42
    assert_same(tr.randn(27, 10), torch.randn(27, 10))
    assert_same(tr.rand(3), torch.rand(3))
    assert_same(tr.randint(0, 10, (5,)), torch.randint(0, 10, (5,)))
    assert_same(tr.randperm(6), torch.randperm(6))
    p = np.array([1.0, 3.0, 0.5], dtype=np.float32)
    assert_same(tr.multinomial(p, 4, replacement=True), torch.multinomial(torch.from_numpy(p), 4, True))
    assert_same(tr.normal(0.0, 2.0, (3,)), torch.normal(0.0, 2.0, (3,)))
    assert_same(tr.uniform(-1.0, 1.0, 4), torch.empty(4).uniform_(-1.0, 1.0))
    tr.manual_seed(3.7), torch.manual_seed(3.7)  # torch.manual_seed takes int(seed)
    assert tr.initial_seed() == torch.initial_seed() == 3


def test_the_default_generator_starts_non_deterministically_like_torch():
    code = "import sys, tape.random as r; print(r.initial_seed()); assert 'torch' not in sys.modules"
    seeds = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        for _ in "ab"
    }
    assert len(seeds) == 2  # and importing tape.random did not import torch


def test_get_state_and_set_state_replay_the_stream_and_the_cache():
    g, h = pair(9)
    torch.randn(1, generator=g), h.randn(1)  # leaves a cached normal on both
    torch_state, state = g.get_state(), h.get_state()
    first = [h.randn(1), h.randint(0, 100, (8,)), h.randn(33), h.randn(1)]
    h.set_state(state)
    g.set_state(torch_state)
    for ours, theirs in zip(
        [h.randn(1), h.randint(0, 100, (8,)), h.randn(33), h.randn(1)],
        [torch.randn(1, generator=g), torch.randint(0, 100, (8,), generator=g), torch.randn(33, generator=g)],
    ):
        assert_same(ours, theirs)
    h.set_state(state)
    for before, again in zip(first, [h.randn(1), h.randint(0, 100, (8,)), h.randn(33), h.randn(1)]):
        assert_same(again, before)
    assert h.get_state() != state and tr.Generator().set_state(state).get_state() == state


# ---------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda h: h.manual_seed(2**64), ValueError, "Generator.manual_seed: seed"),
        (lambda h: h.manual_seed(-(2**63) - 1), ValueError, "Generator.manual_seed: seed"),
        (lambda h: h.manual_seed(1.5), TypeError, "Generator.manual_seed: seed"),
        (lambda h: h.manual_seed(True), TypeError, "Generator.manual_seed: seed"),
        (lambda h: tr.Generator(device="cuda"), ValueError, "Generator: device"),
        (lambda h: h.set_state(b"state"), TypeError, "Generator.set_state: state"),
        (lambda h: h.randn(-1), ValueError, "randn: size"),
        (lambda h: h.randn(2.5), TypeError, "randn: size"),
        (lambda h: h.rand(3, dtype=np.int64), TypeError, "rand: dtype"),
        (lambda h: h.normal(0.0, -1.0, 3), ValueError, "normal: std"),
        (lambda h: h.uniform(2.0, 1.0, 3), ValueError, "uniform: low"),
        (lambda h: h.exponential(3, lambd=0.0), ValueError, "exponential: lambd"),
        (lambda h: h.randint(5, 5, (3,)), ValueError, "randint: low"),
        (lambda h: h.randint(10), TypeError, "randint: size"),
        (lambda h: h.randint(0.5, 10, (3,)), TypeError, "randint: low"),
        (lambda h: h.randint(0, 2**63, (3,)), ValueError, "randint: low and high"),
        (lambda h: h.randperm(-1), ValueError, "randperm: n"),
        (lambda h: h.multinomial(np.ones((2, 2, 2)), 1), ValueError, "multinomial: probs"),
        (lambda h: h.multinomial(np.ones(3, dtype=np.int64), 1), TypeError, "multinomial: probs"),
        (lambda h: h.multinomial(np.array([1.0, -1.0]), 1), ValueError, "multinomial: probs"),
        (lambda h: h.multinomial(np.array([1.0, np.inf]), 1), ValueError, "multinomial: probs"),
        (lambda h: h.multinomial(np.zeros((2, 3)), 1, True), ValueError, "multinomial: every row of probs"),
        (lambda h: h.multinomial(np.ones(3), 4), ValueError, "multinomial: num_samples"),
        (lambda h: h.multinomial(np.ones(3), 0, True), ValueError, "multinomial: num_samples"),
    ],
)
def test_bad_arguments_raise_naming_the_function_and_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call(tr.Generator())


# ---------------------------------------------------------------- the tensor-level functions


def test_tape_functions_draw_torchs_numbers_as_tensors_from_a_seeded_generator():
    g, tg = tape.Generator().manual_seed(2147483647), torch.Generator().manual_seed(2147483647)
    draws = [
        (lambda lib, g: lib.randn((27, 27), generator=g)),
        (lambda lib, g: lib.rand(5, 3, generator=g, dtype=lib.float64)),
        (lambda lib, g: lib.randint(0, 182625, (32,), generator=g)),
        (lambda lib, g: lib.randint(10, (4,), generator=g)),
        (lambda lib, g: lib.randperm(20, generator=g)),
        (lambda lib, g: lib.multinomial(lib.ones(27) / 27, 1, replacement=True, generator=g)),
        (lambda lib, g: lib.zeros(4, 5).normal_(0.0, 0.02, generator=g)),
        (lambda lib, g: lib.zeros(17).uniform_(-1.0, 1.0, generator=g)),
    ]
    for draw in draws:
        ours, theirs = draw(tape, g), draw(torch, tg)
        assert isinstance(ours, tape.Tensor)
        assert ours.dtype == theirs.numpy().dtype
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_tape_manual_seed_seeds_the_default_generator_as_torch_does():
    tape.manual_seed(42)
    torch.manual_seed(42)
    np.testing.assert_array_equal(tape.randn(3, 4).numpy(), torch.randn(3, 4).numpy())
    np.testing.assert_array_equal(tape.randint(0, 5, (6,)).numpy(), torch.randint(0, 5, (6,)).numpy())


def test_a_numpy_generator_is_refused_with_a_clear_error():
    with pytest.raises(TypeError, match=r"generator must be a tape\.Generator, got Generator"):
        tape.randn(3, generator=np.random.default_rng(0))


def test_sampling_in_place_into_a_parameter_is_refused_outside_no_grad():
    w = tape.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="normal_: a leaf tensor that requires grad"):
        w.normal_()
    with tape.no_grad():
        w.normal_()
    assert np.all(w.numpy() != 0)
