"""One rule per strategy, each ``check(cert, work[, inputs]) -> RuleResult``: re-derive every
claimed bound from the weights and witnesses, soundly, and return the number of inputs (in the
shard ``inputs``: checker/shard.py) proved, or ``failed`` (one line naming the first claim that
does not hold) instead of raising; ``FormatError`` is for malformed witnesses/lemmas (exit 2).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from checker.format import FormatError


class ClaimFailed(Exception):
    """A stated bound found false before counting (a rejection, exit 1); names the field."""


@dataclass
class RuleResult:
    verified_count: int
    failed: str | None = None
    report: dict[str, Any] = field(default_factory=dict)  # e.g. unexplained_dims


STRATEGIES = ("brute", "cubic", "hybrid", "subcubic")  # each the module checker/rules/<name>.py


def rule_for(strategy: str) -> Callable[..., RuleResult]:
    """The rule checking ``strategy`` (imported lazily so each rule stays independent)."""
    # check(cert, work) or, for SHARDED strategies (checker/shard.py), also inputs
    if strategy not in STRATEGIES:  # the schema allows no other name; checked again here
        raise FormatError(f"strategy.name: no rule for strategy {strategy!r}")
    return importlib.import_module(f"checker.rules.{strategy}").check
