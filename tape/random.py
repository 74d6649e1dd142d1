"""PyTorch's CPU random numbers, value for value, on NumPy.

Seeded alike, a ``Generator`` here and a ``torch.Generator`` return the same arrays from the same
calls in the same order, so a lecture that draws its initial weights, minibatches and samples
from torch prints the same numbers on tape. Arrays only; wrapping them into tensors is the
caller's business. Nothing here imports torch.

    g = Generator()                                   torch.Generator()
    g.manual_seed(seed) -> g, g.seed() -> int, g.initial_seed(), g.get_state(), g.set_state(s)
    g.rand(*size, dtype=float32)                      torch.rand(*size, generator=g)
    g.uniform(low, high, size, dtype=float32)         torch.empty(size).uniform_(low, high, generator=g)
    g.randn(*size, dtype=float32)                     torch.randn(*size, generator=g)
    g.normal(mean, std, size, dtype=float32)          torch.normal(mean, std, size, generator=g)
    g.exponential(*size, lambd=1.0, dtype=float32)    torch.empty(size).exponential_(lambd, generator=g)
    g.randint(low, high, size), g.randint(high, size) torch.randint(...), int64
    g.randperm(n)                                     torch.randperm(n, generator=g), int64
    g.multinomial(probs, num_samples, replacement=False)   torch.multinomial(...), int64
    default_generator, manual_seed(seed), seed(), initial_seed(), and rand, uniform, randn,
    normal, randint, randperm, multinomial as functions taking generator=None (the default).

The stream
    torch's CPU generator is a 32-bit Mersenne Twister (mt19937) keyed by the standard
    ``init_genrand`` recurrence from the low 32 bits of the seed (``initial_seed()`` still
    reports the whole 64-bit seed). A 64-bit random is two consecutive 32-bit words, the first
    in the high half. NumPy's ``MT19937`` bit generator, given the same 624-word key, emits the
    same words; ``random_raw`` hands them over in bulk.

Uniforms
    float32: the low 24 bits of one word times 2**-24; float64: the low 53 bits of one 64-bit
    random times 2**-53. Both are exact, in [0, 1). ``uniform(low, high)`` is
    ``fma(x, high - low, low)`` in the output dtype: ATen's AVX2 kernels are compiled with FMA
    contraction, so ``x * (high - low) + low`` is rounded once.

Normals (``randn``, ``normal``), by the number of elements n, as ATen does:
    n < 16: one Box-Muller pair per two values, in float64 from two 53-bit uniforms u1, u2:
        r = sqrt(-2 log1p(-u2)), theta = 2 pi u1, value = fma(r cos theta, std, mean); the
        second value r sin theta is cached in the generator and returned by the next
        scalar-path normal (also by a later call), then cast to the dtype.
    n >= 16: n uniforms of the dtype are drawn, then every block of 16 becomes 16 normals:
        u1 = 1 - block[:8] gives the radius sqrt(-2 log u1), block[8:] the angle 2 pi u2;
        cosines fill the first half, sines the second, each then fma(., std, mean). If 16
        does not divide n, 16 more uniforms are drawn and transformed into the last 16
        places, overwriting the tail. float64 uses the C library's log, cos and sin (as ATen
        does, through ``math``); float32 uses ATen's AVX2 code: Cephes' single-precision log
        and sincos polynomials, evaluated with fused multiply-adds, reproduced here operation
        by operation.
    The cache is untouched by the n >= 16 path and cleared by ``manual_seed``.

Integers
    ``randint(low, high)``: one word (one 64-bit random when high - low >= 2**28) modulo the
    range, plus low. ``randperm(n)``: Fisher-Yates, position i swapped with
    i + word % (n - i); from n >= (2**32 - 1) // 20 = 214748364 torch switches to the
    inside-out shuffle with 64-bit randoms (z = random64 % (i + 1)), and so does this.

Exponentials and multinomial
    ``exponential(lambd)``: -1 / lambd * log1p(-u), u a 53-bit uniform, cast to the dtype.
    ``multinomial`` with replacement and num_samples > 1: per row, the cumulative sum in the
    probabilities' dtype divided by its last entry (which is then set to 1); each sample is the
    first category whose cumulative probability is >= a 53-bit uniform. Otherwise (without
    replacement, or a single sample either way) the exponential race torch runs: q = probs /
    Exp(1), drawn in row-major order, and the num_samples largest q in descending order (the
    first maximum for one sample). Ties, as among zero weights, are ordered as torch.topk's
    libstdc++ selection leaves them.

These are the kernels torch selects on x86-64 CPUs with AVX2 (``torch.backends.cpu.
get_cpu_capability() == "AVX2"``). Under other capabilities torch itself rounds differently:
with ATEN_CPU_CAPABILITY=default, float32 normals of 16 or more elements and uniform(low, high)
other than [0, 1) change, while integers, rand, float64 normals and small normals do not.
"""

from __future__ import annotations

import array
import dataclasses
import math
import operator
import os
from collections.abc import Sequence

import numpy as np

from tape.tracing import replayable

__all__ = [
    "Generator",
    "GeneratorState",
    "default_generator",
    "initial_seed",
    "manual_seed",
    "multinomial",
    "normal",
    "rand",
    "randint",
    "randn",
    "randperm",
    "seed",
    "uniform",
]

TORCH_DEFAULT_SEED = 67280421310721  # what torch.Generator() starts from
MT_WORDS = 624
SCALAR_NORMAL_BELOW = 16  # fewer elements than this take torch's scalar Box-Muller path
RANDINT_64_BIT_FROM = 2**28  # ranges this wide take 64-bit randoms (torch: "allow approx 5% skew")
RANDPERM_64_BIT_FROM = (2**32 - 1) // 20  # torch's randperm switches to 64-bit randoms here
SHUFFLE_CHUNK = 1 << 20  # randoms drawn at a time by randperm, to bound memory
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
UNIFORM_BITS = {np.dtype(np.float32): 24, np.dtype(np.float64): 53}

Size = int | Sequence[int]
DType = np.dtype | type  # np.float32, np.dtype("float64"), "float32", ...


@dataclasses.dataclass(frozen=True)
class GeneratorState:
    """Everything that decides a generator's future draws (immutable, so copies are free)."""

    key: bytes  # the 624 Mersenne Twister words, little-endian uint32
    position: int  # how many of them have been used (624: regenerate before the next draw)
    initial_seed: int
    normal_cache: float | None  # the second value of the last scalar Box-Muller pair


class Generator:
    """A torch-compatible CPU random generator: ``torch.Generator(device="cpu")``."""

    def __init__(self, device: str = "cpu") -> None:
        if str(device) != "cpu":
            raise ValueError(f"Generator: device must be 'cpu', got {device!r}")
        self._mt = np.random.MT19937(0)
        self.manual_seed(TORCH_DEFAULT_SEED)

    # ------------------------------------------------------------------ seeding and state

    @replayable  # seeding inside a replayed step seeds on every replay
    def manual_seed(self, seed: int) -> Generator:
        """Seed like ``torch.Generator.manual_seed``: integers in [-2**63, 2**64), negatives
        taken modulo 2**64. Only the low 32 bits key the twister. Returns self."""
        self._initial_seed = _checked_seed(seed, "Generator.manual_seed")
        self._mt.state = {
            "bit_generator": "MT19937",
            "state": {"key": _init_genrand(self._initial_seed & 0xFFFFFFFF), "pos": MT_WORDS},
        }
        self._normal_cache: float | None = None
        return self

    def seed(self) -> int:
        """Re-seed from the operating system's entropy, like ``torch.Generator.seed``."""
        fresh = int.from_bytes(os.urandom(8), "little")
        self.manual_seed(fresh)
        return fresh

    def initial_seed(self) -> int:
        return self._initial_seed

    def get_state(self) -> GeneratorState:
        state = self._mt.state["state"]
        key = np.asarray(state["key"], dtype="<u4").tobytes()
        return GeneratorState(key, int(state["pos"]), self._initial_seed, self._normal_cache)

    @replayable
    def set_state(self, state: GeneratorState) -> Generator:
        if not isinstance(state, GeneratorState):
            raise TypeError(
                f"Generator.set_state: state must be a GeneratorState, got {type(state).__name__}"
            )
        key = np.frombuffer(state.key, dtype="<u4").astype(np.uint32)
        if key.size != MT_WORDS or not 0 <= state.position <= MT_WORDS:
            raise ValueError("Generator.set_state: state is not a Mersenne Twister state (624 words)")
        self._mt.state = {"bit_generator": "MT19937", "state": {"key": key, "pos": state.position}}
        self._initial_seed = state.initial_seed
        self._normal_cache = state.normal_cache
        return self

    # ------------------------------------------------------------------ the raw stream

    def _words(self, n: int) -> np.ndarray:
        """n consecutive 32-bit outputs (as uint64)."""
        return self._mt.random_raw(n)

    def _words64(self, n: int) -> np.ndarray:
        """n 64-bit randoms, each two consecutive words, the first one high."""
        words = self._mt.random_raw(2 * n)
        return (words[0::2] << np.uint64(32)) | words[1::2]

    def _unit_uniform(self, n: int, dtype: np.dtype) -> np.ndarray:
        """n exact uniforms in [0, 1): 24 random bits for float32, 53 for float64."""
        bits = UNIFORM_BITS[dtype]
        raw = self._words(n) if bits == 24 else self._words64(n)
        return (raw & np.uint64(2**bits - 1)).astype(dtype) * dtype.type(2.0**-bits)

    # ------------------------------------------------------------------ samplers

    def rand(self, *size: Size, dtype: DType = np.float32) -> np.ndarray:
        """``torch.rand(*size, generator=g, dtype=dtype)``: uniform on [0, 1)."""
        shape, dtype = _shape(size, "rand"), _float_dtype(dtype, "rand")
        return self._unit_uniform(math.prod(shape), dtype).reshape(shape)

    def uniform(self, low: float, high: float, size: Size, dtype: DType = np.float32) -> np.ndarray:
        """``torch.empty(size, dtype=dtype).uniform_(low, high, generator=g)``."""
        shape, dtype = _shape((size,), "uniform"), _float_dtype(dtype, "uniform")
        low, high = dtype.type(low), dtype.type(high)
        if not low <= high:
            raise ValueError(f"uniform: low must be <= high, got low={low}, high={high}")
        x = self._unit_uniform(math.prod(shape), dtype)
        return _scale_shift(x, high - low, low).reshape(shape)

    def randn(self, *size: Size, dtype: DType = np.float32) -> np.ndarray:
        """``torch.randn(*size, generator=g, dtype=dtype)``: standard normal."""
        return self._normal(0.0, 1.0, _shape(size, "randn"), _float_dtype(dtype, "randn"))

    def normal(self, mean: float, std: float, size: Size, dtype: DType = np.float32) -> np.ndarray:
        """``torch.normal(mean, std, size, generator=g, dtype=dtype)`` (also ``Tensor.normal_``)."""
        shape, dtype = _shape((size,), "normal"), _float_dtype(dtype, "normal")
        if not std >= 0:
            raise ValueError(f"normal: std must be >= 0, got std={std}")
        return self._normal(float(mean), float(std), shape, dtype)

    def exponential(self, *size: Size, lambd: float = 1.0, dtype: DType = np.float32) -> np.ndarray:
        """``torch.empty(*size, dtype=dtype).exponential_(lambd, generator=g)``."""
        shape, dtype = _shape(size, "exponential"), _float_dtype(dtype, "exponential")
        if not lambd > 0:
            raise ValueError(f"exponential: lambd must be > 0, got lambd={lambd}")
        return self._exponentials(math.prod(shape), lambd, dtype).reshape(shape)

    def randint(self, low: int, high: int | Size | None = None, size: Size | None = None) -> np.ndarray:
        """``torch.randint(low, high, size)`` or ``torch.randint(high, size)``: int64 in [low, high)."""
        low, high, shape = _randint_arguments(low, high, size)
        span = high - low
        n = math.prod(shape)
        raw = self._words(n) if span < RANDINT_64_BIT_FROM else self._words64(n)
        # torch adds in uint64 and reinterprets as int64: wrap-around gives the right value.
        offset = (raw % np.uint64(span)) + np.uint64(low % 2**64)
        return offset.view(np.int64).reshape(shape)

    def randperm(self, n: int) -> np.ndarray:
        """``torch.randperm(n, generator=g)``: a random permutation of 0..n-1, int64."""
        n = _count(n, "randperm", "n")
        if n < RANDPERM_64_BIT_FROM:
            return self._fisher_yates(n)
        return self._inside_out_shuffle(n)

    def multinomial(self, probs: np.ndarray, num_samples: int, replacement: bool = False) -> np.ndarray:
        """``torch.multinomial(probs, num_samples, replacement, generator=g)``: int64 indices,
        shape (num_samples,) for 1-D probs, (rows, num_samples) for 2-D. Weights need not sum to 1."""
        weights, num_samples = _multinomial_arguments(probs, num_samples, replacement)
        if weights.size == 0:
            return np.empty((*weights.shape[:-1], num_samples), dtype=np.int64)
        rows = weights.reshape(-1, weights.shape[-1])
        if replacement and num_samples > 1:  # torch races exponentials for a single sample too
            samples = self._multinomial_with_replacement(rows, num_samples)
        else:
            samples = self._exponential_race(rows, num_samples)
        return samples.reshape(*weights.shape[:-1], num_samples)

    def _exponentials(self, n: int, lambd: float, dtype: np.dtype) -> np.ndarray:
        """-1 / lambd * log1p(-u) in float64 from 53-bit uniforms, then cast, as ATen does."""
        u = self._unit_uniform(n, np.dtype(np.float64))
        return ((-1.0 / lambd) * np.log1p(-u)).astype(dtype)

    # ------------------------------------------------------------------ normal paths

    def _normal(self, mean: float, std: float, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        n = math.prod(shape)
        if n < SCALAR_NORMAL_BELOW:
            return self._scalar_normals(n, mean, std).astype(dtype).reshape(shape)
        box_muller = _box_muller_float32 if dtype == np.float32 else _box_muller_float64
        whole = n - n % 16
        # torch draws 16 fresh uniforms for the last 16 places when 16 does not divide n
        tail = 16 if whole < n else 0
        u = self._unit_uniform(n + tail, dtype)
        normals = box_muller(np.concatenate([u[:whole], u[n:]]), dtype.type(mean), dtype.type(std))
        out = np.empty(n, dtype=dtype)
        out[:whole] = normals[:whole]
        out[n - tail :] = normals[whole:]
        return out.reshape(shape)

    def _scalar_normals(self, n: int, mean: float, std: float) -> np.ndarray:
        """torch's scalar Box-Muller in float64, pairs (cos, sin) with the sin cached."""
        values = []
        if n and self._normal_cache is not None:
            values.append(_fma_scalar(self._normal_cache, std, mean))
            self._normal_cache = None
        pairs = -(-(n - len(values)) // 2)
        u = self._unit_uniform(2 * pairs, np.dtype(np.float64)).tolist()
        for u1, u2 in zip(u[0::2], u[1::2]):
            radius = math.sqrt(-2.0 * math.log1p(-u2))
            theta = 2.0 * math.pi * u1
            values.append(_fma_scalar(radius * math.cos(theta), std, mean))
            if len(values) == n:
                self._normal_cache = radius * math.sin(theta)
            else:
                values.append(_fma_scalar(radius * math.sin(theta), std, mean))
        return np.array(values, dtype=np.float64)

    # ------------------------------------------------------------------ permutations

    def _fisher_yates(self, n: int) -> np.ndarray:
        """Position i swaps with i + word % (n - i), for i = 0 .. n - 2."""
        perm = array.array("q", np.arange(n, dtype=np.int64).tobytes())  # 8 bytes an entry, fast to index
        for start in range(0, n - 1, SHUFFLE_CHUNK):
            stop = min(start + SHUFFLE_CHUNK, n - 1)
            spans = np.arange(n - start, n - stop, -1, dtype=np.uint64)
            targets = (self._words(stop - start) % spans).astype(np.int64) + np.arange(start, stop)
            for i, j in zip(range(start, stop), targets.tolist()):
                perm[i], perm[j] = perm[j], perm[i]
        return np.frombuffer(perm, dtype=np.int64)

    def _inside_out_shuffle(self, n: int) -> np.ndarray:
        """Entry i takes the value at z = random64 % (i + 1), which then becomes i."""
        perm = array.array("q", bytes(8 * n))
        for start in range(0, n, SHUFFLE_CHUNK):
            stop = min(start + SHUFFLE_CHUNK, n)
            picks = self._words64(stop - start) % np.arange(start + 1, stop + 1, dtype=np.uint64)
            for i, z in zip(range(start, stop), picks.tolist()):
                perm[i] = perm[z]
                perm[z] = i
        return np.frombuffer(perm, dtype=np.int64)

    # ------------------------------------------------------------------ multinomial paths

    def _multinomial_with_replacement(self, rows: np.ndarray, num_samples: int) -> np.ndarray:
        cumulative = np.cumsum(rows, axis=1, dtype=rows.dtype)  # sequential, in the input dtype
        cumulative /= cumulative[:, -1:]
        cumulative[:, -1] = 1
        u = self._unit_uniform(rows.shape[0] * num_samples, np.dtype(np.float64))
        u = u.reshape(rows.shape[0], num_samples)
        # torch's binary search finds the first category with cumulative >= u
        return np.stack(
            [np.searchsorted(c.astype(np.float64), row_u, side="left") for c, row_u in zip(cumulative, u)]
        ).astype(np.int64)

    def _exponential_race(self, rows: np.ndarray, num_samples: int) -> np.ndarray:
        q = self._exponentials(rows.size, 1.0, rows.dtype).reshape(rows.shape)
        with np.errstate(divide="ignore", invalid="ignore"):  # q == 0 has probability 2**-53
            race = rows / q
        if num_samples == 1:
            return np.argmax(race, axis=1, keepdims=True).astype(np.int64)
        return np.stack([_top_k(row, num_samples) for row in race]).astype(np.int64)


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, largest first, as torch.topk orders them on CPU."""
    order = np.argsort(-values, kind="stable")
    leaders = values[order[: k + 1]]
    if np.all(leaders[:-1] > leaders[1:]):  # no ties among the k largest or at the cut: unique answer
        return order[:k]
    return _top_k_with_ties(values.tolist(), k)


# ---------------------------------------------------------------------- torch.topk's tie order
# With ties the answer depends on how the selection moves elements around. torch.topk's CPU kernel
# runs std::partial_sort when k * 64 <= n, else std::nth_element and std::sort of the first k - 1;
# these follow libstdc++'s algorithms (heap select, introselect, introsort) move for move, on a
# list of (value, index) compared by value alone.


def _top_k_with_ties(values: list[float], k: int) -> np.ndarray:
    queue = [(v, i) for i, v in enumerate(values)]
    if k * 64 <= len(queue):
        _heap_select(queue, 0, k, len(queue))
        _sort_heap(queue, 0, k)
    else:
        _introselect(queue, 0, k - 1, len(queue), 2 * (len(queue).bit_length() - 1))
        _introsort(queue, 0, k - 1)
    return np.array([i for _, i in queue[:k]], dtype=np.int64)


def _before(a: tuple, b: tuple) -> bool:
    return a[0] > b[0]  # "largest first"


def _adjust_heap(q: list, first: int, hole: int, length: int, value: tuple) -> None:
    top, child = hole, hole
    while child < (length - 1) // 2:
        child = 2 * (child + 1)
        if _before(q[first + child], q[first + child - 1]):
            child -= 1
        q[first + hole] = q[first + child]
        hole = child
    if length % 2 == 0 and child == (length - 2) // 2:
        child = 2 * (child + 1)
        q[first + hole] = q[first + child - 1]
        hole = child - 1
    parent = (hole - 1) // 2
    while hole > top and _before(q[first + parent], value):
        q[first + hole] = q[first + parent]
        hole, parent = parent, (parent - 1) // 2
    q[first + hole] = value


def _pop_heap(q: list, first: int, last: int, result: int) -> None:
    value, q[result] = q[result], q[first]
    _adjust_heap(q, first, 0, last - first, value)


def _heap_select(q: list, first: int, middle: int, last: int) -> None:
    length = middle - first
    for parent in range((length - 2) // 2, -1, -1) if length >= 2 else ():
        _adjust_heap(q, first, parent, length, q[first + parent])
    for i in range(middle, last):
        if _before(q[i], q[first]):
            _pop_heap(q, first, middle, i)


def _sort_heap(q: list, first: int, last: int) -> None:
    while last - first > 1:
        last -= 1
        _pop_heap(q, first, last, last)


def _partition_around_median(q: list, first: int, last: int) -> int:
    a, b, c = first + 1, first + (last - first) // 2, last - 1
    if _before(q[a], q[b]):
        pick = b if _before(q[b], q[c]) else c if _before(q[a], q[c]) else a
    else:
        pick = a if _before(q[a], q[c]) else c if _before(q[b], q[c]) else b
    q[first], q[pick] = q[pick], q[first]
    pivot, lo, hi = q[first], first + 1, last
    while True:
        while _before(q[lo], pivot):
            lo += 1
        hi -= 1
        while _before(pivot, q[hi]):
            hi -= 1
        if lo >= hi:
            return lo
        q[lo], q[hi] = q[hi], q[lo]
        lo += 1


def _insertion_sort(q: list, first: int, last: int, guarded: bool = True) -> None:
    for i in range(first + 1 if guarded else first, last):
        value = q[i]
        if guarded and _before(value, q[first]):
            q[first + 1 : i + 1] = q[first:i]
            q[first] = value
            continue
        j = i
        while _before(value, q[j - 1]):
            q[j] = q[j - 1]
            j -= 1
        q[j] = value


def _introselect(q: list, first: int, nth: int, last: int, depth: int) -> None:
    while last - first > 3:
        if depth == 0:
            _heap_select(q, first, nth + 1, last)
            q[first], q[nth] = q[nth], q[first]
            return
        depth -= 1
        cut = _partition_around_median(q, first, last)
        first, last = (cut, last) if cut <= nth else (first, cut)
    _insertion_sort(q, first, last)


def _introsort(q: list, first: int, last: int) -> None:
    if last - first < 1:
        return
    _introsort_loop(q, first, last, 2 * ((last - first).bit_length() - 1))
    if last - first > 16:
        _insertion_sort(q, first, first + 16)
        _insertion_sort(q, first + 16, last, guarded=False)
    else:
        _insertion_sort(q, first, last)


def _introsort_loop(q: list, first: int, last: int, depth: int) -> None:
    while last - first > 16:
        if depth == 0:
            _heap_select(q, first, last, last)
            _sort_heap(q, first, last)
            return
        depth -= 1
        cut = _partition_around_median(q, first, last)
        _introsort_loop(q, cut, last, depth)
        last = cut


# ---------------------------------------------------------------------- the float32 AVX2 kernel

_F = np.float32
# Cephes logf: log(1 + x) = x - x**2 / 2 + x**3 P(x) on [sqrt(1/2) - 1, sqrt(2) - 1]
_LOG_P = np.array(
    [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1]
    + [-1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1],
    dtype=_F,
)
_LN2_HIGH, _LN2_LOW = _F(0.693359375), _F(-2.12194440e-4)  # ln 2 = high + low, high exact in 9 bits
_SQRT_HALF = _F(0.707106781186547524)
# Cephes sincosf: reduce by pi/4 in three exact-ish pieces, then a polynomial on [-pi/4, pi/4]
_FOUR_OVER_PI = _F(1.27323954473516)
_PI_OVER_4_PIECES = (_F(-0.78515625), _F(-2.4187564849853515625e-4), _F(-3.77489497744594108e-8))
_SIN_P = (_F(-1.9515295891e-4), _F(8.3321608736e-3), _F(-1.6666654611e-1))
_COS_P = (_F(2.443315711809948e-005), _F(-1.388731625493765e-003), _F(4.166664568298827e-002))
_TWO_PI_F32 = _F(2.0 * math.pi)


def _box_muller_float32(u: np.ndarray, mean: np.float32, std: np.float32) -> np.ndarray:
    """Blocks of 16 uniforms -> 16 normals, as ATen's normal_fill_16_AVX2."""
    blocks = u.reshape(-1, 2, 8)
    radius = np.sqrt(_F(-2) * _log_cephes(_F(1) - blocks[:, 0]))
    sine, cosine = _sincos_cephes(_TWO_PI_F32 * blocks[:, 1])
    normals = np.stack([radius * cosine, radius * sine], axis=1)
    return _scale_shift(normals, std, mean).reshape(-1)


def _log_cephes(x: np.ndarray) -> np.ndarray:
    """Natural log of normal positive float32 x: x = m 2**e, m in [sqrt(1/2), sqrt(2))."""
    bits = x.view(np.int32)
    exponent = ((bits >> 23) - 126).astype(_F)
    mantissa = ((bits & 0x007FFFFF) | 0x3F000000).view(_F)  # in [1/2, 1)
    below = mantissa < _SQRT_HALF  # use 2m in [1, sqrt 2) and one less in the exponent
    exponent -= below.astype(_F)
    f = (mantissa - _F(1)) + np.where(below, mantissa, _F(0))
    f2 = f * f
    poly = _horner(_LOG_P, f) * f
    y = _fma32(poly, f2, exponent * _LN2_LOW)
    # ATen fuses the next two as well, but f2 / 2 and exponent * _LN2_HIGH are exact products
    y = y - f2 * _F(0.5)
    return (f + y) + exponent * _LN2_HIGH


def _sincos_cephes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sin x, cos x) for float32 x in [0, 2 pi], octant by octant."""
    octant = ((x * _FOUR_OVER_PI).astype(np.int32) + 1) & ~1  # even: the nearest multiple of pi/4
    y = octant.astype(_F)
    # x - octant * pi/4, in [-pi/4, pi/4]; octant (<= 8) times the 8- and 11-bit pieces is exact
    x = (x + y * _PI_OVER_4_PIECES[0]) + y * _PI_OVER_4_PIECES[1]
    x = _fma32(y, _PI_OVER_4_PIECES[2], x)
    z = x * x
    cos_poly = _horner(_COS_P, z) * z
    near_cos = _F(1) + _fma32(cos_poly, z, -(z * _F(0.5)))
    near_sin = _fma32(_horner(_SIN_P, z) * z, x, x)
    swap = (octant & 2) != 0  # odd quarter-turns swap the roles of sine and cosine
    sine = np.where(swap, near_cos, near_sin)
    cosine = np.where(swap, near_sin, near_cos)
    sine = np.where((octant & 4) != 0, -sine, sine)
    cosine = np.where(((octant - 2) & 4) == 0, -cosine, cosine)
    return sine, cosine


def _horner(coefficients: Sequence[np.float32], x: np.ndarray) -> np.ndarray:
    y = _fma32(x, coefficients[0], coefficients[1])
    for c in coefficients[2:]:
        y = _fma32(y, x, c)
    return y


# ---------------------------------------------------------------------- the float64 kernel

_log, _cos, _sin = (np.frompyfunc(f, 1, 1) for f in (math.log, math.cos, math.sin))


def _box_muller_float64(u: np.ndarray, mean: np.float64, std: np.float64) -> np.ndarray:
    """Blocks of 16 uniforms -> 16 normals, as ATen's scalar normal_fill_16 with the C library's
    log, cos and sin (``math`` calls them; NumPy's own float64 kernels may round differently)."""
    blocks = u.reshape(-1, 2, 8)
    radius = np.sqrt(-2.0 * _log(1.0 - blocks[:, 0]).astype(np.float64))
    theta = 2.0 * math.pi * blocks[:, 1]
    normals = np.stack([radius * _cos(theta).astype(np.float64), radius * _sin(theta).astype(np.float64)], 1)
    return _scale_shift(normals, std, mean).reshape(-1)


# ---------------------------------------------------------------------- fused multiply-add


def _scale_shift(x: np.ndarray, scale: np.floating, shift: np.floating) -> np.ndarray:
    """fma(x, scale, shift) in x's dtype, as ATen computes ``x * std + mean`` and
    ``x * (high - low) + low``: one rounding."""
    if scale == 1:
        return x + shift  # the product is exact already
    if x.dtype == np.float32:  # any magnitude: round to odd unconditionally
        return _round_to_odd_sum(np.multiply(x, scale, dtype=np.float64), np.float64(shift)).astype(_F)
    return _fma64(x, scale, shift)


def _fma32(a: np.ndarray, b: np.ndarray | np.float32, c: np.ndarray | np.float32) -> np.ndarray:
    """fma for the kernel, whose results are 0 or at least 2**-80 in magnitude. The product of two
    float32 is exact in float64, so rounding the float64 sum to float32 goes wrong only when that
    sum sits exactly halfway between two float32; those rare sums are redone rounded to odd,
    which makes the second rounding right (53 >= 24 + 2 bits)."""
    product = np.multiply(a, b, dtype=np.float64)
    total = product + c
    if ((total.view(np.int64) & 0x1FFFFFFF) == 0x10000000).any():  # the 29 dropped bits: 100...0
        total = _round_to_odd_sum(product, np.asarray(c, dtype=np.float64))
    return total.astype(np.float32)


def _fma64(a: np.ndarray, b: np.ndarray | np.float64, c: np.ndarray | np.float64) -> np.ndarray:
    """Boldo and Melquiond's emulation: a * b = high + low exactly (Dekker), c + high = th + tl
    exactly (Knuth), then RN(th + RO(tl + low)), RO rounding to odd. Valid away from overflow
    and underflow, which is where normals and uniforms live."""
    high, low = _two_product(a, np.broadcast_to(b, np.shape(a)))
    th, tl = _two_sum(np.broadcast_to(c, np.shape(a)).astype(np.float64), high)
    return th + _round_to_odd_sum(tl, low)


def _round_to_odd_sum(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x + y in float64 rounded to odd: if inexact, the neighbour with an odd last bit."""
    total, error = _two_sum(x, y)
    bits = np.array(total, dtype=np.float64).view(np.int64)
    even_inexact = (error != 0) & ((bits & 1) == 0)
    away_from_zero = (error > 0) == (total > 0)
    bits = bits + np.where(even_inexact, np.where(away_from_zero, 1, -1), 0)
    return bits.view(np.float64)


def _two_sum(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    total = x + y
    y_part = total - x
    return total, (x - (total - y_part)) + (y - y_part)


def _two_product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    product = a * b
    a_hi, a_lo = _split(a)
    b_hi, b_lo = _split(b)
    return product, ((a_hi * b_hi - product) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Veltkamp: x = hi + lo with 26 significant bits each, so their products are exact."""
    scaled = x * 134217729.0  # 2**27 + 1
    hi = scaled - (scaled - x)
    return hi, x - hi


def _fma_scalar(a: float, b: float, c: float) -> float:
    if b == 1.0:
        return a + c
    return float(_fma64(np.array([a]), b, c)[0])


# ---------------------------------------------------------------------- seeding


def _init_genrand(seed32: int) -> np.ndarray:
    """The reference mt19937 key schedule: key[i] = 1812433253 (k ^ k >> 30) + i mod 2**32."""
    key = [seed32]
    for i in range(1, MT_WORDS):
        previous = key[-1]
        key.append((1812433253 * (previous ^ (previous >> 30)) + i) & 0xFFFFFFFF)
    return np.array(key, dtype=np.uint32)


def _checked_seed(seed: int, function: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{function}: seed must be an integer, got {type(seed).__name__}")
    seed = int(seed)
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"{function}: seed must be in [-2**63, 2**64), got {seed}")
    return seed % 2**64


# ---------------------------------------------------------------------- argument checks


def _shape(size: tuple, function: str) -> tuple[int, ...]:
    """torch's size conventions: f(2, 3), f((2, 3)), f([2, 3]); () is a 0-d array."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(_count(s, function, "size") for s in size)


def _count(value: int, function: str, argument: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{function}: {argument} must be an integer, got bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{function}: {argument} must be an integer, got {type(value).__name__}") from None
    if value < 0:
        raise ValueError(f"{function}: {argument} must be non-negative, got {value}")
    return value


def _float_dtype(dtype: DType, function: str) -> np.dtype:
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        dtype = None
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{function}: dtype must be float32 or float64, got {dtype}")
    return dtype


def _randint_arguments(low: int, high: int | Size | None, size: Size | None) -> tuple[int, int, tuple]:
    if size is None and high is not None and not isinstance(high, (int, np.integer)):
        low, high, size = 0, low, high  # randint(high, size)
    elif high is None:
        low, high = 0, low  # randint(high, size=size)
    if size is None:
        raise TypeError("randint: size is required, as in randint(high, size) or randint(low, high, size)")
    low, high = (_integer(v, "randint", name) for v, name in ((low, "low"), (high, "high")))
    if not low < high:
        raise ValueError(f"randint: low must be < high, got low={low}, high={high}")
    if not -(2**63) <= low < high < 2**63:
        raise ValueError(f"randint: low and high must fit in int64, got low={low}, high={high}")
    return low, high, _shape((size,), "randint")


def _integer(value: int, function: str, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{function}: {argument} must be an integer, got {type(value).__name__}")
    return int(value)


def _multinomial_arguments(probs: np.ndarray, num_samples: int, replacement: bool) -> tuple[np.ndarray, int]:
    weights = np.ascontiguousarray(probs)
    if weights.dtype not in FLOAT_DTYPES:
        raise TypeError(f"multinomial: probs must be float32 or float64, got {weights.dtype}")
    if weights.ndim not in (1, 2):
        raise ValueError(f"multinomial: probs must be 1-D or 2-D, got shape {weights.shape}")
    num_samples = _count(num_samples, "multinomial", "num_samples")
    categories = weights.shape[-1]
    if num_samples == 0:
        raise ValueError("multinomial: num_samples must be positive, got 0")
    if not replacement and num_samples > categories:
        raise ValueError(
            f"multinomial: num_samples ({num_samples}) exceeds the {categories} categories "
            "of probs and replacement=False"
        )
    if categories > 2**24:
        raise ValueError(f"multinomial: probs may have at most 2**24 categories, got {categories}")
    if weights.size and not (weights.min() >= 0 and np.isfinite(weights.max())):  # NaN fails both
        raise ValueError("multinomial: probs must be finite and non-negative")
    rows = 1 if weights.ndim == 1 else weights.shape[0]
    if rows and (categories == 0 or (weights.reshape(rows, categories).sum(axis=1) <= 0).any()):
        raise ValueError("multinomial: every row of probs must have a positive sum")
    return weights, num_samples


# ---------------------------------------------------------------------- the default generator

default_generator = Generator()
default_generator.seed()  # torch seeds its default CPU generator non-deterministically at startup


def manual_seed(seed: int) -> Generator:
    """``torch.manual_seed``: seeds (and returns) ``default_generator``. Like torch, it takes
    ``int(seed)`` first, so 3.7 and "3" seed with 3."""
    try:
        seed = int(seed)
    except (TypeError, ValueError):
        raise TypeError(f"manual_seed: seed must be convertible to int, got {seed!r}") from None
    return default_generator.manual_seed(seed)


def seed() -> int:
    """``torch.seed``: re-seeds ``default_generator`` non-deterministically; returns the seed."""
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def rand(*size: Size, generator: Generator | None = None, dtype: DType = np.float32) -> np.ndarray:
    return (generator or default_generator).rand(*size, dtype=dtype)


def randn(*size: Size, generator: Generator | None = None, dtype: DType = np.float32) -> np.ndarray:
    return (generator or default_generator).randn(*size, dtype=dtype)


def uniform(
    low: float,
    high: float,
    size: Size,
    generator: Generator | None = None,
    dtype: DType = np.float32,
) -> np.ndarray:
    return (generator or default_generator).uniform(low, high, size, dtype=dtype)


def normal(
    mean: float,
    std: float,
    size: Size,
    generator: Generator | None = None,
    dtype: DType = np.float32,
) -> np.ndarray:
    return (generator or default_generator).normal(mean, std, size, dtype=dtype)


def randint(
    low: int, high: int | Size | None = None, size: Size | None = None, generator: Generator | None = None
) -> np.ndarray:
    return (generator or default_generator).randint(low, high, size)


def randperm(n: int, generator: Generator | None = None) -> np.ndarray:
    return (generator or default_generator).randperm(n)


def multinomial(
    probs: np.ndarray, num_samples: int, replacement: bool = False, generator: Generator | None = None
) -> np.ndarray:
    return (generator or default_generator).multinomial(probs, num_samples, replacement)
