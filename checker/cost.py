"""What the checker actually did: FLOPs counted as it works, a time limit, progress on stderr.

FLOP rules (docs/strategies.md): an elementwise op on n values = n; a matrix product (m×n)(n×p) =
m·p·(2n−1); a reduction over n values = n−1 per output. Each exact or ball operation counts as
one FLOP, like a float one: the count measures the proof's length, not the machine's effort.
"""

from __future__ import annotations

import sys
import time


class TimeLimitExceeded(Exception):
    """Raised from ``Work.tick`` when the time limit is reached; the CLI turns it into exit 2."""


class Work:
    """Accumulates the checker's FLOPs and enforces an optional wall-clock limit."""

    def __init__(self, time_limit: float | None = None, progress: bool = False):
        self.flops = 0
        self.started = time.monotonic()
        self.deadline = None if time_limit is None else self.started + time_limit
        self.progress = progress
        self._last_print = 0.0

    def add(self, flops: int) -> None:
        self.flops += int(flops)

    def matmul(self, m: int, n: int, p: int) -> None:
        self.add(m * p * (2 * n - 1))

    def tick(self, label: str = "", done: int = 0, total: int = 0) -> None:
        """Call often from long loops: stops at the deadline, prints progress at most 2/s."""
        now = time.monotonic()
        if self.deadline is not None and now > self.deadline:
            raise TimeLimitExceeded(f"time limit reached after {now - self.started:.1f} s")
        if self.progress and total and now - self._last_print > 0.5:
            self._last_print = now
            print(f"\r{label} {done}/{total}", end="", file=sys.stderr, flush=True)

    def seconds(self) -> float:
        return time.monotonic() - self.started
