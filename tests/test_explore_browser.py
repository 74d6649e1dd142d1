"""viz.explore's page in a real browser: Debian's headless Chromium, driven by Playwright.

CI installs Chromium (.ci/run) and Playwright (the test extra); these tests fail, not skip,
without them. One browser serves the module; each test opens the page afresh from a file URL
and fails on any console error or any request other than the page itself. Screenshots go to
pytest's temporary directory (``--basetemp`` to keep them somewhere).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from viz_graphs import needs_dot

import tape
from experiments import notebook
from tape import viz
from tape.viz import labels

CHROMIUM = os.environ.get("TAPE_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1400, "height": 900}

pytestmark = needs_dot


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), as .ci/run does"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail('playwright is missing: pip install -c constraints.txt -e ".[test]"')
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def notebook_page(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    out = notebook.run(tape)
    path = viz.explore(out["loss"], tmp_path_factory.mktemp("explore") / "notebook.html", names=out)
    out["loss"].backward()
    return path, out


class Page:
    """A page opened from a file URL, with what it logged and fetched."""

    def __init__(self, browser, path: Path, fragment: str = "") -> None:
        self.url = path.as_uri()
        self.page = browser.new_page(viewport=VIEWPORT)
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type in ("error", "warning") and self.problems.append(m.text))
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.on("request", self._request)
        self.page.goto(self.url + fragment)

    def _request(self, request) -> None:
        if request.url.split("#")[0] != self.url and not request.url.startswith("data:"):
            self.problems.append(f"request to {request.url}")

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    def step(self) -> int:
        return int(self.page.input_value("#slider"))

    def current_row(self) -> int | None:
        rows = self.page.eval_on_selector_all("#list tbody tr", "rows => rows.map(r => r.className)")
        current = [i for i, names in enumerate(rows) if "current" in names.split()]
        return current[0] if current else None

    def current_node(self) -> str | None:
        return self.page.evaluate(
            "document.querySelector('#graph svg g.node.current')?.querySelector('title').textContent ?? null"
        )

    def shot(self, tmp_path: Path, name: str) -> None:
        self.page.screenshot(path=tmp_path / f"{name}.png")

    def close(self) -> None:
        self.page.close()
        assert not self.problems, self.problems


def entry_at(step: int, n: int) -> int:
    """The entry the reverse sweep visits at ``step`` (1 to n): the last entry first."""
    return n - step


def test_the_page_loads_from_a_file_url_with_no_errors_or_requests(browser, notebook_page, tmp_path):
    page = Page(browser, notebook_page[0])
    assert page.step() == 0 and page.current_row() is None
    assert "step 0 / 28" in page.text("#where")
    assert "the sweep starts at the root" in page.text("#entry-panel")
    page.shot(tmp_path, "step0")
    page.close()


def test_buttons_move_the_highlight_and_update_the_panels(browser, notebook_page, tmp_path):
    page = Page(browser, notebook_page[0])
    entries = tape.wengert_list(notebook.run(tape)["loss"])
    for step in (1, 2, 3):
        page.page.click("#next")
        position = entry_at(step, len(entries))
        assert page.step() == step and page.current_row() == position
        assert page.current_node() == f"op{position}"
        assert entries[position].op.doc in page.text("#entry-panel")
    page.shot(tmp_path, "step3")
    page.page.click("#back")
    assert page.step() == 2 and page.page.evaluate("location.hash") == "#step=2"
    page.page.click("#end")
    assert page.step() == 28 and page.current_row() == 0
    page.page.click("#start")
    assert page.step() == 0
    page.close()


def test_arrow_keys_step_and_the_slider_jumps(browser, notebook_page):
    page = Page(browser, notebook_page[0])
    page.page.keyboard.press("ArrowRight")
    page.page.keyboard.press("ArrowRight")
    assert page.step() == 2 and page.current_row() == 26
    page.page.keyboard.press("ArrowLeft")
    assert page.step() == 1 and page.current_row() == 27
    page.page.keyboard.press("End")
    assert page.step() == 28
    page.page.fill("#slider", "10")  # as dragging it does
    assert page.step() == 10 and page.current_row() == 18
    page.close()


def test_a_fragment_opens_the_page_at_that_step(browser, notebook_page, tmp_path):
    page = Page(browser, notebook_page[0], "#step=14")
    assert page.step() == 14 and page.current_row() == 14  # tanh's output reaches add: hpreact
    assert "dout: the gradient reaching hpreact" in page.text("#entry-panel")
    page.shot(tmp_path, "step14")
    page.close()


def test_fan_out_shows_the_partial_sums(browser, notebook_page, tmp_path):
    page = Page(browser, notebook_page[0], "#step=10")  # max_dim hands logits its second gradient
    panel = page.text("#entry-panel")
    assert "feeds several entries, so the gradients add up" in panel
    assert "dlogits from earlier entries" in panel and "dlogits so far" in panel
    page.shot(tmp_path, "fanout")
    page.close()


def test_clicking_an_entry_jumps_and_clicking_a_tensor_shows_it(browser, notebook_page):
    page = Page(browser, notebook_page[0])
    page.page.click("#list tbody tr:nth-child(6) td:nth-child(2)")  # entry 5
    assert page.current_row() == 5 and page.step() == 28 - 5
    page.page.click("#graph svg g.node:has(title:text-is('op16'))")  # the second matmul, in the graph
    assert page.current_row() == 16
    page.page.click("#grads tbody .tensor:text-is('W1')")
    assert page.text("#tensor-panel").startswith("Tensor W1")
    assert "no gradient has reached it yet" in page.text("#tensor-panel")  # matmul #2 hands it on
    page.page.keyboard.press("End")
    assert "gradient so far" in page.text("#tensor-panel")
    assert page.page.evaluate("document.querySelectorAll('#tensor-panel canvas').length") == 2
    page.close()


def test_the_forward_toggle_replays_the_forward_pass(browser, notebook_page, tmp_path):
    page = Page(browser, notebook_page[0])
    page.page.click("#mode-forward")
    assert page.step() == 0 and "mode=forward" in page.page.evaluate("location.hash")
    page.page.keyboard.press("ArrowRight")
    assert page.current_row() == 0 and page.current_node() == "op0"
    assert "out: emb" in page.text("#entry-panel")
    page.page.keyboard.press("ArrowRight")
    page.page.keyboard.press("ArrowRight")
    page.shot(tmp_path, "forward3")
    page.close()


def test_the_last_step_shows_the_gradients_in_grad(browser, notebook_page):
    path, out = notebook_page
    page = Page(browser, path, "#step=28")
    shown = page.page.evaluate("window.tape.gradientsAt(28)")
    for name in ["C", "W1", "b1", "W2", "b2", "bngain", "bnbias"]:
        # a float32 read into a JS number is exact, so float32 again is the same bits
        np.testing.assert_array_equal(
            np.array(shown[name], np.float32).reshape(out[name].shape), out[name].grad.array
        )
        norm = labels.number(labels.norm(out[name].grad.array), 4)
        row = page.page.inner_text(f"#grads tbody tr:has(.tensor:text-is('{name}'))")
        assert norm in row, (name, row)
    page.close()


def test_hostile_names_stay_text(browser, tmp_path):
    hostile = "<img src=x onerror=window.pwned=1><script>window.pwned=1</script>"
    x = tape.ones(3, requires_grad=True)
    path = viz.explore((x * 2).sum(), tmp_path / "hostile.html", names={hostile: x}, title=hostile)
    page = Page(browser, path, "#step=1")
    assert page.page.evaluate("window.pwned") is None
    assert hostile in page.text("#list") and page.text("#title") == hostile
    page.close()


def test_the_experiment_writes_the_notebook_page_and_screenshots_it(browser, tmp_path, monkeypatch, capsys):
    from experiments import explore

    page, image = tmp_path / "explore.html", tmp_path / "explore.png"
    monkeypatch.setattr("sys.argv", ["explore", "--out", str(page)])
    explore.main()
    assert page.stat().st_size < 2_000_000
    assert f"{page} (0." in capsys.readouterr().out  # its size in MB
    explore.screenshot(browser, page, image, step=7)
    assert image.read_bytes().startswith(b"\x89PNG")
    explore.frames(browser, page, tmp_path / "frames.png", steps=(0, 28))
    from PIL import Image

    with Image.open(tmp_path / "frames.png") as strip:
        half = strip.width // 2  # the graph at the start and at the end: the sweep recoloured it
        start, end = strip.crop((0, 0, half, strip.height)), strip.crop((half, 0, 2 * half, strip.height))
        assert strip.width == 2 * half and start.tobytes() != end.tobytes()
