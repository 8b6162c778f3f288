"""An independent, slow, exact oracle for a Max-of-K model's accuracy (tests only).

``exact_correct_count(weights)`` counts the inputs in {0..v-1}^K whose exact-real-arithmetic
logits put the max token strictly above every other token (a tie counts as wrong). It shares
no code with the checker or the prover: circuits in Python ``Fraction``s, exp in ``flint.arb``.

Why it is exact. With query q = t_{K-1}, scores sigma_i = EQKE[q, t_i] + EQKP[q, i] (exact
rationals) and T_i(x) = EVOU[t_i, x] + PVOU[i, x] + EU[q, x], for every wrong token x

    den * (logit[m] - logit[x]) = sum_i exp(sigma_i / s) (T_i(m) - T_i(x)),   s = sqrt(d_head).

Group positions with equal sigma: the sum is sum_g exp(sigma_g / s) D_g with distinct sigma_g
and rational D_g. The sigma_g / s are distinct algebraic numbers, so by Lindemann-Weierstrass
the exp(sigma_g / s) are linearly independent over the algebraic numbers: the sum is zero iff
every D_g is zero (a tie), and otherwise arb at increasing precision certainly finds its sign.

Usage (weights: TransformerLens keys -> float32 numpy arrays)::

    from tests.oracle import exact_correct_count
    assert checker_count == exact_correct_count(weights)
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from fractions import Fraction

import flint
import numpy as np

Matrix = list[list[Fraction]]


def exact(a: np.ndarray) -> Matrix:
    """A float array as a matrix of exact Fractions (1-D arrays become one row)."""
    return [[Fraction(float(x)) for x in row] for row in np.atleast_2d(np.asarray(a, np.float64))]


def matmul(a: Matrix, b: Matrix) -> Matrix:
    cols = list(zip(*b, strict=True))
    return [[sum((x * y for x, y in zip(r, c, strict=True)), Fraction(0)) for c in cols] for r in a]


def plus_row(a: Matrix, row: Matrix) -> Matrix:
    return [[x + y for x, y in zip(r, row[0], strict=True)] for r in a]


def transpose(a: Matrix) -> Matrix:
    return [list(c) for c in zip(*a, strict=True)]


def exact_circuits(w: dict[str, np.ndarray]) -> dict[str, Matrix]:
    """EQKE, EQKP, EVOU, PVOU, EU as exact Fraction matrices (docs/format.md)."""
    E, P = exact(w["embed.W_E"]), exact(w["pos_embed.W_pos"])
    Q, K, V, O = (exact(w[f"blocks.0.attn.W_{n}"][0]) for n in "QKVO")
    bQ, bK, bV = (exact(w[f"blocks.0.attn.b_{n}"][0]) for n in "QKV")
    bO, U, bU = exact(w["blocks.0.attn.b_O"]), exact(w["unembed.W_U"]), exact(w["unembed.b_U"])
    Eq = plus_row(E, [P[-1]])
    query = plus_row(matmul(Eq, Q), bQ)
    return {
        "eqke": matmul(query, transpose(plus_row(matmul(E, K), bK))),
        "eqkp": matmul(query, transpose(matmul(P, K))),
        "evou": plus_row(matmul(plus_row(matmul(plus_row(matmul(E, V), bV), O), bO), U), bU),
        "pvou": matmul(matmul(matmul(P, V), O), U),
        "eu": matmul(Eq, U),
    }


def exact_sign(groups: dict[Fraction, Fraction], d_head: int) -> int:
    """The sign of sum_g exp(sigma_g / sqrt(d_head)) * D_g, exactly (groups: sigma_g -> D_g)."""
    terms = {sigma: d for sigma, d in groups.items() if d != 0}
    if not terms:
        return 0
    signs = {1 if d > 0 else -1 for d in terms.values()}
    if len(signs) == 1:
        return signs.pop()
    top = max(terms)
    old = flint.ctx.prec
    try:
        for prec in (64, 256, 1024, 4096, 16384):
            flint.ctx.prec = prec
            s = flint.arb(d_head).sqrt()
            total = flint.arb(0)
            for sigma, d in terms.items():
                arg = flint.arb(flint.fmpq((sigma - top).numerator, (sigma - top).denominator))
                rational = flint.arb(flint.fmpq(d.numerator, d.denominator))
                total += (arg / s).exp() * rational
            if total > 0:
                return 1
            if total < 0:
                return -1
    finally:
        flint.ctx.prec = old
    raise AssertionError("sign undecided at 16384 bits (Lindemann-Weierstrass says nonzero)")


def exact_correct_count(weights: dict[str, np.ndarray], allowance: np.ndarray | None = None) -> int:
    """Number of inputs whose max token's exact logit beats every other logit strictly; with a
    float32 allowance D [q, x], by more than D[q, m] + D[q, x] (the float32-execution count)."""
    c = exact_circuits(weights)
    v, k = weights["embed.W_E"].shape[0], weights["pos_embed.W_pos"].shape[0]
    d_head = weights["blocks.0.attn.W_Q"].shape[-1]
    return sum(
        all(margin_sign(c, seq, x, d_head, allowance) > 0 for x in range(v) if x != max(seq))
        for seq in itertools.product(range(v), repeat=k)
    )


def margin_sign(
    c: dict[str, Matrix], seq: tuple[int, ...], x: int, d_head: int, allowance=None
) -> int:
    """The exact sign of logit[max(seq)] - logit[x] (- D[q, m] - D[q, x]) on input ``seq``; as
    the softmax weights sum to 1, the offset is subtracted from every position's term."""
    q, m = seq[-1], max(seq)
    off = (
        0
        if allowance is None
        else Fraction(float(allowance[q, m])) + Fraction(float(allowance[q, x]))
    )
    groups: dict[Fraction, Fraction] = defaultdict(Fraction)
    for i, t in enumerate(seq):
        sigma = c["eqke"][q][t] + c["eqkp"][q][i]
        groups[sigma] += c["evou"][t][m] - c["evou"][t][x] + c["pvou"][i][m] - c["pvou"][i][x]
        groups[sigma] += c["eu"][q][m] - c["eu"][q][x] - off
    return exact_sign(groups, d_head)
