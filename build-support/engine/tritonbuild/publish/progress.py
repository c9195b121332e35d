"""Transfer progress: a byte counter fed by s3transfer, and a printer that says little.

s3transfer calls its callback from worker threads with byte increments (negative when a part is
retried), so the counter is locked and clamped. The printer reports only when a new 10% step is
crossed: at most eleven lines per archive, whatever its size.
"""

from __future__ import annotations

import threading
from typing import Callable, TextIO

__all__ = ["ProgressListener", "TransferProgress", "PercentPrinter"]

ProgressListener = Callable[[int, int], None]
"""Called with (bytes done, bytes total)."""


class TransferProgress:
    """Accumulates byte increments into a total and tells the listener."""

    def __init__(self, total: int, listener: ProgressListener | None) -> None:
        self._total = total
        self._done = 0
        self._listener = listener
        self._lock = threading.Lock()

    def __call__(self, increment: int) -> None:
        with self._lock:
            self._done = min(max(self._done + increment, 0), self._total)
            done = self._done
        if self._listener is not None:
            self._listener(done, self._total)


class PercentPrinter:
    """Prints `<label>: NN%` lines, one per `step_percent` crossed."""

    def __init__(self, label: str, stream: TextIO, step_percent: int = 10) -> None:
        self._label = label
        self._stream = stream
        self._step = step_percent
        self._last_step = -1
        self._lock = threading.Lock()

    def __call__(self, done: int, total: int) -> None:
        percent = 100 if total <= 0 else done * 100 // total
        step = percent // self._step
        with self._lock:
            if step <= self._last_step:
                return
            self._last_step = step
            print(f"{self._label}: {step * self._step}%", file=self._stream, flush=True)
