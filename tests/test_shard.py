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

from certify.model import MaxOfKConfig
from checker.cost import Work
from checker.format import parse
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


def test_verify_sharded_on_a_local_dask_cluster(model, tmp_path: Path) -> None:
    """certify verify-sharded: shards on Dask workers (checker subprocesses), combined here;
    a partial run leaves combine refusing, a second run with the rest completes it."""
    pytest.importorskip("distributed")
    from certify.sharded import summary, verify_sharded

    doc = brute_doc(model)
    cert = tmp_path / "c.json"
    cert.write_bytes(dumps(doc))
    runs, status, verdict = verify_sharded(cert, 3, tmp_path / "out", workers=1, only=[0, 2])
    assert [r.index for r in runs] == [0, 2] and all(r.status == 0 for r in runs)
    assert status == 2 and verdict == "ERROR: missing shard(s) 1 of 3"
    runs, status, verdict = verify_sharded(cert, 3, tmp_path / "out", workers=1, only=[1])
    assert status == 0 and verdict.startswith(f"VERIFIED: at least {doc['claim']['correct_count']}")
    assert "| 1 | 3 |" in "\n".join(summary(runs, 3))
