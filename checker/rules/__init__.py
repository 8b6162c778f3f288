"""One rule per strategy, each behind the same interface.

``check(cert, work[, inputs]) -> RuleResult``: re-derive every claimed bound from the weights and
witnesses, soundly; return the number of inputs (in the shard ``inputs``: checker/shard.py) proved.
A rule returns ``failed`` (one line naming the first claim that does not hold) instead of
raising; ``FormatError`` is for malformed witnesses/lemmas (exit 2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from checker.cost import Work
from checker.format import Certificate


@dataclass
class RuleResult:
    verified_count: int
    failed: str | None = None
    report: dict[str, Any] = field(default_factory=dict)  # e.g. unexplained_dims


Rule = Callable[[Certificate, Work], RuleResult]


def rule_for(strategy: str) -> Rule | None:
    """The rule checking ``strategy`` (imported lazily so each rule stays independent)."""
    if strategy == "brute":
        from checker.rules import brute

        return brute.check
    if strategy == "cubic":
        from checker.rules import cubic

        return cubic.check
    if strategy == "hybrid":
        from checker.rules import hybrid

        return hybrid.check
    if strategy == "subcubic":
        from checker.rules import subcubic

        return subcubic.check
    return None
