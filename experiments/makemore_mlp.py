"""The notebook's character-level MLP trained on names.txt with nn on tape: the command.

    python -m experiments.makemore_mlp                      # 200k steps, as the notebook
    python -m experiments.makemore_mlp --steps 2000 --out runs/quick
    python -m experiments.makemore_mlp --resume --out runs/quick   # continue, with the saved options

The experiment itself is the package experiments/makemore/ (``--help`` lists every option).
"""

import sys

from experiments.makemore.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
