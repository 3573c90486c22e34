"""A progress bar on standard error for long command-line work (demo data, imports, purges).

On a terminal the bar is one line redrawn in place, at most ten times a second; elsewhere (a log file,
CI) it prints a plain line at every tenth of the way, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

_WIDTH = 30


class Progress:
    """Counts ``done`` of ``total`` ``unit`` and shows it; use as a context manager or call :meth:`close`."""

    def __init__(self, total: int, label: str, unit: str = "items", stream: TextIO | None = None) -> None:
        self.total = max(total, 0)
        self.label = label
        self.unit = unit
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self._started = time.monotonic()
        self._drawn_at = 0.0
        self._tenths = -1

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units done."""
        self.done += n
        if self.tty:
            now = time.monotonic()
            if now - self._drawn_at >= 0.1 or self.done >= self.total:
                self._drawn_at = now
                self._draw("\r", "")
        else:
            tenths = self.done * 10 // self.total if self.total else 10
            if tenths != self._tenths:
                self._tenths = tenths
                self._draw("", "\n")

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self.tty:
            self._draw("\r", "\n")
        elif self._tenths < 10 and self.done:
            self._draw("", "\n")

    def _draw(self, start: str, end: str) -> None:
        share = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(share * _WIDTH)
        bar = "#" * filled + "." * (_WIDTH - filled)
        elapsed = time.monotonic() - self._started
        self.stream.write(
            f"{start}{self.label} [{bar}] {share:4.0%} {self.done:,}/{self.total:,} {self.unit} "
            f"{elapsed:,.1f} s{end}"
        )
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
