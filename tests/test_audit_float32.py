"""Adversarial audit of float32-execution certificates (checker/float32.py and the rules' use of
the allowance): worst-case float32 executions against the derived D, and models whose float32
execution overflows, which the error model excludes and the checker must refuse."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

import checker.float32
from certify.certificate import Proof, build, encode_array
from certify.circuits import circuits, logits
from certify.float32 import allowance as prover_allowance
from certify.model import MaxOfKConfig, validate
from certify.strategies import prove
from checker.circuits import Weights
from checker.cost import Work
from checker.float32 import EXP_ULPS, derived
from checker.format import parse
from tests.certgen import dumps, random_weights, verify_bytes, zero_weights
from tests.oracle import exact_correct_count
from tests.test_float32 import f32_dot, f32_sum

F32 = np.float32


def f32_claim(weights: dict[str, np.ndarray], count: int, allowance: np.ndarray) -> bytes:
    """A brute-force float32-execution certificate claiming ``count`` with D' = ``allowance``."""
    config, weights = validate(weights)
    doc = build(config, weights, Proof(strategy="brute", correct_count=count))
    doc["claim"]["semantics"] = "float32-execution"
    doc["claim"]["float32_allowance"] = encode_array(allowance)
    return dumps(doc)


def checker_bound(weights: dict[str, np.ndarray]) -> np.ndarray:
    config, weights = validate(weights)
    cert = parse(f32_claim(weights, 0, np.full((config.d_vocab,) * 2, 1e30)))
    return derived(Weights(cert, Work()), cert)


def correct(out: np.ndarray, seq: tuple[int, ...]) -> bool:
    """Strictly correct: the max token's logit beats every other (NaN and ties are wrong)."""
    m = max(seq)
    return bool(np.all(out[m] > np.delete(out, m)))


# --- overflow: inf and NaN are outside the error model ------------------------------------


def overflowing_logits() -> dict[str, np.ndarray]:
    """Input (1,) has exact logits (4e38, 6e38), correct by 2e38 >> D ~ 1e32; in float32 both
    products overflow to inf: a tie, wrong in every float32 execution."""
    w = zero_weights(2, 1, 1)
    w["embed.W_E"][:] = [[1.0], [2.0]]
    w["unembed.W_U"][:] = [[2e38, 3e38]]
    return w


def overflowing_scores() -> dict[str, np.ndarray]:
    """Scores q . k ~ 1e40 overflow to inf, so softmax's max subtraction gives inf - inf = NaN
    and NaN logits; the values are all b_V (H = 0), so D does not see the scores' error. Exact:
    logit = E_q U + b_V O U, correct on (0, 1) and (1, 1)."""
    w = zero_weights(2, 2, 1)
    w["embed.W_E"][:] = [[1.0], [2.0]]
    w["blocks.0.attn.W_Q"][:] = 1e20
    w["blocks.0.attn.W_K"][:] = 1e20
    w["blocks.0.attn.b_V"][:] = 3.0
    w["blocks.0.attn.W_O"][:] = 1.0
    w["unembed.W_U"][:] = [[-1.0, 1.0]]
    w["unembed.b_U"][:] = [0.0, -5.0]
    return w


def float32_logits(w: dict[str, np.ndarray], seq: tuple[int, ...]) -> np.ndarray:
    """One plain float32 execution (numpy's order, division by the rounded sqrt)."""
    g = {key: a.astype(F32) for key, a in w.items()}
    with np.errstate(all="ignore"):
        x = g["embed.W_E"][list(seq)] + g["pos_embed.W_pos"]
        q = x[-1] @ g["blocks.0.attn.W_Q"][0] + g["blocks.0.attn.b_Q"][0]
        k = x @ g["blocks.0.attn.W_K"][0] + g["blocks.0.attn.b_K"][0]
        v = x @ g["blocks.0.attn.W_V"][0] + g["blocks.0.attn.b_V"][0]
        s = (k @ q) / F32(np.sqrt(q.shape[0]))
        e = np.exp(s - s.max())
        z = (e / e.sum()) @ v
        resid = x[-1] + z @ g["blocks.0.attn.W_O"][0] + g["blocks.0.attn.b_O"]
        return resid @ g["unembed.W_U"] + g["unembed.b_U"]


@pytest.mark.parametrize("model", [overflowing_logits, overflowing_scores])
def test_a_model_whose_float32_execution_overflows_is_refused(
    tmp_path: Path, model, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = model()
    config, w = validate(w)
    v, k = config.d_vocab, config.n_ctx
    with pytest.raises(ValueError, match="overflow"):
        prover_allowance(config, w)  # the prover refuses too
    inputs = list(itertools.product(range(v), repeat=k))
    f32 = sum(correct(float32_logits(w, seq), seq) for seq in inputs)
    with monkeypatch.context() as patch:  # the checker without its overflow guard
        patch.setattr(checker.float32, "finite", lambda *bounds: None)
        d = checker_bound(w) * (1 + 2.0**-20)
        oracle = exact_correct_count(w, d)  # what the overflow-blind error model allows
        assert f32 == 0 < oracle  # but the float32 run really gets them wrong (inf ties, NaN)
        assert verify_bytes(f32_claim(w, oracle, d), tmp_path)[0] == 0  # the gap
    status, out, _ = verify_bytes(f32_claim(w, oracle, d), tmp_path)
    assert status == 1 and "overflow" in out, out
    status, out, _ = verify_bytes(f32_claim(w, 1, np.full((v, v), 1e300)), tmp_path)
    assert status == 1 and "overflow" in out, out  # a larger allowance does not help
    exact = build(config, w, Proof(strategy="brute", correct_count=exact_correct_count(w)))
    assert verify_bytes(dumps(exact), tmp_path)[0] == 0  # the exact theorem is unaffected


def test_large_but_finite_magnitudes_are_still_accepted(tmp_path: Path) -> None:
    """The overflow guard is not a blanket refusal: logits near 1e30 verify."""
    w = overflowing_logits()
    w["unembed.W_U"][:] = [[2e30, 3e30]]
    config, w = validate(w)
    d = prover_allowance(config, w)
    assert exact_correct_count(w, d) == 1
    assert verify_bytes(f32_claim(w, 1, d), tmp_path)[0] == 0


# --- worst-case float32 executions against the derived D -------------------------------


def adversarial_forward(
    w: dict, seq: tuple[int, ...], rng: np.random.Generator, push: np.ndarray
) -> np.ndarray:
    """A float32 execution with exp off by EXP_ULPS ulps in the direction push[i] (+1 or -1)
    per position, a random summation order and FMA use, and a random one of the scalings
    raw / fl(sqrt) and raw * fl(1 / fl(sqrt)) (torch's GPU path), the sqrt a float64 one
    rounded to float32 (a double rounding); half the time exp flushes results below about
    2^-125 to 0, as torch's exp_u20 does (an absolute error the allowance must absorb)."""
    g = {key: a.astype(F32) for key, a in w.items()}
    fma = bool(rng.random() < 0.5)
    x = [F32(g["embed.W_E"][t] + g["pos_embed.W_pos"][i]) for i, t in enumerate(seq)]
    q = f32_dot(x[-1], g["blocks.0.attn.W_Q"][0], g["blocks.0.attn.b_Q"][0], rng, fma)
    keys = [f32_dot(xi, g["blocks.0.attn.W_K"][0], g["blocks.0.attn.b_K"][0], rng, fma) for xi in x]
    vals = [f32_dot(xi, g["blocks.0.attn.W_V"][0], g["blocks.0.attn.b_V"][0], rng, fma) for xi in x]
    dh = q.shape[0]
    raw = np.array([f32_sum([(q[h], kk[h]) for h in range(dh)], rng, fma) for kk in keys], F32)
    root = F32(np.sqrt(np.float64(dh)))
    scores = raw / root if rng.random() < 0.5 else raw * (F32(1) / root)
    shifted = scores - scores.max()
    e = np.exp(shifted.astype(np.float64)).astype(F32)  # correctly rounded in effect
    for _ in range(EXP_ULPS):
        e = np.nextafter(e, np.where(push > 0, F32(np.inf), F32(0)))
    if rng.random() < 0.5:  # as torch's exp_u20: results below about 2^-125 flushed to 0
        e = np.where(shifted < F32(-86.6), F32(0), e)
    total = f32_sum(list(e), rng, fma)
    attn = e / total if rng.random() < 0.5 else e * (F32(1) / total)
    z = np.array(
        [f32_sum([(attn[i], vals[i][h]) for i in range(len(seq))], rng, fma) for h in range(dh)],
        F32,
    )
    out = f32_dot(z, g["blocks.0.attn.W_O"][0], g["blocks.0.attn.b_O"], rng, fma)
    return f32_dot(F32(x[-1] + out), g["unembed.W_U"], g["unembed.b_U"], rng, fma)


def extreme_weights(kind: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    v, k, d = int(rng.integers(2, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    w = random_weights(v, k, d, seed)
    if kind == "sharp":  # scores ~ 1e4: saturated softmax, large exp arguments
        w["blocks.0.attn.W_Q"] *= F32(100)
        w["blocks.0.attn.W_K"] *= F32(100)
    elif kind == "subnormal":  # q, k, v and products in and below the subnormal range
        for key in ("embed.W_E", "pos_embed.W_pos", "blocks.0.attn.b_Q", "blocks.0.attn.b_K"):
            w[key] *= F32(1e-20)
        w["blocks.0.attn.W_V"] *= F32(1e-20)
        w["blocks.0.attn.b_V"] *= F32(1e-40)
        w["unembed.W_U"] *= F32(1e20)
        w["unembed.b_U"] *= F32(1e-38)
    elif kind == "cancelling":  # large residual, tiny logit differences
        w["unembed.b_U"] = (w["unembed.b_U"] * F32(1e4)).astype(F32)
        w["pos_embed.W_pos"] *= F32(1e3)
    return w


@pytest.mark.parametrize("kind", ["plain", "sharp", "subnormal", "cancelling"])
@pytest.mark.parametrize("seed", range(3))
def test_derived_allowance_covers_worst_case_executions(kind: str, seed: int) -> None:
    w = extreme_weights(kind, seed)
    config, w = validate(w)
    bound, c = checker_bound(w), circuits(config, w)
    rng = np.random.default_rng(seed)
    v, k = config.d_vocab, config.n_ctx
    for seq in itertools.islice(itertools.product(range(v), repeat=k), 8):
        exact = logits(c, np.array([seq]))[0]
        for push in (np.ones(k), -np.ones(k), np.where(np.arange(k) % 2, 1.0, -1.0)):
            got = adversarial_forward(w, seq, rng, push).astype(np.float64)
            slack = 1e-12 * np.abs(exact)  # the float64 reference's own error
            assert np.all(np.abs(got - exact) <= bound[seq[-1]] + slack), (kind, seq)


def test_d_head_not_a_square_and_k_one() -> None:
    """d_head = 3 (s irrational) and K = 1 (a single softmax weight: exactly 1 in float32 up to
    exp's error, which the normalisation removes only approximately)."""
    for k, dh in [(1, 3), (2, 3), (3, 5)]:
        w = random_weights(3, k, 3, 5)
        rng = np.random.default_rng(k)
        w["blocks.0.attn.W_Q"] = rng.standard_normal((1, 3, dh)).astype(F32) * F32(3)
        w["blocks.0.attn.W_K"] = rng.standard_normal((1, 3, dh)).astype(F32) * F32(3)
        w["blocks.0.attn.W_V"] = rng.standard_normal((1, 3, dh)).astype(F32)
        w["blocks.0.attn.W_O"] = rng.standard_normal((1, dh, 3)).astype(F32)
        for key in "QKV":
            w[f"blocks.0.attn.b_{key}"] = rng.standard_normal((1, dh)).astype(F32)
        config, w = validate(w)
        bound, c = checker_bound(w), circuits(config, w)
        for seq in itertools.product(range(3), repeat=k):
            exact = logits(c, np.array([seq]))[0]
            for push in (np.ones(k), -np.ones(k)):
                got = adversarial_forward(w, seq, rng, push).astype(np.float64)
                assert np.all(np.abs(got - exact) <= bound[seq[-1]] + 1e-12 * np.abs(exact))


# --- the rules with a large, uneven allowance: many inputs near the float32 threshold -------


@pytest.mark.parametrize("strategy", ["brute", "cubic", "best-subcubic", "hybrid"])
@pytest.mark.parametrize("seed", [1, 2])
def test_no_rule_counts_an_input_within_the_allowance(
    tmp_path: Path, strategy: str, seed: int
) -> None:
    """D' = D + an uneven offset of the logits' own scale, so many margins fall near
    D'[q, m] + D'[q, x]: the brute rule (exact settle) counts exactly the float32-oracle
    inputs, the others at most those; the oracle's count is claimed and must verify for brute."""
    w = random_weights(4, 3, 4, seed)
    config, w = validate(w)
    rng = np.random.default_rng(seed)
    d = checker_bound(w) * (1 + 2.0**-20) + rng.uniform(0, 3, (4, 4))
    oracle = exact_correct_count(w, d)
    assert 0 < oracle < exact_correct_count(w)  # the offset matters
    c = dataclasses.replace(circuits(config, w), allowance=d)
    doc = build(config, w, prove(strategy, config, w, c))
    status, out, _ = verify_bytes(dumps(doc), tmp_path, "--json")
    got = int(json.loads(out)["verified_count"])
    assert status == 0 and got <= oracle
    if strategy == "brute":
        assert got == oracle == int(doc["claim"]["correct_count"])
    doc["claim"]["correct_count"] = str(oracle + 1)  # one more than the truth: never verified
    assert verify_bytes(dumps(doc), tmp_path)[0] == 1


def test_the_allowance_derivation_counts_against_max_memory(tmp_path: Path) -> None:
    """The derivation holds v K d exact rationals: at d_model 1024, K 64 and v 16 about 0.3 GiB,
    which the rule's own estimate (here brute force's, a few MB) does not include."""
    import checker.rules.brute  # noqa: F401 (registers its estimate)
    from checker.cost import ESTIMATES

    shapes = MaxOfKConfig(n_ctx=64, d_vocab=16, d_model=1024, d_head=1).shapes()
    rng = np.random.default_rng(0)
    _, w = validate({key: rng.standard_normal(s).astype(F32) for key, s in shapes.items()})
    cap = 2**28
    assert ESTIMATES["brute"](parse(f32_claim(w, 0, np.ones((16, 16)))).config).bytes < cap
    status, _, err = verify_bytes(
        f32_claim(w, 0, np.ones((16, 16))), tmp_path, "--max-memory", str(cap)
    )
    assert status == 2 and "over --max-memory" in err, err
