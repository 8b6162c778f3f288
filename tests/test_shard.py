"""Sharded checking: shards partition the inputs, their counts add up to the single check's, and
``checker combine`` refuses results that do not form one whole partition of one certificate."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certify.certificate import encode_array
from certify.model import MaxOfKConfig
from checker.cost import Work
from checker.format import decode_array, parse
from checker.rules import hybrid
from checker.rules.brute import check
from checker.shard import span
from tests.certgen import brute_doc, dumps, random_weights, run_checker
from tests.oracle import exact_circuits, margin_sign
from tests.test_brute import random_model


def index(seq: tuple[int, ...], v: int) -> int:
    """The shard index of an input: query token first, then positions 0..K-2 (base v)."""
    return sum(t * v**p for p, t in enumerate(reversed((seq[-1], *seq[:-1]))))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    v=st.integers(2, 4),
    k=st.integers(1, 4),
    n=st.integers(1, 20),
    seed=st.integers(0, 2**32 - 1),
    grid=st.sampled_from([0, 1, 2]),
)
def test_each_shard_counts_exactly_its_inputs(v: int, k: int, n: int, seed: int, grid: int):
    """Per shard, the rule's count is the exact oracle's count over the inputs in its span."""
    config = MaxOfKConfig(n_ctx=k, d_vocab=v, d_model=2, d_head=2)
    weights = random_model(config, seed, grid, 1.0)
    cert = parse(dumps(brute_doc(weights, 0)))
    c = exact_circuits(weights)
    correct = {
        index(seq, v)
        for seq in itertools.product(range(v), repeat=k)
        if all(margin_sign(c, seq, x, 2) > 0 for x in range(v) if x != max(seq))
    }
    spans = [span(i, n, v, k) for i in range(n)]
    assert [s.start for s in spans[1:]] == [s.stop for s in spans[:-1]]  # contiguous, in order
    assert (spans[0].start, spans[-1].stop) == (0, v**k)
    for inputs in spans:
        assert check(cert, Work(), inputs).verified_count == len(correct & set(inputs))


def shard_results(doc: dict[str, Any], n: int, tmp_path: Path, name: str = "c") -> list[Path]:
    cert = tmp_path / f"{name}.json"
    cert.write_bytes(dumps(doc))
    paths = []
    for i in range(n):
        status, out, err = run_checker("verify", str(cert), "--shard", f"{i}/{n}", "--json")
        assert status == 0 and err.startswith(f"SHARD {i}/{n}: at least ") and "combine" in err
        paths.append(tmp_path / f"{name}-{i}.json")
        paths[-1].write_text(out)
    return paths


def combine(*paths: Path) -> tuple[int, dict[str, Any], str]:
    status, out, err = run_checker("combine", *map(str, paths), "--json")
    assert len(err.splitlines()) == 1
    return status, json.loads(out), err


@pytest.fixture(scope="module")
def model() -> dict[str, np.ndarray]:
    return random_weights(6, 3, 4, seed=7)


def test_combined_shards_equal_the_single_check(model, tmp_path: Path) -> None:
    doc = brute_doc(model)
    (tmp_path / "single.json").write_bytes(dumps(doc))
    single = run_checker("verify", str(tmp_path / "single.json"))
    assert single[0] == 0
    for n in (1, 4, 7):
        status, result, err = combine(*shard_results(doc, n, tmp_path))
        assert status == 0 and err.startswith("VERIFIED") and "each trusted" in err
        assert result["verified_count"] == doc["claim"]["correct_count"]
        assert result["bound_decimal"] in single[1]


def test_combine_refuses_a_missing_or_duplicated_shard(model, tmp_path: Path) -> None:
    paths = shard_results(brute_doc(model), 3, tmp_path)
    status, result, _ = combine(paths[0], paths[2])
    assert status == 2 and "missing shard(s) 1 of 3" in result["failed_claim"]
    status, result, _ = combine(*paths, paths[1])
    assert status == 2 and "given twice" in result["failed_claim"]


def test_combine_refuses_a_shard_of_another_certificate(model, tmp_path: Path) -> None:
    doc = brute_doc(model)
    paths = shard_results(doc, 2, tmp_path)
    other_claim = shard_results(brute_doc(model, 1), 2, tmp_path, "claim")
    other_model = shard_results(brute_doc(random_weights(6, 3, 4, seed=8)), 2, tmp_path, "m")
    for other in (other_claim, other_model):
        status, result, _ = combine(paths[0], other[1])
        assert status == 2 and "not a shard of the same certificate" in result["failed_claim"]
    status, result, _ = combine(*paths, *shard_results(doc, 3, tmp_path, "n3")[:1])
    assert status == 2 and "not a shard of the same" in result["failed_claim"]


def tamper(path: Path, **fields: Any) -> Path:
    result = json.loads(path.read_text()) | fields
    path.write_text(json.dumps(result))
    return path


def test_combine_refuses_more_inputs_than_the_range_holds(model, tmp_path: Path) -> None:
    paths = shard_results(brute_doc(model), 4, tmp_path)
    size = len(span(1, 4, 6, 3))
    status, result, _ = combine(
        tamper(paths[1], verified_count=str(size + 1)), *paths[::2], paths[3]
    )
    assert status == 2 and f"count <= {size}" in result["failed_claim"]


def test_combine_trusts_counts_within_the_range(model, tmp_path: Path) -> None:
    """A count raised within its range cannot be caught: combine trusts each shard's machine."""
    doc = brute_doc(model)
    doc["claim"]["correct_count"] = str(int(doc["claim"]["correct_count"]) + 1)  # a false claim
    paths = shard_results(doc, 2, tmp_path)
    status, _, err = combine(*paths)
    assert status == 1 and err.startswith("REJECTED: claim.correct_count")
    count = int(json.loads(paths[0].read_text())["verified_count"])
    assert count < len(span(0, 2, 6, 3))
    assert combine(tamper(paths[0], verified_count=str(count + 1)), paths[1])[0] == 0


def test_shard_range_and_fields_are_checked(model, tmp_path: Path) -> None:
    paths = shard_results(brute_doc(model), 2, tmp_path)
    moved = tamper(paths[1], shard_inputs=["0", "108"])
    assert "must be range(108, 216)" in combine(paths[0], moved)[1]["failed_claim"]
    for bad in ({"verdict": "verified"}, {"n_ctx": True}, {"verified_count": "-1"}, {"shard": [2]}):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(json.loads(paths[0].read_text()) | bad))
        status, result, _ = combine(path, paths[1])
        assert status == 2 and "not a result of" in result["failed_claim"]
    (tmp_path / "bad.json").write_bytes(b"[1, 2")
    assert combine(tmp_path / "bad.json")[0] == 2


def test_only_sharded_strategies_take_a_shard(tmp_path: Path) -> None:
    from certify.certificate import build
    from certify.circuits import circuits
    from certify.model import validate
    from certify.strategies.cubic import prove

    config, weights = validate(random_weights(5, 3, 4, seed=1))
    doc = build(config, weights, prove(config, weights, circuits(config, weights)))
    (tmp_path / "c.json").write_bytes(dumps(doc))
    status, _, err = run_checker("verify", str(tmp_path / "c.json"), "--shard", "0/2")
    assert status == 2 and err.startswith("ERROR: --shard: strategy 'cubic'")
    for bad in ("2/2", "1", "-1/3", "a/b"):
        with pytest.raises(SystemExit) as e:
            run_checker("verify", str(tmp_path / "c.json"), "--shard", bad)
        assert e.value.code == 2


@pytest.mark.parametrize("strategy", ["brute", "hybrid"])
def test_verify_sharded_on_a_local_dask_cluster(model, tmp_path: Path, strategy: str) -> None:
    """certify verify-sharded: shards on Dask workers (checker subprocesses), combined here;
    a partial run leaves combine refusing, a second run with the rest completes it."""
    pytest.importorskip("distributed")
    from certify.sharded import summary, verify_sharded

    doc = brute_doc(model) if strategy == "brute" else hybrid_doc(model)
    cert = tmp_path / "c.json"
    cert.write_bytes(dumps(doc))
    runs, status, verdict = verify_sharded(cert, 3, tmp_path / "out", workers=1, only=[0, 2])
    assert [r.index for r in runs] == [0, 2] and all(r.status == 0 for r in runs)
    assert status == 2 and verdict == "ERROR: missing shard(s) 1 of 3"
    runs, status, verdict = verify_sharded(cert, 3, tmp_path / "out", workers=1, only=[1])
    assert status == 0 and verdict.startswith(f"VERIFIED: at least {doc['claim']['correct_count']}")
    assert f"({strategy}; 3 shard results, each trusted" in verdict
    assert "| 1 | 3 |" in "\n".join(summary(runs, 3))


# --- hybrid: shards of whole query tokens --------------------------------------------------------


def hybrid_doc(weights: dict[str, np.ndarray]) -> dict[str, Any]:
    """The full hybrid certificate (every remainder settled: the exact count) of ``weights``."""
    from certify.certificate import build
    from certify.circuits import circuits
    from certify.model import validate
    from certify.strategies.hybrid import prove

    config, weights = validate(weights)
    return build(config, weights, prove(config, weights, circuits(config, weights)))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(v=st.integers(2, 4), k=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_each_hybrid_shard_counts_exactly_the_inputs_of_its_queries(v: int, k: int, seed: int):
    """Shard i of n holds whole query tokens; its count is the exact oracle's over its span, and
    the counts of every split add up to the whole check's."""
    config = MaxOfKConfig(n_ctx=k, d_vocab=v, d_model=2, d_head=2)
    cert = parse(dumps(hybrid_doc(random_model(config, seed, 1, 1.0))))
    c = exact_circuits(cert.weights)
    correct = {
        index(seq, v)
        for seq in itertools.product(range(v), repeat=k)
        if all(margin_sign(c, seq, x, 2) > 0 for x in range(v) if x != max(seq))
    }
    whole = hybrid.check(cert, Work())
    assert whole.failed is None and whole.verified_count == len(correct)
    for n in range(1, v + 1):
        spans = [span(i, n, v, k, "hybrid") for i in range(n)]
        assert [s.start for s in spans[1:]] == [s.stop for s in spans[:-1]]
        assert (spans[0].start, spans[-1].stop) == (0, v**k)
        assert all(len(s) % v ** (k - 1) == 0 and len(s) > 0 for s in spans)  # whole queries
        counts = [hybrid.check(cert, Work(), inputs) for inputs in spans]
        assert all(r.failed is None for r in counts)
        assert [r.verified_count for r in counts] == [len(correct & set(s)) for s in spans]


def test_combined_hybrid_shards_verify(tmp_path: Path) -> None:
    """K = 4, v = 4: a hybrid shard is whole queries (64 inputs), a brute-force one blocks of 16,
    and combine recomputes the hybrid ranges."""
    doc = hybrid_doc(random_weights(4, 4, 4, seed=5))
    for n in (1, 2, 3):
        paths = shard_results(doc, n, tmp_path)
        status, result, err = combine(*paths)
        assert status == 0 and err.startswith("VERIFIED") and "(hybrid; " in err
        assert result["verified_count"] == doc["claim"]["correct_count"]
        for i, path in enumerate(paths):
            inputs = span(i, n, 4, 4, "hybrid")
            assert json.loads(path.read_text())["shard_inputs"] == [
                str(inputs.start),
                str(inputs.stop),
            ]
    assert span(1, 3, 4, 4, "hybrid") == range(64, 128) and span(1, 3, 4, 4) == range(80, 160)
    status, result, _ = combine(paths[0], paths[2])
    assert status == 2 and "missing shard(s) 1 of 3" in result["failed_claim"]
    status, result, _ = combine(*paths, paths[0])
    assert status == 2 and "given twice" in result["failed_claim"]
    moved = tamper(paths[1], shard_inputs=["80", "160"])  # a brute-force shard's range
    assert "must be range(64, 128)" in combine(paths[0], moved, paths[2])[1]["failed_claim"]


def test_a_tampered_hybrid_claim_is_rejected_in_its_shard(model, tmp_path: Path) -> None:
    """One case's claim raised past what its query's shard proves: that shard rejects it (exit
    1), the others, which do not check it, are unaffected, and combine refuses the set."""
    doc = hybrid_doc(model)
    correct = decode_array(doc["lemmas"]["correct"], "correct").copy()
    q, m, c = np.argwhere(correct < hybrid.case_sizes(6, 3))[0]
    correct[q, m, c] += 1
    doc["lemmas"]["correct"] = encode_array(correct)
    cert = tmp_path / "c.json"
    cert.write_bytes(dumps(doc))
    shard = int(q) * 3 // 6  # of 3 shards of two query tokens each
    for i in range(3):
        status, out, err = run_checker("verify", str(cert), "--shard", f"{i}/3", "--json")
        if i == shard:
            assert status == 1 and f"lemmas.correct[{q},{m},{c}]" in err
            assert json.loads(out)["verdict"] == "rejected"
        else:
            assert status == 0 and err.startswith(f"SHARD {i}/3: at least ")
        (tmp_path / f"r{i}.json").write_text(out)
    assert combine(*(tmp_path / f"r{i}.json" for i in range(3)))[0] == 2


def test_hybrid_shards_hold_whole_query_tokens(model, tmp_path: Path) -> None:
    (tmp_path / "c.json").write_bytes(dumps(hybrid_doc(model)))
    status, out, err = run_checker("verify", str(tmp_path / "c.json"), "--shard", "0/7")
    assert status == 2 and not out and len(err.splitlines()) == 1
    assert err.startswith("ERROR: --shard: N must be at most d_vocab = 6")
    cert = parse((tmp_path / "c.json").read_bytes())
    for part in (range(0, 35), range(1, 72)):  # the rule itself refuses part of a query
        with pytest.raises(ValueError, match="whole query tokens"):
            hybrid.check(cert, Work(), part)


def test_verify_sharded_defaults_to_at_most_v_hybrid_shards(model, tmp_path: Path) -> None:
    from certify.sharded import default_shards

    for name, doc, expected in (("h", hybrid_doc(model), 6), ("b", brute_doc(model), 8)):
        (tmp_path / name).write_bytes(dumps(doc))
        assert default_shards(str(tmp_path / name), 8) == expected
    (tmp_path / "bad").write_bytes(b"[1")
    assert default_shards(str(tmp_path / "bad"), 8) == 8
