"""The notebook's forward pass runs unchanged on tape and matches torch, all 26 gradients."""

import numpy as np
import pytest

import tape
from experiments import notebook
from experiments.notebook import NOTEBOOK_ORDER, batch, forward, parameters
from tape.parity import compare

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_notebook_gradients_match_torch(dtype):
    report = compare(forward, parameters(), batch(), dtype=dtype, order=NOTEBOOK_ORDER)
    print(report)
    assert [row.name for row in report] == NOTEBOOK_ORDER and len(report.rows) == 26
    assert report.ok, str(report)
    scale = max(row.grad_scale for row in report)
    for row in report:
        assert row.grad_exact is not None, row.name
        if dtype is np.float64:
            assert row.grad_maxdiff <= 1e-12 * scale, row
            assert row.value_maxdiff <= 1e-12 * max(1.0, scale), row


def test_notebook_intermediates_match_torch_exactly_where_no_rounding_differs():
    ours, theirs = notebook.run(tape), notebook.run(torch, requires_grad=False)
    for name in NOTEBOOK_ORDER:
        assert ours[name].dtype == np.float32, name
        assert ours[name].shape == tuple(theirs[name].shape), name
        np.testing.assert_allclose(ours[name].array, theirs[name].numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(ours["emb"].array, theirs["emb"].numpy())


def test_wengert_list_of_the_notebook_prints_one_line_per_entry():
    p, b = parameters(), batch()
    t = {k: tape.tensor(v, requires_grad=True, name=k) for k, v in p.items()}
    out = forward(tape, **t, Xb=tape.tensor(b["Xb"]), Yb=tape.tensor(b["Yb"]), n=b["n"])
    wl = tape.wengert_list(out["loss"], names=out)
    text = str(wl)
    lines = text.splitlines()
    assert len(lines) == len(wl) + 1
    assert lines[1].split()[:2] == ["0", "gather"]
    assert "logprobs" in text and "W1" in text
    assert [e.op.name for e in wl][-3:] == ["gather", "mean", "neg"]
