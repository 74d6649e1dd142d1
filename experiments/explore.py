"""Step through the backprop-ninja notebook's backward pass: runs/explore.html (one file, no network).

    python -m experiments.explore [--out runs/explore.html] [--screenshot docs/explore.png --step 7]
                                  [--frames docs/explore_frames.png]
    python -m experiments.explore --makemore      # the makemore MLP's first training step

The page is ``tape.viz.explore`` on the notebook's forward pass (makemore part 4, one batch of
32), written before backward frees what the entries saved; docs/explore.md explains how to read
it. ``--makemore`` draws instead one training step of ``python -m experiments.makemore_mlp``'s
model as it starts (its default options, the first batch of data/names.txt); a training run
writes its own page by calling ``training_step_page`` on its loss before ``loss.backward()``.
``--screenshot`` also photographs the page at ``--step`` in headless Chromium (Playwright and
/usr/bin/chromium, as the tests use) and ``--frames`` the whole graph at a few steps, side by
side: that is how docs/explore.png and docs/explore_frames.png are made.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import nn
import tape
from experiments import notebook
from tape import viz
from tape.viz.render import TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
TITLE = "makemore part 4 (backprop ninja), one batch of 32: the reverse sweep, entry by entry"
MAKEMORE_TITLE = "makemore MLP, one training step: the reverse sweep, entry by entry"
# the makemore MLP's hidden layer is (32, 200): 6,400 values, worth a heat map (0.4 MB a page)
MAKEMORE_ELEMENTS = 8192
CHROMIUM = "/usr/bin/chromium"
SCREENSHOT_VIEWPORT = {"width": 1400, "height": 900}
FRAMES_VIEWPORT = {"width": 1400, "height": 1000}  # the graph pane's height sets each frame's
FRAME_STEPS = (0, 5, 10, 15, 20, 28)  # the notebook's sweep has 28 steps
CAPTION_HEIGHT = 20  # pixels


def write_page(path: Path) -> Path:
    """The notebook's page, from a fresh forward pass (explore must come before backward)."""
    out = notebook.run(tape)
    return viz.explore(out["loss"], path, names=out, title=TITLE)


def training_step_page(loss: tape.Tensor, path: Path, timeout: float | None = TIMEOUT) -> Path:
    """The page of a makemore training step's sweep; call it before ``loss.backward()``.

    The parameters are named by their modules (``2.weight``), so only the loss needs a name.
    """
    return viz.explore(
        loss,
        path,
        names={"loss": loss},
        title=MAKEMORE_TITLE,
        max_elements=MAKEMORE_ELEMENTS,
        timeout=timeout,
    )


def makemore_step() -> tuple[nn.Module, tape.Tensor]:
    """The makemore MLP as it starts (default options) and its loss on the first training batch."""
    from experiments.makemore import data, model
    from experiments.makemore.options import Options

    options = Options()
    names = data.load(options.data)
    train = data.examples(data.split(names)[0], options.block_size)
    rng = np.random.default_rng(options.seed)
    net = model.MLP.build(data.vocab_size, options.n_embd, options.block_size, options.n_hidden, rng)
    Xb, Yb = train.batch(slice(0, options.batch_size))
    net.train()
    return net, nn.cross_entropy(net(Xb), Yb)


def screenshot(browser: Any, page: Path, image: Path, step: int) -> None:
    """A PNG of ``page`` at ``step``, taken with a Playwright ``browser``."""
    tab = browser.new_page(viewport=SCREENSHOT_VIEWPORT)
    tab.goto(f"{page.resolve().as_uri()}#step={step}")
    tab.screenshot(path=image)
    tab.close()


def frames(browser: Any, page: Path, image: Path, steps: Sequence[int]) -> None:
    """One PNG of the whole graph (zoomed to fit) at each of ``steps``, side by side and captioned."""
    from PIL import Image, ImageDraw  # matplotlib's dependency, in the test and experiments extras

    tab = browser.new_page(viewport=FRAMES_VIEWPORT)
    tab.goto(page.resolve().as_uri())
    tab.click("#zoom-fit")
    pictures = []
    for step in steps:
        tab.evaluate(f"location.hash = 'step={int(step)}'")
        tab.wait_for_function(f"document.getElementById('slider').value === '{int(step)}'")
        box = tab.locator("#graph svg").bounding_box()
        pictures.append(Image.open(io.BytesIO(tab.screenshot(clip=box))))
    tab.close()
    width, height = pictures[0].size
    strip = Image.new("RGB", (width * len(pictures), height + CAPTION_HEIGHT), "white")
    draw = ImageDraw.Draw(strip)
    for k, (step, picture) in enumerate(zip(steps, pictures)):
        strip.paste(picture, (k * width, CAPTION_HEIGHT))
        draw.text((k * width + 8, 4), f"step {step}", fill="black")
    strip.save(image)


def in_chromium(photograph: Callable[[Any], None]) -> None:
    """Run ``photograph(browser)`` in headless Chromium (only the picture options need Playwright)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        photograph(browser)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, help="the page (default: runs/explore.html, or explore_makemore.html)"
    )
    parser.add_argument("--makemore", action="store_true", help="the makemore MLP's step, not the notebook's")
    parser.add_argument("--screenshot", type=Path, help="also save a PNG of the page at --step")
    parser.add_argument("--step", type=int, default=7, help="the sweep's step in the screenshot")
    parser.add_argument("--frames", type=Path, help="also save a PNG of the whole graph at a few steps")
    args = parser.parse_args()
    out = args.out or ROOT / "runs" / ("explore_makemore.html" if args.makemore else "explore.html")
    out.parent.mkdir(parents=True, exist_ok=True)
    page = training_step_page(makemore_step()[1], out) if args.makemore else write_page(out)
    print(f"{page} ({page.stat().st_size / 1e6:.2f} MB): open it in a browser")
    if args.screenshot is not None:
        in_chromium(lambda browser: screenshot(browser, page, args.screenshot, args.step))
        print(args.screenshot)
    if args.frames is not None:
        in_chromium(lambda browser: frames(browser, page, args.frames, FRAME_STEPS))
        print(args.frames)


if __name__ == "__main__":
    main()
