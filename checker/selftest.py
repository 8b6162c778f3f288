"""``checker selftest``: is this machine's floating point what the rules' proofs assume?

The rules' error bounds assume IEEE-754 binary64 with round-to-nearest-even and gradual
underflow (subnormals not flushed to zero). ``verify`` refuses to run when either fails.
"""

from __future__ import annotations

import sys

import numpy as np


def environment_problem() -> str | None:
    """None if the float environment is sound for the rules, else a one-line reason."""
    one = np.float64(1.0)
    eps = np.float64(2.0**-53)
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


def run() -> int:
    problem = environment_problem()
    if problem:
        print(f"selftest: FAILED: {problem}")
        return 1
    print("selftest: floating-point environment OK (binary64, round-to-nearest, subnormals)")
    return 0


if __name__ == "__main__":
    sys.exit(run())
