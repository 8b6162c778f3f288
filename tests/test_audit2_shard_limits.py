"""Audit: a shard is admitted like a whole check. Every shard builds the rule's whole tables, so
``--max-memory`` must refuse it before anything is allocated, as it refuses the unsharded check;
before this was enforced, a small certificate declaring huge dimensions ran unguarded under
``--shard`` (brute force v 4096, K 64: a GMP abort after about 100 GB, docs/reliability.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.certgen import brute_doc, dumps, random_weights, run_checker
from tests.test_hardening import huge_brute, verify
from tests.test_shard import hybrid_doc


@pytest.mark.parametrize("strategy", ["brute", "hybrid"])
def test_audit2_max_memory_refuses_a_shard_as_it_refuses_the_whole_check(
    strategy: str, tmp_path: Path
) -> None:
    weights = random_weights(6, 3, 4, seed=7)
    doc = brute_doc(weights) if strategy == "brute" else hybrid_doc(weights)
    (tmp_path / "c.json").write_bytes(dumps(doc))
    for shard in ((), ("--shard", "0/2"), ("--shard", "1/3")):
        status, out, err = run_checker(
            "verify", str(tmp_path / "c.json"), "--max-memory", "1000", *shard
        )
        assert (status, out) == (2, ""), (shard, out)
        assert err.startswith("ERROR: no verdict: needs about") and "over --max-memory" in err
        assert len(err.splitlines()) == 1
    status, out, _ = run_checker("verify", str(tmp_path / "c.json"), "--shard", "0/2")
    assert status == 0 and out.startswith("SHARD 0/2")  # the default limit admits it


def test_audit2_a_shard_of_a_huge_declared_model_is_refused_cheaply(tmp_path: Path) -> None:
    """Refused in bounded time and memory (a child process, measured), time limit or not: the
    time estimate is the whole check's, so a shard is admitted on its memory alone."""
    data = huge_brute(4096, 64)
    verify(tmp_path, data, "--shard", "0/1000000").refused("GiB, over --max-memory")
    small = huge_brute(512, 8)
    flags = ("--shard", "3/1000000", "--max-memory", str(10**9), "--time-limit", "1")
    verify(tmp_path, small, *flags).refused("GiB, over --max-memory")
