"""Sub-cubic rule: 100 variants = 5 EU × 2 attention × 10 ε options (docs/strategies.md).

Cases (q, m, c) with gap g = gaps[q, m, c]: query q ≤ m, max m, c non-max tokens (the query
counted when q < m), all non-max tokens ≤ m - g. A case the certificate claims (lemmas.proved)
is accepted iff the sound upper bound on max_{x≠m} logit[x] - logit[m] is certainly < 0.

1. EQKE = Π F_i exactly (quad chain [E_q 1]·[Q; b_Q]·[K; b_K]^T·[E 1]^T, or its pair grouping).
   Witness peels give F_i⊥ = F_i - X_i Y_i^T; telescoping makes EQKE - Π F_i⊥ a sum of cheap
   exact rank-r terms (the approximation). ε[q] bounds the row range of Π F_i⊥ (never formed
   except in max_diff_exact), computed exactly (or in arb for svd) and checked ≤ lemmas.eps.
2. Attention to the max copies lies in [α_lo, α_hi] (exp in arb, the rest outward-rounded).
3. The bound is convex in that attention, so both ends are evaluated; mean+diff uses the
   sign-aware correction max((a - ā) R_max, (a - ā) R_min).
4. The count is exact: C(k-1, c') (m - g + 1)^c' inputs per accepted case.
"""

from __future__ import annotations

from math import comb

import flint
import numpy as np

from checker.arith import (
    ball,
    ball_bounds,
    down,
    down0,
    enclose_matrix,
    exact_matrix,
    iv_mul,
    nearest_float,
    up,
)
from checker.circuits import Weights, broadcast_row
from checker.cost import ESTIMATES, Cost, Work, rule_cost
from checker.format import SCHEMA, Certificate, Config, FormatError, decode_array, validate
from checker.rules import RuleResult

EU_OPTIONS = (
    "mean_query+max_diff",
    "svd_query+max_diff",
    "max_diff",
    "max_diff_exact",
    "global_max_diff_exact",
)
ATTENTION_OPTIONS = ("mean_query+diff", "drop_average_query_per_output_logit_reasoning")
EPS_CHAIN = {
    "svd": "pair", "max_diff": "pair", "mean+max_diff": "pair",
    "max_diff_subproduct": "quad", "mean+max_diff_subproduct": "quad",
    "max_diff_subproduct_recursive": "quad", "mean+max_diff_subproduct_recursive": "quad",
    "mean_recursive+max_diff_subproduct_recursive": "quad",
    "exact_EQKE+max_diff_exact": "none", "max_diff_exact": "pair",
}  # fmt: skip
MAX_PEEL_RANK = 8

Mat = flint.fmpq_mat


def check(cert: Certificate, work: Work) -> RuleResult:
    eu, att, eps_option = options(cert)
    v, k = cert.config.d_vocab, cert.config.n_ctx
    w = Weights(cert, work)
    wit, lem = cert.witnesses, cert.lemmas
    approx, eps = attention_error(w, eps_option, wit.get("peels", []), work)
    claimed_eps = array(lem, "eps", (v,), "lemmas.")
    for q in range(v):
        if not eps[q] <= flint.fmpq(*float(claimed_eps[q]).as_integer_ratio()):
            return RuleResult(0, f"lemmas.eps[{q}]: the row-{q} EQKE error range exceeds it")
    gaps = array(wit, "gaps", (v, v, k), dtype="int64")
    proved = array(lem, "proved", (v, v, k), "lemmas.", dtype="int64")
    if not np.all((proved == 0) | (proved == 1)):
        raise FormatError("lemmas.proved: entries must be 0 or 1")
    abar = np.zeros((v, k))
    if att == "mean_query+diff":
        abar = array(wit, "attention_mean", (v, k))
    a_lo, a_hi = attention_bracket(w, approx, claimed_eps, gaps, work)
    bound = logit_bound(w, eu, wit, gaps, abar, a_lo, a_hi, work)
    ok = valid_cases(v, k, gaps) & (bound < 0)
    bad = np.argwhere((proved == 1) & ~ok)
    if len(bad):
        q, m, c = bad[0]
        return RuleResult(0, f"lemmas.proved[{q},{m},{c}]: case not proved (bound not < 0)")
    report = {
        "unexplained_dims": unexplained_dims(eu, eps_option, v, cert.config.d_model),
        "variant": f"subcubic:{eu}/{att}/{eps_option}",
    }
    return RuleResult(count(v, k, gaps, proved == 1), report=report)


def options(cert: Certificate) -> tuple[str, str, str]:
    o = cert.options
    if set(o) != {"eu", "attention", "eps"} or not all(isinstance(x, str) for x in o.values()):
        raise FormatError("strategy.options: expected exactly eu, attention, eps (strings)")
    if o["eu"] not in EU_OPTIONS or o["attention"] not in ATTENTION_OPTIONS:
        raise FormatError("strategy.options: unknown eu or attention option")
    if o["eps"] not in EPS_CHAIN:
        raise FormatError("strategy.options.eps: unknown option")
    return o["eu"], o["attention"], o["eps"]


def array(obj: dict, key: str, shape: tuple, where: str = "witnesses.", dtype: str = "float64"):
    if key not in obj:
        raise FormatError(f"missing field {where + key!r}")
    a = decode_array(obj[key], where + key, shape)
    if a.dtype != np.dtype(dtype):
        raise FormatError(f"{where + key}: dtype must be {dtype}")
    return a


# --- exact matrices ---------------------------------------------------------------------------


def stack(a: Mat, b: Mat, horizontal: bool) -> Mat:
    if not horizontal:
        return Mat(a.nrows() + b.nrows(), a.ncols(), a.entries() + b.entries())
    ea, eb, ca, cb = a.entries(), b.entries(), a.ncols(), b.ncols()
    rows = [ea[i * ca : (i + 1) * ca] + eb[i * cb : (i + 1) * cb] for i in range(a.nrows())]
    return Mat(a.nrows(), ca + cb, [x for r in rows for x in r])


def chain(w: Weights, kind: str) -> list[Mat]:
    """EQKE = F1 F2 F3 F4 (quad) = (F1 F2)(F3 F4) (pair); biases ride on a column of ones."""
    ones = Mat(w.E.nrows(), 1, [1] * w.E.nrows())
    quad = [
        stack(w.Eq, ones, True),
        stack(w.Q, w.bQ, False),
        stack(w.K, w.bK, False).transpose(),
        stack(w.E, ones, True).transpose(),
    ]
    return [w.mul(quad[0], quad[1]), w.mul(quad[2], quad[3])] if kind == "pair" else quad


def peel(w: Weights, factors: list[Mat], peels: list) -> tuple[Mat, list[Mat]]:
    """(EQKE - Π F_i⊥, [F_i⊥]). Telescoping, exact:  Π F_i - Π F_i⊥ =
    Σ_i (F_1⊥ ⋯ F_{i-1}⊥ X_i)(Y_i^T F_{i+1} ⋯ F_n), each term computed right-to-left or
    left-to-right through matrix-vector products, O(r (v d + d²)), then one v×v sum."""
    if not isinstance(peels, list) or len(peels) != len(factors):
        raise FormatError(f"witnesses.peels: expected a list of {len(factors)} objects")
    xs, ys = [], []
    for i, (F, p) in enumerate(zip(factors, peels, strict=True)):
        where = f"witnesses.peels[{i}]."
        if not isinstance(p, dict) or set(p) != {"x", "y"}:
            raise FormatError(f"{where[:-1]}: expected exactly x, y")
        validate(p["x"], SCHEMA["$defs"]["array"], where + "x")  # the rank, before decoding
        r = tuple(p["x"]["shape"])[-1:]
        r = r[0] if r and 1 <= r[0] <= MAX_PEEL_RANK else 0
        if r == 0:
            raise FormatError(f"{where}x: shape must be [rows, r] with 1 <= r <= {MAX_PEEL_RANK}")
        xs.append(exact_matrix(array(p, "x", (F.nrows(), r), where)))
        ys.append(exact_matrix(array(p, "y", (F.ncols(), r), where)).transpose())
    perp = [F - w.mul(X, Y) for F, X, Y in zip(factors, xs, ys, strict=True)]
    w.work.add(sum(F.nrows() * F.ncols() for F in factors))
    approx = Mat(factors[0].nrows(), factors[-1].ncols())
    for i in range(len(factors)):
        left, right = xs[i], ys[i]
        for F in reversed(perp[:i]):
            left = w.mul(F, left)
        for F in factors[i + 1 :]:
            right = w.mul(right, F)
        approx += w.mul(left, right)
        w.work.add(approx.nrows() * approx.ncols())
    return approx, perp


# --- step 1: ε, the EQKE error's row range -------------------------------------------------


def row_ranges(m: Mat) -> list:
    e, c = m.entries(), m.ncols()
    return [max(e[i * c : (i + 1) * c]) - min(e[i * c : (i + 1) * c]) for i in range(m.nrows())]


def abs_dot(m: Mat, rho: list) -> list:
    """Σ_b |m[a,b]| rho[b] for each row a."""
    e, c = m.entries(), m.ncols()
    return [sum(abs(e[i * c + b]) * rho[b] for b in range(c)) for i in range(m.nrows())]


def range_bound(w: Weights, factors: list[Mat], mean_levels: range) -> list:
    """ρ[r] ≥ max_i - min_i of row r of Π factors, never forming the product.

    Row a of F G is Σ_b F[a,b] G[b,:], so range ≤ Σ_b |F[a,b]| range(G[b,:]) (recursively).
    Mean trick at level i: row a = μ G + (F[a] - μ) G with μ the column mean of F, so range ≤
    range(μ G) + Σ_b |F[a,b] - μ_b| range(G[b,:]); μ G is a vector-matrix chain. Min of both."""
    rho = row_ranges(factors[-1])
    for i in reversed(range(len(factors) - 1)):
        F = factors[i]
        w.work.add(3 * F.nrows() * F.ncols())
        bound = abs_dot(F, rho)
        if i in mean_levels:
            mu = Mat(1, F.nrows(), [1] * F.nrows()) * F / F.nrows()
            tail = mu
            for G in factors[i + 1 :]:
                tail = w.mul(tail, G)
            spread = max(tail.entries()) - min(tail.entries())
            centred = abs_dot(F - broadcast_row(mu, F.nrows()), rho)
            bound = [min(b, spread + c) for b, c in zip(bound, centred, strict=True)]
            w.work.add(4 * F.nrows() * F.ncols())
        rho = bound
    return rho


def spectral_eps(w: Weights, a: Mat, b: Mat) -> list:
    """ε[q] = √2 ‖A⊥[q,:]‖ σ̄ ≥ max_ij |A⊥[q,:] B⊥ (e_i - e_j)|, σ̄ = tr(G^8)^(1/16) ≥ σ1(B⊥),
    G = B⊥ B⊥^T ⪰ 0: tr(G^8) = Σ λ^8 ≥ λ_max^8 and ‖G^4‖_F² = tr(G^8). Exact, then arb √."""
    g = w.mul(b, b.transpose())
    g2 = w.mul(g, g)
    g4 = w.mul(g2, g2)
    sigma = ball(sum(x * x for x in g4.entries()))
    for _ in range(4):
        sigma = sigma.sqrt()
    e, c = a.entries(), a.ncols()
    w.work.add(2 * a.nrows() * a.ncols() + 2 * g4.nrows() ** 2)
    norms = [ball(sum(x * x for x in e[i * c : (i + 1) * c])).sqrt() for i in range(a.nrows())]
    root2 = flint.arb(2).sqrt()
    return [flint.fmpq(*ball_bounds(root2 * n * sigma)[1].as_integer_ratio()) for n in norms]


def attention_error(w: Weights, option: str, peels: list, work: Work) -> tuple[Mat, list]:
    """(approx [v, v] exact, ε [v]) with |Err[q,i] - Err[q,j]| ≤ ε[q], Err = EQKE - approx."""
    kind = EPS_CHAIN[option]
    factors = chain(w, "pair" if kind == "none" else kind)
    if kind == "none":
        return w.mul(*factors), [flint.fmpq(0)] * w.E.nrows()
    approx, perp = peel(w, factors, peels)
    if option == "svd":
        return approx, spectral_eps(w, *perp)
    if option == "max_diff_exact":
        return approx, row_ranges(w.mul(*perp))
    mean = (
        range(len(perp))
        if option.startswith("mean_recursive")
        else range(int(option.startswith("mean")))
    )
    if option.endswith("subproduct"):
        p = perp
        splits = [
            [p[0], w.mul(w.mul(p[1], p[2]), p[3])],
            [w.mul(p[0], p[1]), w.mul(p[2], p[3])],
            [w.mul(w.mul(p[0], p[1]), p[2]), p[3]],
        ]
        bounds = [range_bound(w, f, mean) for f in splits]
        return approx, [min(b) for b in zip(*bounds, strict=True)]
    return approx, range_bound(w, perp, mean)


# --- step 2: the attention bracket ---------------------------------------------------------


def exp_bounds(values: list, shifts: list, per_row: int, inv_s: flint.arb, work: Work):
    """Floats lo ≤ exp((x - shift)/s) ≤ hi (arb), as arrays of len(values)."""
    lo, hi = np.empty(len(values)), np.empty(len(values))
    for i, x in enumerate(values):
        lo[i], hi[i] = ball_bounds(((ball(x) - ball(shifts[i // per_row])) * inv_s).exp())
        if i % 4096 == 0:
            work.tick("subcubic exp", i, len(values))
    work.add(3 * len(values))
    return np.maximum(lo, 0.0), hi


def prefix_sums(x: np.ndarray, rnd) -> np.ndarray:
    """[:, n] = the sum of the first n columns of x, each partial sum rounded by rnd."""
    out = np.zeros((x.shape[0], x.shape[1] + 1))
    for n in range(x.shape[1]):
        out[:, n + 1] = rnd(out[:, n] + x[:, n])
    return out


@np.errstate(all="ignore")
def positional_odds(w: Weights, inv_s: flint.arb, work: Work):
    """[q, c, same]: bounds on Σ_{non-max slots} e^{π/s} / Σ_{max slots} e^{π/s} over every
    placement (same = q is the max). Non-query slots are interchangeable: sums of the c largest
    upper bounds / n smallest lower bounds bound every placement. Query slot: π = 0."""
    eqkp = w.eqkp()  # (E_q Q + b_Q)(P K)^T, exact
    v, k = eqkp.nrows(), eqkp.ncols()
    e = eqkp.entries()
    lo, hi = exp_bounds(e, [e[i * k + k - 1] for i in range(v)], k, inv_s, work)
    lo, hi = lo.reshape(v, k), hi.reshape(v, k)
    bot = prefix_sums(np.sort(lo[:, :-1], axis=1), down0)
    top = prefix_sums(np.sort(hi[:, :-1], axis=1)[:, ::-1], up)
    odds_hi, odds_lo = np.full((v, k, 2), np.inf), np.zeros((v, k, 2))
    c = np.arange(k)
    odds_hi[:, :, 1] = up(top[:, c] / down0(lo[:, -1:] + bot[:, k - 1 - c]))
    odds_lo[:, :, 1] = down0(bot[:, c] / up(hi[:, -1:] + top[:, k - 1 - c]))
    c = np.arange(1, k)
    odds_hi[:, 1:, 0] = up(up(hi[:, -1:] + top[:, c - 1]) / bot[:, k - c])
    odds_lo[:, 1:, 0] = down0(down0(lo[:, -1:] + bot[:, c - 1]) / top[:, k - c])
    work.add(8 * v * k)
    return odds_hi, odds_lo


def attention_bracket(w: Weights, approx: Mat, eps: np.ndarray, gaps: np.ndarray, work: Work):
    """α_lo ≤ α ≤ α_hi, α = total attention on copies of m, for every input of each case.

    α = 1/(1 + N/M) with N/M = Σ_non e^{(EQKE[q,t]-EQKE[q,m])/s} e^{π/s} / Σ_max e^{π/s}, and for
    every non-max t ≤ m - g:  EQKE[q,t] - EQKE[q,m] ≤ max_{t'≤m-g} approx[q,t'] - approx[q,m] + ε[q]
    (and ≥ the min version - ε[q]). exp is monotone, so the prefix max/min of e^{approx/s} bound
    e^{max/s}, e^{min/s}. Rows are shifted by their max first (exact) to avoid overflow."""
    v, k = gaps.shape[1], gaps.shape[2]
    inv_s = 1 / flint.arb(w.Q.ncols()).sqrt()
    e = approx.entries()
    shifts = [max(e[i * v : (i + 1) * v]) for i in range(v)]
    ex_lo, ex_hi = (x.reshape(v, v) for x in exp_bounds(e, shifts, v, inv_s, work))
    _, ee_hi = exp_bounds(
        [flint.fmpq(*float(x).as_integer_ratio()) for x in eps], [0] * v, 1, inv_s, work
    )
    pos_hi, pos_lo = positional_odds(w, inv_s, work)
    q, m, c = np.ogrid[:v, :v, :k]
    j = np.clip(m - gaps, 0, v - 1)
    same = (q == m).astype(int)
    pmax = np.maximum.accumulate(ex_hi, axis=1)[q, j]
    pmin = np.minimum.accumulate(ex_lo, axis=1)[q, j]
    with np.errstate(all="ignore"):
        odds_hi = up(up(up(pos_hi[q, c, same] * pmax) / ex_lo[q, m]) * ee_hi[q])
        odds_lo = down0(down0(down0(pos_lo[q, c, same] * pmin) / ex_hi[q, m]) / ee_hi[q])
        a_lo, a_hi = down(1 / up(1 + odds_hi)), up(1 / down(1 + odds_lo))
    all_max = (q == m) & (c == 0)
    work.add(16 * v * v * k)
    a_lo = np.where(all_max, 1.0, np.clip(np.nan_to_num(a_lo, nan=0.0), 0.0, 1.0))
    return a_lo, np.where(all_max, 1.0, np.clip(np.nan_to_num(a_hi, nan=1.0), 0.0, 1.0))


# --- steps 3-4: logits ----------------------------------------------------------------------


def direct_path(w: Weights, eu: str, wit: dict, work: Work) -> tuple[np.ndarray, np.ndarray]:
    """(μ_hi - μ_lo[m] as [m, x], ΔEU [q, m, 1]): EU[q,x] - EU[q,m] ≤ μ[x] - μ[m] + ΔEU.

    Centre e (mean / witness / 0): EU[q,x] - EU[q,m] = (eU)[x] - (eU)[m] + (E_q[q] - e)·(U[:,x]
    - U[:,m]) and |U[j,x] - U[j,m]| ≤ range_j(U). Exact options: μ = 0 and ΔEU from EU itself."""
    v, d = w.Eq.nrows(), w.Eq.ncols()
    if eu.endswith("exact"):
        lo, hi = enclose_matrix(w.mul(w.Eq, w.U))
        work.add(2 * v * v)
        delta = (
            up(hi.max(1)[:, None] - lo)
            if eu == "max_diff_exact"
            else np.full((v, v), up(hi.max() - lo.min()))
        )
        return np.zeros((v, v)), delta[:, :, None]
    centre = Mat(1, d)
    if eu.startswith("mean"):
        centre = Mat(1, v, [1] * v) * w.Eq / v
    elif eu.startswith("svd"):
        centre = exact_matrix(array(wit, "eu_centre", (d,)))
    mu_lo, mu_hi = enclose_matrix(w.mul(centre, w.U))
    slack = abs_dot(w.Eq - broadcast_row(centre, v), row_ranges(w.U))
    work.add(4 * v * d)
    delta = up(np.array([nearest_float(x) for x in slack]))
    return up(mu_hi - mu_lo[0][:, None]), np.broadcast_to(delta[:, None, None], (v, v, 1))


@np.errstate(all="ignore")
def logit_bound(w, eu, wit, gaps, abar, a_lo, a_hi, work: Work) -> np.ndarray:
    """Upper bound on max_{x≠m} logit[x] - logit[m] for every input of each case.

    For attention α on the m copies: logit[x] - logit[m] ≤ L(α) := max_x(M[x] + α R[x]) +
    (1 - α) W + ΔEU, with M = μ_c + PVOU* (PVOU*[x] = max_i PVOU[i,x] - PVOU[i,m]; Σ a_i = 1),
    R[x] = EVOU[m,x] - EVOU[m,m], W ≥ EVOU[t,x] - EVOU[t,m] for all t ≤ m - g. L is convex in
    α, so L ≤ max(L(α_lo), L(α_hi)). max_x(M + aR) ≤ f(ā) + max_x (a - ā)R[x] = f(ā) +
    max((a - ā) R_max, (a - ā) R_min): right for either sign of a - ā."""
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
    rmax = tuple(np.where(diag, -np.inf, x).max(1)[None, :, None] for x in r)
    rmin = tuple(np.where(diag, np.inf, x).min(1)[None, :, None] for x in r)
    prod = iv_mul((abar[:, :, None], abar[:, :, None]), (r[0][:, None], r[1][:, None]))[1]
    f = np.max(up(M[:, None, :] + prod), axis=2)[None]  # [1, m, c]
    wpre = np.maximum.accumulate(up(ev_hi.max(1)[:, None] - ev_lo), axis=0).T  # [m, j]
    m = np.arange(v)[None, :, None]
    wt = wpre[m, np.clip(m - gaps, 0, v - 1)]
    work.add(8 * v * v * k + 6 * k * v * v)

    def at(a: np.ndarray) -> np.ndarray:
        d = (down(a - abar[None]), up(a - abar[None]))
        corr = np.maximum(iv_mul(d, rmax)[1], iv_mul(d, rmin)[1])
        tail = iv_mul((down(1 - a), up(1 - a)), (wt, wt))[1]
        return up(up(up(f + corr) + tail) + delta_eu)

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
    eps_term = {"svd": 2 * v, "exact_EQKE+max_diff_exact": v * v, "max_diff_exact": 4 * v}
    mean = v if eps.startswith("mean") else 0
    return eu_term.get(eu, v + v * d + 2) + eps_term.get(eps, 2 * v + 2 * d + mean) + v + v * v


def cost(c: Config) -> Cost:
    """Exact circuits and EQKE factors; about 30 float tables [v, v, K]."""
    v, k, d, h = c.d_vocab, c.n_ctx, c.d_model, c.d_head
    return rule_cost(c, 4 * v * v + 8 * v * (d + h), 30 * k * v * v, 100 * k * v * v, v * v + k * v)


ESTIMATES["subcubic"] = cost
