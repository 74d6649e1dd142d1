"""The README's examples run as written and print what the README shows."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def example(heading):
    """The first code block under ``heading``, what it prints when run, and the block after it."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(heading) :]
    code, shown = re.findall(r"```(?:python)?\n(.*?)```", section, re.S)[:2]
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    return code, result.stdout.splitlines(), shown


def test_the_api_example_prints_the_wengert_list_and_the_loss_the_readme_shows():
    code, lines, shown = example("## The API in a few lines")
    assert "\n".join(lines[:-1]) + "\n" == shown  # the Wengert list, as printed
    assert lines[-1] == "tensor(6.3067, grad_fn=<cross_entropyBackward>) tensor(0.0490)"
    assert lines[-1] in code  # the comment beside the print says the same


def test_the_gradients_of_gradients_example_prints_newtons_root_the_penalty_gradient_and_the_list():
    code, lines, shown = example("## Gradients of gradients")
    newton, penalty, *listing = lines
    assert newton == "tensor(1.1309, dtype=tape.float64, requires_grad=True)" and newton in code
    assert penalty == "tensor(-1.1576, dtype=tape.float64)" and penalty in code
    assert "\n".join(listing) + "\n" == shown
