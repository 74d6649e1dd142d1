"""The one way the experiment reports a failure: an ExperimentError, printed by the command as
one line ``error: ...`` with its exit code, never a traceback."""

from __future__ import annotations

# exit codes (README): 0 done, 1 failed while running, 2 refused before training, 3 diverged;
# a stop by signal exits 128 + the signal's number (130 Ctrl-C, 143 SIGTERM)
FAILED = 1
REFUSED = 2
DIVERGED = 3


class ExperimentError(Exception):
    """A failure the user can act on; ``str(error)`` names what was wrong and where."""

    code = FAILED

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UsageError(ExperimentError):
    """An option, an option combination or the output directory does not allow the run."""

    code = REFUSED


def write_failed(path: object, error: OSError, kept: str) -> ExperimentError:
    """One line for a failed write (a full disk, a read-only mount): what, why, what is still there."""
    return ExperimentError(f"could not write {path}: {error.strerror or error}; {kept}")
