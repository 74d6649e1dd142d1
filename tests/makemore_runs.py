"""What the makemore experiments' tests share: a small names file, a small model, and readers
of a run's files.

The diagnostics' four pictures take about a second a run to draw: the small runs leave them out
(--no-diagnostics) unless a test is about them and adds ``DIAGNOSTICS``."""

import random

import numpy as np

from experiments import makemore_mlp, makemore_wavenet
from experiments.makemore.checkpoint import LossLog

SMALL = ["--batch-size", "8", "--n-embd", "4", "--n-hidden", "16", "--seed", "3", "--no-diagnostics"]
DIAGNOSTICS = ["--diagnostics"]  # after SMALL: the last one given wins


def make_names(path, count=400, seed=0):
    """Made-up names from a handful of syllables: enough structure to learn a little."""
    g = random.Random(seed)
    syllables = ["ma", "ri", "an", "el", "jo", "na", "li", "ka", "so", "ta", "be", "ne", "y"]
    words = ["".join(g.choice(syllables) for _ in range(g.randint(1, 3))) for _ in range(count)]
    path.write_text("\n".join(words) + "\n")
    return path


def run(names, out, *args):
    """The command in this process, on the small model: its exit code."""
    return makemore_mlp.main(["--data", str(names), "--out", str(out), *SMALL, *args])


def load(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f}


def losses(out):
    return LossLog(out / "losses.f32").read()


WAVENET_SMALL = [*SMALL, "--block-size", "8"]


def run_wavenet(names, out, *args):
    """The WaveNet command in this process, on a small model: its exit code."""
    return makemore_wavenet.main(["--data", str(names), "--out", str(out), *WAVENET_SMALL, *args])
