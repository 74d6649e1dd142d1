"""Shape ops and indexing: views, transposes, gather, cat, flips, pads, repeats, casts.

Each op's forward sits with its VJP; the Tensor methods after it normalise torch's arguments
(``view(2, 3)`` or ``view((2, 3))``, negative dims) and name the shapes in their errors.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tape.dtypes import dtype_of
from tape.elementwise import bind, cast, integer_cast
from tape.op import Op, primitive
from tape.reductions import normalise_dim
from tape.tensor import ShapeError, Tensor, apply, wrap
from tape.tracing import replayable

# ---------------------------------------------------------------- views


@primitive("view", saves=("x.shape",), view=True)
def view(x, shape):
    """out = x.view(shape); dx = dout.view(x.shape)"""
    return x.reshape(shape), (x.shape,)


view.defvjp(lambda dout, x_shape: dout.reshape(x_shape))


@primitive("transpose", saves=("axes",), view=True)
def transpose(x, axes):
    """out = x.permute(axes); dx = dout.permute(inverse of axes)"""
    return x.transpose(axes), (axes,)


transpose.defvjp(lambda dout, axes: dout.transpose(np.argsort(axes)))
transpose.defgraph(lambda dout, axes: dout.permute(*[int(a) for a in np.argsort(axes)]))


@primitive("expand", saves=(), broadcasts=True, view=True)
def expand(x, shape):
    """out = x broadcast to shape; dx = dout summed back to x.shape (the sweep's unbroadcast)"""
    return np.broadcast_to(x, shape), ()


expand.defvjp(lambda dout: dout)


def sizes(args: Sequence[Any]) -> tuple[Any, ...]:
    """``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])`` as one tuple."""
    if len(args) == 1 and isinstance(args[0], (tuple, list, np.ndarray)):
        return tuple(args[0])
    return tuple(args)


def view_method(self: Tensor, *shape: Any) -> Tensor:
    shape = sizes(shape)  # NumPy takes ints, NumPy ints and one-element tensors (__index__) alike
    try:
        return apply(view, (self,), shape)
    except (ValueError, TypeError):
        raise ShapeError(
            f"view: cannot view a tensor of shape {self.shape} ({self.array.size} elements) as shape {shape}"
        ) from None


def permute(self: Tensor, *dims: Any) -> Tensor:
    dims = sizes(dims)
    n = self.array.ndim
    axes = tuple(normalise_dim("permute", self, d) if n else 0 for d in dims)
    if sorted(axes) != list(range(n)):
        raise ValueError(
            f"permute: {dims} is not a permutation of the dims of a tensor of shape {self.shape}"
        )
    return apply(transpose, (self,), axes)


def transpose_method(self: Tensor, dim0: int, dim1: int) -> Tensor:
    n = self.array.ndim
    d0, d1 = (normalise_dim("transpose", self, d) for d in (dim0, dim1))
    if n == 0:
        return self.view(())
    axes = list(range(n))
    axes[d0], axes[d1] = axes[d1], axes[d0]
    return apply(transpose, (self,), tuple(axes))


def t(self: Tensor) -> Tensor:
    if self.array.ndim > 2:
        raise ValueError(f"t: expects a tensor of at most 2 dims, got shape {self.shape}")
    return self.permute(*reversed(range(self.array.ndim)))


def unsqueeze(self: Tensor, dim: int) -> Tensor:
    d = normalise_dim("unsqueeze", self, dim, extra=1)
    return self.view(self.shape[:d] + (1,) + self.shape[d:])


def squeeze(self: Tensor, dim: Any = None) -> Tensor:
    if dim is None:
        return self.view(tuple(s for s in self.shape if s != 1))
    dims = {normalise_dim("squeeze", self, d) for d in ((dim,) if isinstance(dim, int) else dim)}
    return self.view(tuple(s for i, s in enumerate(self.shape) if not (i in dims and s == 1)))


def flatten(self: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    if self.array.ndim == 0:
        return self.view(1)
    start, end = (normalise_dim("flatten", self, d) for d in (start_dim, end_dim))
    shape = self.shape
    return self.view(shape[:start] + (math.prod(shape[start : end + 1]),) + shape[end + 1 :])


def unflatten(self: Tensor, dim: int, sizes_: Sequence[int]) -> Tensor:
    d = normalise_dim("unflatten", self, dim)
    return self.view(self.shape[:d] + tuple(sizes_) + self.shape[d + 1 :])


def expand_method(self: Tensor, *shape: Any) -> Tensor:
    shape = sizes(shape)
    lead = len(shape) - self.array.ndim
    if lead < 0:
        raise ShapeError(f"expand: cannot expand a tensor of shape {self.shape} to {shape} (fewer dims)")
    target = tuple(self.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape))
    try:
        return apply(expand, (self,), target)
    except ValueError:
        raise ShapeError(f"expand: cannot expand a tensor of shape {self.shape} to {shape}") from None


bind(view_method, "view", "reshape")
bind(lambda self, other: self.view(other.shape), "view_as", "reshape_as")
bind(permute, "permute")
bind(transpose_method, "transpose", "swapaxes")
bind(property(lambda self: self.permute(*reversed(range(self.array.ndim)))), "T")
bind(property(lambda self: self.transpose(-2, -1)), "mT")
bind(t, "t")
bind(unsqueeze, "unsqueeze")
bind(squeeze, "squeeze")
bind(flatten, "flatten")
bind(unflatten, "unflatten")
bind(expand_method, "expand")
bind(lambda self, other: self.expand(other.shape), "expand_as")

# ---------------------------------------------------------------- copies and casts


@primitive("clone", saves=())
def clone(x):
    """out = a copy of x; dx = dout"""
    return x.copy(), ()


clone.defvjp(lambda dout: dout)


def to(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    """``x.to(dtype)``, ``x.to("cpu")``, ``x.to(other)``; a float-to-float cast stays on the tape."""
    dtype = kwargs.get("dtype")
    for a in args:
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif not (isinstance(a, str) and a.startswith("cpu")):
            dtype = a
    if dtype is None:
        return self
    dtype = dtype_of(dtype)
    if dtype == self.array.dtype:
        return self
    if dtype.kind == "f" and self.array.dtype.kind == "f":
        return apply(cast, (self,), dtype)
    return integer_cast(self, dtype)


def type_method(self: Tensor, dtype: Any = None) -> Any:
    return f"tape.{self.array.dtype}" if dtype is None else self.to(dtype)


bind(lambda self: apply(clone, (self,)), "clone")
bind(to, "to")
bind(type_method, "type")
for _name, _dtype in [
    ("float", np.float32),
    ("double", np.float64),
    ("half", np.float16),
    ("long", np.int64),
    ("int", np.int32),
    ("bool", np.bool_),
    ("byte", np.uint8),
]:
    bind(lambda self, _dtype=_dtype: self.to(_dtype), _name)
bind(lambda self, *args, **kwargs: self, "cpu", "contiguous")

# ---------------------------------------------------------------- indexing


@primitive("gather", saves=("index", "x.shape"), view=True)
def gather(x, index):
    """out = x[index]; dx = zeros, then dout scatter-added at index (repeats accumulate)"""
    out = x[index]
    if type(out) is not np.ndarray:  # x[1, 2]: NumPy gives a scalar copy, torch a 0-d view
        out = x[(*(index if type(index) is tuple else (index,)), None)].reshape(())
    return out, (index, x.shape)


def dgather(dout, index, x_shape):
    # repeated indices must accumulate: dx is a scatter-add of dout, never an assignment
    keys = integer_index_keys(index, x_shape)
    if keys is None:  # slices, masks, None: NumPy's general (slower) scatter-add
        dx = np.zeros(x_shape, dtype=dout.dtype)
        np.add.at(dx, index, dout)
        return dx
    # integer arrays only: a histogram of dout over the flat positions it came from
    rows = keys.size
    row_size = dout.size // rows if rows else 0
    if row_size != 1:
        keys = (keys.reshape(-1, 1) * row_size + np.arange(row_size)).ravel()
    dx = np.bincount(keys.ravel(), weights=dout.ravel(), minlength=math.prod(x_shape))
    return dx.reshape(x_shape).astype(dout.dtype, copy=False)


def integer_index_keys(index, x_shape):
    """Flat positions, over the leading dims of x, that an index of integer arrays picks.

    None when the index holds anything but integer arrays (then ``dgather`` falls back).
    """
    parts = index if type(index) is tuple else (index,)
    if len(parts) > len(x_shape) or any(type(p) is not np.ndarray or p.dtype.kind not in "iu" for p in parts):
        return None
    return np.ravel_multi_index(parts, x_shape[: len(parts)], mode="wrap")  # wrap: negative indices


gather.defvjp(dgather)

# create_graph: dgather recorded as an entry of its own. Scatter-add and gather are each other's
# VJP (as sum and broadcast are), so the pair differentiates to any order. Not a registered
# primitive: it is only ever recorded by a backward, and gather's checks prove it.
scatter_add = Op(
    "scatter_add",
    lambda dout, index, x_shape: (dgather(dout, index, x_shape), (index, x_shape)),
    ("index", "x.shape"),
)
scatter_add.doc = "dx = zeros(x.shape), then dout scatter-added at index; ddout = ddx[index]"
scatter_add.defvjp(lambda ddx, index, x_shape: gather.forward(ddx, index)[0])
scatter_add.defgraph(lambda ddx, index, x_shape: apply(gather, (ddx,), index))
gather.defgraph(lambda dout, index, x_shape: apply(scatter_add, (dout,), index, x_shape))


def index_parts(key: Any) -> tuple:
    """An index as a tuple of NumPy-ready parts; arrays are copies, so later changes to the
    caller's index cannot move a saved gradient (uint8 arrays are masks, as in torch)."""
    parts = key if isinstance(key, tuple) else (key,)
    return tuple(index_part(k) for k in parts)


def index_part(k: Any) -> Any:
    if isinstance(k, Tensor):
        k = k.array
    elif isinstance(k, range):
        return np.arange(k.start, k.stop, k.step)
    elif isinstance(k, list):
        k = np.array([p.item() if isinstance(p, Tensor) else p for p in k])
        if k.size == 0:
            k = k.astype(np.intp)
    if isinstance(k, np.ndarray):
        if k.dtype.kind not in "iub":
            raise IndexError(f"gather: indices must be integers or booleans, got {k.dtype}")
        if k.ndim == 0 and k.dtype.kind in "iu":
            return int(k)
        return kept_index(k)
    if isinstance(k, np.integer):
        return int(k)
    return k


@replayable  # a replayed step copies each new index too
def kept_index(k: np.ndarray) -> np.ndarray:
    """The index the gather keeps: a copy (a uint8 array is a mask, as in torch)."""
    return k.astype(np.bool_) if k.dtype == np.uint8 else k.copy()


def torch_order(parts: tuple) -> tuple[tuple, tuple] | None:
    """torch applies integer indices first (a select), NumPy counts them as advanced indices.

    They differ when ints and arrays are mixed (``x[0, :, [0, 1]]``): then index in two steps,
    the ints and slices as a view, then the arrays. None when one step gives torch's result.
    """
    arrays = any(isinstance(p, np.ndarray) for p in parts)
    ints = any(isinstance(p, int) and not isinstance(p, bool) for p in parts)
    if not (arrays and ints):
        return None
    first = tuple(slice(None) if isinstance(p, np.ndarray) else p for p in parts)
    second = tuple(
        p if isinstance(p, np.ndarray) or p is Ellipsis else slice(None)
        for p in parts
        if not (isinstance(p, int) and not isinstance(p, bool))
    )
    return first, second


def getitem(self: Tensor, key: Any) -> Tensor:
    if type(key) is not tuple:  # one part: NumPy's order is torch's
        return gather_step(self, index_part(key))
    parts = index_parts(key)
    steps = torch_order(parts) or (parts,)
    out = self
    for step in steps:
        out = gather_step(out, step[0] if len(step) == 1 else step)
    return out


def gather_step(x: Tensor, index: Any) -> Tensor:
    try:
        out = apply(gather, (x,), index)
    except IndexError as e:
        raise IndexError(
            f"gather: cannot index a tensor of shape {x.shape} with {describe_index(index)}: {e}"
        ) from None
    if copies(index):  # an index array copies: changing the copy leaves x as it was
        out.version = [0]
    return out


def embedding(weight: Tensor, indices: Any) -> Tensor:
    """``torch.embedding(weight, indices)``: the rows of ``weight`` (num_embeddings, dim) at the
    integer ``indices`` (any shape), one gather entry. Indices are checked as torch checks them:
    a negative one is an error, not a count from the end."""
    index = indices.array if isinstance(indices, Tensor) else np.asarray(indices)
    shape = weight.array.shape
    if len(shape) != 2:
        raise ValueError(f"embedding: weight must be (num_embeddings, embedding_dim), got shape {shape}")
    checked = embedding_index(index, shape[0])
    try:
        return gather_step(weight, checked)
    except IndexError:
        raise _out_of_range(index.max(), shape[0]) from None


@replayable  # a replayed step checks and copies each new index too
def embedding_index(index: np.ndarray, count: int) -> np.ndarray:
    """A copy of ``index`` (a later change to the caller's moves no gradient), checked: a
    negative index is an error, as in torch (indices too large are caught by the gather)."""
    if index.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got {index.dtype}")
    # argmin and one element, not min(): a third of the cost on a minibatch, on every step
    if index.dtype.kind == "i" and index.size and index.item(index.argmin()) < 0:
        raise _out_of_range(index.min(), count)
    return index.copy()


def _out_of_range(index: int, count: int) -> IndexError:
    return IndexError(
        f"embedding: index {index} is out of range for a table of {count} embeddings "
        f"(valid: 0 to {count - 1})"
    )


def copies(index: Any) -> bool:
    """Whether NumPy's result for ``index`` is a copy (any array part) rather than a view."""
    if type(index) is tuple:
        return any(type(p) is np.ndarray for p in index)
    return type(index) is np.ndarray


def describe_index(index: Any) -> str:
    parts = index if isinstance(index, tuple) else (index,)
    described = (
        f"{p.dtype} array of shape {p.shape}" if isinstance(p, np.ndarray) else repr(p) for p in parts
    )
    return "[" + ", ".join(described) + "]"


bind(getitem, "__getitem__")


def split(self: Tensor, split_size: Any, dim: int = 0) -> tuple[Tensor, ...]:
    d = normalise_dim("split", self, dim)
    n = self.shape[d]
    lengths = (
        [split_size] * (n // split_size) + ([n % split_size] if n % split_size else [])
        if isinstance(split_size, int)
        else list(split_size)
    )
    starts = np.cumsum([0, *lengths])
    lead = (slice(None),) * d
    return tuple(self[(*lead, slice(int(a), int(b)))] for a, b in itertools.pairwise(starts))


def chunk(self: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    n = self.shape[normalise_dim("chunk", self, dim)]
    return self.split(max(1, -(-n // chunks)), dim)


def unbind(self: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    d = normalise_dim("unbind", self, dim)
    lead = (slice(None),) * d
    return tuple(self[(*lead, i)] for i in range(self.shape[d]))


bind(split, "split")
bind(chunk, "chunk")
bind(unbind, "unbind")

# ---------------------------------------------------------------- joining


class EachInput:
    """VJPs for an op of any number of inputs: ``vjps[k]`` is ``vjp(k, dout, *saved)``."""

    def __init__(self, vjp: Any) -> None:
        self.vjp = vjp

    def __getitem__(self, k: int) -> Any:
        return lambda dout, *saved: self.vjp(k, dout, *saved)


@primitive("cat", saves=("offsets", "dim"))
def cat_(*arrays_and_dim):
    """out = the inputs joined along dim; dx_k = dout's slice k along dim"""
    *arrays, dim = arrays_and_dim
    offsets = np.cumsum([0] + [a.shape[dim] for a in arrays])
    return np.concatenate(arrays, axis=dim), (offsets, dim)


def dcat(k, dout, offsets, dim):
    index = (slice(None),) * dim + (slice(int(offsets[k]), int(offsets[k + 1])),)
    return dout[index]


cat_.vjps = EachInput(dcat)


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """``torch.cat(tensors, dim)``: one entry whose VJP hands each input its slice of dout."""
    tensors = [t if isinstance(t, Tensor) else wrap(np.asarray(t)) for t in tensors]
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    # torch joins a 1-D empty tensor to anything (legacy): viewed as empty along dim, it still
    # gets its (empty) gradient
    legacy = [t.array.ndim == 1 and t.array.size == 0 for t in tensors]
    like = next((t for t, empty in zip(tensors, legacy) if not empty), tensors[0])
    d = normalise_dim("cat", like, dim)
    empty_shape = like.shape[:d] + (0,) + like.shape[d + 1 :]
    tensors = [t.view(empty_shape) if empty else t for t, empty in zip(tensors, legacy)]
    dtype = np.result_type(*[t.array.dtype for t in tensors])
    tensors = [t if t.array.dtype == dtype else t.to(dtype) for t in tensors]
    shapes = [t.shape for t in tensors]
    if any(
        len(s) != len(shapes[0]) or s[:d] + s[d + 1 :] != shapes[0][:d] + shapes[0][d + 1 :] for s in shapes
    ):
        raise ShapeError(f"cat: shapes {shapes} do not match outside dim {dim}")
    return apply(cat_, tuple(tensors), d)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """``torch.stack``: each tensor unsqueezed at dim, then one ``cat``."""
    tensors = [t if isinstance(t, Tensor) else wrap(np.asarray(t)) for t in tensors]
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ShapeError(f"stack: expects tensors of equal shape, got {[t.shape for t in tensors]}")
    d = normalise_dim("stack", tensors[0], dim, extra=1)
    return cat([t.unsqueeze(d) for t in tensors], d)


# ---------------------------------------------------------------- rearranging


@primitive("flip", saves=("dims",))
def flip(x, dims):
    """out = x reversed along dims; dx = dout reversed along dims"""
    return np.flip(x, dims).copy(), (dims,)


flip.defvjp(lambda dout, dims: np.flip(dout, dims))


@primitive("repeat", saves=("x.shape", "repeats"))
def repeat(x, repeats):
    """out = x tiled repeats times; dx = dout summed over the tiles"""
    return np.tile(x, repeats), (x.shape, repeats)


def drepeat(dout, x_shape, repeats):
    shape = (1,) * (len(repeats) - len(x_shape)) + tuple(x_shape)
    interleaved = [n for pair in zip(repeats, shape) for n in pair]  # (r0, s0, r1, s1, ...)
    summed = dout.reshape(interleaved).sum(axis=tuple(range(0, 2 * len(shape), 2)))
    return summed.reshape(x_shape)


repeat.defvjp(drepeat)


@primitive("tril", saves=("diagonal",))
def tril(x, diagonal):
    """out = x below (and on) the diagonal, 0 above; dx = tril(dout)"""
    return np.tril(x, diagonal), (diagonal,)


tril.defvjp(lambda dout, diagonal: np.tril(dout, diagonal))
tril.defgraph(lambda dout, diagonal: dout.tril(diagonal))


@primitive("triu", saves=("diagonal",))
def triu(x, diagonal):
    """out = x above (and on) the diagonal, 0 below; dx = triu(dout)"""
    return np.triu(x, diagonal), (diagonal,)


triu.defvjp(lambda dout, diagonal: np.triu(dout, diagonal))
triu.defgraph(lambda dout, diagonal: dout.triu(diagonal))


@primitive("pad", saves=("region",))
def pad_(x, widths, value):
    """out = x inside a border of ``value``; dx = dout's inner region"""
    out = np.pad(x, widths, constant_values=value)
    region = tuple(slice(before, before + n) for (before, _), n in zip(widths, x.shape))
    return out, (region,)


pad_.defvjp(lambda dout, region: dout[region])


def pad(x: Tensor, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """``F.pad(x, (left, right, top, bottom, ...))``: pairs from the last dim backwards, as torch."""
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not supported (only 'constant')")
    if len(pad) % 2 or len(pad) // 2 > x.array.ndim:
        raise ValueError(f"pad: padding {tuple(pad)} does not fit a tensor of shape {x.shape}")
    pairs = [(int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(len(pad) // 2)]
    widths = [(0, 0)] * (x.array.ndim - len(pairs)) + pairs[::-1]
    crop = tuple(slice(-b if b < 0 else None, a if a < 0 else None) for b, a in widths)
    if any(b < 0 or a < 0 for b, a in widths):  # negative padding crops first
        x = x[crop]
        widths = [(max(b, 0), max(a, 0)) for b, a in widths]
    return apply(pad_, (x,), tuple(widths), value)


def flip_method(self: Tensor, *dims: Any) -> Tensor:
    return apply(flip, (self,), tuple(normalise_dim("flip", self, d) for d in sizes(dims)))


def repeat_method(self: Tensor, *repeats: Any) -> Tensor:
    repeats = sizes(repeats)
    if len(repeats) < self.array.ndim:
        raise ValueError(
            f"repeat: {len(repeats)} repeats for a tensor of shape {self.shape} "
            f"(need at least {self.array.ndim})"
        )
    return apply(repeat, (self,), tuple(int(r) for r in repeats))


def triangle(op: Any) -> Any:
    def method(self: Tensor, diagonal: int = 0) -> Tensor:
        if self.array.ndim < 2:
            raise ValueError(f"{op.name}: needs a tensor of at least 2 dims, got shape {self.shape}")
        return apply(op, (self,), diagonal)

    return method


bind(flip_method, "flip")
bind(repeat_method, "repeat")
bind(triangle(tril), "tril")
bind(triangle(triu), "triu")
