"""``python -m experiments.bench``: the command is ``cli.main``."""

from experiments.bench.cli import main

if __name__ == "__main__":
    main()
