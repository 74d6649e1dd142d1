"""The makemore names data set: read (or fetch and verify) names.txt, split it as the notebook
does, and turn names into (context, next character) examples.

The vocabulary is the notebook's: '.' = 0 marks the start and the end of a name, a-z = 1..26.
A names file may be tens of megabytes, so names are never held as Python strings: the file
becomes one uint8 array of character codes, names are (start, length) pairs into it, and the
examples are uint8 arrays (block_size + 1 bytes each) read out as int64 batches.
"""

from __future__ import annotations

import array
import dataclasses
import hashlib
import os
import random
import stat
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from experiments.makemore.errors import UsageError
from tape.atomic import write_bytes

URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "data" / "names.txt"

CHARS = ".abcdefghijklmnopqrstuvwxyz"
stoi = {ch: i for i, ch in enumerate(CHARS)}
itos = dict(enumerate(CHARS))
vocab_size = len(CHARS)

_INVALID = 255
_CODES = np.full(256, _INVALID, dtype=np.uint8)  # file byte -> character code
_CODES[ord("\n")] = 0  # a line's end is the name's end, '.'
_CODES[np.frombuffer(CHARS[1:].encode(), np.uint8)] = np.arange(1, vocab_size)

Fetch = Callable[[str], bytes]


class DataError(UsageError):
    """The names file is missing, unreadable or not one lowercase name a line."""


# ---------------------------------------------------------------- names


@dataclasses.dataclass(frozen=True)
class Names:
    """Names as character codes: name ``i`` is ``codes[starts[i] : starts[i] + lengths[i]]``,
    and ``codes[starts[i] + lengths[i]]`` is 0, its end."""

    codes: np.ndarray  # uint8
    starts: np.ndarray  # int64
    lengths: np.ndarray  # int64
    sha256: str = ""  # of the file they were read from

    def __len__(self) -> int:
        return len(self.starts)

    def word(self, i: int) -> str:
        start = int(self.starts[i])
        return (self.codes[start : start + int(self.lengths[i])] + (ord("a") - 1)).tobytes().decode()

    def words(self) -> Iterator[str]:
        return (self.word(i) for i in range(len(self)))

    def take(self, order: np.ndarray) -> Names:
        """The names at the indices ``order``, in that order (sharing the codes)."""
        return dataclasses.replace(self, starts=self.starts[order], lengths=self.lengths[order])


def parse(content: bytes, source: str = "<names>") -> Names:
    """The names in ``content``, one a line (``\\n`` or ``\\r\\n``); ``source`` names it in errors."""
    digest = hashlib.sha256(content).hexdigest()
    text = content.replace(b"\r\n", b"\n")
    if text and not text.endswith(b"\n"):
        text += b"\n"
    codes = _CODES[np.frombuffer(text, dtype=np.uint8)]
    ends = np.flatnonzero(codes == 0)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64) if len(ends) else ends
    lengths = ends - starts
    _check_lines(text, codes, starts, lengths, source)
    return Names(codes, starts, lengths, digest)


def from_words(words: Sequence[str]) -> Names:
    return parse("".join(word + "\n" for word in words).encode())


def _check_lines(
    text: bytes, codes: np.ndarray, starts: np.ndarray, lengths: np.ndarray, source: str
) -> None:
    invalid = np.flatnonzero(codes == _INVALID)
    if not (lengths > 0).any() and not invalid.size:
        raise DataError(f"{source} holds no names: expected one lowercase name (a-z) a line")
    bad_lines = [int(np.searchsorted(starts, invalid[0], side="right")) - 1] if invalid.size else []
    bad_lines += [int(i) for i in np.flatnonzero(lengths == 0)[:1]]
    if bad_lines:
        line = min(bad_lines)
        shown, note = _show(text, int(starts[line]))
        raise DataError(
            f"{source}, line {line + 1}: {shown} is not a name of lowercase letters a-z "
            f"(one name a line, no blank lines){note}"
        )


def _show(text: bytes, start: int, limit: int = 40) -> tuple[str, str]:
    """The line at ``start`` quoted and shortened for an error message, and a note if it is not UTF-8."""
    line = text[start : text.index(b"\n", start)]
    shown = repr(line[:limit].decode("utf-8", "replace")) + ("..." if len(line) > limit else "")
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return shown, "; the file is not UTF-8 text (binary, or another encoding such as latin-1?)"
    return shown, ""


# ---------------------------------------------------------------- the file


def load(path: str | os.PathLike, fetch: Fetch | None = None, default: Path = DEFAULT_PATH) -> Names:
    """The names in ``path``; when ``path`` is ``default`` and missing, downloaded there first.

    Any other missing path is an error: a mistyped ``--data`` must not become a download.
    """
    path = Path(path)
    if not path.exists():
        if path.resolve() != default.resolve():
            raise DataError(f"names file {path} does not exist")
        download(path, fetch or fetch_url)
    return parse(_read_regular_file(path), str(path))


def _read_regular_file(path: Path) -> bytes:
    # opened without blocking and checked before reading: a FIFO would otherwise wait forever
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise DataError(f"cannot read names file {path}: {e.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise DataError(f"{path} is a directory, not a names file")
        if not stat.S_ISREG(mode):
            raise DataError(f"{path} is not a regular file (a pipe or a device?), not a names file")
        with open(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as e:
        raise DataError(f"cannot read names file {path}: {e.strerror}") from None
    finally:
        os.close(fd)


def fetch_url(url: str, timeout: float = 30.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def download(path: Path, fetch: Fetch = fetch_url) -> None:
    """Fetch names.txt from the makemore repository into ``path`` if its sha256 is right.

    Written to a temporary file beside ``path`` and renamed: an interrupted download never
    leaves a partial file behind.
    """
    try:
        content = fetch(URL)
    except OSError as e:
        raise DataError(
            f"{path} does not exist and downloading it from {URL} failed ({e}). "
            f"Download names.txt yourself and put it at {path} (or pass --data PATH)."
        ) from None
    digest = hashlib.sha256(content).hexdigest()
    if digest != SHA256:
        raise DataError(
            f"the file downloaded from {URL} has sha256 {digest}, expected {SHA256}; not saved. "
            f"Put a verified copy of names.txt at {path} (or pass --data PATH)."
        )
    try:
        write_bytes(path, content)
    except OSError as e:
        raise DataError(f"cannot save the downloaded names to {path}: {e.strerror}") from None


# ---------------------------------------------------------------- splits and examples


def split(names: Names, seed: int = 42) -> tuple[Names, Names, Names]:
    """Shuffle with Python's ``random.seed(seed)`` as the notebook, then 80/10/10 by name."""
    # shuffle's swaps depend only on the length, so shuffling indices orders the names exactly
    # as random.seed(seed); random.shuffle(words) would; array('q') keeps them 8 bytes each
    order = array.array("q", range(len(names)))
    random.Random(seed).shuffle(order)
    shuffled = np.frombuffer(order, dtype=np.int64)
    n1, n2 = int(0.8 * len(names)), int(0.9 * len(names))
    return names.take(shuffled[:n1]), names.take(shuffled[n1:n2]), names.take(shuffled[n2:])


@dataclasses.dataclass(frozen=True)
class Examples:
    """Contexts ``X`` (n, block_size) and next characters ``Y`` (n,), stored as uint8.

    Read them out through ``batch`` and ``chunks``, which give int64: tape, as torch, reads a
    uint8 index array as a mask.
    """

    X: np.ndarray
    Y: np.ndarray

    def __len__(self) -> int:
        return len(self.Y)

    def batch(self, rows: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        return self.X[rows].astype(np.int64), self.Y[rows].astype(np.int64)

    def chunks(self, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(self), size):
            yield self.batch(slice(start, start + size))


def examples(names: Names, block_size: int, names_per_chunk: int = 1 << 13) -> Examples:
    """One example per character of each name and per end, as the notebook's ``build_dataset``:
    the ``block_size`` characters before it ('.' before the name's start) and the character."""
    sizes = names.lengths + 1
    X = np.zeros((int(sizes.sum()), block_size), dtype=np.uint8)
    Y = np.empty(len(X), dtype=np.uint8)
    row = 0
    for first in range(0, len(names), names_per_chunk):  # bounded temporaries for large files
        part = slice(first, first + names_per_chunk)
        target, before = _targets(names.starts[part], sizes[part])
        rows = slice(row, row + len(target))
        Y[rows] = names.codes[target]
        for back in range(1, block_size + 1):
            inside = before >= back  # further back than the name's start stays '.'
            X[rows, block_size - back][inside] = names.codes[target[inside] - back]
        row += len(target)
    return Examples(X, Y)


def _targets(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each example of these names: its character's index in the codes, and how many
    characters of its name come before it."""
    first_rows = np.cumsum(sizes) - sizes
    before = np.arange(int(sizes.sum())) - np.repeat(first_rows, sizes)
    return np.repeat(starts, sizes) + before, before


SPLITS = ("train", "val", "test")


def check_split(parts: Sequence[Names], source: str) -> None:
    """Refuse a split with an empty part: it would fail only after training, in evaluation."""
    empty = [name for name, part in zip(SPLITS, parts) if len(part) == 0]
    if empty:
        total = sum(len(part) for part in parts)
        raise DataError(
            f"{source} holds {total} name{'s' * (total != 1)}: too few for the 80/10/10 split by name "
            f"(the {' and '.join(empty)} split{'s' * (len(empty) > 1)} would be empty); "
            "at least 6 names are needed"
        )
