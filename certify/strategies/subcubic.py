"""The sub-cubic proof family (docs/strategies.md): the paper's 5 EU × 2 attention × 10 ε options
= 100 variants, and 44 more using the options beyond it (``peel_query+norm``, ``norm_recursive``,
``norm_subproduct``): 6 × 2 × 12 = 144.

Untrusted prover, float64. It evaluates the same bounds as ``checker/rules/subcubic.py`` (see
docs/strategies.md, "Sub-cubic") without outward rounding, keeps a safety margin, and writes its
choices as exact witnesses: the peeled directions, the EU centre, the per-(m, c) attention mean
ā and the per-case gaps g[q, m, c]. The search (SVD directions, gaps) lives in
``subcubic_search``; this module holds the bound itself and the certificate assembly.

Cases (q, m, c): query q ≤ m, max m; c non-max tokens, the query included when q < m
(c ∈ 0..k-1 when q = m, 1..k-1 when q < m). With gap g every non-max token is ≤ m - g, and the
case covers C(k-1, c') (m - g + 1)^c' inputs, c' = c (q = m) or c - 1 (q < m).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Any

import numpy as np

from certify.certificate import Proof, encode_array, encode_number
from certify.circuits import Circuits
from certify.model import MaxOfKConfig
from certify.strategies import ALIASES

EU_OPTIONS = (
    "mean_query+max_diff",
    "svd_query+max_diff",
    "max_diff",
    "max_diff_exact",
    "global_max_diff_exact",
    "peel_query+norm",  # beyond the paper: rank-r EU peel, residual by row norms
)
ATTENTION_OPTIONS = ("mean_query+diff", "drop_average_query_per_output_logit_reasoning")
EPS_OPTIONS = (
    "svd",
    "max_diff",
    "mean+max_diff",
    "max_diff_subproduct",
    "mean+max_diff_subproduct",
    "max_diff_subproduct_recursive",
    "mean+max_diff_subproduct_recursive",
    "mean_recursive+max_diff_subproduct_recursive",
    "exact_EQKE+max_diff_exact",
    "max_diff_exact",
    "norm_recursive",  # beyond the paper: per-entry Cauchy–Schwarz residual bounds
    "norm_subproduct",
)
PAPER_EU, PAPER_EPS = EU_OPTIONS[:5], EPS_OPTIONS[:10]  # the paper's 5 × 2 × 10 variants
NEW_EPS = ("norm_recursive", "norm_subproduct")
# the v-scaling classes of the aliases (docs/strategies.md): no exact EU, and an ε option whose
# check forms no v×v product of inner dimension d (low-rank) / has no v·d² term (quadratic)
LOW_RANK_EU = ("mean_query+max_diff", "svd_query+max_diff", "max_diff", "peel_query+norm")
QUADRATIC_EPS = (
    "max_diff_subproduct_recursive",
    "mean+max_diff_subproduct_recursive",
    "mean_recursive+max_diff_subproduct_recursive",
    "norm_recursive",
)
LOW_RANK_EPS = (*QUADRATIC_EPS, "svd", "max_diff", "mean+max_diff", "max_diff_subproduct")
LOW_RANK_EPS += ("mean+max_diff_subproduct", "norm_subproduct")
# which factorisation of EQKE each ε option peels: pair = (E_q Q + b_Q)·(E K + b_K)^T,
# quad = [E_q 1]·[Q; b_Q]·[K; b_K]^T·[E 1]^T, none = EQKE formed exactly
CHAIN = {
    "svd": "pair",
    "max_diff": "pair",
    "mean+max_diff": "pair",
    "max_diff_subproduct": "quad",
    "mean+max_diff_subproduct": "quad",
    "max_diff_subproduct_recursive": "quad",
    "mean+max_diff_subproduct_recursive": "quad",
    "mean_recursive+max_diff_subproduct_recursive": "quad",
    "exact_EQKE+max_diff_exact": "none",
    "max_diff_exact": "pair",
    "norm_recursive": "quad",
    "norm_subproduct": "quad",
}
EPS_SLACK = 1e-9  # relative inflation of the claimed ε lemma (the checker's ε is exact)
MARGIN = 1e-6  # a case is claimed only if its float64 bound is below -MARGIN


def variant_names(paper_only: bool = False) -> list[str]:
    """The paper's 100 variants, then (unless ``paper_only``) those using a new option."""
    grid = [(eu, att, eps) for eu in EU_OPTIONS for att in ATTENTION_OPTIONS for eps in EPS_OPTIONS]
    paper = [x for x in grid if x[0] in PAPER_EU and x[2] in PAPER_EPS]
    new = [] if paper_only else [x for x in grid if x not in paper]
    return [f"subcubic:{eu}/{att}/{eps}" for eu, att, eps in paper + new]


def alias_members(alias: str) -> list[str]:
    """The variants an alias chooses from."""
    if alias == "best-subcubic":
        return variant_names()
    eps_class = LOW_RANK_EPS if alias == "best-lowrank" else QUADRATIC_EPS
    return [
        n
        for n in variant_names()
        if parse_variant(n)[0] in LOW_RANK_EU and parse_variant(n)[2] in eps_class
    ]


def parse_variant(name: str) -> tuple[str, str, str]:
    try:
        eu, att, eps = name.removeprefix("subcubic:").split("/")
    except ValueError:
        raise ValueError(f"bad sub-cubic variant {name!r}") from None
    if eu not in EU_OPTIONS or att not in ATTENTION_OPTIONS or eps not in EPS_OPTIONS:
        raise ValueError(f"unknown sub-cubic variant {name!r} (see 'certify strategies')")
    return eu, att, eps


# --- the model's pieces in float64 --------------------------------------------------------


@dataclass
class Model:
    v: int
    k: int
    s: float
    F: list[np.ndarray]  # quad chain [E_q 1], [Q; b_Q], [K; b_K]^T, [E 1]^T
    Eq: np.ndarray
    U: np.ndarray
    eqkp: np.ndarray
    evou: np.ndarray
    pvou: np.ndarray
    allowance: np.ndarray | None = None  # float32 semantics: D [q, x] (certify.float32)

    @property
    def eqke(self) -> np.ndarray:
        return self.F[0] @ self.F[1] @ self.F[2] @ self.F[3]


def model(config: MaxOfKConfig, weights: dict[str, np.ndarray], c: Circuits) -> Model:
    w = {key: a.astype(np.float64) for key, a in weights.items()}
    E, P = w["embed.W_E"], w["pos_embed.W_pos"]
    ones = np.ones((E.shape[0], 1))
    Eq = E + P[-1]
    F = [
        np.hstack([Eq, ones]),
        np.vstack([w["blocks.0.attn.W_Q"][0], w["blocks.0.attn.b_Q"]]),
        np.vstack([w["blocks.0.attn.W_K"][0], w["blocks.0.attn.b_K"]]).T,
        np.hstack([E, ones]).T,
    ]
    return Model(
        config.d_vocab,
        config.n_ctx,
        config.attn_scale,
        F,
        Eq,
        w["unembed.W_U"],
        c.eqkp,
        c.evou,
        c.pvou,
        c.allowance,
    )


def chain(m: Model, kind: str) -> list[np.ndarray]:
    return [m.F[0] @ m.F[1], m.F[2] @ m.F[3]] if kind == "pair" else list(m.F)


def peel(factors: list[np.ndarray], peels: list[tuple[np.ndarray, np.ndarray]]):
    """(EQKE - Π F_i⊥, [F_i⊥]) with F_i⊥ = F_i - X_i Y_i^T, by telescoping (see the checker)."""
    perp = [F - X @ Y.T for F, (X, Y) in zip(factors, peels, strict=True)]
    approx = 0.0
    for i, (X, Y) in enumerate(peels):
        left, right = X, Y.T
        for F in reversed(perp[:i]):
            left = F @ left
        for F in factors[i + 1 :]:
            right = right @ F
        approx = approx + left @ right
    return approx, perp


def range_bound(factors: list[np.ndarray], mean_levels: range) -> np.ndarray:
    """Per row r of Π factors: an upper bound on max_i - min_i of that row (recursive max-diff)."""
    rho = np.ptp(factors[-1], axis=1)
    for i in reversed(range(len(factors) - 1)):
        F = factors[i]
        bound = np.abs(F) @ rho
        if i in mean_levels:
            mu = F.mean(0)
            tail = mu
            for G in factors[i + 1 :]:
                tail = tail @ G
            bound = np.minimum(bound, np.ptp(tail) + np.abs(F - mu) @ rho)
        rho = bound
    return rho


def spectral_eps(a_perp: np.ndarray, b_perp: np.ndarray) -> np.ndarray:
    """√2 ‖A⊥[q]‖ σ̄(B⊥) with σ̄ = tr((B⊥B⊥^T)^8)^(1/16) ≥ σ1(B⊥), as the checker derives it."""
    g = b_perp @ b_perp.T
    g4 = (g @ g) @ (g @ g)
    sigma = float(np.sum(g4 * g4)) ** (1 / 16)
    return np.sqrt(2) * np.sqrt(np.sum(a_perp**2, axis=1)) * sigma


def sigma_witness(perp: list[np.ndarray]) -> float:
    """σ1(F2⊥ F3⊥), slightly inflated so that the checker's Cholesky proof of σ² I - G G^T ≻ 0
    succeeds."""
    return float(np.linalg.norm(perp[1] @ perp[2], 2)) * (1 + 1e-6) + 1e-300


def norm_delta(perp: list[np.ndarray], subproduct: bool) -> np.ndarray:
    """δ[q,t] ≥ |Err[q,t]| by Cauchy–Schwarz, as the checker derives it (``norm_*`` options)."""
    g = perp[1] @ perp[2]
    b = np.linalg.norm(perp[3], axis=0)
    a = np.linalg.norm(perp[0] @ g, axis=1) if subproduct else None
    if a is None:
        a = sigma_witness(perp) * np.linalg.norm(perp[0], axis=1)
    return a[:, None] * b[None, :]


def attention_error(m: Model, eps_option: str, peels) -> tuple[np.ndarray, np.ndarray]:
    """(approx EQKE [v, v], ε [v]): |Err[q,i] - Err[q,j]| ≤ ε[q] for Err = EQKE - approx."""
    kind = CHAIN[eps_option]
    if kind == "none":
        return m.eqke, np.zeros(m.v)
    approx, perp = peel(chain(m, kind), peels)
    if eps_option in NEW_EPS:
        return approx, norm_delta(perp, eps_option == "norm_subproduct")  # δ [v, v]
    if eps_option == "svd":
        return approx, spectral_eps(*perp)
    if eps_option == "max_diff_exact":
        return approx, np.ptp(perp[0] @ perp[1], axis=1)
    mean = range(0) if not eps_option.startswith("mean") else range(1)
    if eps_option.startswith("mean_recursive"):
        mean = range(len(perp))
    if eps_option.endswith("subproduct"):
        splits = [
            [perp[0], perp[1] @ perp[2] @ perp[3]],
            [perp[0] @ perp[1], perp[2] @ perp[3]],
            [perp[0] @ perp[1] @ perp[2], perp[3]],
        ]
        return approx, np.min([range_bound(f, mean) for f in splits], axis=0)
    return approx, range_bound(perp, mean)


def direct_path(m: Model, eu_option: str, centre: np.ndarray | None, eu_peel=None):
    """(μ [v], ΔEU broadcastable to [q, m, c]): EU[q,x] - EU[q,m] ≤ μ[x] - μ[m] + ΔEU."""
    if eu_option == "peel_query+norm":
        e = m.Eq.mean(0)
        c = m.Eq - e
        cx = c @ eu_peel[0]
        low = cx @ (eu_peel[1].T @ m.U)
        resid = c - cx @ eu_peel[1].T
        ell1 = np.abs(resid) @ np.ptp(m.U, axis=1)
        un = np.linalg.norm(m.U - m.U.mean(1, keepdims=True), axis=0)
        cs = np.linalg.norm(resid, axis=1)[:, None] * (un.max() + un[None, :])
        delta = low.max(1)[:, None] - low + np.minimum(ell1[:, None], cs)
        return e @ m.U, delta[:, :, None]
    if eu_option.endswith("exact"):
        eu = m.Eq @ m.U
        if eu_option == "global_max_diff_exact":
            return np.zeros(m.v), np.full((1, 1, 1), eu.max() - eu.min())
        return np.zeros(m.v), (eu.max(1)[:, None] - eu)[:, :, None]
    e = np.zeros(m.Eq.shape[1]) if eu_option == "max_diff" else centre
    if eu_option.startswith("mean_query"):
        e = m.Eq.mean(0)
    delta = np.abs(m.Eq - e) @ np.ptp(m.U, axis=1)
    return e @ m.U, delta[:, None, None]


# --- the bound for every case -------------------------------------------------------------


@dataclass
class Tables:
    """Everything the per-case bound needs that does not depend on gaps or ā."""

    v: int
    k: int
    ex_hi: np.ndarray  # exp((approx[q,t] + δ - rowmax)/s), δ = 0 unless a norm option
    ex_lo: np.ndarray  # exp((approx[q,t] - δ - rowmax)/s)
    eps_factor: np.ndarray  # exp(ε[q]/s), or 1 with per-entry δ
    pos_hi: np.ndarray  # [q, c, same] positional odds, upper (same = q == m)
    pos_lo: np.ndarray
    M: np.ndarray  # [m, x] μ_c + PVOU*, -inf on the diagonal
    R: np.ndarray  # [m, x] EVOU[m,x] - EVOU[m,m]
    rmax: np.ndarray
    rmin: np.ndarray
    wpre: np.ndarray  # [m, j] max_{t ≤ j} (max_x EVOU[t,x] - EVOU[t,m])
    delta_eu: np.ndarray


@np.errstate(all="ignore")
def positional_odds(eqkp: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    v, k = eqkp.shape
    pe = np.exp((eqkp - eqkp[:, -1:]) / s)
    asc = np.sort(pe[:, :-1], axis=1)
    bot = np.concatenate([np.zeros((v, 1)), np.cumsum(asc, axis=1)], axis=1)
    top = np.concatenate([np.zeros((v, 1)), np.cumsum(asc[:, ::-1], axis=1)], axis=1)
    hi, lo = np.full((v, k, 2), np.nan), np.full((v, k, 2), np.nan)
    c = np.arange(k)
    hi[:, :, 1] = top[:, c] / (1 + bot[:, k - 1 - c])
    lo[:, :, 1] = bot[:, c] / (1 + top[:, k - 1 - c])
    c = np.arange(1, k)
    hi[:, 1:, 0] = (1 + top[:, c - 1]) / bot[:, k - c]
    lo[:, 1:, 0] = (1 + bot[:, c - 1]) / top[:, k - c]
    # a positional exp that overflows (or underflows to 0) says nothing: the checker's odds for
    # that query are [0, ∞] at best, so claim nothing that relies on them
    lost = ~np.all(np.isfinite(pe) & (pe > UNDERFLOW), axis=1)
    hi[lost], lo[lost] = np.inf, 0.0
    return hi, lo


@np.errstate(all="ignore")
def tables(m: Model, approx: np.ndarray, eps: np.ndarray, mu: np.ndarray, delta_eu) -> Tables:
    """``eps`` is ε [v] or, for the norm options, the per-entry δ [v, v]."""
    v, s = m.v, m.s
    d = eps if eps.ndim == 2 else 0.0
    shifted = approx - approx.max(1, keepdims=True)
    ex_hi, ex_lo = np.exp((shifted + d) / s), np.exp((shifted - d) / s)
    eps_factor = np.exp(eps / s) if eps.ndim == 1 else np.ones(v)
    pos_hi, pos_lo = positional_odds(m.eqkp, s)
    pstar = np.max(m.pvou[:, None, :] - m.pvou[:, :, None], axis=0)  # [m, x]
    M = mu[None, :] - mu[:, None] + pstar
    R = m.evou - np.diag(m.evou)[:, None]
    off = ~np.eye(v, dtype=bool)
    M = np.where(off, M, -np.inf)
    rmax = np.where(off, R, -np.inf).max(1)
    rmin = np.where(off, R, np.inf).min(1)
    T = m.evou.max(1)[:, None] - m.evou  # [t, m]
    wpre = np.maximum.accumulate(T, axis=0).T
    pos = (pos_hi, pos_lo)
    if m.allowance is not None:  # float32: the margin must exceed D[q, m] + max_x D[q, x]
        delta_eu = delta_eu + (m.allowance + m.allowance.max(1, keepdims=True))[:, :, None]
    return Tables(v, m.k, ex_hi, ex_lo, eps_factor, *pos, M, R, rmax, rmin, wpre, delta_eu)


def case_grid(v: int, k: int):
    q = np.arange(v)[:, None, None]
    mm = np.arange(v)[None, :, None]
    c = np.arange(k)[None, None, :]
    return q, mm, c


def valid_cases(v: int, k: int, gaps: np.ndarray) -> np.ndarray:
    q, mm, c = case_grid(v, k)
    same = (q == mm) & ((c == 0) | (mm - gaps >= 0))
    lower = (q < mm) & (c >= 1) & (q <= mm - gaps)
    return (gaps >= 1) & (same | lower)


UNDERFLOW = 2.0**-960  # exps below this are treated as unknown in [0, UNDERFLOW]


def attention_bracket(t: Tables, gaps: np.ndarray):
    """(α_lo, α_hi) [q, m, c]: bounds on the total attention paid to copies of m."""
    v, k = t.v, t.k
    q, mm, c = case_grid(v, k)
    j = np.clip(mm - gaps, 0, v - 1)
    same = (q == mm).astype(int)
    pmax = np.maximum.accumulate(t.ex_hi, axis=1)[q, j]
    pmin = np.minimum.accumulate(t.ex_lo, axis=1)[q, j]
    with np.errstate(all="ignore"):
        odds_hi = t.pos_hi[q, c, same] * pmax / t.ex_lo[q, mm] * t.eps_factor[q]
        odds_lo = t.pos_lo[q, c, same] * pmin / t.ex_hi[q, mm] / t.eps_factor[q]
        a_lo, a_hi = 1 / (1 + odds_hi), 1 / (1 + odds_lo)
    # Where an exp is near underflow the checker's outward-rounded enclosure may be [0, tiny]:
    # give up the same information it must give up, so that every claimed case verifies.
    # (a product that underflows to 0 here is rounded up to a subnormal there, and then scaled
    # by e^{ε/s} / ex_lo, which can be huge)
    tiny = t.ex_lo[q, mm] < UNDERFLOW
    lost = tiny | (t.pos_hi[q, c, same] * pmax < UNDERFLOW) | ~(odds_hi < 1 / UNDERFLOW)
    a_lo = np.where(lost, 0.0, a_lo)
    a_hi = np.where(tiny | (pmin < UNDERFLOW) | ~(t.pos_lo[q, c, same] < 1 / UNDERFLOW), 1.0, a_hi)
    all_max = (q == mm) & (c == 0)
    a_lo = np.where(all_max, 1.0, np.nan_to_num(a_lo, nan=0.0))
    a_hi = np.where(all_max, 1.0, np.nan_to_num(a_hi, nan=1.0))
    return a_lo, a_hi


def logit_bound(t: Tables, gaps: np.ndarray, abar: np.ndarray, a_lo, a_hi) -> np.ndarray:
    """Upper bound on max_{x≠m} logit[x] - logit[m] over the case, convex in α: both ends."""
    v = t.v
    _, mm, _ = case_grid(v, t.k)
    f = np.max(t.M[:, None, :] + abar[:, :, None] * t.R[:, None, :], axis=2)  # [m, c]
    w = t.wpre[mm, np.clip(mm - gaps, 0, v - 1)]

    def at(a):
        d = a - abar[None]
        corr = np.maximum(d * t.rmax[None, :, None], d * t.rmin[None, :, None])
        return f[None] + corr + (1 - a) * w + t.delta_eu

    return np.maximum(at(a_lo), at(a_hi))


def case_counts(v: int, k: int, gaps: np.ndarray) -> np.ndarray:
    """Number of inputs each case covers (object ints), 0 where invalid."""
    q, mm, c = case_grid(v, k)
    cp = np.where(q == mm, c, c - 1) + 0 * gaps
    base = np.maximum(mm - gaps + 1, 0) + 0 * cp
    binom = np.vectorize(lambda n: comb(k - 1, int(n)) if n >= 0 else 0, otypes=[object])(cp)
    out = binom * base.astype(object) ** np.maximum(cp, 0).astype(object)
    return np.where(valid_cases(v, k, gaps), out, 0)


# --- assembly -----------------------------------------------------------------------------


def prove(
    name: str,
    config: MaxOfKConfig,
    weights: dict[str, np.ndarray],
    c: Circuits,
    wide_peels: bool = False,
) -> Proof:
    """One variant, or an alias: the member variant proving the most inputs (the certificate's
    options name the winner; ties go to the first in ``variant_names`` order)."""
    if name in ALIASES:
        proofs = prove_all(config, weights, c, alias_members(name), wide_peels)
        return max(proofs.values(), key=lambda p: p.correct_count)
    parse_variant(name)
    return prove_all(config, weights, c, [name], wide_peels)[name]


def prove_all(
    config: MaxOfKConfig,
    weights: dict[str, np.ndarray],
    c: Circuits,
    names: list[str] | None = None,
    wide_peels: bool = False,
) -> dict[str, Proof]:
    """Proofs of the named variants (default all), sharing the search between them.

    The peels use the paper's ranks (pair 1, 1; quad 2, 1, 1, 2). With ``wide_peels`` each
    variant also tries rank 8 on every factor and keeps whichever proves more: much tighter
    recursive (quadratic) variants, at a longer proof (the checker's peel work grows with rank).
    The new ε options (``NEW_EPS``) use rank 8 on the outer factors, 2 on the inner ones.
    """
    from certify.strategies import subcubic_search as search

    m = model(config, weights, c)
    variants = [parse_variant(n) for n in (names or variant_names())]
    errors, centres, out = {}, {}, {}
    for eu, att, eps in variants:
        use_mean = att == "mean_query+diff"
        if eps not in errors:
            widths = ("mid",) if eps in NEW_EPS else (False,)
            widths += (True,) if wide_peels and CHAIN[eps] != "none" else ()
            errors[eps] = [error_terms(m, eps, search.peels(m, CHAIN[eps], w)) for w in widths]
        if eu == "svd_query+max_diff" and att not in centres:
            centres[att] = search_centres(m, use_mean, wide_peels)
        # (peels, approx, ε, centre) candidates: every peel width with the default centre,
        # then the other centres with the width that won (so svd_query ≥ mean_query)
        best = None
        for peels, approx, err in errors[eps]:
            best = better(best, evaluate(m, eu, use_mean, peels, approx, err, None))
        for centre in centres.get(att, []) if eu == "svd_query+max_diff" else []:
            best = better(best, evaluate(m, eu, use_mean, *best[1:4], centre))
        result, peels, approx, err, centre, t = best
        gaps, abar, proved, count = search.refine_means(t, result) if use_mean else result
        witnesses: dict[str, Any] = {
            "gaps": encode_array(gaps.astype(np.int64)),
            "peels": [{"x": encode_array(X), "y": encode_array(Y)} for X, Y in peels],
        }
        if eu == "svd_query+max_diff":
            witnesses["eu_centre"] = encode_array(centre)
        if eps == "norm_recursive":
            sigma = sigma_witness(peel(chain(m, "quad"), peels)[1])
            witnesses["sigma"] = encode_array(np.array([sigma]))
        if eu == "peel_query+norm":
            witnesses["eu_peel"] = {"x": encode_array(centre[0]), "y": encode_array(centre[1])}
        if use_mean:
            witnesses["attention_mean"] = encode_array(abar)
        name = f"subcubic:{eu}/{att}/{eps}"
        out[name] = Proof(
            strategy="subcubic",
            correct_count=int(count),
            options={"eu": eu, "attention": att, "eps": eps},
            witnesses=witnesses,
            lemmas={
                "eps": encode_array(eps_lemma(err)),
                "proved": encode_array(proved.astype(np.int64)),
            },
            report={"variant": name, "bound": encode_number(int(count))},
        )
    return out


def eps_lemma(err: np.ndarray) -> np.ndarray:
    """The ε lemma [v]: ε itself, or 2 max_t δ[q,t] ≥ the row range for per-entry δ [v, v]."""
    return err if err.ndim == 1 else 2 * err.max(1) * (1 + EPS_SLACK)


def error_terms(m: Model, eps: str, peels) -> tuple[list, np.ndarray, np.ndarray]:
    """(peels, approx, ε or δ): the checker's ε (δ for the norm options) inflated by EPS_SLACK."""
    approx, err = attention_error(m, eps, peels)
    return peels, approx, err * (1 + EPS_SLACK) + EPS_SLACK * (1 + np.abs(approx).max())


def evaluate(m: Model, eu: str, use_mean: bool, peels, approx, err, centre):
    """(gaps_and_means result, peels, approx, ε, centre, tables) for one choice of witnesses."""
    from certify.strategies import subcubic_search as search

    if eu == "svd_query+max_diff" and centre is None:
        centre = m.Eq.mean(0)
    if eu == "peel_query+norm" and centre is None:
        centre = search.eu_peel(m)
    t = tables(m, approx, err, *direct_path(m, eu, centre, centre))
    return search.gaps_and_means(t, use_mean), peels, approx, err, centre, t


def better(best, new):
    return new if best is None or new[0][3] > best[0][3] else best


def search_centres(m: Model, use_mean: bool, wide_peels: bool) -> list[np.ndarray]:
    """EU centres for svd_query besides the mean: median, SVD, and a local search on the proved
    count of the reference ε option ``max_diff``."""
    from certify.strategies import subcubic_search as search

    ref = error_terms(m, "max_diff", search.peels(m, "pair", wide_peels))
    eu = "svd_query+max_diff"
    candidates = search.eu_centres(m)

    def count(centre: np.ndarray) -> int:
        return evaluate(m, eu, use_mean, *ref, centre)[0][3]

    start = max(candidates, key=count)
    return [*candidates[1:], search.local_search(count, start, m.Eq.std(0))]
