"""Proof strategies: each module's ``prove(config, weights, circuits, ...) -> Proof``.

Names: ``brute``, ``cubic``, ``hybrid`` (cubic lemmas + the remainder enumerated: exact) and
``hybrid:F`` (enumeration within F x brute force's checker FLOPs),
``subcubic:<eu>/<attention>/<eps>`` (100 variants, see ``certify strategies``),
``best-subcubic`` (the variant with the highest bound) and ``all``.
"""

from __future__ import annotations

import numpy as np

from certify.certificate import Proof
from certify.circuits import Circuits
from certify.model import MaxOfKConfig

HYBRID_BUDGETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)  # frontier points swept by default


def strategy_names() -> list[str]:
    names = ["brute", "cubic", "hybrid", *(f"hybrid:{f:g}" for f in HYBRID_BUDGETS)]
    try:
        from certify.strategies.subcubic import variant_names
    except ImportError:
        return names
    return [*names, *variant_names(), "best-subcubic"]


def prove(
    name: str,
    config: MaxOfKConfig,
    weights: dict[str, np.ndarray],
    c: Circuits,
    wide_peels: bool = False,
) -> Proof:
    """Run strategy ``name``; ``wide_peels`` lets sub-cubic variants try rank-8 peels."""
    if name == "brute":
        from certify.strategies.brute import prove as prove_brute

        return prove_brute(c)
    if name == "cubic":
        from certify.strategies.cubic import prove as prove_cubic

        return prove_cubic(config, weights, c)
    if name == "hybrid" or name.startswith("hybrid:"):
        from certify.strategies.hybrid import prove as prove_hybrid

        return prove_hybrid(config, weights, c, budget_of(name))
    if name.startswith("subcubic:") or name == "best-subcubic":
        from certify.strategies.subcubic import prove as prove_subcubic

        return prove_subcubic(name, config, weights, c, wide_peels)
    raise ValueError(f"unknown strategy {name!r} (see 'certify strategies')")


def budget_of(name: str) -> float | None:
    """The FLOP budget F of ``hybrid:F`` (None for plain ``hybrid``)."""
    if name == "hybrid":
        return None
    try:
        return float(name.removeprefix("hybrid:"))
    except ValueError:
        raise ValueError(f"unknown strategy {name!r}: the budget must be a number") from None
