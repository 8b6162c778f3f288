"""Sound arithmetic for the rules, three tools:

1. Exact. Float32 weights are dyadic rationals; sums and products of them are exact in
   ``fmpq_mat`` (FLINT). All linear algebra on the weights happens here.
2. Balls. ``arb`` encloses exp and sqrt; a ball's ``lower()``/``upper()`` bound the true value.
3. Outward-rounded float64 intervals ``(lo, hi)`` of numpy arrays. IEEE-754 + − × ÷ are correctly
   rounded (round-to-nearest, checked by ``selftest``), so the exact result of an operation on
   floats lies within one ulp of the computed one and ``np.nextafter`` one ulp outward encloses
   it: x ∈ [xl, xh] and y ∈ [yl, yh] give x + y ∈ [down(xl + yl), up(xh + yh)].
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import flint
import numpy as np

# --- exact -----------------------------------------------------------------------------------


def exact_matrix(a: np.ndarray) -> flint.fmpq_mat:
    """The exact rational matrix of a float32/float64 array (1-D arrays become one row)."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    if not np.all(np.isfinite(a)):
        raise ValueError("non-finite value in an exact matrix")
    rows, cols = a.shape
    entries = [flint.fmpq(*float(x).as_integer_ratio()) for x in a.ravel().tolist()]
    return flint.fmpq_mat(rows, cols, entries)


def nearest_float(x: flint.fmpq) -> float:
    """float(p/q) correctly rounded to nearest: CPython's int/int true division guarantees it."""
    return int(x.p) / int(x.q)


def enclose_matrix(m: flint.fmpq_mat) -> tuple[np.ndarray, np.ndarray]:
    """Float64 arrays lo <= m <= hi entrywise (nearest float, then one ulp outward); Counted."""
    near = np.array([nearest_float(x) for x in m.entries()], dtype=np.float64)
    near = counted(near.reshape(m.nrows(), m.ncols()))
    return down(near), up(near)


# --- FLOP counting of the float stages --------------------------------------------------------


class Counted(np.ndarray):
    """An array that counts the FLOPs done on it in ``Counted.flops`` (one per elementwise result,
    n - 1 per reduction of n values, one per accumulated element; ``np.nextafter``, the outward
    rounding of the operation before it, is free). Results stay Counted (np.where included)."""

    flops = 0

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [x.view(np.ndarray) if isinstance(x, Counted) else x for x in inputs]
        if "out" in kwargs:  # out= arrays too, or numpy would call this hook again
            kwargs["out"] = tuple(x.view(np.ndarray) for x in kwargs["out"])
        out = getattr(ufunc, method)(*plain, **kwargs)
        if ufunc is not np.nextafter:
            n = np.size(out) if method == "__call__" else 0
            n = np.size(plain[0]) - np.size(out) if method == "reduce" else n
            Counted.flops += np.size(out) if method == "accumulate" else n
        return counted(out)

    def __array_function__(self, func, types, args, kwargs):
        return counted(super().__array_function__(func, types, args, kwargs))


def counted(x):
    """x as a Counted array (arrays only; scalars and other objects pass through)."""
    return x.view(Counted) if type(x) is np.ndarray else x


# --- balls -----------------------------------------------------------------------------------


def ball(x: flint.fmpq | int) -> flint.arb:
    """An exact ball for a rational (arb holds dyadics; a non-dyadic gets a tiny radius)."""
    return flint.arb(x) if isinstance(x, int) else flint.arb(int(x.p)) / int(x.q)


def ball_bounds(b: flint.arb) -> tuple[float, float]:
    """Floats lo <= b <= hi for every point of the ball (outward from arb's endpoints)."""
    lo, hi = float(b.lower()), float(b.upper())
    return float(np.nextafter(lo, -np.inf)), float(np.nextafter(hi, np.inf))


def upper_floats(balls: list[flint.arb]) -> np.ndarray:
    """A Counted array of floats above every point of each ball."""
    return counted(np.array([ball_bounds(b)[1] for b in balls]))


def exp_enclosure(values: list, shifts: list, per_row: int, inv_s: flint.arb, work: Any, flops=3):
    """Counted floats 0 <= lo <= exp((x_i - shifts[i // per_row]) inv_s) <= hi for each value
    x_i (a rational, or a float taken exactly), in rows of per_row: arb encloses exp,
    ``ball_bounds`` rounds outward, lo is clamped at 0 as exp > 0. ``flops`` per value counted."""
    lo, hi = np.empty(len(values)), np.empty(len(values))
    for i, x in enumerate(values):
        shift = shifts[i // per_row]
        b = flint.arb(x) - ball(shift) if isinstance(x, float) else ball(x - shift)
        lo[i], hi[i] = ball_bounds((b * inv_s).exp())
        if i % 4096 == 0:
            work.tick("softmax factors", i, len(values))
    work.add(flops * len(values))
    return counted(np.maximum(lo, 0.0).reshape(-1, per_row)), counted(hi.reshape(-1, per_row))


# --- outward-rounded float64 intervals --------------------------------------------------------


def down(x: np.ndarray | float) -> np.ndarray:
    return np.nextafter(x, -np.inf)


def down0(x: np.ndarray | float) -> np.ndarray:
    """A lower bound of a quantity known to be >= 0: rounded down, then clamped at 0. down(0) is
    -2^-1074, and a negative "lower bound" reaching a divisor or 1/(1 + odds) flips signs."""
    return np.maximum(down(x), 0.0)


def up(x: np.ndarray | float) -> np.ndarray:
    return np.nextafter(x, np.inf)


def prefix_sums(x: np.ndarray, rnd: Callable) -> np.ndarray:
    """[:, n] = the sum of the first n columns of x, each partial sum rounded by rnd (``up`` for
    an upper bound of sums of upper bounds, ``down0`` for lower bounds of non-negative terms)."""
    out = np.zeros((x.shape[0], x.shape[1] + 1))
    for n in range(x.shape[1]):
        out[:, n + 1] = rnd(out[:, n] + x[:, n])
    return out


def up_mul(w: tuple, y_hi: np.ndarray) -> np.ndarray:
    """An upper bound on w y for every true w >= 0 in [w_lo, w_hi] and true y <= y_hi (w y is
    linear in w, so its largest value is at an end)."""
    return up(np.maximum(w[0] * y_hi, w[1] * y_hi))


# --- a-priori error bounds for plain float64 (the filtered fast path) ------------------------

U = Fraction(1, 2**53)  # unit roundoff: fl(r) = r(1 + d) + e, |d| <= U, |e| <= ETA, d*e = 0
ETA = Fraction(1, 2**1075)  # underflow: half the smallest subnormal (e = 0 for + and -)


def gamma(n: int, u: Any = U) -> Any:
    """gamma_n = n u / (1 - n u), exact in u's type (float64's u by default): a float sum of n + 1
    terms, in any order, is within gamma_n * sum |terms| of the exact sum (Higham, Lemma 3.1)."""
    if n * u >= 1:
        raise ValueError("gamma_n undefined for n u >= 1")
    return n * u / (1 - n * u)


def float_above(x: Fraction) -> float:
    """The smallest float64 >= x, for |x| <= max float (nearest, then one step up if below)."""
    f = x.numerator / x.denominator
    return f if Fraction(f) >= x else float(np.nextafter(f, np.inf))


def arb_float(b: flint.arb) -> float:
    """The float64 nearest to the ball's midpoint man * 2^exp (int / int rounds correctly)."""
    man, exp = (int(x) for x in b.mid().man_exp())
    if man.bit_length() + exp < -1075:  # |mid| < 2^-1075 rounds to 0 (and 1 << -exp overflows)
        return 0.0
    if man.bit_length() + exp > 1024:
        raise ArithmeticError("a value exceeds the float64 range (weights too large)")
    return float(man << exp) if exp >= 0 else man / (1 << -exp)


# --- exact sign of a sum of exponentials (Lindemann-Weierstrass) -----------------------------


def exp_sum_sign(terms: dict[flint.fmpq, flint.fmpq], d_head: int, max_prec: int = 1 << 14) -> int:
    """The exact sign of sum_g D_g exp(sigma_g / sqrt(d_head)), terms = {sigma_g: D_g}.

    The keys sigma_g are distinct rationals, so the sigma_g / sqrt(d_head) are distinct
    algebraic numbers and, by the Lindemann-Weierstrass theorem, the exp(sigma_g / sqrt(d_head))
    are linearly independent over the algebraic numbers: the sum is 0 iff every D_g is 0.
    Otherwise it is nonzero and arb at doubling precision finds its sign. Returns 0 (exact
    zero), +1 or -1; raises ValueError if max_prec bits do not suffice (never guesses).
    """
    live = {sigma: d for sigma, d in terms.items() if d != 0}
    if not live:
        return 0
    if all(d > 0 for d in live.values()) or all(d < 0 for d in live.values()):
        return 1 if next(iter(live.values())) > 0 else -1
    top = max(live)
    prec = 64
    while prec <= max_prec:
        with flint.ctx.workprec(prec):
            s = flint.arb(d_head).sqrt()
            parts = (flint.arb(d) * (flint.arb(sg - top) / s).exp() for sg, d in live.items())
            total = sum(parts, flint.arb(0))
            if total > 0:
                return 1
            if total < 0:
                return -1
        prec *= 2
    raise ValueError(f"sign of a nonzero exponential sum undecided at {max_prec} bits")
