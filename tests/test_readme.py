"""The README's API example runs as written and prints what the README shows."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_api_example_prints_the_wengert_list_and_the_loss_the_readme_shows():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The API in a few lines") :]
    code, shown = re.findall(r"```(?:python)?\n(.*?)```", section, re.S)[:2]
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    lines = result.stdout.splitlines()
    assert "\n".join(lines[:-1]) + "\n" == shown  # the Wengert list, as printed
    assert lines[-1] == "tensor(6.3067, grad_fn=<cross_entropyBackward>) tensor(0.0490)"
    assert lines[-1] in code  # the comment beside the print says the same
