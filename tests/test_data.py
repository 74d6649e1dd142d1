"""The names loader: vocabulary, contexts, the notebook's split, bad files, and the download."""

import hashlib
import random
import urllib.error

import numpy as np
import pytest

from experiments import data

NAMES = data.DEFAULT_PATH
needs_names = pytest.mark.skipif(not NAMES.exists(), reason=f"{NAMES} is not there (.ci/run copies it)")


def test_vocabulary_is_the_notebooks():
    assert data.vocab_size == 27 and data.stoi["."] == 0 and data.stoi["a"] == 1 and data.stoi["z"] == 26
    assert all(data.itos[i] == ch for ch, i in data.stoi.items())


def test_contexts_slide_over_each_name_and_its_end():
    X, Y = data.build_dataset(["ab", "c"], block_size=3)
    np.testing.assert_array_equal(X, [[0, 0, 0], [0, 0, 1], [0, 1, 2], [0, 0, 0], [0, 0, 3]])
    np.testing.assert_array_equal(Y, [1, 2, 0, 3, 0])
    assert X.dtype == Y.dtype == np.int64
    assert data.build_dataset([], block_size=4)[0].shape == (0, 4)


@needs_names
def test_the_split_is_the_notebooks_with_seed_42():
    words = data.load_words(NAMES)
    assert len(words) == 32033
    splits = data.split(words)
    sizes = [data.build_dataset(ws, 3)[0].shape[0] for ws in splits]
    assert sizes == [182625, 22655, 22866]
    shuffled = list(words)
    random.seed(42)
    random.shuffle(shuffled)
    assert [w for ws in splits for w in ws] == shuffled


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no names"),
        ("\n\n", "holds no names"),
        ("emma\nOlivia\n", r"line 2: 'Olivia' is not a name"),
        ("emma\n\nava\n", "line 2: '' is not a name"),
        ("emma\nav4\n", "line 2"),
        ("em.ma\n", "line 1"),
    ],
)
def test_a_bad_names_file_gets_a_clear_error(tmp_path, content, message):
    path = tmp_path / "names.txt"
    path.write_text(content)
    with pytest.raises(data.DataError, match=message):
        data.load_words(path)


def fake_fetch(content, calls):
    def fetch(url):
        calls.append(url)
        return content

    return fetch


@needs_names
def test_a_missing_file_is_downloaded_verified_and_written_atomically(tmp_path):
    path, calls = tmp_path / "data" / "names.txt", []
    words = data.load_words(path, fetch=fake_fetch(NAMES.read_bytes(), calls))
    assert calls == [data.URL] and len(words) == 32033
    assert hashlib.sha256(path.read_bytes()).hexdigest() == data.SHA256
    assert sorted(p.name for p in path.parent.iterdir()) == ["names.txt"]  # no temporary left
    data.load_words(path, fetch=fake_fetch(b"", calls))
    assert len(calls) == 1  # present now: not fetched again


def test_a_download_with_the_wrong_checksum_is_not_saved(tmp_path):
    path = tmp_path / "names.txt"
    with pytest.raises(data.DataError, match=r"expected 0a30b555.*not saved"):
        data.load_words(path, fetch=fake_fetch(b"emma\nolivia\n", []))
    assert list(tmp_path.iterdir()) == []


def test_without_network_the_error_says_where_to_put_the_file(tmp_path):
    def offline(url):
        raise urllib.error.URLError("no route to host")

    path = tmp_path / "names.txt"
    with pytest.raises(data.DataError, match=rf"(?s)downloading it from .*put it at {path}"):
        data.load_words(path, fetch=offline)
