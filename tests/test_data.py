"""The names data: vocabulary, examples, the notebook's split, bad files, the download, memory."""

import hashlib
import os
import random
import tracemalloc
import urllib.error

import numpy as np
import pytest

from experiments.makemore import data

NAMES = data.DEFAULT_PATH
needs_names = pytest.mark.skipif(not NAMES.exists(), reason=f"{NAMES} is not there (.ci/run copies it)")


def test_vocabulary_is_the_notebooks():
    assert data.vocab_size == 27 and data.stoi["."] == 0 and data.stoi["a"] == 1 and data.stoi["z"] == 26
    assert all(data.itos[i] == ch for ch, i in data.stoi.items())


def test_examples_slide_over_each_name_and_its_end_and_are_read_out_as_int64():
    examples = data.examples(data.from_words(["ab", "c"]), block_size=3)
    X, Y = examples.batch(slice(None))
    np.testing.assert_array_equal(X, [[0, 0, 0], [0, 0, 1], [0, 1, 2], [0, 0, 0], [0, 0, 3]])
    np.testing.assert_array_equal(Y, [1, 2, 0, 3, 0])
    assert X.dtype == Y.dtype == np.int64 and examples.X.dtype == examples.Y.dtype == np.uint8
    assert [len(x) for x, _ in examples.chunks(2)] == [2, 2, 1]
    nothing = data.from_words(["ab"]).take(np.array([], dtype=np.int64))
    assert data.examples(nothing, block_size=4).X.shape == (0, 4)


@pytest.mark.parametrize("block_size", [1, 3, 8])
def test_examples_match_the_notebooks_build_dataset_in_small_chunks(block_size):
    words = ["".join(random.Random(i).choices("abcz", k=1 + i % 11)) for i in range(300)]
    X, Y = [], []
    for w in words:  # the notebook's build_dataset
        context = [0] * block_size
        for ch in w + ".":
            X.append(context)
            Y.append(data.stoi[ch])
            context = context[1:] + [data.stoi[ch]]
    examples = data.examples(data.from_words(words), block_size, names_per_chunk=7)
    np.testing.assert_array_equal(examples.X, X)
    np.testing.assert_array_equal(examples.Y, Y)


@needs_names
def test_the_split_is_the_notebooks_with_seed_42():
    names = data.load(NAMES)
    assert len(names) == 32033 and names.sha256 == data.SHA256
    splits = data.split(names)
    assert [len(data.examples(part, 3)) for part in splits] == [182625, 22655, 22866]
    shuffled = list(names.words())
    random.seed(42)
    random.shuffle(shuffled)
    assert [w for part in splits for w in part.words()] == shuffled


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "holds no names"),
        (b"\n\n", "holds no names"),
        (b"emma\nOlivia\n", r"line 2: 'Olivia' is not a name"),
        (b"emma\n\nava\n", "line 2: '' is not a name"),
        (b"emma\nav4\n", "line 2"),
        (b"em.ma\n", "line 1"),
        (b"emma\nol\x0civia\n", r"line 2: 'ol\\x0civia' is not a name"),  # no longer two names
        (b"emma\nol\xe9a\n", "line 2: .* the file is not UTF-8"),  # latin-1
        (bytes(range(11, 256)) * 4, r"line 1: .*\.\.\. is not a name.*not UTF-8"),  # binary, shortened
        (b"emma\rava\n", r"line 1: 'emma\\rava'"),
    ],
    ids=["empty", "blank", "capital", "blank-line", "digit", "dot", "form-feed", "latin-1", "binary", "cr"],
)
def test_a_bad_names_file_gets_a_clear_error(tmp_path, content, message):
    path = tmp_path / "names.txt"
    path.write_bytes(content)
    with pytest.raises(data.DataError, match=message):
        data.load(path)


def test_windows_line_ends_and_a_missing_last_newline_are_fine():
    assert list(data.parse(b"emma\r\nava").words()) == ["emma", "ava"]


def test_a_directory_or_a_fifo_is_refused_without_waiting(tmp_path):
    with pytest.raises(data.DataError, match="is a directory"):
        data.load(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(data.DataError, match="not a regular file"):
        data.load(fifo)  # opening a FIFO for reading would block until a writer came


def test_a_missing_path_other_than_the_default_is_an_error_not_a_download(tmp_path):
    calls = []
    with pytest.raises(data.DataError, match=f"names file {tmp_path / 'nmes.txt'} does not exist"):
        data.load(tmp_path / "nmes.txt", fetch=fake_fetch(b"emma\n", calls))
    assert calls == [] and list(tmp_path.iterdir()) == []


def test_too_few_names_for_the_split_are_refused():
    for count, empty in [(1, "train and val splits"), (5, "val split")]:
        parts = data.split(data.from_words(["ab"] * count))
        with pytest.raises(data.DataError, match=f"holds {count} names?: .*the {empty} would be empty"):
            data.check_split(parts, "names.txt")
    data.check_split(data.split(data.from_words(["ab"] * 6)), "names.txt")


def fake_fetch(content, calls):
    def fetch(url):
        calls.append(url)
        return content

    return fetch


@needs_names
def test_a_missing_default_file_is_downloaded_verified_and_written_atomically(tmp_path):
    path, calls = tmp_path / "data" / "names.txt", []
    names = data.load(path, fetch=fake_fetch(NAMES.read_bytes(), calls), default=path)
    assert calls == [data.URL] and len(names) == 32033
    assert hashlib.sha256(path.read_bytes()).hexdigest() == data.SHA256
    assert sorted(p.name for p in path.parent.iterdir()) == ["names.txt"]  # no temporary left
    data.load(path, fetch=fake_fetch(b"", calls), default=path)
    assert len(calls) == 1  # present now: not fetched again


def test_a_download_with_the_wrong_checksum_is_not_saved(tmp_path):
    path = tmp_path / "names.txt"
    with pytest.raises(data.DataError, match=r"expected 0a30b555.*not saved"):
        data.load(path, fetch=fake_fetch(b"emma\nolivia\n", []), default=path)
    assert list(tmp_path.iterdir()) == []


def test_without_network_the_error_says_where_to_put_the_file(tmp_path):
    def offline(url):
        raise urllib.error.URLError("no route to host")

    path = tmp_path / "names.txt"
    with pytest.raises(data.DataError, match=rf"downloading it from .*put it at {path}"):
        data.load(path, fetch=offline, default=path)


def test_a_large_file_takes_a_few_bytes_of_memory_per_byte(tmp_path):
    """The old loader held each name as a str and each context as a list: 130 bytes per byte."""
    g = np.random.default_rng(0)
    lengths = g.integers(2, 11, 150_000)  # 1 MB of names
    ends = np.cumsum(lengths + 1) - 1
    text = np.full(ends[-1] + 1, ord("\n"), dtype=np.uint8)
    letters = np.ones(len(text), dtype=bool)
    letters[ends] = False
    text[letters] = g.integers(ord("a"), ord("z") + 1, int(lengths.sum()))
    text = text.tobytes()
    (tmp_path / "big.txt").write_bytes(text)
    tracemalloc.start()
    try:
        names = data.load(tmp_path / "big.txt")
        splits = [data.examples(part, block_size=3) for part in data.split(names)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sum(len(s) for s in splits) == len(text)  # one example per letter and per name's end
    assert peak < 16 * len(text), peak / len(text)
