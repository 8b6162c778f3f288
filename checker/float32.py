"""The float32 allowance: how far float32 execution can move each logit (docs/float32.md).

Execution model: the forward pass of docs/format.md in IEEE binary32, round to nearest, every
sum and dot product in any order, with or without FMA, subnormals kept; 1/sqrt(d_head) applied
with at most 3 roundings; softmax with max subtraction, exp within EXP_ULPS ulps, the
normalisation e_i / Z within 2 roundings. Then for every input with query token q and every x,

    |float32 logit[x] - exact logit[x]| <= D[q, x] = rho_q H[x] + phi Vmax[x] + eps_l[x],

where V_i[x] = ((x_i W_V + b_V) W_O W_U)[x] over every (token, position) i, H = max |V - c|
around the mid-range c, Vmax = max |V|; rho_q bounds the relative change of the softmax weights
from score errors and exp (exp(2 eps_q) (1 + e)/(1 - e) - 1); phi (+ u for underflow) bounds
the normalisation's (sum and division) and eps_l the rounding of the value, output and
unembedding paths.
A float32 claim counts an input only if logit[m] - logit[x] > D'[q, m] + D'[q, x] for all x != m
(D' the certificate's allowance, checked >= D): then every allowed float32 execution ranks m first
strictly. Each stage's bound is derived in docs/float32.md (Higham's gamma_n, Lemma 3.1).
Magnitudes are exact rationals; rho uses arb. Every abs-sum is padded by LAM = 2^-100, which
covers each underflow term (at most 2^13 products of 2^-150 each) with a coefficient >= u.
Overflow is outside this error model, so a model is refused (ClaimFailed) unless every bound
below on a float32 intermediate's magnitude (each partial sum included) stays under OMEGA.
"""

from __future__ import annotations

from fractions import Fraction

import flint
import numpy as np

from checker.arith import ball_bounds
from checker.circuits import Weights
from checker.cost import ESTIMATES, EXACT_RATE, Cost
from checker.format import Certificate, Config
from checker.rules import ClaimFailed

U = Fraction(1, 2**24)  # binary32 unit roundoff
EXP_ULPS = 4  # twice the largest documented exp error of torch's kernels (docs/float32.md)
LAM = flint.fmpq(1, 2**100)
# Every float32 intermediate is within a factor (1 + c1)(1 + gamma_4097)(1 + phi) < 2 of one of
# the magnitudes ``finite`` checks: below 2^127 < 2^128 (1 - u / 2), so none rounds to inf.
OMEGA = flint.fmpq(2**126)


def gamma(n: int) -> flint.fmpq:
    """gamma_n = n u / (1 - n u) for binary32 (n u < 1 for every n the schema allows)."""
    return flint.fmpq(n * U.numerator, U.denominator - n * U.numerator)


def derived(w: Weights, cert: Certificate) -> np.ndarray:
    """D [q, x] as float64 upper bounds (module docstring)."""
    cfg, u = cert.config, flint.fmpq(1, 2**24)
    v, k, d, dh = cfg.d_vocab, cfg.n_ctx, cfg.d_model, cfg.d_head
    entries = [w.E[t, j] + w.P[i, j] for t in range(v) for i in range(k) for j in range(d)]
    x = flint.fmpq_mat(v * k, d, entries)  # the residual stream, row t k + i
    query = flint.fmpq_mat(v, d, [x[t * k + k - 1, j] for t in range(v) for j in range(d)])
    c1 = u + (1 + u) * gamma(d + 1)  # q, k, v: the residual's rounding, then a (d+1)-term dot
    triples = ((query, w.Q, w.bQ), (x, w.K, w.bK), (x, w.V, w.bV))
    aq, ak, av = (padded(w.mul(absm(a), absm(m)) + rows(absm(b), a.nrows())) for a, m, b in triples)
    r = w.mul(aq, ak.transpose())  # [q, (t, i)]: >= |q . k| and its abs-sum
    finite(absm(x), aq, ak, av, 2 * r)  # 2 r: the score minus the max score
    c2 = (1 + gamma(dh)) * (1 + c1) ** 2 - 1  # raw score q . k from rounded q, k
    c3 = c2 * (1 + gamma(3)) + gamma(3)  # then the 1/sqrt(d_head) scaling
    e_exp = 2 * EXP_ULPS * u
    values = w.mul(w.mul(w.mul(x, w.V) + rows(w.bV, v * k), w.O), w.U)  # V_i[x], exact
    cols = [[values[i, j] for i in range(v * k)] for j in range(v)]
    h = [(max(col) - min(col)) / 2 for col in cols]
    vmax = [max(max(col), -min(col)) for col in cols]
    phi = (1 + gamma(2)) / (1 - gamma(k - 1)) - 1 + u  # + u: every weight's underflow
    az = flint.fmpq_mat(1, dh, [max(av[i, j] for i in range(v * k)) for j in range(dh)])
    ez = (1 + phi) * (c1 + gamma(k) * (1 + c1)) * az  # z = sum_i a_i v_i
    z = (1 + phi) * az + ez
    eo = padded(ez * absm(w.O) + gamma(dh + 1) * (z * absm(w.O) + absm(w.bO)))
    o = (1 + phi) * az * absm(w.O) + absm(w.bO) + eo  # >= |attention output|
    xq = flint.fmpq_mat(1, d, [max(abs(query[t, j]) for t in range(v)) for j in range(d)])
    eres = u * xq + eo + u * ((1 + u) * xq + o)  # residual add
    res = (1 + u) * ((1 + u) * xq + o)
    el = padded(eres * absm(w.U) + gamma(d + 1) * (res * absm(w.U) + absm(w.bU)))
    finite(z, z * absm(w.O) + absm(w.bO), res, res * absm(w.U) + absm(w.bU))
    out = np.empty((v, v))
    for q in range(v):
        rq = max(r[q, i] for i in range(v * k)) + 2 * LAM
        eps = flint.arb(c3 + 2 * u * (1 + c3)) * flint.arb(rq) / flint.arb(dh).sqrt()
        rho = (2 * eps).exp() * flint.arb(1 + e_exp) / flint.arb(1 - e_exp) - 1
        for j in range(v):
            hi = rho * flint.arb(h[j]) + flint.arb(phi * vmax[j] + el[0, j])
            out[q, j] = ball_bounds(hi)[1]
    return out


def cost(c: Config) -> Cost:
    """The derivation's exact rationals at their peak (the residual x, its copies and V's
    intermediate [vK, d], the magnitudes [vK, d_h], the scores and values [v, vK]) and its
    exact products (q, k, v; the scores; V)."""
    v, k, d, h = c.d_vocab, c.n_ctx, c.d_model, c.d_head
    entries = 4 * v * k * d + 8 * v * k * h + 2 * v * v * k
    return Cost(128 * entries, (3 * v * k * d * h + v * v * k * (h + d)) / EXACT_RATE)


ESTIMATES["float32"] = cost


def finite(*bounds: flint.fmpq_mat) -> None:
    """Refuse a model whose float32 execution might overflow (inf or NaN: see OMEGA)."""
    if any(e >= OMEGA for m in bounds for e in m.entries()):
        raise ClaimFailed(
            "claim.float32_allowance: float32 execution may overflow (a magnitude "
            "bound reaches 2^126), which the float32 error model excludes"
        )


def absm(m: flint.fmpq_mat) -> flint.fmpq_mat:
    return flint.fmpq_mat(m.nrows(), m.ncols(), [abs(e) for e in m.entries()])


def rows(row: flint.fmpq_mat, n: int) -> flint.fmpq_mat:
    return flint.fmpq_mat(n, row.ncols(), list(row.entries()) * n)


def padded(m: flint.fmpq_mat) -> flint.fmpq_mat:
    return flint.fmpq_mat(m.nrows(), m.ncols(), [e + LAM for e in m.entries()])


def allowance(cert: Certificate, w: Weights) -> np.ndarray | None:
    """The certificate's allowance D' [q, x] if it states float32 semantics (None if exact),
    after checking D' >= D entrywise (a lowered allowance would overstate the claim)."""
    if cert.allowance is None or getattr(w, "float32_checked", False):
        return cert.allowance
    mine = derived(w, cert)
    w.work.add(mine.size)
    low = np.argwhere(~(cert.allowance >= mine))
    if len(low):
        q, x = (int(i) for i in low[0])
        raise ClaimFailed(
            f"claim.float32_allowance[{q},{x}]: below the derived {float(mine[q, x])!r}"
        )
    w.float32_checked = True  # hybrid asks twice (cubic and brute tables): derive once
    return cert.allowance
