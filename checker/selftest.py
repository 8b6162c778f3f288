"""``checker selftest``: is this machine's floating point what the rules' proofs assume?

The rules' error bounds assume IEEE-754 binary64 with round-to-nearest-even and gradual
underflow (subnormals not flushed to zero). ``verify`` refuses to run when either fails.
"""

from __future__ import annotations

import numpy as np


def environment_problem() -> str | None:
    """None if the float environment is sound for the rules, else a one-line reason."""
    one, eps = np.float64(1.0), np.float64(2.0**-53)
    if one + eps != one or one + np.float64(3 * 2.0**-54) == one:
        return "float64 addition is not round-to-nearest-even"
    if -one - eps != -one:
        return "float64 addition rounds asymmetrically (directed rounding mode?)"
    tiny = np.float64(2.0**-1074)
    if tiny == 0 or np.float64(2.0**-1022) / 2 == 0 or tiny * np.float64(1.0) == 0:
        return "subnormal numbers are flushed to zero"
    if np.finfo(np.float64).nmant != 52:
        return "float64 is not IEEE-754 binary64"
    return None


def arithmetic_problem() -> str | None:
    """None if checker.arith gives known exact answers (ties, rounding, exp signs), else why."""
    from fractions import Fraction

    import flint

    from checker import arith

    one, third = flint.fmpq(1), Fraction(1, 3)
    exact = 1 + 2 * arith.U
    bound = arith.gamma(2) * exact
    checks = {
        "nearest_float ties to even": arith.nearest_float(flint.fmpq(2**53 + 1)) == 2.0**53,
        "float_above": arith.float_above(third) == float(np.nextafter(1 / 3, 1)) > third,
        "gamma_2 bounds fl(1 + u + u)": abs(Fraction(1 + 2.0**-53 + 2.0**-53) - exact) <= bound,
        "sign of e - 2": arith.exp_sum_sign({flint.fmpq(0): -2 * one, one: one}, 1) == 1,
        "sign of e^(1/2) - 2": arith.exp_sum_sign({flint.fmpq(0): -2 * one, one: one}, 4) == -1,
        "an exact tie is 0": arith.exp_sum_sign({one: 0 * one}, 1) == 0,
    }
    failed = [name for name, ok in checks.items() if not ok]
    return f"arithmetic self-check failed: {failed[0]}" if failed else None


def run() -> int:
    if problem := environment_problem() or arithmetic_problem():
        print(f"selftest: FAILED: {problem}")
        return 1
    print("selftest: OK (binary64, round-to-nearest, subnormals; exact arithmetic checks)")
    return 0
