"""A one-line progress display on stderr for the commands: only when stderr is a terminal and
--quiet is not given; the library reports progress through callbacks and prints nothing."""
from __future__ import annotations

import sys
import time


class ProgressBar:
    """``bar(done, total, value)``: redraws "label [#####.....] done/total value" at most 10 times
    a second; ``close()`` ends the line.  With ``delay`` > 0 nothing is drawn before ``delay``
    seconds have passed (a step that ends sooner leaves no trace)."""

    def __init__(self, label: str, stream=None, width: int = 30, delay: float = 0.0):
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.delay = delay
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int, value: float | None = None) -> None:
        now = time.perf_counter()
        if now - self.t0 < self.delay or (now - self.last < 0.1 and done < total):
            return
        self.last = now
        frac = min(1.0, done / total) if total else 1.0
        fill = int(frac * self.width)
        tail = f" {value:.6g}" if value is not None else ""
        self.stream.write(f"\r{self.label} [{'#' * fill}{'.' * (self.width - fill)}] {done}/{total}{tail} "
                          f"({now - self.t0:.0f} s)")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def progress_bar(label: str, *, quiet: bool = False, stream=None, delay: float = 0.0) -> ProgressBar | None:
    """A ProgressBar when progress should be shown (stderr is a terminal, not --quiet), else None."""
    stream = stream or sys.stderr
    if quiet or not getattr(stream, "isatty", lambda: False)():
        return None
    return ProgressBar(label, stream, delay=delay)
