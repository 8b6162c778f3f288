"""Adversarial audit of the sub-cubic rule: witnesses are random (peels, gaps, attention means,
EU centre, inflated ε lemmas), every case the rule itself accepts is claimed, and then EACH
accepted case is expanded into its inputs, every one of which must be classified correctly by
the exact oracle (strictly stronger than comparing counts). Also: the case input sets are
disjoint and their sizes are what ``count`` adds up."""

from __future__ import annotations

import itertools
import json
import random
from fractions import Fraction

import flint
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certify.certificate import encode_array
from certify.strategies import subcubic as sc
from checker.arith import float_above
from checker.circuits import Weights
from checker.cost import Work
from checker.format import decode_array, parse
from checker.rules import subcubic
from tests.oracle import exact_circuits, margin_sign
from tests.test_subcubic import certify, copy_with_lure, near_max, weights_of

LOGIT_BOUND = subcubic.logit_bound  # the rule's own, captured before any spying


def correct_inputs(weights: dict) -> set[tuple[int, ...]]:
    c = exact_circuits(weights)
    v, k = weights["embed.W_E"].shape[0], weights["pos_embed.W_pos"].shape[0]
    h = weights["blocks.0.attn.W_Q"].shape[-1]
    return {
        s
        for s in itertools.product(range(v), repeat=k)
        if all(margin_sign(c, s, x, h) > 0 for x in range(v) if x != max(s))
    }


def case_inputs(q: int, m: int, c: int, g: int, k: int) -> list[tuple[int, ...]]:
    """Every input of case (q, m, c) with gap g: query q last, c' non-query non-max slots."""
    cp = c - int(q < m)
    out = []
    for slots in itertools.combinations(range(k - 1), cp):
        for toks in itertools.product(range(m - g + 1), repeat=cp):
            seq = [m] * (k - 1)
            for i, t in zip(slots, toks, strict=True):
                seq[i] = t
            out.append((*seq, q))
    return out


def randomise(doc: dict, rng: np.random.Generator, scale: float, nudge: bool) -> dict:
    """Random witnesses of the right shapes (nudge: the honest ones perturbed, to stay near the
    acceptance boundary) and an ε lemma ≥ the exact ε (sometimes inflated)."""
    doc = json.loads(json.dumps(doc))
    wit = doc["witnesses"]
    v, k = doc["model"]["d_vocab"], doc["model"]["n_ctx"]

    def new(obj: dict, shape=None) -> dict:
        old = decode_array(obj, "w")
        if nudge:
            return encode_array(old * (1 + scale * rng.standard_normal(old.shape)))
        return encode_array(scale * rng.standard_normal(shape or old.shape))

    for p in wit.get("peels", []):
        r = p["x"]["shape"][1] if nudge else int(rng.integers(1, 3))
        p["x"] = new(p["x"], (p["x"]["shape"][0], r))
        p["y"] = new(p["y"], (p["y"]["shape"][0], r))
    gaps = decode_array(wit["gaps"], "g") + rng.integers(-1, 2, (v, v, k))
    wit["gaps"] = encode_array(gaps if nudge else rng.integers(-1, v + 2, (v, v, k)))
    if "attention_mean" in wit:
        abar = decode_array(wit["attention_mean"], "a") + scale * rng.standard_normal((v, k))
        wit["attention_mean"] = encode_array(abar if nudge else rng.uniform(-1.5, 2.5, (v, k)))
    if "eu_centre" in wit:
        wit["eu_centre"] = new(wit["eu_centre"])
    if "eu_peel" in wit:
        top = max(1, doc["model"]["d_model"] // 2)  # the checker's EU rank limit (d ≤ 32 here)
        r = wit["eu_peel"]["x"]["shape"][1] if nudge else int(rng.integers(1, top + 1))
        for key in "xy":
            wit["eu_peel"][key] = new(wit["eu_peel"][key], (wit["eu_peel"][key]["shape"][0], r))
    if "sigma" in wit:  # too small a σ must fall back to the trace bound, never be trusted
        sigma = decode_array(wit["sigma"], "s") * (1 + scale * rng.standard_normal(1))
        wit["sigma"] = encode_array(np.abs(sigma if nudge else scale * rng.standard_normal(1)))
        wit["sigma"] = encode_array(np.maximum(decode_array(wit["sigma"], "s"), 1e-300))
    cert = parse(json.dumps(doc).encode())
    option = cert.options["eps"]
    _, eps, _ = subcubic.attention_error(Weights(cert, Work()), option, wit, Work())
    lemma = np.array([float_above(Fraction(str(flint.fmpq(e)))) for e in eps])
    doc["lemmas"]["eps"] = encode_array(lemma * rng.choice([1.0, 1.0, 1.5, 10.0]))
    return doc


def accepted_cases(doc: dict, monkeypatch) -> tuple[np.ndarray, np.ndarray]:
    """(the cases the rule accepts, gaps), found by capturing its bound, then verified for real:
    claiming exactly those cases must verify with the exact count."""
    seen = {}

    def spy(*args, **kwargs):
        seen["bound"] = LOGIT_BOUND(*args, **kwargs)
        return seen["bound"]

    monkeypatch.setattr(subcubic, "logit_bound", spy)
    v, k = doc["model"]["d_vocab"], doc["model"]["n_ctx"]
    doc["lemmas"]["proved"] = encode_array(np.ones((v, v, k), np.int64))  # bound every case
    subcubic.check(parse(json.dumps(doc).encode()), Work())
    gaps = decode_array(doc["witnesses"]["gaps"], "gaps")
    ok = subcubic.valid_cases(v, k, gaps) & (np.asarray(seen["bound"]).reshape(v, v, k) < 0)
    doc["lemmas"]["proved"] = encode_array(ok.astype(np.int64))
    doc["claim"]["correct_count"] = str(subcubic.count(v, k, gaps, ok))
    result = subcubic.check(parse(json.dumps(doc).encode()), Work())
    assert result.failed is None and result.verified_count == int(doc["claim"]["correct_count"])
    return ok, gaps


def assert_cases_sound(doc: dict, weights: dict, monkeypatch) -> int:
    ok, gaps = accepted_cases(doc, monkeypatch)
    k = doc["model"]["n_ctx"]
    good = correct_inputs(weights)
    covered: set = set()
    for q, m, c in np.argwhere(ok):
        inputs = case_inputs(int(q), int(m), int(c), int(gaps[q, m, c]), k)
        assert not covered & set(inputs), (q, m, c)
        covered |= set(inputs)
        bad = [s for s in inputs if s not in good]
        assert not bad, f"case {(q, m, c)} g={gaps[q, m, c]} accepted but {bad[0]} is wrong"
    assert len(covered) == int(doc["claim"]["correct_count"])
    return len(covered)


def positional(seed: int):
    """near_max plus a large positional embedding: EQKP, PVOU and slot order matter."""
    config, w = near_max(4, 3, 0.05, seed, 0.1)
    rng = np.random.default_rng(seed)
    w["pos_embed.W_pos"] = (0.7 * rng.standard_normal(w["pos_embed.W_pos"].shape)).astype("f4")
    return config, w


def anti_copy(v: int = 4, k: int = 3, push: float = 5.56):
    """Attention ∝ token/s; only the top token v-1 writes through OV, pushing logit 0 by
    ``push``; the direct path gives logit v-1 +5. With m = v-1 the input is right iff the
    attention α on the max copies is < 5/push ≈ 0.9: the UPPER end of the bracket binds."""
    d = 2 * v + 2
    E = np.zeros((v, d))
    E[:, 0], E[:, 1], E[:, 2 : 2 + v] = np.arange(v), 1, np.eye(v)
    Q, K, V, U = np.zeros((d, d)), np.zeros((d, d)), np.zeros((d, d)), np.zeros((d, v))
    Q[1, 0], K[0, 0] = np.sqrt(d), 1
    V[1 + v, 2 + v] = 1  # one-hot of token v-1 -> the output dim
    U[2 + v, 0], U[1, v - 1] = push, 5
    return weights_of(k, E, Q, K, V, np.eye(d), U)


MODELS = {
    "near_max": lambda seed: near_max(4, 3, 0.05, seed, 0.1),
    "noisy": lambda seed: near_max(4, 3, 0.5, seed, 0.5),
    "lure": lambda seed: copy_with_lure(5, 2, 4.0 + seed % 5),
    "positional": positional,
    "k4": lambda seed: near_max(3, 4, 0.2, seed, 0.2),
    "anti": lambda seed: anti_copy(4, 3, 5.0 + (seed % 7) / 5),
}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(sorted(MODELS)),
    seed=st.integers(0, 2**16),
    variant=st.sampled_from(sc.variant_names()),
    scale=st.sampled_from([0.0, 0.01, 0.3, 3.0]),
    nudge=st.booleans(),
)
def test_accepted_cases_hold_for_every_input_under_random_witnesses(
    model, seed, variant, scale, nudge, monkeypatch_module
) -> None:
    config, weights = MODELS[model](seed)
    doc = certify(config, weights, [variant])[variant]
    doc = randomise(doc, np.random.default_rng(seed), scale, nudge)
    assert_cases_sound(doc, weights, monkeypatch_module)


NEW_VARIANTS = [n for n in sc.variant_names() if n not in sc.variant_names(paper_only=True)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(sorted(MODELS)),
    seed=st.integers(0, 2**16),
    variant=st.sampled_from(NEW_VARIANTS),
    scale=st.sampled_from([0.0, 0.01, 0.3, 3.0]),
    nudge=st.booleans(),
)
def test_new_options_accepted_cases_hold_for_every_input(
    model, seed, variant, scale, nudge, monkeypatch_module
) -> None:
    """The same audit over the options beyond the paper only (random peels, EU peel, σ)."""
    config, weights = MODELS[model](seed)
    doc = certify(config, weights, [variant])[variant]
    doc = randomise(doc, np.random.default_rng(seed), scale, nudge)
    assert_cases_sound(doc, weights, monkeypatch_module)


def test_honest_certificates_accepted_cases_hold_for_every_input(monkeypatch) -> None:
    config, weights = near_max(4, 3, 0.05, 11, 0.1)
    docs = certify(config, weights, sc.variant_names()[::3])
    proved = [assert_cases_sound(doc, weights, monkeypatch) for doc in docs.values()]
    assert max(proved) > 0  # the harness itself is not vacuous


def test_upper_attention_end_is_needed_when_the_max_token_pushes_a_wrong_logit() -> None:
    """On anti_copy the bound evaluated at α_lo alone claims case (q, m, c) = (3, 3, 1), which
    holds the misclassified input (0, 3, 3); the rule also evaluates α_hi and rejects it."""
    config, weights = anti_copy()
    v, k = config.d_vocab, config.n_ctx
    name = "subcubic:mean_query+max_diff/drop_average_query_per_output_logit_reasoning/"
    name += "exact_EQKE+max_diff_exact"
    doc = certify(config, weights, [name])[name]
    w = Weights(parse(json.dumps(doc).encode()), Work())
    approx, _, _ = subcubic.attention_error(w, "exact_EQKE+max_diff_exact", {}, Work())
    gaps, abar = np.ones((v, v, k), np.int64), np.zeros((v, k))
    cases = np.nonzero(gaps)
    a_lo, _ = subcubic.attention_bracket(w, approx, np.zeros(v), gaps, cases, Work())
    lo_only = LOGIT_BOUND(w, "mean_query+max_diff", {}, gaps, cases, abar, a_lo, a_lo, Work())
    assert lo_only.reshape(v, v, k)[3, 3, 1] < 0
    assert (0, 3, 3) in case_inputs(3, 3, 1, 1, k) and (0, 3, 3) not in correct_inputs(weights)
    proved = np.zeros((v, v, k), np.int64)
    proved[3, 3, 1] = 1
    doc["witnesses"]["gaps"] = encode_array(gaps)
    doc["lemmas"]["proved"] = encode_array(proved)
    doc["claim"]["correct_count"] = str(subcubic.count(v, k, gaps, proved == 1))
    assert "lemmas.proved[3,3,1]" in subcubic.check(parse(json.dumps(doc).encode()), Work()).failed


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def underflow_model() -> tuple:
    """v 2, K 2, d_head 1: the key at position 0 scores 2000 below the query slot and token 0
    scores 1000 below token 1, so on input (1, 0) the query token 0 takes almost all attention
    (e^{-1000} on the max) and its OV wins: the input is wrong. Every positional and token exp
    of the case underflows float64, the regime where a lower bound rounded down from 0 is
    -2^-1074: once that reached a divisor the rule believed the attention on the max was 1."""
    from certify.model import MaxOfKConfig

    config = MaxOfKConfig(n_ctx=2, d_vocab=2, d_model=4, d_head=1)
    f32 = lambda rows: np.array(rows, np.float32)  # noqa: E731
    weights = {
        "embed.W_E": f32([[1, 0, 0, 0], [1, 1, 0, 0]]),
        "pos_embed.W_pos": f32([[0, 0, 0, 0], [0, 0, 1, 0]]),
        "blocks.0.attn.W_Q": f32([[[1], [0], [0], [0]]]),
        "blocks.0.attn.W_K": f32([[[0], [1000], [2000], [0]]]),
        "blocks.0.attn.W_V": f32([[[-1], [2], [0], [0]]]),
        "blocks.0.attn.W_O": f32([[[0, 0, 0, 1]]]),
        "unembed.W_U": f32([[0, 0], [0, 0], [0, 0], [-10, 10]]),
        "blocks.0.attn.b_O": np.zeros(4, np.float32),
        "unembed.b_U": np.zeros(2, np.float32),
    }
    weights |= {f"blocks.0.attn.b_{n}": np.zeros((1, 1), np.float32) for n in "QKV"}
    return config, weights


def test_underflowed_attention_is_never_taken_as_all_on_the_max() -> None:
    config, weights = underflow_model()
    assert (1, 0) not in correct_inputs(weights)
    variant = "subcubic:max_diff_exact/drop_average_query_per_output_logit_reasoning/" + (
        "exact_EQKE+max_diff_exact"
    )
    doc = certify(config, weights, [variant])[variant]
    assert subcubic.check(parse(json.dumps(doc).encode()), Work()).failed is None
    proved = decode_array(doc["lemmas"]["proved"], "p").copy()
    gaps = decode_array(doc["witnesses"]["gaps"], "g").copy()
    proved[0, 1, 1], gaps[0, 1, 1] = 1, 1  # claim the case holding the wrong input (1, 0)
    doc["lemmas"]["proved"], doc["witnesses"]["gaps"] = encode_array(proved), encode_array(gaps)
    result = subcubic.check(parse(json.dumps(doc).encode()), Work())
    assert result.failed == "lemmas.proved[0,1,1]: case not proved (bound not < 0)"


def extreme_model(rng: random.Random, nrng: np.random.Generator):
    """A near-max model with attention, positions and keys scaled up to 10^4: exps underflow."""
    v, k = rng.randint(2, 4), rng.randint(2, 3)
    noise, bias = rng.choice([0.0, 0.3, 3.0]), rng.choice([0.01, 1.0])
    config, w = near_max(v, k, noise, rng.randint(0, 9999), bias)
    for key, scales in [
        ("blocks.0.attn.W_Q", [1, 100, 1e3, 1e4]),
        ("pos_embed.W_pos", [1, 10, 100, 1e3]),
        ("blocks.0.attn.W_K", [1, 10, 100]),
    ]:
        w[key] = (w[key] * rng.choice(scales)).astype("f4")
    if rng.random() < 0.5:
        shift = rng.choice([1, 100, 1e3]) * nrng.standard_normal(w["pos_embed.W_pos"].shape)
        w["pos_embed.W_pos"] = (w["pos_embed.W_pos"] + shift).astype("f4")
    return config, w


@pytest.mark.parametrize(
    "seed, n, new",
    [
        (11, 150, False),
        pytest.param(12, 1000, False, marks=pytest.mark.slow),
        pytest.param(13, 400, True, marks=pytest.mark.slow),
    ],
    ids=["ci", "campaign", "campaign-new-options"],
)
def test_extreme_scales_accept_only_correct_inputs(seed: int, n: int, new: bool, monkeypatch):
    """Honest and randomised witnesses on models whose exps underflow: every accepted case's
    inputs are all correct (the down0 mutant was caught about once per 300 models). The third
    campaign draws only variants that use an option beyond the paper."""
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    for _ in range(n):
        config, weights = extreme_model(rng, nrng)
        variant = rng.choice(NEW_VARIANTS if new else sc.variant_names())
        doc = certify(config, weights, [variant])[variant]
        if rng.random() < 0.5:
            doc = randomise(doc, nrng, rng.choice([0.01, 0.3, 3.0]), rng.random() < 0.5)
        with monkeypatch.context() as mp:
            assert_cases_sound(doc, weights, mp)
