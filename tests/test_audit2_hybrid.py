"""Audit of the hybrid rule's chunked remainders and query shards, and of state shared between
checks in one process, against the exact oracle, case by case.

The rule's per-case counts are read from the counts array ``cover`` returns, which the rule
then adds the settled remainders to in place: after the check it holds each case's final count.
Whatever lemmas and remainders a (hostile) certificate selects, each case's count must be at
most the case's exactly correct inputs, exactly them where the remainder is settled in full
(level 2), and the same at every chunk size and in the shard holding the case's query."""

from __future__ import annotations

import itertools
import json
from typing import Any
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from certify.certificate import encode_array
from certify.model import MaxOfKConfig
from checker.cost import OverBudget, Work
from checker.format import Certificate, parse
from checker.rules import brute, hybrid
from checker.shard import span
from tests.oracle import exact_circuits, exact_correct_count, margin_sign
from tests.test_brute import random_model
from tests.test_hybrid import certificate, near_max_model


def case_truth(weights: dict[str, np.ndarray], v: int, k: int) -> np.ndarray:
    """[q, m, c]: the exactly correct inputs of each case (ties wrong), by the oracle."""
    circuits, d_head = exact_circuits(weights), weights["blocks.0.attn.W_Q"].shape[-1]
    truth = np.zeros((v, v, k), np.int64)
    for seq in itertools.product(range(v), repeat=k):
        m = max(seq)
        if all(margin_sign(circuits, seq, x, d_head) > 0 for x in range(v) if x != m):
            truth[seq[-1], m, sum(t < m for t in seq[:-1])] += 1
    return truth


def case_counts(cert: Certificate, chunk: int, inputs: range | None = None) -> tuple[Any, ...]:
    """(result, per-case counts [q, m, c]) of the hybrid rule at this chunk size."""
    box: dict[str, np.ndarray] = {}
    cover = hybrid.cover

    def spy(*args: Any) -> Any:
        box["counts"] = (out := cover(*args))[0]
        return out

    with patch.object(hybrid, "cover", spy), patch.object(hybrid, "CHUNK", chunk):
        result = hybrid.check(cert, Work(), inputs)
    return result, box["counts"].astype(np.int64)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    v=st.integers(2, 6),
    k=st.sampled_from([1, 2, 3, 3, 4, 4]),
    seed=st.integers(0, 2**32 - 1),
    near_max=st.sampled_from([True, True, False]),  # mostly: the lemmas cover part of a case
    chunks=st.lists(st.sampled_from([1, 2, 3, 5, 17, 2**20]), min_size=2, max_size=2),
    n=st.integers(1, 5),
)
@example(v=5, k=3, seed=2, near_max=True, chunks=[1, 2**20], n=3)  # lemmas cover part of cases
@example(v=4, k=4, seed=2, near_max=True, chunks=[5, 3], n=4)
def test_audit2_hybrid_case_counts_against_the_oracle_at_every_chunk_and_shard(
    v: int, k: int, seed: int, near_max: bool, chunks: list[int], n: int
) -> None:
    while v**k > 400:
        k -= 1
    if near_max:
        config, weights = near_max_model(v, k, seed)
    else:
        config = MaxOfKConfig(n_ctx=k, d_vocab=v, d_model=2, d_head=2)
        weights = random_model(config, seed, seed % 3, 1.0)
    doc = certificate(config, weights)
    rng = np.random.default_rng(seed)
    lemma = (rng.random(v) < 0.85).astype(np.int64)  # any selection the format allows
    level = rng.integers(0, 3, (v, v, k)).astype(np.int64)
    doc["claim"]["correct_count"] = "0"
    for key, a in (("lemma", lemma), ("enumerate", level), ("correct", 0 * level)):
        doc["lemmas"][key] = encode_array(a)
    cert, truth = parse(json.dumps(doc).encode()), case_truth(weights, v, k)

    whole, counts = case_counts(cert, chunks[0])
    assert whole.failed is None and whole.verified_count == counts.sum()
    assert np.all(counts <= truth), np.argwhere(counts > truth)  # sound, case by case
    assert np.array_equal(counts[level == 2], truth[level == 2])  # exact where settled in full
    assert np.all(counts[hybrid.case_sizes(v, k) == 0] == 0)

    n, total = min(n, v), 0
    for i in range(n):
        inputs = span(i, n, v, k, "hybrid")
        queries = np.zeros(v, bool)
        queries[inputs.start // v ** (k - 1) : inputs.stop // v ** (k - 1)] = True
        result, part = case_counts(cert, chunks[i % 2], inputs)
        assert result.failed is None and result.verified_count == part.sum()
        assert np.array_equal(part[queries], counts[queries]) and not part[~queries].any()
        total += result.verified_count
    assert total == whole.verified_count  # the shards partition the cases

    # the exact per-case claims where settled in full verify; one more anywhere is rejected
    claims = np.where(level == 2, truth, counts)
    doc["lemmas"]["correct"] = encode_array(claims)
    assert hybrid.check(parse(json.dumps(doc).encode()), Work()).failed is None
    open_ = np.argwhere(claims < hybrid.case_sizes(v, k).astype(np.int64))
    if len(open_):
        q, m, c = open_[rng.integers(len(open_))]
        claims[q, m, c] += 1
        doc["lemmas"]["correct"] = encode_array(claims)
        failed = hybrid.check(parse(json.dumps(doc).encode()), Work()).failed
        assert failed is not None and failed.startswith(f"lemmas.correct[{q},{m},{c}]")


class StopsAtRemainders(Work):
    """A time limit reached after the first query's remainders came back from its worker."""

    def tick(self, label: str = "", done: int = 0, total: int = 0) -> None:
        if label == "hybrid: queries":
            assert brute.TABLES is not None  # the workers' tables are set during the stage
            raise OverBudget("time limit reached")


def test_audit2_no_state_leaks_between_checks_in_one_process() -> None:
    """Circuits are cached per certificate and the workers' tables are cleared after every check,
    also one stopped by its time limit: a second certificate checked after a first (or after an
    interrupted one) gets exactly the count and FLOPs it gets alone."""
    docs = [certificate(*near_max_model(5, 3, seed)) for seed in (1, 2)]
    certs = [parse(json.dumps(doc).encode()) for doc in docs]
    alone = []
    for cert in certs:
        work = Work()
        alone.append((hybrid.check(cert, work).verified_count, work.flops))
    assert alone[0] != alone[1]
    truth = [exact_correct_count(cert.weights) for cert in certs]
    assert [count for count, _ in alone] == truth
    for first, second in ((0, 1), (1, 0)):
        with pytest.raises(OverBudget):  # stopped while its remainders are being settled
            hybrid.check(certs[first], StopsAtRemainders())
        assert brute.TABLES is None and brute.WORK is None
        hybrid.check(certs[first], Work())
        work = Work()
        assert (hybrid.check(certs[second], work).verified_count, work.flops) == alone[second]
        assert brute.TABLES is None and brute.WORK is None
