"""The output directory: claimed by one run at a time, checked writable before training, and
holding only what the experiment writes unless the user says otherwise."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

from experiments.makemore.checkpoint import CHECKPOINT, LOSSES, UPDATES
from experiments.makemore.errors import UsageError
from nn.diagnostics import FIGURES

RESULTS = (
    "metrics.json",
    "model.npz",
    "samples.txt",
    "loss.png",
    "diagnostics.json",
    *FIGURES,
    "graph.svg",
    "graph.dot",
    "explore.html",
)
LOGS = (LOSSES, UPDATES)  # written during training, before the first checkpoint
RUN_FILES = (CHECKPOINT, *LOGS, *RESULTS)
PROBE = "write-test"  # the file that checks --out is writable
# tape.atomic's temporary name for PATH: .NAME.PID.HEX.tmp beside it
TEMPORARY = re.compile(r"\.(?P<name>.+)\.\d+\.[0-9a-f]+\.tmp")


class OutputDir:
    """A directory this process holds the lock of (see ``claim``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    def remove_stale_temporaries(self) -> None:
        """Temporary files of a killed write: with the lock held, nobody is writing them."""
        for entry in os.scandir(self.path):
            match = TEMPORARY.fullmatch(entry.name)
            if match and match["name"] in (*RUN_FILES, PROBE):
                Path(entry.path).unlink(missing_ok=True)

    def contents(self) -> tuple[list[str], list[str]]:
        """The run files present, and every other name, sorted."""
        names = sorted(os.listdir(self.path))
        return [n for n in names if n in RUN_FILES], [n for n in names if n not in RUN_FILES]

    def check_writable(self) -> None:
        probe = self.path / f".{PROBE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise UsageError(f"cannot write to --out {self.path}: {e.strerror or e}") from None

    def remove_run(self) -> None:
        """Delete the files a run writes (nothing else): --overwrite starts again."""
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)


@contextlib.contextmanager
def claim(path: Path) -> Iterator[OutputDir]:
    """Create ``path`` if needed and hold an exclusive lock on it while the block runs.

    The lock (flock on the directory itself) goes with the process, even on kill -9, and two
    runs asking for it at once cannot both get it: the second is refused at once. A directory
    created here is removed again if the block fails while it is still empty (a refused run).
    """
    created = [p for p in (path, *path.parents) if not p.exists()]  # the leaf first
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"--out {path} exists and is not a directory") from None
    except OSError as e:
        raise UsageError(f"cannot create --out {path}: {e.strerror or e}") from None
    fd = os.open(path, os.O_RDONLY)
    try:
        _lock(fd, path)
        directory = OutputDir(path)
        directory.remove_stale_temporaries()
        yield directory
    except BaseException:
        with contextlib.suppress(OSError):
            for made in created:
                made.rmdir()  # only if empty
        raise
    finally:
        os.close(fd)


def _lock(fd: int, path: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UsageError(
            f"another run is writing to --out {path}; wait for it to end or choose another --out"
        ) from None
