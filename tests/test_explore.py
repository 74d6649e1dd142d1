"""viz.explore: the page's data agrees with backward bit for bit, names are escaped, errors are clear.

The page is read back as the browser reads it (the JSON in its data script, arrays decoded from
base64), so "the page says" here means what the page shows. The browser itself is driven in
test_explore_browser.py.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from viz_graphs import needs_dot

import tape
from experiments import notebook
from tape import viz
from tape.viz.sweep import FreedError

PAGE_LIMIT = 2_000_000  # bytes: the bound for the notebook's page


def page_data(path: Path) -> dict[str, Any]:
    """The JSON a page embeds, as its script parses it."""
    text = path.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="tape-data">(.*?)</script>', text, re.S)
    assert found, "the page has no data script"
    return json.loads(found.group(1))


def decoded(data: dict[str, Any], index: int) -> np.ndarray:
    record = data["arrays"][index]
    raw = base64.b64decode(record["data"])
    return np.frombuffer(raw, dtype="<" + ("f4" if record["encoding"] == "float32" else "f8")).reshape(
        record["shape"]
    )


def final_gradients(data: dict[str, Any]) -> dict[str, np.ndarray]:
    """Each tensor's gradient after the last step, by label, as the page's gradientsAt(N) builds it."""
    reached = {data["seed"]["tensor"]: data["seed"]["gradient"]}
    for step in data["steps"]:
        for handed in step["handed"]:
            reached[handed["tensor"]] = handed["after"]
    return {data["tensors"][t]["label"]: decoded(data, a) for t, a in reached.items()}


@pytest.fixture(scope="module")
def notebook_page(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    out = notebook.run(tape)
    path = viz.explore(out["loss"], tmp_path_factory.mktemp("explore") / "notebook.html", names=out)
    for t in out.values():
        if isinstance(t, tape.Tensor) and not t.is_leaf:
            t.retain_grad()
    out["loss"].backward()
    return path, out


@needs_dot
def test_the_last_step_holds_exactly_the_gradients_backward_leaves_in_grad(notebook_page):
    path, out = notebook_page
    shown = final_gradients(page_data(path))
    compared = 0
    for name, t in out.items():
        if isinstance(t, tape.Tensor) and t.grad is not None and name in shown:
            assert shown[name].dtype == t.grad.array.dtype == np.float32, name
            np.testing.assert_array_equal(shown[name], t.grad.array, err_msg=name)  # bit for bit
            compared += 1
    assert compared == len(notebook.NOTEBOOK_ORDER) + 1  # every tensor the notebook compares, and loss


@needs_dot
def test_the_notebook_page_is_self_contained_and_small(notebook_page):
    path, _ = notebook_page
    text = path.read_text(encoding="utf-8")
    assert path.stat().st_size < PAGE_LIMIT
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "the page fetches something"
    assert "<svg" in text and "<?xml" not in text
    data = page_data(path)
    assert len(data["steps"]) == len(data["entries"]) == 28
    assert data["entries"][0]["doc"] == tape.wengert_list(notebook.run(tape)["loss"])[0].op.doc


@needs_dot
def test_fan_out_gradients_are_shown_adding_up(tmp_path):
    x = tape.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x * x + x.exp()  # x feeds three inputs: two of mul, one of exp
    loss = y.sum()
    data = page_data(viz.explore(loss, tmp_path / "fan.html", names={"x": x}))
    arrivals = [
        h for step in data["steps"] for h in step["handed"] if data["tensors"][h["tensor"]]["label"] == "x"
    ]
    assert len(arrivals) == 3 and arrivals[0]["before"] is None
    for previous, handed in itertools.pairwise(arrivals):
        assert handed["before"] == previous["after"]
        sum_shown = decoded(data, handed["before"]) + decoded(data, handed["gradient"])
        np.testing.assert_array_equal(decoded(data, handed["after"]), sum_shown)
    loss.backward()
    np.testing.assert_array_equal(final_gradients(data)["x"], x.grad.array)


@needs_dot
def test_float64_gradients_and_a_given_seed_are_exact(tmp_path):
    w = tape.tensor(np.linspace(-1, 1, 12).reshape(3, 4), dtype=tape.float64, requires_grad=True)
    out = (w.tanh() @ w.T).sin()
    seed = np.arange(9.0).reshape(3, 3)
    data = page_data(viz.explore(out, tmp_path / "f64.html", names={"w": w}, gradient=seed))
    out.backward(seed)
    assert final_gradients(data)["w"].dtype == np.float64
    np.testing.assert_array_equal(final_gradients(data)["w"], w.grad.array)


@needs_dot
def test_tensors_beyond_max_elements_show_statistics_only(tmp_path):
    big = tape.ones((50, 50), requires_grad=True)
    data = page_data(
        viz.explore((big * 2).sum(), tmp_path / "big.html", names={"big": big}, max_elements=100)
    )
    (record,) = [data["arrays"][t["value"]] for t in data["tensors"] if t["label"] == "big"]
    assert "data" not in record and record["stats"] == {"norm": "50", "min": "1", "max": "1"}


HOSTILE = "</script><script>window.pwned=1</script><!--&amp;{{data}}"


@needs_dot
def test_names_and_titles_are_escaped(tmp_path):
    x = tape.ones(3, requires_grad=True)
    path = viz.explore((x * 2).sum(), tmp_path / "hostile.html", names={HOSTILE: x}, title=HOSTILE)
    text = path.read_text(encoding="utf-8")
    assert "<script>window.pwned" not in text and text.count("</script>") == 2  # the page's own two
    data = page_data(path)
    assert data["title"] == HOSTILE and HOSTILE in [t["label"] for t in data["tensors"]]


def test_after_backward_it_says_to_explore_first_or_retain_the_graph(tmp_path):
    out = notebook.run(tape)
    out["loss"].backward()
    with pytest.raises(FreedError, match=r"before backward\(\).*retain_graph=True"):
        viz.explore(out["loss"], tmp_path / "late.html")
    assert not (tmp_path / "late.html").exists()


def test_a_saved_value_changed_in_place_is_refused_as_backward_refuses_it(tmp_path):
    x = tape.ones(3, requires_grad=True)
    y = x.exp()
    loss = (y * y).sum()
    with tape.no_grad():
        y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        viz.explore(loss, tmp_path / "changed.html")


@needs_dot
def test_after_backward_with_retain_graph_it_works(tmp_path):
    out = notebook.run(tape)
    out["loss"].backward(retain_graph=True)
    data = page_data(viz.explore(out["loss"], tmp_path / "kept.html", names=out))
    np.testing.assert_array_equal(final_gradients(data)["W1"], out["W1"].grad.array)


def test_without_graphviz_it_says_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    x = tape.ones(3, requires_grad=True)
    with pytest.raises(
        viz.GraphvizNotFoundError, match=r"explore: the Graphviz program `dot`.*apt-get install"
    ):
        viz.explore((x * 2).sum(), tmp_path / "page.html")


def test_a_root_without_an_entry_or_of_many_elements_is_refused(tmp_path):
    x = tape.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match="has no tape entry"):
        viz.explore(x, tmp_path / "leaf.html")
    with pytest.raises(RuntimeError, match="pass gradient="):
        viz.explore(x * 2, tmp_path / "vector.html")


NAMES = Path(__file__).resolve().parent.parent / "data" / "names.txt"


@needs_dot
@pytest.mark.skipif(not NAMES.exists(), reason=f"{NAMES} is not there (.ci/run copies it)")
def test_the_makemore_training_step_page_agrees_with_backward(tmp_path):
    from experiments import explore

    model, loss = explore.makemore_step()
    path = explore.training_step_page(loss, tmp_path / "makemore.html")
    assert path.stat().st_size < PAGE_LIMIT
    data = page_data(path)
    loss.backward()
    shown = final_gradients(data)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(shown[name], p.grad.array, err_msg=name)
    hidden = [t for t in data["tensors"] if t["shape"] == [32, 200]]
    assert hidden and all("data" in data["arrays"][t["value"]] for t in hidden)  # heat maps, 6,400 values
