"""Sharded checking: the input space cut into N ranges, each checked by its own run.

Shard I of N: the inputs whose index (query token, then positions 0..K-2, base v) is in ``span``,
whole units of the rule's work: blocks of v^min(2, K-1) indices (brute), or one query token's
v^(K-1) inputs (hybrid: its cases, hence its lemma claims and remainders, are per query token).
Units ⌊I·U/N⌋ to ⌊(I+1)·U/N⌋ - 1 for I = 0..N-1 partition the U units, so the shards partition
the v^K inputs: counts of disjoint sets add up. ``combine`` checks that shard results fit
together, not their counts: each is as trustworthy as its machine (docs/format.md).
"""

from __future__ import annotations

import json
from typing import Any

from checker.format import Certificate, FormatError, decode_integer

SHARDED = ("brute", "hybrid")  # strategies whose rule takes ``inputs``, a range of whole units
SAME = ("certificate_sha256", "model_sha256", "strategy", "claimed_count", "n_ctx", "d_vocab")
SAME += ("semantics",)  # the theorem's meaning (checker.cli.SEMANTICS)


def parse_shard(text: str) -> tuple[int, int]:
    i, _, n = text.partition("/")
    if not (i.isdigit() and n.isdigit() and int(i) < int(n) <= 10**9):
        raise ValueError(f"shard must be I/N with 0 <= I < N <= 10^9, got {text!r}")
    return int(i), int(n)


def span(i: int, n: int, v: int, k: int, strategy: str = "brute") -> range:
    size = v ** (k - 1) if strategy == "hybrid" else v ** min(2, k - 1)  # one unit (divides v^K)
    units = v**k // size
    return range(i * units // n * size, (i + 1) * units // n * size)


def check_shard(cert: Certificate, work: Any, result: dict[str, Any], i: int, n: int) -> int:
    """Count shard i of n: verdict "shard" (exit 0), or "rejected" if a rule's claim fails."""
    from checker.rules import rule_for

    v, k = cert.config.d_vocab, cert.config.n_ctx
    if cert.strategy not in SHARDED:
        raise FormatError(f"--shard: strategy {cert.strategy!r} is not checked in shards")
    if cert.strategy == "hybrid" and n > v:
        raise FormatError(f"--shard: N must be at most d_vocab = {v} (hybrid shards hold queries)")
    inputs, rule = span(i, n, v, k, cert.strategy), rule_for(cert.strategy)
    f32 = cert.allowance is not None  # after rule_for, which adds the estimates:
    work.admit(cert.strategy, cert.config, whole=False, f32=f32)
    outcome = rule(cert, work, inputs)
    result.update(outcome.report, verified_count=str(outcome.verified_count), shard=[i, n])
    result.update(shard_inputs=[str(inputs.start), str(inputs.stop)], failed_claim=outcome.failed)
    result["verdict"] = "shard" if outcome.failed is None else "rejected"
    return int(outcome.failed is not None)


def shard_line(r: dict[str, Any]) -> str:
    (i, n), (a, b) = r["shard"], map(int, r["shard_inputs"])
    return (
        f"SHARD {i}/{n}: at least {r['verified_count']} of the {b - a} inputs in this shard "
        f"(indices {a} to {b - 1}) correct; the claim ({r['claimed_count']} of {r['total']}) needs "
        f"'checker combine' on all {n} shards ({r['flops']:,} FLOPs, {r['seconds']} s)"
    )


def combine(args: Any, work: Any, result: dict[str, Any]) -> int:
    """Fill ``result`` from the shard results of one certificate, 0..N-1 once each."""
    from checker.cli import conclude

    shards: dict[int, dict[str, Any]] = {}
    for path in args.results:
        r = _load(path)
        first = shards[min(shards)] if shards else r
        if any(r[key] != first[key] for key in (*SAME, "n")):
            raise FormatError(f"{path}: not a shard of the same certificate, claim and N")
        if r["i"] in shards:
            raise FormatError(f"{path}: shard {r['i']}/{r['n']} given twice")
        shards[r["i"]] = r
    if missing := sorted(set(range(first["n"])) - set(shards)):
        raise FormatError(f"missing shard(s) {str(missing[:5])[1:-1]} of {first['n']}")
    proved, total = sum(s["count"] for s in shards.values()), first["d_vocab"] ** first["n_ctx"]
    result.update({key: first[key] for key in SAME}, total=str(total), verified_count=str(proved))
    result["strategy"] += f"; {len(shards)} shard results, each trusted"
    work.add(sum(s["flops"] for s in shards.values()))  # the shards' work, not combine's
    return conclude(result, None, proved, int(first["claimed_count"]), total)


def _load(path: str) -> dict[str, Any]:
    """One shard result: every field combine relies on type-checked, its range recomputed."""
    try:
        with open(path, "rb") as f:
            r = json.loads(f.read(2**20))  # a longer file is cut: not JSON
        (i, n), v, k = r["shard"], r["d_vocab"], r["n_ctx"]
        count, _ = decode_integer(r["verified_count"], ""), decode_integer(r["claimed_count"], "")
        ints, strs = (i, n, v, k, r["flops"]), [r[key] for key in SAME[:3]]
        ok = r["verdict"] == "shard" and {*map(type, ints)} == {int} and {*map(type, strs)} == {str}
        ok = ok and r["semantics"] in ("exact", "float32-execution")
        if not (ok and 0 < v <= 2**16 and 0 < k <= 64 and 0 <= i < n <= 10**9):
            raise ValueError
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        raise FormatError(f"{path}: not a result of 'checker verify --shard I/N --json'") from None
    inputs = span(i, n, v, k, r["strategy"])
    if r["shard_inputs"] != [str(inputs.start), str(inputs.stop)] or count > len(inputs):
        raise FormatError(f"{path}: shard {i}/{n} must be {inputs}, count <= {len(inputs)}")
    return r | {"i": i, "n": n, "count": count}
