"""The progress line of a training run: step, running loss, steps/s and time left."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """A one-line progress display.

    On a terminal the line redraws in place (``\\r``) a few times a second; in a log file it
    prints one line every 10% of the run.
    """

    def __init__(self, total: int, start: int, stream: TextIO | None = None) -> None:
        self.total, self.start = total, start
        self.stream = stream or sys.stderr  # looked up now: a redirected stderr counts
        self.tty = self.stream.isatty()
        self.began = self.last = time.perf_counter()
        self.running_loss: float | None = None
        self.next_line = start + total // 10

    def update(self, step: int, loss: float) -> None:
        # an exponential moving average over about the last 100 steps
        self.running_loss = loss if self.running_loss is None else 0.99 * self.running_loss + 0.01 * loss
        if self.tty:
            now = time.perf_counter()
            if now - self.last >= 0.2 or step == self.total:
                self.last = now
                self.stream.write("\r" + self.line(step, now))
                self.stream.flush()
        elif step >= self.next_line or step == self.total:
            self.next_line = step + max(1, self.total // 10)
            self.stream.write(self.line(step, time.perf_counter()) + "\n")
            self.stream.flush()

    def line(self, step: int, now: float) -> str:
        rate = (step - self.start) / max(now - self.began, 1e-9)
        left = (self.total - step) / rate if rate else 0.0
        return (
            f"step {step:>{len(str(self.total))}}/{self.total} | loss {self.running_loss:.4f} | "
            f"{rate:,.0f} steps/s | {format_seconds(left)} left "
        )

    def note(self, message: str) -> None:
        """A line of its own between progress updates (a redrawn line is ended first)."""
        self.stream.write(("\n" if self.tty and self.running_loss is not None else "") + message + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End a redrawn line, so that what is printed next starts on its own."""
        if self.tty and self.running_loss is not None:
            self.stream.write("\n")
            self.stream.flush()


def format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
