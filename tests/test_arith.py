"""Each sound-arithmetic primitive against exact Fraction arithmetic (subnormals, huge, ties)."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction

import flint
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from checker import arith

MAX = Fraction(np.finfo(np.float64).max)
floats = st.floats(allow_nan=False, allow_infinity=False)  # subnormals and huge included
subnormals = st.integers(-(2**52), 2**52).map(lambda n: n * 2.0**-1074)
any_float = st.one_of(floats, subnormals)


@st.composite
def rationals(draw, max_exp: int = 1000) -> Fraction:
    """p/q * 2^e: subnormal to huge magnitudes, plus exact float midpoints (rounding ties)."""
    if draw(st.booleans()):
        x = Fraction(draw(any_float))
        return x + Fraction(draw(st.sampled_from([0, 1, -1]))) * ulp(x) / 2
    p = draw(st.integers(-(2**80), 2**80))
    q = draw(st.integers(1, 2**80))
    return Fraction(p, q) * Fraction(2) ** draw(st.integers(-1150, max_exp - 80))


def ulp(x: Fraction) -> Fraction:
    return Fraction(math.ulp(float(x)))


def fmpq(x: Fraction) -> flint.fmpq:
    return flint.fmpq(x.numerator, x.denominator)


def le(a: float | Fraction, b: float | Fraction) -> bool:
    """a <= b exactly, with float infinities allowed."""

    def exact(x: float | Fraction) -> float | Fraction:
        return x if isinstance(x, float) and math.isinf(x) else Fraction(x)

    return exact(a) <= exact(b)


@given(st.lists(any_float, min_size=1, max_size=12))
def test_exact_matrix_is_exact(xs: list[float]) -> None:
    m = arith.exact_matrix(np.array(xs))
    assert [Fraction(int(e.p), int(e.q)) for e in m.entries()] == [Fraction(x) for x in xs]


@given(rationals())
def test_nearest_float_is_nearest_with_ties_to_even(x: Fraction) -> None:
    assume(abs(x) < MAX)  # beyond: OverflowError, never inf
    f = arith.nearest_float(fmpq(x))
    for g in (math.nextafter(f, -math.inf), math.nextafter(f, math.inf)):
        if math.isfinite(g):
            assert abs(Fraction(f) - x) <= abs(Fraction(g) - x)
            if abs(Fraction(f) - x) == abs(Fraction(g) - x):  # an exact tie: even mantissa
                assert f == 0 or math.frexp(f)[0] * 2**53 % 2 == 0


@given(rationals())
def test_float_above_is_the_smallest_float_above(x: Fraction) -> None:
    assume(abs(x) < MAX)
    f = arith.float_above(x)
    assert Fraction(f) >= x
    assert Fraction(math.nextafter(f, -math.inf)) < x


@given(rationals())
def test_ball_bounds_enclose_the_exact_rational(x: Fraction) -> None:
    assume(abs(x) < MAX)
    lo, hi = arith.ball_bounds(arith.ball(fmpq(x)))
    assert le(lo, x) and le(x, hi)
    lo, hi = arith.enclose_matrix(flint.fmpq_mat(1, 1, [fmpq(x)]))
    assert le(float(lo[0, 0]), x) and le(x, float(hi[0, 0]))


@given(any_float)
def test_down_and_up_are_the_neighbouring_floats(x: float) -> None:
    assume(abs(x) < np.finfo(np.float64).max)
    assert float(arith.down(x)) == math.nextafter(x, -math.inf) < x
    assert float(arith.up(x)) == math.nextafter(x, math.inf) > x


@given(st.lists(st.one_of(st.floats(-(2.0**900), 2.0**900), subnormals), min_size=1, max_size=20))
def test_gamma_bounds_every_float_summation_order(xs: list[float]) -> None:
    exact = sum(map(Fraction, xs), Fraction(0))
    bound = arith.gamma(len(xs) - 1) * sum(abs(Fraction(x)) for x in xs)
    for order in (xs, xs[::-1], sorted(xs)):
        total = 0.0
        for x in order:
            total += x
        assert abs(Fraction(total) - exact) <= bound
    pairwise = float(np.sum(np.array(xs)))  # numpy's pairwise tree: also covered
    assert abs(Fraction(pairwise) - exact) <= bound


@given(rationals(max_exp=900))
def test_arb_float_is_the_nearest_float_to_the_midpoint(x: Fraction) -> None:
    with flint.ctx.workprec(300):
        b = flint.arb(fmpq(x))
        man, exp = b.mid().man_exp()
    mid = Fraction(int(man)) * Fraction(2) ** int(exp)
    try:
        nearest = arith.nearest_float(fmpq(mid))
    except OverflowError:  # rounds beyond the float range: arb_float refuses it too
        with pytest.raises(ArithmeticError):
            arith.arb_float(b)
        return
    assert arith.arb_float(b) == nearest


terms = st.dictionaries(
    st.fractions(-20, 20, max_denominator=8), st.integers(-5, 5).map(Fraction), max_size=5
)


@given(terms, st.integers(1, 40))
def test_exp_sum_sign_agrees_with_decimal(t: dict[Fraction, Fraction], d_head: int) -> None:
    sign = arith.exp_sum_sign({fmpq(s): fmpq(d) for s, d in t.items()}, d_head)
    if all(d == 0 for d in t.values()):
        assert sign == 0  # an exact tie
        return
    with localcontext() as ctx:
        ctx.prec = 120
        root = Decimal(d_head).sqrt()
        total = sum(
            (
                Decimal(d.numerator) * (Decimal(s.numerator) / s.denominator / root).exp()
                for s, d in t.items()
            ),
            Decimal(0),
        )
    assume(abs(total) > Decimal(10) ** -90)
    assert sign == (1 if total > 0 else -1)


def test_exp_sum_sign_of_distinct_exponents_is_never_zero() -> None:
    one = flint.fmpq(1)
    assert arith.exp_sum_sign({flint.fmpq(0): one, flint.fmpq(1, 10**30): -one}, 32) == -1
    assert arith.exp_sum_sign({flint.fmpq(0): one, flint.fmpq(2): 0 * one}, 32) == 1


@given(st.floats(min_value=0.0, allow_infinity=False, allow_nan=False))
def test_down0_is_a_nonnegative_lower_bound(x: float) -> None:
    from checker.arith import down0

    low = float(down0(x))
    assert low >= 0.0 and Fraction(low) <= Fraction(x)
    assert float(down0(0.0)) == 0.0  # not -2^-1074: safe as a divisor's lower bound


def test_counted_arrays_count_every_float_operation_once() -> None:
    """Elementwise: one per result; reduction over n: n - 1 per result; accumulate: one per
    element; the outward rounding (nextafter) and selections (np.where) are free."""
    from checker.arith import Counted, counted, down, up

    a = counted(np.arange(12.0).reshape(3, 4))
    start = Counted.flops
    b = up(a * 2 + 1)  # two ops on 12 elements, one rounding
    assert Counted.flops - start == 24 and isinstance(b, Counted)
    start = Counted.flops
    b.max(axis=1)  # 3 results of 4 values
    np.maximum.accumulate(b, axis=1)
    assert Counted.flops - start == 9 + 12
    start = Counted.flops
    c = np.where(b > 3, down(b), 0.0)  # the comparison only
    assert Counted.flops - start == 12 and isinstance(c, Counted)
    np.add(a, 1, out=counted(np.zeros((3, 4))))  # out= does not recurse
