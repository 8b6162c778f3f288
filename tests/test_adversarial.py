"""Adversarial models: exact and near ties, huge and subnormal weights, all-zero weights,
d_vocab 1, K = 1 and K = 2. For every strategy the prover either writes a certificate or refuses
with a one-line message, and the checker either verifies a claim that is true (exact oracle),
or refuses with one clear line (exit 2); a claim one above the exact count is never verified.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from certify.certificate import build
from certify.circuits import circuits
from certify.model import validate
from certify.strategies import prove
from tests.certgen import dumps, tiny_weights, verify_bytes, zero_weights
from tests.oracle import exact_correct_count

STRATEGIES = ["brute", "cubic"]


def scaled(w: dict[str, np.ndarray], **factors: float) -> dict[str, np.ndarray]:
    out = {k: a.copy() for k, a in w.items()}
    for key, f in factors.items():
        name = {
            "E": "embed.W_E",
            "U": "unembed.W_U",
            "Q": "blocks.0.attn.W_Q",
            "K": "blocks.0.attn.W_K",
        }[key]
        out[name] = (out[name].astype(np.float64) * f).astype(np.float32)
    return out


def tiny_attending(scale: float = 1.0) -> dict[str, np.ndarray]:
    """The tiny model with W_Q = W_K = scale * I: attention prefers larger... or equal tokens."""
    w = tiny_weights()
    w["blocks.0.attn.W_Q"] = np.float32(scale) * np.eye(4, dtype=np.float32)[None]
    w["blocks.0.attn.W_K"] = np.eye(4, dtype=np.float32)[None]
    return w


def with_bias(w: dict[str, np.ndarray], b_u: np.ndarray) -> dict[str, np.ndarray]:
    out = {k: a.copy() for k, a in w.items()}
    out["unembed.b_U"] = b_u.astype(np.float32)
    return out


def single(v: int, k: int) -> dict[str, np.ndarray]:
    """A d_vocab-v, K-k model with identity-like embeddings (d_model 4)."""
    w = zero_weights(v, k, 4)
    w["embed.W_E"][:, :] = np.eye(v, 4, dtype=np.float32)
    w["unembed.W_U"][:, :] = np.eye(4, v, dtype=np.float32)
    w["blocks.0.attn.W_V"][0] = w["blocks.0.attn.W_O"][0] = np.eye(4, dtype=np.float32)
    return w


def tie_model() -> dict[str, np.ndarray]:
    """d_model 8: tokens embed in dims 0-3, W_V moves them to dims 4-7, W_U reads dims 4-7.

    So EU = 0, EVOU = I and attention is uniform: logit[x] = ([t0 = x] + [t1 = x]) / 2, an exact
    tie between t0 and t1 whenever they differ (4 of 16 inputs correct).
    """
    w = zero_weights(4, 2, 8)
    w["embed.W_E"][:, :4] = np.eye(4)
    w["blocks.0.attn.W_V"][0, :4, 4:] = np.eye(4)
    w["blocks.0.attn.W_O"][0] = np.eye(8)
    w["unembed.W_U"][4:] = np.eye(4)
    return w


ties = tie_model()
ramp = np.arange(4) * 2.0**-30
MODELS = {
    "exact_ties": ties,
    "near_ties_for": with_bias(ties, ramp),  # larger tokens win by 2^-30: every input correct
    "near_ties_against": with_bias(ties, -ramp),  # ties broken the wrong way by 2^-30
    "near_ties_one_ulp": with_bias(tiny_weights(), np.array([0, 0, 0, np.float32(2.0**-149)])),
    "huge_attention": tiny_attending(2.0**60),  # scores 2^60: exp overflows any float
    "extreme_attention": tiny_attending(2.0**126),  # float32's top binade: scores ~ 2^126
    "huge_logits": scaled(tiny_weights(), U=2.0**120),
    "huge_everything": scaled(tiny_attending(2.0**40), U=2.0**100, E=2.0**20),
    "subnormal_weights": scaled(tiny_weights(), U=2.0**-140),
    "subnormal_attention": tiny_attending(2.0**-149),
    "all_zero": zero_weights(4, 2, 4),
    "d_vocab_1": single(1, 3),
    "k_1": single(4, 1),
    "k_2_attending": tiny_attending(4.0),
}


@pytest.fixture(scope="module")
def exact() -> dict[str, int]:
    return {name: exact_correct_count(w) for name, w in MODELS.items()}


def test_oracle_sees_the_planted_ties(exact: dict[str, int]) -> None:
    assert exact["exact_ties"] == 4 and exact["all_zero"] == 0  # only t0 = t1 is correct
    assert exact["near_ties_for"] == 16 and exact["near_ties_against"] == 4
    assert exact["d_vocab_1"] == 1  # one input, no wrong token to beat


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("name", list(MODELS))
def test_prover_and_checker_are_sound_or_refuse(
    name: str, strategy: str, exact: dict[str, int], tmp_path: Path
) -> None:
    config, weights = validate(MODELS[name])
    try:
        proof = prove(strategy, config, weights, circuits(config, weights))
    except (ValueError, ArithmeticError) as e:  # a refusal must be one clear line
        assert str(e) and "\n" not in str(e)
        return
    doc = build(config, weights, proof)
    status, out, err = verify_bytes(dumps(doc), tmp_path)
    out += err  # the verdict on stdout, or an error on stderr: one line in all
    assert len(out.splitlines()) == 1 and "internal error" not in out, out
    if status == 0:
        assert proof.correct_count <= exact[name]
    else:
        assert status in (1, 2), out
    if strategy == "brute" and status == 0:  # brute force is exact: it proves the exact count
        assert proof.correct_count == exact[name]
    doc["claim"]["correct_count"] = str(exact[name] + 1)
    if exact[name] < config.d_vocab**config.n_ctx:
        status, out, err = verify_bytes(dumps(doc), tmp_path)
        assert status in (1, 2) and len((out + err).splitlines()) == 1, out + err
