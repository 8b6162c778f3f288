"""Sub-cubic rule: 144 variants = 6 EU × 2 attention × 12 ε options, the paper's 100 and those
using ``norm_recursive``/``norm_subproduct`` (per-entry bounds |Err[q,t]| ≤ δ[q,t]) or
``peel_query+norm`` (rank-r EU peel); the proofs are in docs/strategies.md, "Sub-cubic".

A case (q, m, c) the certificate claims (lemmas.proved; gap g = gaps[q, m, c]) is accepted iff
the sound upper bound on max_{x≠m} logit[x] - logit[m] is certainly < 0: EQKE = approx + Err
(``attention_error``), attention to the max copies in [α_lo, α_hi] (``attention_bracket``), the
bound at both ends (``logit_bound``); then an exact ``count``. Float FLOPs are counted per
operation (arith.Counted).
"""

from __future__ import annotations

from functools import reduce
from math import comb

import flint
import numpy as np

from checker import arith, float32
from checker.arith import ball, down, down0, enclose_matrix, exact_matrix, exp_enclosure, up
from checker.circuits import Weights, broadcast_row
from checker.cost import ESTIMATES, Cost, Work, rule_cost
from checker.format import SCHEMA, Certificate, Config, FormatError, decode_field, validate
from checker.rules import RuleResult

EU_OPTIONS = ("mean_query+max_diff", "svd_query+max_diff", "max_diff", "max_diff_exact",
              "global_max_diff_exact", "peel_query+norm")  # fmt: skip
ATTENTION_OPTIONS = ("mean_query+diff", "drop_average_query_per_output_logit_reasoning")
EPS_CHAIN = {
    "svd": "pair", "max_diff": "pair", "mean+max_diff": "pair",
    "max_diff_subproduct": "quad", "mean+max_diff_subproduct": "quad",
    "max_diff_subproduct_recursive": "quad", "mean+max_diff_subproduct_recursive": "quad",
    "mean_recursive+max_diff_subproduct_recursive": "quad",
    "exact_EQKE+max_diff_exact": "none", "max_diff_exact": "pair",
    "norm_recursive": "quad", "norm_subproduct": "quad",
}  # fmt: skip
MAX_PEEL_RANK = 8  # EQKE factor peels
MAX_EU_RANK = 16  # the EU peel of peel_query+norm (and at most d_model / 2: low rank)

Mat = flint.fmpq_mat


def check(cert: Certificate, work: Work) -> RuleResult:
    """The rule; float FLOPs are counted per operation by ``Counted`` and added at the end."""
    start = arith.Counted.flops
    try:
        eu, att, eps_option = options(cert)
        v, k = cert.config.d_vocab, cert.config.n_ctx
        w = Weights(cert, work)
        wit, lem = cert.witnesses, cert.lemmas
        approx, eps, delta = attention_error(w, eps_option, wit, work)
        claimed_eps = decode_field(lem, "eps", "lemmas.", (v,), "float64")
        for q in range(v):
            if not eps[q] <= flint.fmpq(*float(claimed_eps[q]).as_integer_ratio()):
                return RuleResult(0, f"lemmas.eps[{q}]: the row-{q} EQKE error range exceeds it")
        gaps = decode_field(wit, "gaps", "witnesses.", (v, v, k), "int64")
        proved = decode_field(lem, "proved", "lemmas.", (v, v, k), "int64", top=1)
        abar = np.zeros((v, k))
        if att == "mean_query+diff":
            abar = decode_field(wit, "attention_mean", "witnesses.", (v, k), "float64")
        cases = np.nonzero(proved == 1)  # only the claimed cases need checking
        a_lo, a_hi = attention_bracket(w, approx, claimed_eps, gaps, cases, work, delta)
        bound = logit_bound(w, eu, wit, gaps, cases, abar, a_lo, a_hi, work)
        if (allow := float32.allowance(cert, w)) is not None:  # + D'[q, m] + max_x D'[q, x]
            bound = up(bound + up(allow[cases[0], cases[1]] + allow.max(axis=1)[cases[0]]))
        bad = np.flatnonzero(~valid_cases(v, k, gaps)[cases] | ~(bound < 0))
        if len(bad):
            q, m, c = (int(x[bad[0]]) for x in cases)
            return RuleResult(0, f"lemmas.proved[{q},{m},{c}]: case not proved (bound not < 0)")
        dims = unexplained_dims(eu, eps_option, v, cert.config.d_model)
        report = {"unexplained_dims": dims, "variant": f"subcubic:{eu}/{att}/{eps_option}"}
        return RuleResult(count(v, k, gaps, proved == 1), report=report)
    finally:
        work.add(arith.Counted.flops - start)


def options(cert: Certificate) -> tuple[str, str, str]:
    o, known = cert.options, {"eu": EU_OPTIONS, "attention": ATTENTION_OPTIONS, "eps": EPS_CHAIN}
    if set(o) != set(known):
        raise FormatError("strategy.options: expected exactly eu, attention, eps")
    for key, choices in known.items():
        if not (isinstance(o[key], str) and o[key] in choices):
            raise FormatError(f"strategy.options.{key}: unknown option")
    return o["eu"], o["attention"], o["eps"]


# --- exact matrices ---------------------------------------------------------------------------


def below(a: Mat, b: Mat) -> Mat:
    """[a; b]: b's rows under a's."""
    return Mat(a.nrows() + b.nrows(), a.ncols(), a.entries() + b.entries())


def chain(w: Weights, kind: str) -> list[Mat]:
    """EQKE = F1 F2 F3 F4 (quad) = (F1 F2)(F3 F4) (pair); biases ride on a column of ones."""
    ones = Mat(1, w.E.nrows(), [1] * w.E.nrows())
    eq1, e1 = (below(x.transpose(), ones) for x in (w.Eq, w.E))  # [E_q 1]^T, [E 1]^T
    quad = [eq1.transpose(), below(w.Q, w.bQ), below(w.K, w.bK).transpose(), e1]
    return [w.mul(quad[0], quad[1]), w.mul(quad[2], quad[3])] if kind == "pair" else quad


def low_rank(p: object, where: str, rows: int, cols: int, top: int = MAX_PEEL_RANK):
    """(X, Y^T) exact from a witness {"x": [rows, r], "y": [cols, r]}, 1 ≤ r ≤ top."""
    if not isinstance(p, dict) or set(p) != {"x", "y"}:
        raise FormatError(f"{where}: expected exactly x, y")
    validate(p["x"], SCHEMA["$defs"]["array"], where + ".x")  # the rank, before decoding
    r = p["x"]["shape"][-1] if p["x"]["shape"] else 0
    if not 1 <= r <= top:
        raise FormatError(f"{where}.x: shape must be [rows, r] with 1 <= r <= {top}")
    x = exact_matrix(decode_field(p, "x", where + ".", (rows, r), "float64"))
    return x, exact_matrix(decode_field(p, "y", where + ".", (cols, r), "float64")).transpose()


def peel(w: Weights, factors: list[Mat], peels: list) -> tuple[Mat, list[Mat]]:
    """(EQKE - Π F_i⊥, [F_i⊥]), exact by telescoping: Π F_i - Π F_i⊥ = Σ_i (F_1⊥ ⋯ F_{i-1}⊥ X_i)
    (Y_i^T F_{i+1} ⋯ F_n), each factor a matrix-vector chain, O(r (v d + d²)), then a v×v sum."""
    if not isinstance(peels, list) or len(peels) != len(factors):
        raise FormatError(f"witnesses.peels: expected a list of {len(factors)} objects")
    given = enumerate(zip(factors, peels, strict=True))
    pairs = [low_rank(p, f"witnesses.peels[{i}]", F.nrows(), F.ncols()) for i, (F, p) in given]
    xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
    perp = [F - w.mul(X, Y) for F, X, Y in zip(factors, xs, ys, strict=True)]
    w.work.add(sum(F.nrows() * F.ncols() for F in factors))
    approx = Mat(factors[0].nrows(), factors[-1].ncols())
    for i in range(len(factors)):
        left = reduce(lambda x, F: w.mul(F, x), reversed(perp[:i]), xs[i])
        right = reduce(w.mul, factors[i + 1 :], ys[i])
        approx += w.mul(left, right)
        w.work.add(approx.nrows() * approx.ncols())
    return approx, perp


# --- step 1: ε, the EQKE error's row range -------------------------------------------------


def row_ranges(m: Mat) -> list:
    return [max(row) - min(row) for row in m.tolist()]


def abs_dot(m: Mat, rho: list) -> list:
    """Σ_b |m[a,b]| rho[b] for each row a."""
    return [sum(abs(x) * r for x, r in zip(row, rho, strict=True)) for row in m.tolist()]


def range_bound(w: Weights, factors: list[Mat], mean_levels: range) -> list:
    """ρ[r] ≥ max_i - min_i of row r of Π factors, never forming the product (docs/strategies.md,
    Step 1): range(F G)[a] ≤ Σ_b |F[a,b]| range(G[b,:]), recursively, and at the mean levels also
    ≤ range(μ G) + Σ_b |F[a,b] - μ_b| range(G[b,:]) (μ the column mean of F); the min of both."""
    rho = row_ranges(factors[-1])
    for i in reversed(range(len(factors) - 1)):
        F = factors[i]
        w.work.add(3 * F.nrows() * F.ncols())
        bound = abs_dot(F, rho)
        if i in mean_levels:
            mu = Mat(1, F.nrows(), [1] * F.nrows()) * F / F.nrows()
            tail = reduce(w.mul, factors[i + 1 :], mu)
            spread = max(tail.entries()) - min(tail.entries())
            centred = abs_dot(F - broadcast_row(mu, F.nrows()), rho)
            bound = [min(b, spread + c) for b, c in zip(bound, centred, strict=True)]
            w.work.add(4 * F.nrows() * F.ncols())
        rho = bound
    return rho


def sigma_bound(w: Weights, b: Mat) -> flint.arb:
    """σ̄ = tr(G^8)^(1/16) ≥ σ1(b), G = b b^T ⪰ 0: tr(G^8) = Σ λ^8 ≥ λ_max^8 = σ1^16 and
    ‖G^4‖_F² = tr(G^8). Exact squarings, then arb roots."""
    g = w.mul(b, b.transpose())
    g2 = w.mul(g, g)
    g4 = w.mul(g2, g2)
    w.work.add(2 * g4.nrows() ** 2 + 4)
    return ball(sum(x * x for x in g4.entries())).sqrt().sqrt().sqrt().sqrt()  # the 16th root


def sigma_witnessed(w: Weights, g: Mat, claim: float) -> flint.arb:
    """σ1(g) ≤ claim if claim² I - g g^T is proved positive definite: a Cholesky factorisation in
    arb (balls contain the exact values at every step) with every pivot certainly > 0 (Sylvester).
    O(d³/3) after g g^T; a witness that fails falls back to ``sigma_bound`` (sound either way)."""
    h, n = w.mul(g, g.transpose()), g.nrows()
    c2 = flint.arb(claim) * flint.arb(claim)
    a = [[(c2 if i == j else 0) - ball(h[i, j]) for j in range(n)] for i in range(n)]
    w.work.add(n**3 // 3 + 2 * n * n)
    for j in range(n):
        for i in range(j, n):
            a[i][j] -= sum((a[i][p] * a[j][p] for p in range(j)), flint.arb(0))
            if i == j and not a[j][j] > 0:
                return sigma_bound(w, g)
            a[i][j] = a[j][j].sqrt() if i == j else a[i][j] / a[j][j]
    return flint.arb(claim)


def row_norms(w: Weights, a: Mat) -> list:
    """Arb balls ⊇ the Euclidean norm of each row of a."""
    w.work.add(2 * a.nrows() * a.ncols())
    return [ball(sum(x * x for x in row)).sqrt() for row in a.tolist()]


def spectral_eps(w: Weights, a: Mat, b: Mat) -> list:
    """ε[q] = √2 ‖A⊥[q,:]‖ σ̄(B⊥) ≥ max_ij |A⊥[q,:] B⊥ (e_i - e_j)| (Cauchy–Schwarz)."""
    sigma, root2 = sigma_bound(w, b), flint.arb(2).sqrt()
    return [fmpq_at_least(arith.ball_bounds(root2 * n * sigma)[1]) for n in row_norms(w, a)]


def fmpq_at_least(x: float) -> flint.fmpq:
    """x exactly, or 2^1100 (above every float) if x is not finite."""
    return flint.fmpq(*x.as_integer_ratio()) if np.isfinite(x) else flint.fmpq(2) ** 1100


def norm_delta(w: Weights, p: list[Mat], subproduct: bool, wit: dict) -> np.ndarray:
    """δ[q,t] ≥ |Err[q,t]|, Err = F1⊥ G F4⊥, G = F2⊥ F3⊥, by Cauchy–Schwarz: ‖F1⊥[q]‖ σ1(G)
    ‖F4⊥[:,t]‖ (norm_recursive; σ1(G) ≤ the witness σ by ``sigma_witnessed``) or ‖(F1⊥ G)[q]‖
    ‖F4⊥[:,t]‖ (norm_subproduct); a row factor times a column factor, floats rounded up."""
    g = w.mul(p[1], p[2])
    cols = row_norms(w, p[3].transpose())
    if subproduct:
        rows = row_norms(w, w.mul(p[0], g))
    else:
        sigma = decode_field(wit, "sigma", "witnesses.", (1,), "float64")[0]
        if not (np.isfinite(sigma) and sigma > 0):
            raise FormatError("witnesses.sigma: must be a positive finite number")
        sigma = sigma_witnessed(w, g, sigma)
        rows = [x * sigma for x in row_norms(w, p[0])]
    r, c = arith.upper_floats(rows), arith.upper_floats(cols)
    return np.nan_to_num(up(r[:, None] * c[None, :]), nan=np.inf)  # inf · 0: no information


def attention_error(w: Weights, option: str, wit: dict, work: Work):
    """(approx [v, v] exact, ε [v], δ [v, v] or None): |Err[q,i] - Err[q,j]| ≤ ε[q] and, for the
    norm options, |Err[q,t]| ≤ δ[q,t] (then ε[q] = 2 max_t δ[q,t]), Err = EQKE - approx."""
    kind = EPS_CHAIN[option]
    factors = chain(w, "pair" if kind == "none" else kind)
    if kind == "none":
        return w.mul(*factors), [flint.fmpq(0)] * w.E.nrows(), None
    approx, perp = peel(w, factors, wit.get("peels", []))
    if option.startswith("norm_"):
        delta = norm_delta(w, perp, option == "norm_subproduct", wit)
        return approx, [fmpq_at_least(float(up(2 * x))) for x in delta.max(1)], delta
    if option == "svd":
        return approx, spectral_eps(w, *perp), None
    if option == "max_diff_exact":
        return approx, row_ranges(w.mul(*perp)), None
    mean = range(len(perp) if option.startswith("mean_recursive") else option.startswith("mean"))
    if option.endswith("subproduct"):
        splits = [[reduce(w.mul, perp[:i]), reduce(w.mul, perp[i:])] for i in (1, 2, 3)]
        bounds = [range_bound(w, f, mean) for f in splits]
        return approx, [min(b) for b in zip(*bounds, strict=True)], None
    return approx, range_bound(w, perp, mean), None


# --- step 2: the attention bracket ---------------------------------------------------------


@np.errstate(all="ignore")
def positional_odds(w: Weights, inv_s: flint.arb, work: Work):
    """[q, c, same]: bounds on Σ_{non-max slots} e^{π/s} / Σ_{max slots} e^{π/s} over every
    placement (same = q is the max). Non-query slots are interchangeable: sums of the c largest
    upper bounds / n smallest lower bounds bound every placement. Query slot: π = 0."""
    pk = w.mul(w.P, w.K).transpose()  # EQKP = E_q (Q (P K)^T) + b_Q (P K)^T: the cheap order
    eqkp = w.mul(w.Eq, w.mul(w.Q, pk)) + broadcast_row(w.mul(w.bQ, pk), w.Eq.nrows())
    v, k, e = eqkp.nrows(), eqkp.ncols(), eqkp.entries()
    lo, hi = exp_enclosure(e, [e[i * k + k - 1] for i in range(v)], k, inv_s, work)
    bot = arith.prefix_sums(np.sort(lo[:, :-1], axis=1), down0)
    top = arith.prefix_sums(np.sort(hi[:, :-1], axis=1)[:, ::-1], up)
    odds_hi, odds_lo = np.full((v, k, 2), np.inf), np.zeros((v, k, 2))
    c = np.arange(k)
    odds_hi[:, :, 1] = up(top[:, c] / down0(lo[:, -1:] + bot[:, k - 1 - c]))
    odds_lo[:, :, 1] = down0(bot[:, c] / up(hi[:, -1:] + top[:, k - 1 - c]))
    c = np.arange(1, k)
    odds_hi[:, 1:, 0] = up(up(hi[:, -1:] + top[:, c - 1]) / bot[:, k - c])
    odds_lo[:, 1:, 0] = down0(down0(lo[:, -1:] + bot[:, c - 1]) / top[:, k - c])
    return odds_hi, odds_lo


def attention_bracket(w: Weights, approx: Mat, eps, gaps, cases, work: Work, delta=None):
    """α_lo ≤ α ≤ α_hi, α = total attention on copies of m, for every input of each case (q, m, c)
    in ``cases`` (three index arrays); docs/strategies.md, Step 2 and the score box δ. α = 1/(1 +
    N/M), N/M = Σ_non e^{(EQKE[q,t]-EQKE[q,m])/s} e^{π/s} / Σ_max e^{π/s}; exp is monotone, so
    prefix max/min of e^{approx/s} (rows shifted by their exact max: no overflow), widened by
    e^{±ε/s} or by δ, bound the token factor."""
    v = gaps.shape[1]
    inv_s = 1 / flint.arb(w.Q.ncols()).sqrt()
    e = approx.entries()
    shifts = [max(e[i * v : (i + 1) * v]) for i in range(v)]
    if delta is None:
        ex_lo, ex_hi = exp_enclosure(e, shifts, v, inv_s, work)
        ee_hi = exp_enclosure([fmpq_at_least(float(x)) for x in eps], [0] * v, 1, inv_s, work)[1]
    else:  # ex_hi ≥ e^{(approx + δ)/s}, ex_lo ≤ e^{(approx - δ)/s} (shifted)
        lo, hi = enclose_matrix(approx)
        ex_hi = exp_enclosure(up(hi + delta).ravel().tolist(), shifts, v, inv_s, work)[1]
        ex_lo = exp_enclosure(down(lo - delta).ravel().tolist(), shifts, v, inv_s, work)[0]
    pos_hi, pos_lo = positional_odds(w, inv_s, work)
    q, m, c = cases
    j = np.clip(m - gaps[cases], 0, v - 1)
    same = (q == m).astype(int)
    pmax = np.maximum.accumulate(ex_hi, axis=1)[q, j]
    pmin = np.minimum.accumulate(ex_lo, axis=1)[q, j]
    with np.errstate(all="ignore"):
        odds_hi = up(up(pos_hi[q, c, same] * pmax) / ex_lo[q, m])
        odds_lo = down0(down0(pos_lo[q, c, same] * pmin) / ex_hi[q, m])
        if delta is None:  # the row's ε factor e^{ε/s} (the per-entry box needs none)
            odds_hi, odds_lo = up(odds_hi * ee_hi[q, 0]), down0(odds_lo / ee_hi[q, 0])
        a_lo, a_hi = down(1 / up(1 + odds_hi)), up(1 / down(1 + odds_lo))
    all_max = (q == m) & (c == 0)
    a_lo = np.where(all_max, 1.0, np.clip(np.nan_to_num(a_lo, nan=0.0), 0.0, 1.0))
    return a_lo, np.where(all_max, 1.0, np.clip(np.nan_to_num(a_hi, nan=1.0), 0.0, 1.0))


# --- steps 3-4: logits ----------------------------------------------------------------------


def direct_path(w: Weights, eu: str, wit: dict, work: Work) -> tuple[np.ndarray, np.ndarray]:
    """(μ_hi - μ_lo[m] as [m, x], ΔEU [q, m, 1]): EU[q,x] - EU[q,m] ≤ μ[x] - μ[m] + ΔEU.

    Centre e (mean / witness / 0): EU[q,x] - EU[q,m] = (eU)[x] - (eU)[m] + (E_q[q] - e)·(U[:,x]
    - U[:,m]) and |U[j,x] - U[j,m]| ≤ range_j(U). Exact options: μ = 0 and ΔEU from EU itself.
    peel_query+norm (docs/strategies.md): C = E_q - e = C P + R exactly with a witness P = X Y^T
    of rank r ≤ min(16, d/2), L = (C X)(Y^T U) (O(r v²)), u the mean column of U; ΔEU[q,m] =
    max_x L[q,x] - L[q,m] + min(Σ_j |R[q,j]| range_j(U), ‖R[q]‖ (max_x ‖U[:,x] - u‖ + ‖U[:,m] - u‖))
    by Hölder, Cauchy–Schwarz and the triangle inequality."""
    v, d = w.Eq.nrows(), w.Eq.ncols()
    if eu.endswith("exact"):
        lo, hi = enclose_matrix(w.mul(w.Eq, w.U))
        row = eu == "max_diff_exact"  # a bound per query row, else one for all
        delta = up((hi.max(1)[:, None] if row else hi.max()) - (lo if row else lo.min()))
        return np.zeros((v, v)), np.broadcast_to(delta, (v, v))[:, :, None]
    centre = Mat(1, d)
    if eu.startswith(("mean", "peel")):
        centre = Mat(1, v, [1] * v) * w.Eq / v
    elif eu.startswith("svd"):
        centre = exact_matrix(decode_field(wit, "eu_centre", "witnesses.", (d,), "float64"))
    mu_lo, mu_hi = enclose_matrix(w.mul(centre, w.U))
    spread = row_ranges(w.U)
    resid = w.Eq - broadcast_row(centre, v)
    if eu.startswith("peel"):
        rank = max(1, min(MAX_EU_RANK, d // 2))
        x, yt = low_rank(wit.get("eu_peel"), "witnesses.eu_peel", d, d, rank)
        cx = w.mul(resid, x)
        l_lo, l_hi = enclose_matrix(w.mul(cx, w.mul(yt, w.U)))
        low = up(l_hi.max(1)[:, None] - l_lo)
        resid = resid - w.mul(cx, yt)
        work.add(v * d)
        ut = w.U.transpose()
        un = row_norms(w, ut - broadcast_row(w.mul(Mat(1, v, [1] * v), ut) / v, v))
        un, rn = arith.upper_floats(un), arith.upper_floats(row_norms(w, resid))
    work.add(4 * v * d)
    delta = enclose_matrix(Mat(v, 1, abs_dot(resid, spread)))[1]  # ≥ Σ_j |resid[q,j]| spread_j
    if eu.startswith("peel"):
        delta = up(low + np.minimum(delta, up(rn[:, None] * up(un.max() + un[None, :]))))
    return up(mu_hi - mu_lo[0][:, None]), np.broadcast_to(delta[:, :, None], (v, v, 1))


@np.errstate(all="ignore")
def logit_bound(w, eu, wit, gaps, cases, abar, a_lo, a_hi, work: Work) -> np.ndarray:
    """Upper bound on max_{x≠m} logit[x] - logit[m] for every input of each case in cases
    (docs/strategies.md, Steps 3-4 and fixes (a), (b)): L(α) := max_x(M[x] + α R[x]) +
    (1 - α) W + ΔEU, M = μ_c + PVOU*, R[x] = EVOU[m,x] - EVOU[m,m], is convex in α, so L ≤
    max(L(α_lo), L(α_hi)); max_x(M + aR) ≤ f(ā) + max((a - ā) R_max, (a - ā) R_min)."""
    v, k = abar.shape
    vou = w.mul(w.mul(w.V, w.O), w.U)
    bias = w.mul(w.mul(w.bV, w.O) + w.bO, w.U) + w.bU
    ev_lo, ev_hi = enclose_matrix(w.add_row(w.mul(w.E, vou), bias))
    pv_lo, pv_hi = enclose_matrix(w.mul(w.P, vou))
    mu, delta_eu = direct_path(w, eu, wit, work)
    diag = np.eye(v, dtype=bool)
    pstar = np.max(up(pv_hi[:, None, :] - pv_lo[:, :, None]), axis=0)
    M = np.where(diag, -np.inf, up(mu + pstar))
    r = (down(ev_lo - np.diag(ev_hi)[:, None]), up(ev_hi - np.diag(ev_lo)[:, None]))
    r_hi = np.where(diag, -np.inf, r[1]).max(1)  # ≥ R_max (≥ R_min)
    r_lo = np.where(diag, np.inf, r[0]).min(1)  # ≤ R_min (≤ R_max)
    q, m, c = cases
    fm, fc = np.divmod(np.unique(m * k + c), k)  # the claimed (m, c): f(ā) there only
    ab = abar[fm, fc][:, None]
    f = np.full((v, k), np.nan)
    f[fm, fc] = up(M[fm] + up(np.where(ab >= 0, r[1][fm], r[0][fm]) * ab)).max(1)  # ā R[x]
    wpre = np.maximum.accumulate(up(ev_hi.max(1)[:, None] - ev_lo), axis=0).T  # [m, j]
    wt, ab = wpre[m, np.clip(m - gaps[cases], 0, v - 1)], abar[m, c]

    hi_pos, lo_pos, base = (r_hi >= 0)[m], (r_lo >= 0)[m], up(f[m, c] + delta_eu[q, m, 0])

    def at(a: np.ndarray) -> np.ndarray:
        # (a - ā) R, R in [r_lo, r_hi], a - ā in [d0, d1]: max over d of d R at d1 if R ≥ 0
        d = a - ab
        d0, d1 = down(d), up(d)
        corr = np.maximum(np.where(hi_pos, d1, d0) * r_hi[m], np.where(lo_pos, d1, d0) * r_lo[m])
        t = 1 - a  # (1 - a) W ≤ (1 - a) wt as 1 - a ≥ 0, W ≤ wt; then linear in 1 - a
        return up(up(base + up(corr)) + up(np.where(wt >= 0, up(t), down(t)) * wt))

    return np.maximum(at(a_lo), at(a_hi))


# --- step 5: the count ----------------------------------------------------------------------


def valid_cases(v: int, k: int, gaps: np.ndarray) -> np.ndarray:
    q, m, c = np.ogrid[:v, :v, :k]
    same = (q == m) & ((c == 0) | (m - gaps >= 0))
    return (gaps >= 1) & (same | ((q < m) & (c >= 1) & (q <= m - gaps)))


def count(v: int, k: int, gaps: np.ndarray, accepted: np.ndarray) -> int:
    """Σ over accepted cases of C(k-1, c') (m - g + 1)^c' (exact). The cases are disjoint: an
    input determines q, m and its number of non-max tokens."""
    total = 0
    for q, m, c in np.argwhere(accepted):
        cp = int(c) - int(q < m)
        total += comb(k - 1, cp) * (int(m) - int(gaps[q, m, c]) + 1) ** cp
    return total


def unexplained_dims(eu: str, eps: str, v: int, d: int) -> int:
    """EU term + ε term + v (PVOU) + v² (EVOU): docs/strategies.md, last section."""
    eu_term = {"max_diff": v * d + 2, "max_diff_exact": 2 * v, "global_max_diff_exact": 2}
    eu_term["peel_query+norm"] = 2 * v * d + 2 * v  # C P U's factors; ‖R[q]‖ and ‖U[:,x] - u‖
    eps_term = {"svd": 2 * v, "exact_EQKE+max_diff_exact": v * v, "max_diff_exact": 4 * v}
    eps_term |= {"norm_recursive": 2 * v + 1, "norm_subproduct": 2 * v + 1}  # ‖·‖ rows, cols, σ
    mean = v if eps.startswith("mean") else 0
    return eu_term.get(eu, v + v * d + 2) + eps_term.get(eps, 2 * v + 2 * d + mean) + v + v * v


def cost(c: Config) -> Cost:
    """Exact circuits and EQKE factors; about 30 float tables [v, v, K]."""
    v, k, d, h = c.d_vocab, c.n_ctx, c.d_model, c.d_head
    return rule_cost(c, 4 * v * v + 8 * v * (d + h), 30 * k * v * v, 100 * k * v * v, v * v + k * v)


ESTIMATES["subcubic"] = cost
