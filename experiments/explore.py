"""Step through the backprop-ninja notebook's backward pass: runs/explore.html (one file, no network).

    python -m experiments.explore [--out runs/explore.html] [--screenshot docs/explore.png --step 7]

The page is ``tape.viz.explore`` on the notebook's forward pass (makemore part 4, one batch of
32), written before backward frees what the entries saved; docs/explore.md explains how to read
it. ``--screenshot`` also photographs the page at ``--step`` in headless Chromium (Playwright
and /usr/bin/chromium, as the tests use): that is how docs/explore.png is made.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import tape
from experiments import notebook
from tape import viz

ROOT = Path(__file__).resolve().parent.parent
TITLE = "makemore part 4 (backprop ninja), one batch of 32: the reverse sweep, entry by entry"
CHROMIUM = "/usr/bin/chromium"
SCREENSHOT_VIEWPORT = {"width": 1400, "height": 900}


def write_page(path: Path) -> Path:
    """The notebook's page, from a fresh forward pass (explore must come before backward)."""
    out = notebook.run(tape)
    return viz.explore(out["loss"], path, names=out, title=TITLE)


def screenshot(browser: Any, page: Path, image: Path, step: int) -> None:
    """A PNG of ``page`` at ``step``, taken with a Playwright ``browser``."""
    tab = browser.new_page(viewport=SCREENSHOT_VIEWPORT)
    tab.goto(f"{page.resolve().as_uri()}#step={step}")
    tab.screenshot(path=image)
    tab.close()


def screenshot_in_chromium(page: Path, image: Path, step: int) -> None:
    from playwright.sync_api import sync_playwright  # the test extra: only --screenshot needs it

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        screenshot(browser, page, image, step)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "explore.html")
    parser.add_argument("--screenshot", type=Path, help="also save a PNG of the page at --step")
    parser.add_argument("--step", type=int, default=7, help="the sweep's step in the screenshot")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    page = write_page(args.out)
    print(f"{page} ({page.stat().st_size / 1e6:.2f} MB): open it in a browser")
    if args.screenshot is not None:
        screenshot_in_chromium(page, args.screenshot, args.step)
        print(args.screenshot)


if __name__ == "__main__":
    main()
