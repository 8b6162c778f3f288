"""Float32-execution certificates (docs/float32.md): the allowance against simulated float32
runs, fragile models whose near-ties float32 gets wrong, and tampering with the new fields."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certify.certificate import build
from certify.circuits import circuits, logits
from certify.float32 import allowance as prover_allowance
from certify.float32 import torch_float32_logits
from certify.model import validate
from certify.strategies import prove
from checker.circuits import Weights
from checker.cost import Work
from checker.float32 import EXP_ULPS, derived
from checker.format import parse
from tests.certgen import SMALL, dumps, random_weights, verify_bytes
from tests.oracle import exact_circuits, exact_correct_count, margin_sign

F32 = np.float32


def checker_allowance(weights: dict[str, np.ndarray]) -> np.ndarray:
    config, weights = validate(weights)
    cert = parse(
        dumps(build(config, weights, prove("brute", config, weights, circuits(config, weights))))
    )
    return derived(Weights(cert, Work()), cert)


def f32_certificate(weights: dict[str, np.ndarray], strategy: str) -> dict:
    config, weights = validate(weights)
    c = dataclasses.replace(circuits(config, weights), allowance=prover_allowance(config, weights))
    return build(config, weights, prove(strategy, config, weights, c))


# --- simulated float32 executions ---------------------------------------------------------


def f32_sum(terms: list, rng: np.random.Generator, fma: bool) -> F32:
    """A float32 sum of products in a random order and association. terms: (a, b) pairs
    (a product) or single floats; with ``fma`` a product may be fused into its addition."""
    values = []
    for t in terms:
        values.append(
            t
            if not isinstance(t, tuple)
            else (t if fma and rng.random() < 0.5 else F32(t[0] * t[1]))
        )
    rng.shuffle(values)
    while len(values) > 1:
        i, j = sorted(rng.choice(len(values), 2, replace=False))
        a, b = values.pop(j), values.pop(i)
        if isinstance(a, tuple) and isinstance(b, tuple):
            a = F32(a[0] * a[1])
        if isinstance(b, tuple):
            a, b = b, a
        if isinstance(a, tuple):  # one rounding of a*b + c (float64 holds a*b exactly)
            values.append(F32(np.float64(a[0]) * np.float64(a[1]) + np.float64(b)))
        else:
            values.append(F32(a + b))
    v = values[0]
    return F32(v[0] * v[1]) if isinstance(v, tuple) else v


def f32_dot(a, w, b, rng, fma) -> np.ndarray:
    """x W + b, each output a random-order float32 sum."""
    out = np.empty(w.shape[1], F32)
    for j in range(w.shape[1]):
        terms = [(F32(a[i]), F32(w[i, j])) for i in range(w.shape[0])]
        out[j] = f32_sum(terms + ([F32(b[j])] if b is not None else []), rng, fma)
    return out


def f32_forward(w: dict, seq: tuple[int, ...], rng: np.random.Generator, fma: bool) -> np.ndarray:
    """One float32 execution of the forward pass (last position's logits)."""
    g = {key: a.astype(F32) for key, a in w.items()}
    x = [F32(g["embed.W_E"][t] + g["pos_embed.W_pos"][i]) for i, t in enumerate(seq)]
    q = f32_dot(x[-1], g["blocks.0.attn.W_Q"][0], g["blocks.0.attn.b_Q"][0], rng, fma)
    keys = [f32_dot(xi, g["blocks.0.attn.W_K"][0], g["blocks.0.attn.b_K"][0], rng, fma) for xi in x]
    vals = [f32_dot(xi, g["blocks.0.attn.W_V"][0], g["blocks.0.attn.b_V"][0], rng, fma) for xi in x]
    dh = q.shape[0]
    raw = np.array([f32_sum([(q[h], k[h]) for h in range(dh)], rng, fma) for k in keys], F32)
    if rng.random() < 0.5:
        scores = raw / F32(np.sqrt(dh))
    else:
        scores = raw * F32(F32(1) / F32(np.sqrt(np.float64(dh))))
    shifted = scores - scores.max()
    e = np.exp(shifted).astype(F32)
    for _ in range(EXP_ULPS):  # exp within EXP_ULPS ulps: random steps
        e = np.nextafter(e, np.where(rng.random(len(e)) < 0.5, F32(0), F32(2)))
    z_sum = f32_sum(list(e), rng, fma)
    attn = e / z_sum if rng.random() < 0.5 else e * (F32(1) / z_sum)
    z = np.array(
        [f32_sum([(attn[i], vals[i][h]) for i in range(len(seq))], rng, fma) for h in range(dh)],
        F32,
    )
    out = f32_dot(z, g["blocks.0.attn.W_O"][0], g["blocks.0.attn.b_O"], rng, fma)
    resid = (x[-1] + out).astype(F32)
    return f32_dot(resid, g["unembed.W_U"], g["unembed.b_U"], rng, fma)


@settings(max_examples=25, deadline=None)
@given(
    v=st.integers(2, 5),
    k=st.integers(1, 3),
    d=st.integers(1, 4),
    seed=st.integers(0, 10**6),
    scale=st.sampled_from([0.3, 1.0, 4.0]),
)
def test_allowance_covers_random_float32_executions(
    v: int, k: int, d: int, seed: int, scale: float
) -> None:
    w = random_weights(v, k, d, seed, scale)
    config, w = validate(w)
    bound = checker_allowance(w)
    c = circuits(config, w)
    rng = np.random.default_rng(seed)
    for seq in itertools.islice(itertools.product(range(v), repeat=k), 6):
        exact = logits(c, np.array([seq]))[0]
        for trial in range(4):
            got = f32_forward(w, seq, rng, fma=trial % 2 == 1).astype(np.float64)
            slack = 1e-12 * (1 + np.abs(exact))  # the float64 reference's own error
            assert np.all(np.abs(got - exact) <= bound[seq[-1]] + slack), (seq, got - exact)


def test_the_simulation_can_break_a_too_small_bound() -> None:
    """The check above can fail: errors are really there, and exceed a bound 10^4 too small."""
    w = random_weights(5, 3, 4, 7, 4.0)
    config, w = validate(w)
    bound, c, rng = checker_allowance(w), circuits(config, w), np.random.default_rng(0)
    worst = 0.0
    for seq in itertools.product(range(5), repeat=3):
        err = np.abs(f32_forward(w, seq, rng, fma=False) - logits(c, np.array([seq]))[0])
        worst = max(worst, float((err / bound[seq[-1]]).max()))
    assert 1e-4 < worst <= 1  # observed errors reach within 10^4 of the bound, never beyond


def test_prover_allowance_is_just_above_the_checkers() -> None:
    w = random_weights(6, 3, 4, 11)
    config, w = validate(w)
    mine, theirs = prover_allowance(config, w), checker_allowance(w)
    assert np.all(mine >= theirs) and np.all(mine <= theirs * (1 + 1e-5))


# --- fragile models: exact-correct by less than float32 can resolve ----------------------


def fragile_model() -> tuple[dict[str, np.ndarray], tuple[int, ...]]:
    """A model with an input that is correct in exact arithmetic by a margin far below float32
    resolution and that torch's float32 forward pass gets wrong: b_U[m] is stepped one float32
    ulp at a time to the first value where the input's exact margin is positive."""
    for seed in range(200):
        w = random_weights(4, 2, 4, seed)
        seq = (1, 3)
        m = max(seq)
        c = circuits(*validate(w))
        lg = logits(c, np.array([seq]))[0]
        x = int(np.argmax(np.where(np.arange(4) == m, -np.inf, lg)))
        b = w["unembed.b_U"]
        b[m] = F32(b[m] - (lg[m] - lg[x]))
        for _ in range(8):
            if margin_sign(exact_circuits(w), seq, x, 4) > 0:
                break
            b[m] = np.nextafter(b[m], F32(np.inf))
        exact_ok = all(margin_sign(exact_circuits(w), seq, y, 4) > 0 for y in range(4) if y != m)
        config, w = validate(w)
        out = torch_float32_logits(config, w, np.array([seq]))[0]
        torch_ok = bool(out[m] > np.delete(out, m).max())
        if exact_ok and not torch_ok:
            return w, seq
    raise AssertionError("no fragile model found")


@pytest.mark.parametrize("strategy", ["brute", "cubic", "best-subcubic", "hybrid"])
def test_fragile_inputs_are_counted_only_under_exact_semantics(
    tmp_path: Path, strategy: str
) -> None:
    w, seq = fragile_model()
    config, w = validate(w)
    d = prover_allowance(config, w)
    others = [x for x in range(4) if x != max(seq)]
    assert not all(margin_sign(exact_circuits(w), seq, x, 4, d) > 0 for x in others)  # f32-unsafe
    f32 = f32_certificate(w, strategy)
    status, out, _ = verify_bytes(dumps(f32), tmp_path, "--json")
    result = json.loads(out)
    assert status == 0 and result["semantics"] == "float32-execution"
    assert int(result["verified_count"]) <= exact_correct_count(w, d) < exact_correct_count(w)
    if strategy == "brute":  # exactly the inputs with margin > D[q, m] + D[q, x]
        assert int(result["verified_count"]) == exact_correct_count(w, d)
        exact = build(config, w, prove("brute", config, w, circuits(config, w)))
        status, out, _ = verify_bytes(dumps(exact), tmp_path, "--json")
        assert status == 0 and int(json.loads(out)["verified_count"]) == exact_correct_count(w)


# --- tampering ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def f32_doc() -> dict:
    from certify.model import load

    _, w = load(SMALL / "max3_v6.safetensors")
    return f32_certificate(w, "brute")


def test_semantics_flipped_either_way_is_refused(tmp_path: Path, f32_doc: dict) -> None:
    doc = json.loads(json.dumps(f32_doc))
    doc["claim"]["semantics"] = "exact"  # allowance left behind: refused, not read as exact
    assert verify_bytes(dumps(doc), tmp_path)[0] == 2
    exact = json.loads((SMALL / "max3_v6.brute.cert.json").read_bytes())
    exact["claim"]["semantics"] = "float32-execution"  # no allowance: refused
    assert verify_bytes(dumps(exact), tmp_path)[0] == 2


def test_stripped_semantics_verifies_only_the_exact_theorem(tmp_path: Path, f32_doc: dict) -> None:
    doc = json.loads(json.dumps(f32_doc))
    del doc["claim"]["semantics"], doc["claim"]["float32_allowance"]
    status, out, _ = verify_bytes(dumps(doc), tmp_path, "--json")
    assert status == 0 and json.loads(out)["semantics"] == "exact"
    assert "exact real arithmetic" in json.loads(out)["theorem"]
    status, out, _ = verify_bytes(dumps(doc), tmp_path, "--semantics", "float32-execution")
    assert status == 1 and "claim.semantics" in out


def test_lowered_allowance_and_raised_claim_are_rejected(tmp_path: Path, f32_doc: dict) -> None:
    from certify.certificate import decode_array, encode_array

    for q, x in [(0, 0), (5, 2)]:
        doc = json.loads(json.dumps(f32_doc))
        d = decode_array(doc["claim"]["float32_allowance"]).copy()
        d[q, x] *= 0.999
        doc["claim"]["float32_allowance"] = encode_array(d)
        status, out, _ = verify_bytes(dumps(doc), tmp_path)
        assert status == 1 and f"claim.float32_allowance[{q},{x}]" in out
    doc = json.loads(json.dumps(f32_doc))
    doc["claim"]["correct_count"] = str(int(doc["claim"]["correct_count"]) + 1)
    assert verify_bytes(dumps(doc), tmp_path)[0] == 1
    d = decode_array(doc["claim"]["float32_allowance"]).copy()
    d[1, 1] = -1.0
    doc["claim"]["float32_allowance"] = encode_array(d)
    assert verify_bytes(dumps(doc), tmp_path)[0] == 2


def test_raised_allowance_still_verifies_a_smaller_count(tmp_path: Path, f32_doc: dict) -> None:
    """A larger allowance is a weaker promise about float32: sound, and counts fewer inputs."""
    from certify.certificate import decode_array, encode_array

    doc = json.loads(json.dumps(f32_doc))
    doc["claim"]["float32_allowance"] = encode_array(
        decode_array(doc["claim"]["float32_allowance"]) * 1000
    )
    doc["claim"]["correct_count"] = "0"
    status, out, _ = verify_bytes(dumps(doc), tmp_path, "--json")
    assert status == 0 and int(json.loads(out)["verified_count"]) < int(
        f32_doc["claim"]["correct_count"]
    )
