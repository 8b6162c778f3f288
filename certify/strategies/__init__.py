"""Proof strategies: each module's ``prove(config, weights, circuits, ...) -> Proof``.

Names: ``brute``, ``cubic``, ``subcubic:<eu>/<attention>/<eps>`` (the paper's 100 variants and
44 using options beyond it, see ``certify strategies``), the aliases ``best-subcubic``,
``best-lowrank``, ``best-quadratic`` (``DESCRIPTIONS``) and ``all``.
"""

from __future__ import annotations

import numpy as np

from certify.certificate import Proof
from certify.circuits import Circuits
from certify.model import MaxOfKConfig

# one line each for ``certify strategies`` (the variants explain themselves by their options)
DESCRIPTIONS = {
    "best-subcubic": "the sub-cubic variant with the highest verified bound",
    "best-lowrank": "the best sub-cubic variant forming no v×v product of inner dimension d "
    "(no exact EQKE, EQKE error or EU)",
    "best-quadratic": "the best sub-cubic variant whose checker cost grows at most as v² "
    "(no exact EU, no v·d² term)",
}


def strategy_names() -> list[str]:
    names = ["brute", "cubic"]
    try:
        from certify.strategies.subcubic import variant_names
    except ImportError:
        return names
    return [*names, *variant_names(), "best-subcubic", "best-lowrank", "best-quadratic"]


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
    if name.startswith("subcubic:") or name in DESCRIPTIONS:
        from certify.strategies.subcubic import prove as prove_subcubic

        return prove_subcubic(name, config, weights, c, wide_peels)
    raise ValueError(f"unknown strategy {name!r} (see 'certify strategies')")
