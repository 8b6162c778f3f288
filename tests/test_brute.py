"""The sound brute-force rule: its count is the exact count, ties are wrong, tampering fails."""

from __future__ import annotations

import base64
import itertools
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certify.certificate import Proof, build
from certify.circuits import circuits
from certify.model import MaxOfKConfig, weights_sha256
from certify.strategies.brute import correct_count
from checker.cli import main
from checker.cost import Work
from checker.format import parse
from checker.rules.brute import check
from tests.oracle import exact_correct_count

Weights = dict[str, np.ndarray]


def certificate(config: MaxOfKConfig, weights: Weights, claim: int) -> dict:
    return build(config, weights, Proof("brute", claim))


def checker_count(config: MaxOfKConfig, weights: Weights) -> int:
    cert = parse(json.dumps(certificate(config, weights, 0)).encode())
    result = check(cert, Work())
    assert result.failed is None
    return result.verified_count


def verify(doc: dict, tmp_path: Path) -> int:
    path = tmp_path / "cert.json"
    path.write_text(json.dumps(doc))
    return main(["verify", str(path), "--json"])


def random_model(config: MaxOfKConfig, seed: int, grid: int, qk_scale: float) -> Weights:
    """Normal weights (biases nonzero); grid > 0 rounds them to multiples of 1/grid (exact
    ties likely); qk_scale scales W_Q (huge scores make softmax weights underflow)."""
    rng = np.random.default_rng(seed)
    w = {k: rng.standard_normal(s) for k, s in config.shapes().items()}
    if grid:
        w = {k: np.round(a * grid) / grid for k, a in w.items()}
    w["blocks.0.attn.W_Q"] *= qk_scale
    return {k: a.astype(np.float32) for k, a in w.items()}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    v=st.integers(2, 6),
    k=st.integers(1, 3),
    d=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    grid=st.sampled_from([0, 0, 1, 2]),
    qk_scale=st.sampled_from([1.0, 0.0, 2.0**10, 2.0**20]),
)
def test_count_equals_exact_oracle(v: int, k: int, d: int, seed: int, grid: int, qk_scale: float):
    config = MaxOfKConfig(n_ctx=k, d_vocab=v, d_model=d, d_head=d)
    weights = random_model(config, seed, grid, qk_scale)
    assert checker_count(config, weights) == exact_correct_count(weights)


@pytest.mark.parametrize(("seed", "grid", "qk_scale"), [(1, 0, 1.0), (2, 1, 0.0), (3, 2, 1.0)])
def test_count_equals_exact_oracle_with_outer_positions(seed: int, grid: int, qk_scale: float):
    """K = 5: two inner positions, two looped outer ones and the query."""
    config = MaxOfKConfig(n_ctx=5, d_vocab=3, d_model=3, d_head=2)
    weights = random_model(config, seed, grid, qk_scale)
    assert checker_count(config, weights) == exact_correct_count(weights)


def uniform_attention_model(seed: int) -> tuple[MaxOfKConfig, Weights]:
    """W_Q = b_Q = 0 (every score 0: attention 1/K) and small integer weights."""
    config = MaxOfKConfig(n_ctx=3, d_vocab=4, d_model=3, d_head=3)
    rng = np.random.default_rng(seed)
    w = {k: rng.integers(-2, 3, s).astype(np.float32) for k, s in config.shapes().items()}
    w["blocks.0.attn.W_Q"][:] = 0
    w["blocks.0.attn.b_Q"][:] = 0
    return config, w


def fraction_count(config: MaxOfKConfig, w: Weights) -> tuple[int, int]:
    """(correct, tied) inputs of a uniform-attention model, in exact Fractions:
    logit[x] = (E_q U)[q, x] + (1/K) sum_i (EVOU[t_i, x] + PVOU[i, x])."""
    f = {key: np.vectorize(Fraction, otypes=[object])(a.astype(np.float64)) for key, a in w.items()}
    E, P, U = f["embed.W_E"], f["pos_embed.W_pos"], f["unembed.W_U"]
    V, O = f["blocks.0.attn.W_V"][0], f["blocks.0.attn.W_O"][0]
    evou = ((E @ V + f["blocks.0.attn.b_V"][0]) @ O + f["blocks.0.attn.b_O"]) @ U + f["unembed.b_U"]
    pvou, eu = P @ V @ O @ U, (E + P[-1]) @ U
    k, v = config.n_ctx, config.d_vocab
    correct = tied = 0
    for seq in itertools.product(range(v), repeat=k):
        m = max(seq)
        logit = eu[seq[-1]] + sum(evou[t] + pvou[i] for i, t in enumerate(seq)) / k
        others = max(logit[x] for x in range(v) if x != m)
        correct += logit[m] > others
        tied += logit[m] == others
    return correct, tied


def test_tied_logits_count_as_wrong(tmp_path: Path) -> None:
    for seed in range(100):
        config, w = uniform_attention_model(seed)
        correct, tied = fraction_count(config, w)
        if tied and correct:
            break
    assert tied > 0 and correct > 0
    assert checker_count(config, w) == correct
    assert verify(certificate(config, w, correct), tmp_path) == 0
    assert verify(certificate(config, w, correct + 1), tmp_path) == 1


def tie_breaking_model() -> tuple[MaxOfKConfig, Weights]:
    """Uniform attention, EVOU = EU = M: L[x] = sum_i M[t_i, x] + K M[q, x]. With entries 2^53
    and 2^54, float64 sums round some exact ties in the max token's favour."""
    M = np.array([[3, 1, 2**53], [-2, -1, 2**54], [2**53, -(2**54), -1]], dtype=np.float32)
    config = MaxOfKConfig(n_ctx=3, d_vocab=3, d_model=3, d_head=3)
    w = {k: np.zeros(s, np.float32) for k, s in config.shapes().items()}
    w["embed.W_E"] = np.eye(3, dtype=np.float32)
    w["blocks.0.attn.W_V"][0] = np.eye(3)
    w["blocks.0.attn.W_O"][0] = np.eye(3)
    w["unembed.W_U"] = M
    return config, w


def test_float_tie_break_in_models_favour_is_not_counted(tmp_path: Path) -> None:
    config, w = tie_breaking_model()
    exact = exact_correct_count(w)
    float_count = correct_count(circuits(config, w), workers=1)
    assert float_count > exact  # the float64 prover over-counts
    assert checker_count(config, w) == exact
    assert verify(certificate(config, w, float_count), tmp_path) == 1
    assert verify(certificate(config, w, exact), tmp_path) == 0


def small_model() -> tuple[MaxOfKConfig, Weights]:
    config = MaxOfKConfig(n_ctx=3, d_vocab=5, d_model=4, d_head=4)
    return config, random_model(config, seed=7, grid=0, qk_scale=1.0)


def test_claim_plus_one_is_rejected(tmp_path: Path) -> None:
    config, w = small_model()
    exact = exact_correct_count(w)
    assert verify(certificate(config, w, exact), tmp_path) == 0
    assert verify(certificate(config, w, exact + 1), tmp_path) == 1


def flip_bit(doc: dict, key: str, byte: int, bit: int) -> None:
    entry = doc["model"]["weights"][key]
    raw = bytearray(base64.b64decode(entry["data"]))
    raw[byte] ^= 1 << bit
    entry["data"] = base64.b64encode(bytes(raw)).decode()


def test_flipped_weight_bit_is_rejected(tmp_path: Path) -> None:
    config, w = small_model()
    doc = certificate(config, w, exact_correct_count(w))
    flip_bit(doc, "unembed.W_U", byte=15, bit=7)  # the sign bit of W_U[0, 3]
    assert verify(doc, tmp_path) == 2  # the embedded sha256 no longer matches
    flipped = {k: a.copy() for k, a in w.items()}
    flipped["unembed.W_U"].view(np.uint32)[0, 3] ^= np.uint32(1 << 31)
    doc["model"]["sha256"] = weights_sha256(flipped)  # a consistent but different model
    assert exact_correct_count(flipped) < exact_correct_count(w)
    assert verify(doc, tmp_path) == 1


def test_json_report_has_count_flops_and_dims(tmp_path: Path, capsys) -> None:
    config, w = small_model()
    exact = exact_correct_count(w)
    assert verify(certificate(config, w, exact), tmp_path) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verified_count"] == str(exact) and out["verdict"] == "verified"
    assert out["unexplained_dims"] == 5**4 and out["flops"] >= 5**3 * 5 * 3


def test_time_limit_stops_the_count(tmp_path: Path, capsys) -> None:
    config, w = small_model()
    path = tmp_path / "cert.json"
    path.write_text(json.dumps(certificate(config, w, 0)))
    assert main(["verify", str(path), "--json", "--time-limit", "1e-9"]) == 2
    assert "time limit" in json.loads(capsys.readouterr().out)["failed_claim"]
