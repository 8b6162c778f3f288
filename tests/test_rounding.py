"""certify.rounding: printed lower bounds round down, upper bounds up, exactly."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from certify.rounding import down, float_down, up

exact = st.fractions(min_value=-10, max_value=10, max_denominator=10**12)


@given(exact, st.integers(0, 8))
def test_down_and_up_bracket_the_value_within_one_unit(x: Fraction, places: int) -> None:
    unit = Fraction(1, 10**places)
    lo, hi = Fraction(down(x, places)), Fraction(up(x, places))
    assert x - unit < lo <= x <= hi < x + unit
    assert len(down(x, places).split(".")[-1]) == places or places == 0


@given(exact)
def test_float_down_is_the_largest_float_not_above(x: Fraction) -> None:
    f = float_down(x)
    assert Fraction(f) <= x < Fraction(math.nextafter(f, math.inf))


def test_the_motivating_case() -> None:
    assert (
        down(Fraction(9578958, 10**7)) == "0.957895" and up(Fraction(9578952, 10**7)) == "0.957896"
    )
    assert down(Fraction(-1, 3), 2) == "-0.34" and up(Fraction(-1, 3), 2) == "-0.33"
