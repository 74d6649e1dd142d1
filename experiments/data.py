"""The makemore names data set: load (or fetch and verify) names.txt, build contexts, split.

The vocabulary is the notebook's: '.' = 0 marks the start and the end of a name, a-z = 1..26.
"""

from __future__ import annotations

import hashlib
import random
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tape.atomic import write_bytes

URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
DEFAULT_PATH = Path(__file__).resolve().parents[1] / "data" / "names.txt"

CHARS = ".abcdefghijklmnopqrstuvwxyz"
stoi = {ch: i for i, ch in enumerate(CHARS)}
itos = dict(enumerate(CHARS))
vocab_size = len(CHARS)

Fetch = Callable[[str], bytes]


class DataError(RuntimeError):
    """The names file is missing and cannot be fetched, or its contents are not names."""


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
            f"{path} does not exist and downloading it from {URL} failed ({e}).\n"
            f"Download names.txt yourself and put it at {path} (or pass --data PATH)."
        ) from None
    digest = hashlib.sha256(content).hexdigest()
    if digest != SHA256:
        raise DataError(
            f"the file downloaded from {URL} has sha256 {digest}, expected {SHA256}; not saved.\n"
            f"Put a verified copy of names.txt at {path} (or pass --data PATH)."
        )
    write_bytes(path, content)


def load_words(path: str | Path = DEFAULT_PATH, fetch: Fetch = fetch_url) -> list[str]:
    """The names in ``path``, one a line; downloaded there first when the file is missing."""
    path = Path(path)
    if not path.exists():
        download(path, fetch)
    words = path.read_text(encoding="utf-8").splitlines()
    if not any(words):
        raise DataError(f"{path} holds no names: expected one lowercase name (a-z) a line")
    for number, word in enumerate(words, start=1):
        if not word or any(ch not in stoi or ch == "." for ch in word):
            raise DataError(
                f"{path}, line {number}: {word!r} is not a name of lowercase letters a-z "
                "(one name a line, no blank lines)"
            )
    return words


def build_dataset(words: list[str], block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Contexts X (n, block_size) of the previous characters and targets Y (n,), as the notebook."""
    X, Y = [], []
    for word in words:
        context = [0] * block_size
        for ch in word + ".":
            ix = stoi[ch]
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]
    return np.array(X, dtype=np.int64).reshape(-1, block_size), np.array(Y, dtype=np.int64)


def split(words: list[str], seed: int = 42) -> tuple[list[str], list[str], list[str]]:
    """Shuffle with Python's ``random.seed(seed)`` as the notebook, then 80/10/10 by name."""
    words = list(words)
    random.Random(seed).shuffle(words)  # the same order as random.seed(seed); random.shuffle(words)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    return words[:n1], words[n1:n2], words[n2:]
