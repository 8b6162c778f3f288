"""The cubic proof: its counting partitions the inputs, its lemmas are checked tightly, and every
bound the checker verifies is at most the exact accuracy (exact oracle, tests/oracle.py)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certify.certificate import build, encode_array, write
from certify.circuits import circuits
from certify.model import MaxOfKConfig, load
from certify.strategies.brute import correct_count
from certify.strategies.cubic import case_exists, prove
from certify.strategies.cubic import count_covered as prover_count
from checker.cli import main as checker_main
from checker.cost import Work
from checker.format import FormatError, decode_array, parse
from checker.rules import cubic
from tests.oracle import exact_circuits, exact_correct_count, margin_sign

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "certificates" / "models" / "max4_seed123.safetensors"


def certificate(config: MaxOfKConfig, weights: dict[str, np.ndarray]) -> tuple[dict, object]:
    proof = prove(config, weights, circuits(config, weights))
    return build(config, weights, proof), proof


def verify(doc: dict) -> cubic.RuleResult:
    return cubic.check(parse(json.dumps(doc).encode()), Work())


def with_lemmas(doc: dict, proved: np.ndarray, margin: np.ndarray) -> dict:
    doc = json.loads(json.dumps(doc))
    doc["lemmas"] = {"proved": encode_array(proved), "margin": encode_array(margin)}
    return doc


def lemmas(proof) -> tuple[np.ndarray, np.ndarray]:
    """The proof's (proved, margin) arrays, as writable copies."""
    return tuple(decode_array(proof.lemmas[name], name).copy() for name in ("proved", "margin"))


# --- counting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("v, k", [(2, 1), (2, 2), (3, 4), (5, 3), (7, 5), (64, 4), (64, 20)])
def test_enumeration_partitions_all_inputs(v: int, k: int) -> None:
    everything = cubic.case_limits(v, k)
    assert cubic.count_covered(everything, k) == v**k
    assert prover_count(everything, k) == v**k
    assert not np.any((everything > 0) & ~case_exists(v, k))


def test_count_is_exact_for_mixed_tokens() -> None:
    """By hand: v = 3, k = 3, only lemma (q=0, m=2, c=1) with N = 2 covers C(2,1) 2^1 = 4."""
    proved = np.zeros((3, 3, 3), np.int64)
    proved[0, 2, 1] = 2
    assert cubic.count_covered(proved, 3) == 4


# --- the shipped model: bound, tight lemmas, raised claims rejected ---------------------------


@pytest.fixture(scope="module")
def shipped() -> tuple[dict, object]:
    config, weights = load(SHIPPED)
    return certificate(config, weights)


def test_shipped_max_of_4_bound_is_sound_and_close_to_the_truth(shipped) -> None:
    """At most the exact count (brute force), and within 10% of it: the cubic proof is tight."""
    doc, proof = shipped
    result = verify(doc)
    assert result.failed is None
    config, weights = load(SHIPPED)
    exact = correct_count(circuits(config, weights), workers=1)
    assert exact >= result.verified_count == proof.correct_count >= 0.9 * exact
    assert result.report["unexplained_dims"] == 3 * 64**2 + 2 * 4 * 64


def test_claim_plus_one_is_rejected(shipped, tmp_path: Path) -> None:
    doc, _ = shipped
    write(doc, tmp_path / "ok.json")
    assert checker_main(["verify", str(tmp_path / "ok.json"), "--json"]) == 0
    doc = json.loads(json.dumps(doc))
    doc["claim"]["correct_count"] = str(int(doc["claim"]["correct_count"]) + 1)
    write(doc, tmp_path / "raised.json")
    assert checker_main(["verify", str(tmp_path / "raised.json"), "--json"]) == 1


def test_margin_raised_past_the_float_bound_is_rejected(shipped) -> None:
    """The certified margin is tight - delta; tight + delta / 4 is false and must fail."""
    doc, proof = shipped
    proved, margin = lemmas(proof)
    tight, delta = proof.report["tight_margin"], proof.report["delta"]
    cases = np.argwhere(proved > 0)
    for q, m, c in cases[:: max(1, len(cases) // 5)]:
        raised = margin.copy()
        raised[q, m, c] = tight[q, m, c] + delta / 4
        assert verify(with_lemmas(doc, proved, raised)).failed.startswith(
            f"lemmas (q={q}, m={m}, c={c})"
        )


def test_proved_count_plus_one_is_rejected(shipped) -> None:
    """Raise N where the next token's float bound exceeds -margin (by the least such amount)."""
    doc, proof = shipped
    proved, margin = lemmas(proof)
    gap = proof.report["next_bound"] + margin
    gap[(proved == 0) | (proved == cubic.case_limits(64, 4))] = np.inf
    gap[gap <= proof.report["delta"]] = np.inf
    for flat in np.argsort(gap, axis=None)[:3]:
        q, m, c = np.unravel_index(flat, gap.shape)
        raised = proved.copy()
        raised[q, m, c] += 1
        assert verify(with_lemmas(doc, raised, margin)).failed.startswith(
            f"lemmas (q={q}, m={m}, c={c})"
        )


def test_lemma_outside_its_case_is_unusable(shipped) -> None:
    doc, proof = shipped
    proved, margin = lemmas(proof)
    proved[5, 3, 1], margin[5, 3, 1] = 1, 1.0  # q > m: no such inputs
    with pytest.raises(FormatError):
        verify(with_lemmas(doc, proved, margin))


# --- soundness on small random models ----------------------------------------------------------


def random_model(v: int, k: int, seed: int, near_max: bool) -> tuple[MaxOfKConfig, dict]:
    """Random weights and biases; or a hand-built max-of-K model (attend to large tokens, copy
    through OV on a circle, no direct path) plus random noise, biases and positions."""
    rng = np.random.default_rng(seed)
    d, h = (6, 3) if near_max else (int(rng.integers(1, 5)), int(rng.integers(1, 4)))
    config = MaxOfKConfig(n_ctx=k, d_vocab=v, d_model=d, d_head=h)
    noise = 10.0 ** rng.uniform(-3, 0) if near_max else rng.uniform(0.1, 3)
    w = {key: rng.normal(0, noise, shape) for key, shape in config.shapes().items()}
    if near_max:
        t = np.arange(v)
        theta = 2 * np.pi * t / (v + 1)
        w["embed.W_E"][:, :4] += np.stack(
            [np.ones(v), t / max(v - 1, 1), np.cos(theta), np.sin(theta)], axis=1
        )
        lam, kappa = rng.uniform(2, 12), rng.uniform(1, 20)
        w["blocks.0.attn.W_Q"][0, 0, 0] += lam * max(v - 1, 1) * np.sqrt(h)
        w["blocks.0.attn.W_K"][0, 1, 0] += 1
        w["blocks.0.attn.W_V"][0, 2:4, 1:3] += np.eye(2)
        w["blocks.0.attn.W_O"][0, 1:3, 4:6] += np.eye(2)
        w["unembed.W_U"][4:6] += kappa * np.stack([np.cos(theta), np.sin(theta)])
    return config, {key: a.astype(np.float32) for key, a in w.items()}


sizes = st.sampled_from([(2, 1), (2, 4), (3, 2), (3, 4), (4, 3), (5, 4), (6, 3), (8, 2), (8, 3)])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=sizes, seed=st.integers(0, 2**32 - 1), near_max=st.booleans())
def test_verified_bound_is_at_most_exact_accuracy(size, seed: int, near_max: bool) -> None:
    """The prover's certificate, and the most the checker would accept (every lemma at the
    smallest positive margin, N = what the checker counts), stay <= the exact count; and every
    lemma's N is at most the number of tokens k' whose pure inputs are all exactly correct."""
    config, weights = random_model(*size, seed, near_max)
    v, k = size
    correct = exact_correct_inputs(weights, v, k)
    exact = sum(correct.values())
    assert exact == exact_correct_count(weights)
    doc, proof = certificate(config, weights)
    result = verify(doc)
    assert result.failed is None
    assert result.verified_count == proof.correct_count <= exact
    greedy = checker_maximal(doc, v, k)
    assert verify(with_lemmas(doc, greedy, np.where(greedy > 0, 5e-324, 0.0))).failed is None
    assert cubic.count_covered(greedy, k) <= exact
    assert np.all(greedy <= pure_correct(correct, v, k))


def exact_correct_inputs(weights: dict, v: int, k: int) -> dict[tuple[int, ...], bool]:
    """Every input -> whether its exact logits are correct (the oracle's per-input test)."""
    c = exact_circuits(weights)
    d_head = weights["blocks.0.attn.W_Q"].shape[-1]
    return {
        seq: all(margin_sign(c, seq, x, d_head) > 0 for x in range(v) if x != max(seq))
        for seq in itertools.product(range(v), repeat=k)
    }


def pure_correct(correct: dict, v: int, k: int) -> np.ndarray:
    """[q, m, c]: the tokens k' < m whose every pure input of the case is correct (c >= 1);
    whether (m, .., m, q) is correct (c = 0)."""
    out = np.zeros((v, v, k), np.int64)
    for q, m in itertools.product(range(v), repeat=2):
        for c in range(k):
            if not case_exists(v, k)[q, m, c]:
                continue
            if c == 0:
                out[q, m, 0] = correct[(m,) * (k - 1) + (q,)]
                continue
            for token in range(m):
                inputs = (
                    (*(token if i in slots else m for i in range(k - 1)), q)
                    for slots in itertools.combinations(range(k - 1), c)
                )
                out[q, m, c] += all(correct[seq] for seq in inputs)
    return out


def checker_maximal(doc: dict, v: int, k: int) -> np.ndarray:
    """N[q, m, c] = the number of tokens the checker itself finds at margin 0 (strict)."""
    cert = parse(json.dumps(doc).encode())
    work = Work()
    tables = cubic.tables(cert, cubic.Weights(cert, work), work)
    counts = np.zeros((v, v, k), np.int64)
    for m in range(v):
        ok, ok0 = cubic.proved_tokens(m, k, np.zeros((v, k)), tables, work)
        counts[:, m, :] = ok.sum(axis=2)
        counts[:, m, 0] = ok0
    return np.minimum(counts, cubic.case_limits(v, k)).astype(np.int64)


def test_near_max_model_gets_a_nontrivial_bound() -> None:
    config, weights = random_model(6, 4, seed=7, near_max=True)
    doc, _ = certificate(config, weights)
    result = verify(doc)
    assert result.failed is None
    assert 0.5 * 6**4 < result.verified_count <= exact_correct_count(weights)
