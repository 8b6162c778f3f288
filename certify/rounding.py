"""Honest decimals: a printed lower bound is rounded down, an upper bound up.

Python's ``f"{x:.6f}"`` rounds to nearest, so a lower bound of 0.9578958… would print as
0.957896: a false statement. These helpers round the exact rational value in the stated
direction; ``float_down`` gives the largest float not above an exact value, for plots and
databases that store a lower bound as a float.
"""

from __future__ import annotations

import math
from fractions import Fraction

Exact = int | float | Fraction


def down(x: Exact, places: int = 6) -> str:
    """``x`` rounded down (towards −∞) to ``places`` decimals: never above ``x``."""
    return _fixed(math.floor(Fraction(x) * 10**places), places)


def up(x: Exact, places: int = 6) -> str:
    """``x`` rounded up (towards +∞) to ``places`` decimals: never below ``x``."""
    return _fixed(math.ceil(Fraction(x) * 10**places), places)


def float_down(x: Exact) -> float:
    """The largest float ≤ x (``float(Fraction)`` rounds to nearest, possibly upwards)."""
    f = float(x)
    return f if Fraction(f) <= Fraction(x) else math.nextafter(f, -math.inf)


def _fixed(scaled: int, places: int) -> str:
    sign, n = ("-" if scaled < 0 else ""), abs(scaled)
    whole, frac = divmod(n, 10**places)
    return f"{sign}{whole}.{frac:0{places}d}" if places else f"{sign}{whole}"
