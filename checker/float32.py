"""The float32 allowance D: how far float32 execution can move each logit (docs/float32.md has
the execution model and the proof of every stage, after Higham's gamma_n). For every input with
query token q and every x, with V_i[x] = ((x_i W_V + b_V) W_O W_U)[x] over all (token, position)
i, H = max |V - mid-range|, Vmax = max |V|, rho_q the softmax weights' relative change from score
errors and exp (exp(2 eps_q)(1 + e)/(1 - e) - 1), phi (+ u for underflow) the normalisation's
rounding and eps_l the value, output and unembedding paths' rounding:

    |float32 logit[x] - exact logit[x]| <= D[q, x] = rho_q H[x] + phi Vmax[x] + eps_l[x].

Magnitudes are exact rationals, padded by LAM = 2^-100 to absorb every underflow term (at most
2^13 products of 2^-150 each, times a coefficient >= u); rho uses arb. Overflow is outside the
error model: a model is refused unless every magnitude bound stays under OMEGA.
"""

from __future__ import annotations

import functools

import flint
import numpy as np

from checker import arith
from checker.arith import ball_bounds
from checker.circuits import Weights, broadcast_row
from checker.cost import ESTIMATES, EXACT_RATE, Cost
from checker.format import Certificate, Config
from checker.rules import ClaimFailed

U = flint.fmpq(1, 2**24)  # binary32 unit roundoff
EXP_ULPS = 32  # above every documented exp error of torch's kernels (docs/float32.md)
LAM = flint.fmpq(1, 2**100)
# Every float32 intermediate is within a factor (1 + c1)(1 + gamma_4097)(1 + phi) < 2 of one of
# the magnitudes ``finite`` checks: below 2^127 < 2^128 (1 - u / 2), so none rounds to inf.
OMEGA = flint.fmpq(2**126)


gamma = functools.partial(arith.gamma, u=U)  # binary32's gamma_n, an exact fmpq


def derived(w: Weights, cert: Certificate) -> np.ndarray:
    """D [q, x] as float64 upper bounds (module docstring)."""
    cfg, u = cert.config, U
    v, k, d, dh = cfg.d_vocab, cfg.n_ctx, cfg.d_model, cfg.d_head
    entries = [w.E[t, j] + w.P[i, j] for t in range(v) for i in range(k) for j in range(d)]
    x = flint.fmpq_mat(v * k, d, entries)  # the residual stream, row t k + i
    query = w.Eq  # the residual at the query position
    c1 = u + (1 + u) * gamma(d + 1)  # q, k, v: the residual's rounding, then a (d+1)-term dot
    triples = ((query, w.Q, w.bQ), (x, w.K, w.bK), (x, w.V, w.bV))
    bounds = (w.mul(absm(a), absm(m)) + broadcast_row(absm(b), a.nrows()) for a, m, b in triples)
    aq, ak, av = (padded(b) for b in bounds)
    r = w.mul(aq, ak.transpose())  # [q, (t, i)]: >= |q . k| and its abs-sum
    finite(absm(x), aq, ak, av, 2 * r)  # 2 r: the score minus the max score
    c2 = (1 + gamma(dh)) * (1 + c1) ** 2 - 1  # raw score q . k from rounded q, k
    c3 = c2 * (1 + gamma(3)) + gamma(3)  # then the 1/sqrt(d_head) scaling
    e_exp = 2 * EXP_ULPS * u
    values = w.mul(w.mul(w.mul(x, w.V) + broadcast_row(w.bV, v * k), w.O), w.U)  # V_i[x], exact
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
    """The derivation's exact rationals at their peak ([vK, d], [vK, d_h], [v, vK]) and products."""
    v, k, d, h = c.d_vocab, c.n_ctx, c.d_model, c.d_head
    entries = 4 * v * k * d + 8 * v * k * h + 2 * v * v * k
    return Cost(128 * entries, (3 * v * k * d * h + v * v * k * (h + d)) / EXACT_RATE)


ESTIMATES["float32"] = cost


def finite(*bounds: flint.fmpq_mat) -> None:
    """Refuse a model whose float32 execution might overflow (inf or NaN: see OMEGA)."""
    if any(e >= OMEGA for m in bounds for e in m.entries()):
        why = "float32 execution may overflow (a magnitude bound reaches 2^126), outside the model"
        raise ClaimFailed(f"claim.float32_allowance: {why}")


def absm(m: flint.fmpq_mat) -> flint.fmpq_mat:
    return flint.fmpq_mat(m.nrows(), m.ncols(), [abs(e) for e in m.entries()])


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
        raise ClaimFailed(f"claim.float32_allowance[{q},{x}]: below the derived {mine[q, x]:.17g}")
    w.float32_checked = True  # hybrid asks twice (cubic and brute tables): derive once
    return cert.allowance
