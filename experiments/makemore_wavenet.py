"""makemore part 5's hierarchical (WaveNet-like) model trained on names.txt with nn on tape: the
command.

    python -m experiments.makemore_wavenet                      # 200k steps, as the lecture
    python -m experiments.makemore_wavenet --steps 2000 --out runs/quick
    python -m experiments.makemore_wavenet --resume --out runs/quick   # continue, with the saved options

The model is experiments/makemore/wavenet.py; the rest of the experiment (data, checkpoints,
the training loop, evaluation, the command's options) is the MLP's, experiments/makemore/.
"""

import sys
from collections.abc import Sequence

from experiments.makemore import cli
from experiments.makemore.wavenet import WAVENET

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command with ``argv`` (default: sys.argv); the exit code."""
    return cli.main(argv, WAVENET)


if __name__ == "__main__":
    sys.exit(main())
