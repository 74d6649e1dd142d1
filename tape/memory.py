"""How the process allocates large arrays: freed blocks are kept for reuse, not handed back to the OS.

Why: eager code allocates and frees arrays of the same sizes again and again (a training step's
activations and gradients, an evaluation's chunks). glibc's malloc serves a block above its mmap
threshold (128 KiB at start, raised by itself up to 32 MiB) with a fresh ``mmap``, unmaps it when
it is freed, and gives the free top of its heap back to the OS once that exceeds the trim threshold
(twice the mmap threshold). Either way the next arrays are fresh pages: a page fault per 4 KiB
touched, about 8 microseconds of CPU each on the benchmark VM (an evaluation of the makemore
training split took 14,000 to 21,000 of them, a training step at batch 4096 about 250).

What ``keep`` (the default) does, at ``import tape``:

- on glibc, ``mallopt`` sets both thresholds to ``THRESHOLD`` (256 MiB): blocks up to that size come
  from the heap and stay there when freed, for the next arrays of that size. Memory freed after a
  peak stays with the process until ``release()`` hands it back (``experiments/makemore/
  evaluation.py`` does at the end of an evaluation), and a peak can be a few MB higher (a freed
  block serves only requests that fit in it). Other C libraries (macOS, Windows, musl) are left
  alone.
- NumPy's advice to the kernel to back arrays of 4 MiB and more with huge pages
  (``madvise(MADV_HUGEPAGE)``) is turned off. A fault there clears 2 MiB and, when free memory is
  fragmented, waits for the kernel to compact it: on a busy VM that made evaluating the training
  split 15.9 s instead of 3.4 s. On a calm machine the advice saves faults instead (an
  evaluation after ``release()`` was about 7% faster with it): off is the choice without the
  worst case.

Both are the process's settings, not tape's: torch, or anything else in the same process, allocates
through the same malloc and is affected as well (its large temporaries are kept too: torch's
evaluation of the whole split in one batch took half the CPU time); NumPy arrays made by any
library lose the huge-page advice. ``TAPE_ALLOCATOR=system`` in the environment before
``import tape`` leaves both as they are; ``set_allocator`` switches later (see its caveat) and
``allocator()`` says what is in effect.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from typing import Any

ENV = "TAPE_ALLOCATOR"
KEEP, SYSTEM = "keep", "system"
MODES = (KEEP, SYSTEM)

THRESHOLD = 256 << 20  # larger blocks are still mmapped: a huge temporary is not kept
GLIBC_INITIAL = 128 << 10  # glibc's initial mmap and trim thresholds
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's <malloc.h>


@dataclasses.dataclass(frozen=True)
class Allocator:
    """The allocation setting in effect."""

    mode: str  # KEEP or SYSTEM
    malloc_tuned: bool  # glibc's thresholds are THRESHOLD (False: the C library's own behaviour)
    numpy_hugepage: bool | None  # NumPy advises huge pages for large arrays (None: NumPy cannot say)

    def __str__(self) -> str:
        malloc = f"glibc thresholds {THRESHOLD >> 20} MiB" if self.malloc_tuned else "malloc as it is"
        hugepage = {True: "on", False: "off", None: "unknown"}[self.numpy_hugepage]
        return f"{self.mode}: {malloc}, NumPy huge-page advice {hugepage}"


_current = Allocator(SYSTEM, False, None)
_hugepage_before: bool | None = None  # NumPy's setting before KEEP changed it, restored by SYSTEM


def allocator() -> Allocator:
    """The setting in effect (applied at ``import tape`` from ``TAPE_ALLOCATOR``)."""
    return _current


def set_allocator(mode: str) -> Allocator:
    """Apply ``mode``, ``"keep"`` or ``"system"``, and return the setting now in effect.

    ``"system"`` after ``"keep"`` puts NumPy's huge-page advice back as it was and glibc's
    thresholds back to their initial 128 KiB, but not glibc's raising of them by itself (any
    mallopt call turns that off for the life of the process): for glibc exactly as it ships, set
    ``TAPE_ALLOCATOR=system`` before ``import tape``.
    """
    global _current, _hugepage_before
    if mode not in MODES:
        raise ValueError(f"allocator mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    libc = _glibc()
    if mode == KEEP:
        tuned = libc is not None and _mallopt(libc, THRESHOLD)
        if _current.mode != KEEP:
            _hugepage_before = _numpy_hugepage(False)
        _current = Allocator(KEEP, tuned, False if _hugepage_before is not None else None)
    else:
        if _current.malloc_tuned and libc is not None:
            _mallopt(libc, GLIBC_INITIAL)
        if _current.mode == KEEP and _hugepage_before is not None:
            _numpy_hugepage(_hugepage_before)
        _current = Allocator(SYSTEM, False, _numpy_hugepage_state())
    return _current


def release() -> bool:
    """Hand the heap's free memory back to the OS now (glibc's ``malloc_trim(0)``, which also
    returns the free pages inside the heap); False where there is no glibc to ask.

    For the end of a phase that used large temporaries (an evaluation of a big split) before work
    that will not reuse them (plotting, say), which would otherwise add its memory on top of them.
    The next large arrays are fresh pages again: call it after a phase, not inside a loop.
    """
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)  # 1 if it gave memory back, 0 if there was none: done either way
    return True


def configure_from_environment() -> Allocator:
    """What ``import tape`` runs: ``TAPE_ALLOCATOR`` (unset: ``keep``) applied."""
    mode = os.environ.get(ENV, KEEP).strip().lower() or KEEP
    if mode not in MODES:
        # an import must not fail over a tuning knob: say so, and leave the process as it is
        warnings.warn(
            f"{ENV}={os.environ[ENV]!r} is not one of {', '.join(MODES)}: allocation left as it is",
            RuntimeWarning,
            stacklevel=2,
        )
        mode = SYSTEM
    return set_allocator(mode)


@functools.cache
def _glibc() -> Any:
    """glibc as a ``ctypes.CDLL``, or None for any other C library (mallopt's thresholds are glibc's)."""
    # no confstr (Windows), no such name, no ctypes in this Python, no libc.so.6: not glibc to us
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        import ctypes  # here: a Python built without ctypes still imports tape

        return ctypes.CDLL("libc.so.6")
    except (ImportError, AttributeError, ValueError, OSError):
        return None


def _mallopt(libc: Any, threshold: int) -> bool:
    # both: a block under the mmap threshold still goes back to the OS from the top of the heap
    # once the free top exceeds the trim threshold (mallopt returns 1 on success)
    trim = libc.mallopt(M_TRIM_THRESHOLD, threshold) == 1
    return libc.mallopt(M_MMAP_THRESHOLD, threshold) == 1 and trim


def _hugepage_switch() -> Any:
    try:
        from numpy._core.multiarray import _set_madvise_hugepage  # NumPy 2
    except ImportError:
        try:
            from numpy.core.multiarray import _set_madvise_hugepage  # NumPy 1.25, tape's oldest
        except ImportError:
            return None
    return _set_madvise_hugepage


def _numpy_hugepage(enabled: bool) -> bool | None:
    """Set NumPy's huge-page advice; its previous value (None: this NumPy has no such switch)."""
    switch = _hugepage_switch()
    return None if switch is None else bool(switch(enabled))


def _numpy_hugepage_state() -> bool | None:
    switch = _hugepage_switch()
    if switch is None:
        return None
    enabled = bool(switch(True))
    switch(enabled)  # only a setter that returns the old value: put it back
    return enabled


configure_from_environment()  # at import: before the first large array of the process
