"""print(tape.wengert_list(...)): the table the exporter's op nodes are numbered by."""

from __future__ import annotations

import gc
import re

import numpy as np

import tape


def test_a_temporary_root_keeps_its_dtype_and_shape():
    x = tape.tensor(np.ones((2, 3)), dtype=tape.float32, requires_grad=True, name="x")
    W = tape.tensor(np.ones((3, 4)), dtype=tape.float32, requires_grad=True, name="W")
    listing = tape.wengert_list(x @ W * 2)  # the root is referenced by nothing but the list
    gc.collect()
    last = str(listing).splitlines()[-1]
    assert re.split(r"\s{2,}", last)[:4] == ["1", "mul", "%0, 2", "%1 float32[2, 4]"]


def test_label_works_before_the_list_is_printed():
    x = tape.tensor(np.ones(3), requires_grad=True, name="x")
    h = x.exp()
    y = h.tanh()
    listing = tape.wengert_list(y)
    assert listing.label(h) == "%0" and listing.label(y) == "%1" and listing.label(x) == "x"
    assert listing.label(tape.tensor(np.ones(2))) == "leaf[2]" and listing.label(2.5) == "2.5"
