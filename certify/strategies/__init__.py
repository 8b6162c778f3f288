"""Proof strategies: each module's ``prove(config, weights, circuits, ...) -> Proof``.

Names: ``brute``, ``cubic``, ``hybrid`` (cubic lemmas + the remainder enumerated: exact) and
``hybrid:F`` (enumeration within F x brute force's checker FLOPs),
``subcubic:<eu>/<attention>/<eps>`` (the paper's 100 variants and 44 using options beyond it, see
``certify strategies``), the aliases ``best-subcubic``, ``best-lowrank``, ``best-quadratic``
(``ALIASES``) and ``all``.
"""

from __future__ import annotations

import numpy as np

from certify.certificate import Proof
from certify.circuits import Circuits
from certify.model import MaxOfKConfig

HYBRID_BUDGETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)  # frontier points swept by default
ALIASES = ("best-subcubic", "best-lowrank", "best-quadratic")  # the winner is recorded


def strategy_names() -> list[str]:
    names = ["brute", "cubic", "hybrid", *(f"hybrid:{f:g}" for f in HYBRID_BUDGETS)]
    try:
        from certify.strategies.subcubic import variant_names
    except ImportError:
        return names
    return [*names, *variant_names(), *ALIASES]


def prove(
    name: str,
    config: MaxOfKConfig,
    weights: dict[str, np.ndarray],
    c: Circuits,
    wide_peels: bool = False,
) -> Proof:
    """Run strategy ``name``; ``wide_peels`` lets sub-cubic variants try rank-8 peels. With
    ``c.allowance`` set the claim is the float32-execution one (docs/float32.md)."""
    proof = _prove(name, config, weights, c, wide_peels)
    proof.allowance = c.allowance
    return proof


def _prove(
    name: str,
    config: MaxOfKConfig,
    weights: dict[str, np.ndarray],
    c: Circuits,
    wide_peels: bool = False,
) -> Proof:
    if name == "brute":
        from certify.strategies.brute import prove as prove_brute

        return prove_brute(c)
    if name == "cubic":
        from certify.strategies.cubic import prove as prove_cubic

        return prove_cubic(config, weights, c)
    if name == "hybrid" or name.startswith("hybrid:"):
        from certify.strategies.hybrid import prove as prove_hybrid

        return prove_hybrid(config, weights, c, budget_of(name))
    if name.startswith("subcubic:") or name in ALIASES:
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


def describe(name: str) -> str:
    """One line on what strategy ``name`` proves and how much checker work it takes."""
    if name.startswith("subcubic:"):
        eu, attention, eps = name.removeprefix("subcubic:").split("/")
        return (
            f"sub-cubic: EQKE error {_EPS.get(eps, eps)}; EU {_EU.get(eu, eu)}; "
            f"attention {_ATTENTION.get(attention, attention)}"
        )
    if name.startswith("hybrid:"):
        return (
            f"cubic lemmas, then the unproved inputs settled one by one, within "
            f"{name.removeprefix('hybrid:')} x brute force's checker FLOPs"
        )
    return _WHOLE.get(name, "")


_WHOLE = {
    "brute": "every input evaluated from the circuit tables: the exact count (O(v^(K+1)))",
    "cubic": "worst case per (query, max, other token) from exact EQKE/EVOU/EU tables (O(v^3))",
    "hybrid": "cubic lemmas, every input they leave unproved settled one by one: the exact "
    "count (about 1/20 of brute force's checker FLOPs)",
    "best-subcubic": "the sub-cubic variant that proves the most on this model (all 144 tried)",
    "best-lowrank": "the best sub-cubic variant forming no v x v product of inner dimension d "
    "(no exact EQKE, EQKE error or EU)",
    "best-quadratic": "the best sub-cubic variant whose checker cost grows at most as v^2 "
    "(no exact EU, no v d^2 term)",
    "all": "brute (where feasible), cubic, hybrid budgets and every sub-cubic variant, each "
    "checked; a table",
}
_EPS = {
    "svd": "by a singular-value bound of the peeled query·key pair (O(vd^2 + d^3))",
    "max_diff": "by row ranges of the peeled query·key pair (O(vd^2))",
    "mean+max_diff": "as max_diff, with the column mean split off (O(vd^2))",
    "max_diff_subproduct": "by row ranges, best grouping of the 4-factor chain (O(vd^2))",
    "mean+max_diff_subproduct": "as max_diff_subproduct, mean split off on top (O(vd^2))",
    "max_diff_subproduct_recursive": "by row ranges factor by factor (O(vd + d^2))",
    "mean+max_diff_subproduct_recursive": "factor by factor, mean split off on top (O(vd + d^2))",
    "mean_recursive+max_diff_subproduct_recursive": "factor by factor, mean split off at every "
    "level (O(vd + d^2))",
    "exact_EQKE+max_diff_exact": "none: EQKE formed exactly (O(v^2 d))",
    "norm_recursive": "per entry, by row and column norms of the peeled factors (O(vd + d^2))",
    "norm_subproduct": "per entry, by norms of the best grouping of the chain (O(vd^2))",
    "max_diff_exact": "formed exactly after the peel, exact row ranges (O(v^2 d))",
}
_EU = {
    "mean_query+max_diff": "centred on the mean query row, rest by ranges of U (O(vd))",
    "svd_query+max_diff": "centred on a searched query row, rest by ranges of U (O(vd))",
    "max_diff": "by ranges of U alone (O(vd))",
    "max_diff_exact": "formed exactly, per-row max minus the max token's entry (O(v^2 d))",
    "global_max_diff_exact": "formed exactly, global max minus min (O(v^2 d))",
    "peel_query+norm": "a low-rank peel of the query side, residual by row norms (O(vd))",
}
_ATTENTION = {
    "mean_query+diff": "split around a per-(max, count) average with a sign-aware correction",
    "drop_average_query_per_output_logit_reasoning": "without the average (taken as 0)",
}
