"""The hybrid proof: its partition, its exactness against the exact oracle, its FLOP budget, and
tampered certificates."""

from __future__ import annotations

import itertools
import json
from math import comb
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certify.certificate import Proof, build, encode_array
from certify.circuits import circuits
from certify.model import MaxOfKConfig
from certify.strategies import hybrid as prover
from certify.strategies.cubic import lemma_tokens
from certify.strategies.hybrid import (
    FlopModel,
    Stats,
    case_sizes,
    case_stats,
    covered_counts,
    prove,
    remainder_stats,
)
from checker.cost import Work
from checker.format import FormatError, decode_array, parse
from checker.rules import brute, cubic, hybrid
from tests.oracle import exact_correct_count
from tests.test_brute import Weights, random_model, tie_breaking_model, uniform_attention_model


def certificate(config: MaxOfKConfig, weights: Weights, budget: float | None = None) -> dict:
    return build(config, weights, prove(config, weights, circuits(config, weights), budget))


def brute_proof() -> Proof:
    return Proof("brute", 0)


def check(doc: dict) -> hybrid.RuleResult:
    return hybrid.check(parse(json.dumps(doc).encode()), Work())


def lemma_arrays(doc: dict) -> dict[str, np.ndarray]:
    return {key: decode_array(a, key).copy() for key, a in doc["lemmas"].items()}


def with_lemmas(doc: dict, **arrays: np.ndarray) -> dict:
    doc = json.loads(json.dumps(doc))
    doc["lemmas"].update({key: encode_array(a) for key, a in arrays.items()})
    return doc


def near_max_model(v: int, k: int, seed: int) -> tuple[MaxOfKConfig, Weights]:
    """A model that mostly computes the max (so the lemmas cover much and the remainder is
    mixed): a constant query, keys scoring by token value, values copying the token, unembed
    reading it back; small random noise everywhere."""
    config = MaxOfKConfig(n_ctx=k, d_vocab=v, d_model=v, d_head=v)
    rng = np.random.default_rng(seed)
    w = {key: 0.02 * rng.standard_normal(shape) for key, shape in config.shapes().items()}
    eye = np.eye(v)
    w["embed.W_E"] += eye
    w["blocks.0.attn.W_Q"] += np.ones((1, v, v))
    w["blocks.0.attn.W_K"] += (16.0 * np.arange(v)[:, None] * eye / v)[None]
    w["blocks.0.attn.W_V"] += 3 * eye[None]
    w["blocks.0.attn.W_O"] += eye[None]
    w["unembed.W_U"] += eye
    return config, {key: a.astype(np.float32) for key, a in w.items()}


# --- the partition ---------------------------------------------------------------------------


def whole_remainder(m: int, c: int, k: int, inside: np.ndarray) -> np.ndarray:
    return np.concatenate([np.empty((k - 1, 0), np.int64), *hybrid.remainder(m, c, k, inside)], 1)


@pytest.mark.parametrize(("k", "m"), [(2, 3), (3, 4), (4, 3), (5, 2)])
def test_remainder_is_exactly_the_complement_of_the_lemma_part(k: int, m: int) -> None:
    """For every lemma token set A, the blocks P_r over all placements hold each input of the
    case outside the lemma part exactly once, and nothing else."""
    rng = np.random.default_rng(k * 10 + m)
    for c in range(1, k):
        case = {
            tokens
            for tokens in itertools.product(range(m + 1), repeat=k - 1)
            if sum(t < m for t in tokens) == c
        }
        for _ in range(6):
            inside = np.flatnonzero(rng.random(m) < 0.5)
            covered = {s for s in case if all(t in inside for t in s if t < m)}
            seen = [tuple(column) for column in whole_remainder(m, c, k, inside).T.tolist()]
            assert len(seen) == len(set(seen))  # nothing twice
            assert set(seen) == case - covered  # exactly the complement
            assert len(covered) == comb(k - 1, c) * len(inside) ** c


@pytest.mark.parametrize("chunk", [1, 5])
def test_remainder_chunks_join_to_the_whole_remainder(chunk: int) -> None:
    """Chunked, the remainder is the same inputs in the same order, at most ``chunk`` a time."""
    rng = np.random.default_rng(chunk)
    for k, m in ((3, 4), (5, 3)):
        for c in range(k):
            inside = np.flatnonzero(rng.random(m) < 0.5)
            whole = whole_remainder(m, c, k, inside)
            with patch.object(hybrid, "CHUNK", chunk):
                blocks = list(hybrid.remainder(m, c, k, inside))
                assert np.array_equal(whole_remainder(m, c, k, inside), whole)
            assert all(0 < b.shape[1] <= chunk for b in blocks)


@pytest.mark.parametrize(("v", "k"), [(2, 1), (3, 2), (4, 4), (64, 4), (64, 5)])
def test_cases_partition_all_inputs(v: int, k: int) -> None:
    assert int(hybrid.case_sizes(v, k).sum()) == v**k
    assert np.array_equal(hybrid.case_sizes(v, k).astype(np.int64), case_sizes(v, k))


# --- exactness and soundness against the exact oracle ------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    v=st.integers(2, 6),
    k=st.integers(1, 4),
    d=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    grid=st.sampled_from([0, 0, 1, 2]),
    qk_scale=st.sampled_from([1.0, 0.0, 2.0**10]),
)
def test_full_hybrid_counts_exactly_the_exact_accuracy(v, k, d, seed, grid, qk_scale) -> None:
    config = MaxOfKConfig(n_ctx=k, d_vocab=v, d_model=d, d_head=d)
    weights = random_model(config, seed, grid, qk_scale)
    exact = exact_correct_count(weights)
    result = check(certificate(config, weights))
    assert result.failed is None
    assert result.verified_count == exact


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), budget=st.sampled_from([0.15, 0.25, 0.4, 0.7]))
def test_budgeted_hybrid_is_sound_and_within_budget(seed: int, budget: float) -> None:
    config, weights = near_max_model(5, 4, seed)
    exact = exact_correct_count(weights)
    doc = certificate(config, weights, budget)
    result = check(doc)
    assert result.failed is None
    assert int(doc["claim"]["correct_count"]) <= result.verified_count <= exact
    work = Work()
    hybrid.check(parse(json.dumps(doc).encode()), work)
    assert work.flops <= budget * FlopModel(config).brute()


def test_lemmas_cover_most_of_a_near_max_model() -> None:
    config, weights = near_max_model(6, 4, seed=3)
    doc = certificate(config, weights)
    covered = check(with_lemmas(doc, enumerate=np.zeros((6, 6, 4), np.int64),
                                correct=np.zeros((6, 6, 4), np.int64)))  # fmt: skip
    assert covered.failed is None
    assert 0.5 * 6**4 < covered.verified_count < check(doc).verified_count


def test_tied_and_near_tied_models_match_brute_force() -> None:
    """Exact ties count as wrong, and a float tie-break in the model's favour is not counted
    (the prover's float64 claims are zeroed: the rule's own count is what is compared)."""
    for config, weights in (uniform_attention_model(1), uniform_attention_model(2),
                            tie_breaking_model()):  # fmt: skip
        doc = certificate(config, weights)
        v, k = config.d_vocab, config.n_ctx
        doc["claim"]["correct_count"] = "0"
        result = check(with_lemmas(doc, correct=np.zeros((v, v, k), np.int64)))
        brute_cert = parse(json.dumps(build(config, weights, brute_proof())).encode())
        assert result.verified_count == brute.check(brute_cert, Work()).verified_count
        assert result.verified_count == exact_correct_count(weights)


def old_and_new_stats(config: MaxOfKConfig, weights: Weights) -> tuple[Stats, Stats, np.ndarray]:
    """The prover's case statistics from every input and from the remainder alone."""
    c = circuits(config, weights)
    inside, inside0 = lemma_tokens(c)
    covered = covered_counts(inside, inside0, config.n_ctx)
    every = case_stats(c, inside, inside0)[True]
    return every, remainder_stats(c, inside, inside0, covered), covered


def assert_remainder_path_agrees(config: MaxOfKConfig, weights: Weights) -> None:
    """The unbudgeted claims equal those from every input evaluated: per case, all its correct
    inputs where it has a remainder, else the lemmas' cover (and the same remainder, correct
    remainder and cheap-test passes, so the same predicted FLOPs)."""
    every, remainder, covered = old_and_new_stats(config, weights)
    for old, new in zip(every[1:], remainder[1:], strict=True):
        assert np.array_equal(old, new)
    claims = lemma_arrays(certificate(config, weights))["correct"]
    assert np.array_equal(claims, np.where(every.remainder > 0, every.correct, covered))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    v=st.integers(2, 8),
    k=st.integers(1, 5),
    d=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    grid=st.sampled_from([0, 0, 1, 2]),
    qk_scale=st.sampled_from([1.0, 0.0, 2.0**10]),
    chunk=st.sampled_from([1, 7, 2**20]),
)
def test_remainder_only_prover_matches_every_input(v, k, d, seed, grid, qk_scale, chunk) -> None:
    config = MaxOfKConfig(n_ctx=k, d_vocab=v, d_model=d, d_head=d)
    with patch.object(prover, "CHUNK", chunk):
        assert_remainder_path_agrees(config, random_model(config, seed, grid, qk_scale))


@pytest.mark.parametrize("name", ["max3_v6", "max3_v8"])
def test_remainder_only_prover_matches_every_input_on_trained_models(name: str) -> None:
    from certify.model import load
    from tests.certgen import SMALL

    with patch.object(prover, "CHUNK", 3):
        assert_remainder_path_agrees(*load(SMALL / f"{name}.safetensors"))
    assert_remainder_path_agrees(*near_max_model(8, 5, seed=4))


@pytest.mark.slow
def test_remainder_only_prover_matches_every_input_on_max4() -> None:
    from certify.model import load

    root = Path(__file__).resolve().parents[1]
    assert_remainder_path_agrees(*load(root / "certificates/models/max4_seed123.safetensors"))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    v=st.integers(2, 6),
    k=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    grid=st.sampled_from([0, 1, 2]),
    chunk=st.sampled_from([1, 3, 17]),
)
def test_chunked_check_counts_as_unchunked(v, k, seed, grid, chunk) -> None:
    """The rule's counts, FLOPs and report do not depend on how many inputs it settles at once
    (the counts per case are the claims: the honest certificate verifies at both sizes)."""
    config = MaxOfKConfig(n_ctx=k, d_vocab=v, d_model=3, d_head=3)
    models = [(config, random_model(config, seed, grid, 1.0)), near_max_model(v, k, seed)]
    for config, weights in models:
        cert = parse(json.dumps(certificate(config, weights)).encode())
        results = []
        for size in (hybrid.CHUNK, chunk):
            work = Work()
            with patch.object(hybrid, "CHUNK", size):
                result = hybrid.check(cert, work)
            assert result.failed is None
            results.append((result.verified_count, result.report, work.flops))
        assert results[0] == results[1]


# --- FLOPs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [None, 0.15, 0.3, 1.0])
def test_prover_predicts_the_checkers_flops(budget: float | None) -> None:
    config, weights = near_max_model(6, 4, seed=5)
    proof = prove(config, weights, circuits(config, weights), budget)
    work = Work()
    hybrid.check(parse(json.dumps(build(config, weights, proof)).encode()), work)
    assert work.flops == proof.report["predicted_flops"]


def test_flop_model_matches_a_brute_force_check() -> None:
    config, weights = near_max_model(5, 4, seed=2)
    work = Work()
    brute.check(parse(json.dumps(build(config, weights, brute_proof())).encode()), work)
    assert work.flops == FlopModel(config).brute()


# --- tampering ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def honest() -> tuple[dict, int]:
    config, weights = near_max_model(6, 4, seed=11)
    return certificate(config, weights), exact_correct_count(weights)


def test_honest_certificate_verifies_at_the_exact_count(honest) -> None:
    doc, exact = honest
    assert int(doc["claim"]["correct_count"]) == exact
    assert check(doc).verified_count == exact


def test_raised_case_claim_is_rejected(honest) -> None:
    doc, _ = honest
    a = lemma_arrays(doc)
    q, m, c = np.argwhere((a["correct"] < case_sizes(6, 4)) & (a["enumerate"] > 0))[0]
    a["correct"][q, m, c] += 1
    assert f"lemmas.correct[{q},{m},{c}]" in check(with_lemmas(doc, correct=a["correct"])).failed


def test_case_moved_from_enumerated_to_covered_is_rejected(honest) -> None:
    """A case whose remainder holds correct inputs, no longer enumerated, with its claim kept."""
    doc, _ = honest
    a = lemma_arrays(doc)
    cert, work = parse(json.dumps(doc).encode()), Work()
    none = np.zeros_like(a["enumerate"])
    covered, _ = hybrid.cover(cert, hybrid.Weights(cert, work), a["lemma"], none, range(6))
    q, m, c = np.argwhere((a["enumerate"] > 0) & (a["correct"] > covered))[0]
    a["enumerate"][q, m, c] = 0
    failed = check(with_lemmas(doc, enumerate=a["enumerate"])).failed
    assert failed is not None and f"[{q},{m},{c}]" in failed


def test_lemma_switched_off_is_rejected(honest) -> None:
    doc, _ = honest
    a = lemma_arrays(doc)
    a["lemma"][:] = 0
    assert check(with_lemmas(doc, lemma=a["lemma"])).failed is not None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("enumerate", np.full((6, 6, 4), 3, np.int64)),
        ("lemma", np.ones(5, np.int64)),
        ("correct", np.full((6, 6, 4), -1, np.int64)),
        ("correct", np.full((6, 6, 4), 10**6, np.int64)),
        ("enumerate", np.ones((6, 6, 4), np.float64)),
    ],
)
def test_malformed_lemmas_are_format_errors(honest, key: str, value: np.ndarray) -> None:
    doc, _ = honest
    with pytest.raises(FormatError):
        check(with_lemmas(doc, **{key: value}))


def test_total_claim_above_the_cases_is_rejected(tmp_path: Path, honest) -> None:
    from tests.certgen import verify_bytes

    doc, exact = honest
    doc = json.loads(json.dumps(doc))
    doc["claim"]["correct_count"] = str(exact + 1)
    status, out, _ = verify_bytes(json.dumps(doc).encode(), tmp_path)
    assert status == 1 and "REJECTED" in out


def test_strict_threshold_never_proves_a_misclassified_pure_input() -> None:
    """The rule's lemma tokens (margin 0) on small near-max models, K = 3: every pure input they
    cover is correct in exact arithmetic (mixed ones follow by the mediant argument)."""
    from tests.oracle import exact_circuits, margin_sign

    for seed in range(6):
        config, weights = near_max_model(4, 3, seed)
        cert = parse(json.dumps(certificate(config, weights)).encode())
        work = Work()
        tables = cubic.tables(cert, cubic.Weights(cert, work), work)
        ex = exact_circuits(weights)
        for m in range(4):
            h, tau, _ = hybrid.lemma_bounds(m, 3, tables, work)
            for q in range(m + 1):
                for c in range(1, 3 if q == m else 2):
                    for t in np.flatnonzero(h[q, :m] < tau[q, c]):
                        for slots in itertools.combinations(range(2), c):
                            seq = (*(t if i in slots else m for i in range(2)), q)
                            assert all(margin_sign(ex, seq, x, 4) > 0 for x in range(4) if x != m)


# --- command line ------------------------------------------------------------------------------


def test_emit_with_budget_verifies_and_bad_budgets_are_one_line_errors(tmp_path: Path) -> None:
    from certify.cli import main as certify_main
    from tests.certgen import SMALL, run_checker

    model, cert = SMALL / "max3_v6.safetensors", tmp_path / "h.cert.json"
    argv = ["emit", str(model), "--strategy", "hybrid", "--budget", "0.5", "-o", str(cert)]
    assert certify_main(argv) == 0
    status, out, _ = run_checker("verify", str(cert), "--json")
    assert status == 0 and json.loads(out)["strategy"] == "hybrid"
    for bad in (
        ["--strategy", "cubic", "--budget", "0.5"],
        ["--strategy", "hybrid", "--budget", "2"],
    ):
        assert certify_main(["emit", str(model), *bad, "-o", str(cert)]) == 2
