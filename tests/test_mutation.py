"""Mutated certificates are accepted only when their claim is still true (a CI-sized sample).

The full campaign (thousands of mutations) is bench/mutation_campaign.py; docs/reliability.md
records its totals.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.certgen import SMALL, dumps
from tests.mutate import campaign, check_bytes, mutate

SOURCES = sorted(SMALL.glob("*.cert.json"))


def test_mutation_sample_never_accepts_a_false_claim(tmp_path: Path) -> None:
    totals = campaign(SOURCES, n=300, seed=20240611, tmp=tmp_path)
    assert totals["tried"] == 300
    assert totals["accepted_false"] == 0, [k for k in totals if k.startswith("false:")]
    assert totals["crash"] == 0, [k for k in totals if k.startswith("crash:")]
    assert totals["rejected_exit1"] + totals["rejected_exit2"] > 100  # the mutations bite
    assert totals["accepted_true"] > 0  # and some (lower claims, harmless edits) still verify


def test_claim_mutations_follow_the_exact_count(tmp_path: Path) -> None:
    """Lowering a claim keeps it verified, raising it past the exact count gets it rejected."""
    doc = json.loads((SMALL / "max3_v6.brute.cert.json").read_bytes())
    exact = int(doc["claim"]["correct_count"])
    for claim, expected in [(exact - 5, 0), (exact, 0), (exact + 1, 1), (exact + 8, 1)]:
        doc["claim"]["correct_count"] = str(claim)
        assert check_bytes(dumps(doc), tmp_path / "c.json")[0] == expected


def test_mutations_change_the_certificate() -> None:
    rng = random.Random(1)
    original = dumps(json.loads(SOURCES[0].read_bytes()))
    changed = sum(mutate(json.loads(original), rng)[1] != original for _ in range(50))
    assert changed >= 45
