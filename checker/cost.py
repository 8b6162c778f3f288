"""What the checker does and may do: FLOPs counted as it works, its limits (time, memory, each
rule's cost estimated before it allocates anything), progress on stderr. FLOPs (docs/strategies.md):
n for an elementwise op on n values, m·p·(2n−1) for a product (m×n)(n×p), n−1 per output of a
reduction over n values; an exact or ball operation counts one, like a float one.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

from checker.format import Config

DEFAULT_MAX_MEMORY = 4 * 2**30
# Optimistic speeds, so that an estimate of seconds is below the real time on any machine:
FLOAT_RATE, EXACT_RATE, BALL_RATE = 1e10, 1e9, 1e7  # float64 / exact / arb-exp operations per s


class OverBudget(Exception): ...  # no verdict: the limits do not allow the check (exit 2)


class Cost(NamedTuple):  # known from the model's dimensions before anything is allocated:
    bytes: float  # about the peak memory
    seconds: float  # at least this long (at the optimistic rates above)


ESTIMATES: dict[str, Callable[[Config], Cost]] = {}  # strategy -> cost; each rule adds its own


def rule_cost(c: Config, exact: float, floats: float, float_ops: float, exps: float) -> Cost:
    # A rule holding the weights and `exact` more exact rationals (its circuits cost about
    # v²(d + d_h) exact operations) and `floats` float64 values at its peak. An exact rational
    # (fmpq: object, numerator, denominator) takes about 128 bytes, a float 8.
    v, k, d, h = c.d_vocab, c.n_ctx, c.d_model, c.d_head
    entries = exact + 2 * v * d + k * d + 4 * d * h + d + 3 * h + v
    seconds = (v * v * (d + h) + v * d * h) / EXACT_RATE + float_ops / FLOAT_RATE
    return Cost(128 * entries + 8 * floats, seconds + exps / BALL_RATE)


class Work:
    """Accumulates the checker's FLOPs and enforces an optional wall-clock limit."""

    def __init__(self, time_limit: float | None = None, progress: bool = False, max_memory=0):
        self.flops = 0
        self.time_limit, self.max_memory = time_limit, max_memory or DEFAULT_MAX_MEMORY
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
            raise OverBudget(f"time limit reached after {now - self.started:.1f} s")
        if self.progress and total and now - self._last_print > 0.5:
            self._last_print = now
            print(f"\r{label} {done}/{total}", end="", file=sys.stderr, flush=True)

    @contextmanager
    def alarm(self) -> Iterator[None]:
        # Stops at the deadline wherever the main thread is, also in loops that never tick
        # (table building, parsing): a timer signal raises there. Elsewhere tick alone applies.
        if self.deadline is None or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGALRM, lambda *_: self.tick())
        signal.setitimer(signal.ITIMER_REAL, max(self.deadline - time.monotonic(), 0) + 1e-3)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    def admit(self, strategy: str, config: Config, whole: bool = True, f32: bool = False) -> None:
        # Refuses, before the rule allocates anything, a check the limits cannot allow. A shard
        # (whole=False) builds the whole tables but does part of the time, so only its memory.
        # f32: the rule also derives the float32 allowance (its magnitudes are held alongside).
        if (f := ESTIMATES.get(strategy)) is None:
            return
        need, limit = f(config), self.time_limit
        if f32:
            need = Cost(*(a + b for a, b in zip(need, ESTIMATES["float32"](config), strict=True)))
        if whole and limit is not None and need.seconds > limit - self.seconds():
            raise OverBudget(f"needs at least {need.seconds:.3g} s, over the {limit} s time limit")
        if need.bytes > self.max_memory:
            raise OverBudget(f"needs about {need.bytes / 2**30:.3g} GiB, over --max-memory")

    def seconds(self) -> float:
        return time.monotonic() - self.started
