"""Audit of the cubic and brute-force rules: the most either rule can be made to accept never
exceeds the exact count (tests/oracle.py), on adversarially built models (per-tensor scales from
subnormal to 2^100, weights on coarse grids so exact ties are common, zero tensors, equal
positional rows so EQKP ties, hand-built max-of-K models with strong positional terms), and
extreme lemma values are refused rather than accepted."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certify.certificate import Proof, build
from certify.model import MaxOfKConfig
from checker.cost import Work
from checker.format import FormatError, parse
from checker.rules import brute, cubic
from tests.oracle import exact_correct_count
from tests.test_adversarial import MODELS
from tests.test_cubic import (
    checker_maximal,
    exact_correct_inputs,
    pure_correct,
    random_model,
    verify,
    with_lemmas,
)

Weights = dict[str, np.ndarray]
SIZES = [(2, 1), (2, 4), (3, 2), (3, 3), (4, 2), (4, 3), (3, 4), (4, 4)]


def tight_model(
    v: int, k: int, seed: int, pvou_zero: bool, pos_scale: float = 1.0
) -> tuple[MaxOfKConfig, Weights]:
    """d_model 4: tokens in dims 0-1, positions in dims 2-3, so EQKP is free while PVOU = 0
    when W_V ignores dims 2-3. With v = 2 (one wrong token) and PVOU = 0 the cubic's per-slot
    bound is exact, so any slip in the arrangement or counting logic over-counts."""
    rng = np.random.default_rng(seed)
    config = MaxOfKConfig(n_ctx=k, d_vocab=v, d_model=4, d_head=2)
    w = {key: rng.standard_normal(shape) for key, shape in config.shapes().items()}
    w["embed.W_E"][:, 2:] = 0
    w["pos_embed.W_pos"][:, :2] = 0
    w["pos_embed.W_pos"] *= pos_scale
    w["blocks.0.attn.W_V"][0, 2:] *= 0 if pvou_zero else 1
    return config, {key: a.astype(np.float32) for key, a in w.items()}


@st.composite
def adversarial_models(draw) -> tuple[MaxOfKConfig, Weights]:
    """Tight, random or near-max-of-K weights, then per tensor: a power-of-two scale (2^-140
    makes float32 subnormals, 2^100 overflows any float exp of the scores), zeroing, or rounding
    to a grid; optionally all positional rows equal (every EQKP row constant: sort ties)."""
    v, k = draw(st.sampled_from(SIZES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    family, seed = (
        draw(st.sampled_from(["tight", "tight", "random", "near_max"])),
        int(rng.integers(2**31)),
    )
    if family == "tight":
        config, w = tight_model(draw(st.sampled_from([2, 2, 3])), k, seed, draw(st.booleans()))
        v = config.d_vocab
    else:
        config, w = random_model(v, k, seed, family == "near_max")
    grid = draw(st.sampled_from([0, 0, 1, 4]))
    out, plain = {}, draw(st.booleans())  # plain: leave the tight/near-max structure intact
    for key, a in w.items():
        if plain:
            out[key] = a.astype(np.float64)
            continue
        a = a.astype(np.float64)
        if key == "pos_embed.W_pos":
            a = a + draw(st.sampled_from([0.0, 1.0, 10.0])) * rng.standard_normal(a.shape)
            if draw(st.booleans()):
                a[:] = a[0]
        a = np.round(a * grid) / grid if grid else a
        a = a * 2.0 ** draw(st.sampled_from([0, 0, 0, -140, -30, 30, 100]))
        out[key] = np.zeros_like(a) if draw(st.integers(0, 9)) == 0 else a
    return config, {key: a.astype(np.float32) for key, a in out.items()}


def brute_doc(config: MaxOfKConfig, w: Weights) -> dict:
    return build(config, w, Proof("brute", 0))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=adversarial_models())
def test_cubic_most_acceptable_lemmas_never_exceed_the_exact_count(model) -> None:
    """Every lemma at the smallest positive margin with N = all tokens the checker itself finds
    (an upper bound on any certificate the rule accepts: the test is monotone in the margin)
    covers only correct inputs: per lemma, N <= the tokens whose pure inputs are all correct,
    and in total <= the exact count."""
    config, w = model
    v, k = config.d_vocab, config.n_ctx
    correct = exact_correct_inputs(w, v, k)
    greedy = checker_maximal(brute_doc(config, w), v, k)
    assert np.all(greedy <= pure_correct(correct, v, k))
    assert cubic.count_covered(greedy, k) <= sum(correct.values())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    v=st.sampled_from([2, 2, 3]),
    k=st.sampled_from([3, 4]),
    seed=st.integers(0, 2**32 - 1),
    pvou_zero=st.booleans(),
    pos_scale=st.sampled_from([1.0, 3.0]),
)
def test_cubic_is_sound_where_its_per_slot_bound_is_tight(
    v: int, k: int, seed: int, pvou_zero: bool, pos_scale: float
) -> None:
    """Models on which the cubic's bound is (nearly) exact, so that using one positional
    arrangement, an unsorted EQKP row or PVOU at one position over-counts (mutation-checked)."""
    config, w = tight_model(v, k, seed, pvou_zero, pos_scale)
    correct = exact_correct_inputs(w, v, k)
    greedy = checker_maximal(brute_doc(config, w), v, k)
    assert np.all(greedy <= pure_correct(correct, v, k))
    assert cubic.count_covered(greedy, k) <= sum(correct.values())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=adversarial_models())
def test_brute_count_is_exact_or_refused_on_adversarial_models(model) -> None:
    config, w = model
    cert = parse(json.dumps(brute_doc(config, w)).encode())
    try:
        count = brute.check(cert, Work()).verified_count
    except (FormatError, ArithmeticError):  # a refusal (exit 2) is sound
        return
    assert count == exact_correct_count(w)


@pytest.mark.parametrize("name", ["exact_ties", "near_ties_against", "all_zero", "k_1"])
def test_cubic_never_proves_a_tied_or_wrong_input(name: str) -> None:
    from certify.model import validate

    config, w = validate(MODELS[name])
    v, k = config.d_vocab, config.n_ctx
    correct = exact_correct_inputs(w, v, k)
    greedy = checker_maximal(brute_doc(config, w), v, k)
    assert np.all(greedy <= pure_correct(correct, v, k))


def test_cubic_extreme_lemma_values_are_refused_or_rejected() -> None:
    config, w = random_model(3, 3, seed=1, near_max=True)
    doc, v, k = brute_doc(config, w), 3, 3
    limits = cubic.case_limits(v, k)
    proved = np.zeros((v, v, k), np.int64)
    proved[0, 0, 0] = np.iinfo(np.int64).max  # near 2^63: over the case's limit
    with pytest.raises(FormatError):
        verify(with_lemmas(doc, proved, np.where(proved > 0, 1.0, 0.0)))
    proved = limits.astype(np.int64)
    for bad in (0.0, -0.0, -1.0):  # a zero margin would admit exact ties
        with pytest.raises(FormatError):
            verify(with_lemmas(doc, proved, np.where(proved > 0, bad, 0.0)))
    for huge in (np.finfo(np.float64).max, 2.0**1000):  # g + margin overflows to +inf
        result = verify(with_lemmas(doc, proved, np.where(proved > 0, huge, 0.0)))
        assert result.failed is not None
