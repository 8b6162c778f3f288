"""Proof search for the sub-cubic family (untrusted; never part of the checked proof).

- ``peels``: the low-rank directions peeled off the EQKE factors (SVD of the row-centred EQKE
  for the query and size directions; top singular vectors of the residuals and of Q, K), at the
  paper's ranks or at the checker's maximum rank 8 (``prove_all`` keeps whichever proves more).
- ``eu_centres``/``local_search``: candidate d-vectors subtracted from every E_q row in the
  ``svd_query`` EU option (mean row, median, SVD, hill climbing on the proved count).
- ``gaps_and_means``: the attention means ā[m, c] and the smallest gap g[q, m, c] proving each
  case (the bound is monotone in g: a larger gap only raises Δ and lowers W), by bisection;
  ``refine_means`` then picks ā per (m, c) from a few candidates by proved count.
"""

from __future__ import annotations

import warnings
from math import comb

import numpy as np

from certify.strategies import subcubic as sc

MAX_RANK = 8  # the checker's MAX_PEEL_RANK
EU_RANK = 16  # the checker's MAX_EU_RANK


def _left(a: np.ndarray, r: int) -> np.ndarray:
    return np.linalg.svd(a, full_matrices=False)[0][:, :r]


def peels(m: sc.Model, kind: str, wide: bool | str = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(X_i, Y_i)] with F_i⊥ = F_i - X_i Y_i^T for each factor of the chain: the paper's ranks
    (pair 1, 1; quad 2, 1, 1, 2), or ``"mid"`` (pair 8, 8; quad 8, 2, 2, 8: the outer factors
    carry the vocabulary directions), or if ``wide`` the checker's maximum rank on every factor."""
    if kind == "none":
        return []
    eqke = m.eqke
    u_svd, _, vt = np.linalg.svd(eqke - eqke.mean(1, keepdims=True), full_matrices=False)
    outer, inner = {"mid": (MAX_RANK, 2), True: (MAX_RANK, MAX_RANK)}.get(wide, (2, 1))
    if kind == "pair":
        r = 1 if outer == 2 else MAX_RANK
        A, B = sc.chain(m, "pair")
        u, w = u_svd[:, :r], vt[:r].T  # query directions (vocab) and size directions (vocab)
        return [(u, A.T @ u), (B @ w, w)]
    F1, F2, F3, F4 = m.F
    u, w = u_svd[:, :1], vt[:1].T
    X1 = np.hstack([u, _left(F1 - u @ (u.T @ F1), outer - 1)])
    Y4 = np.hstack([w, _left((F4 - (F4 @ w) @ w.T).T, outer - 1)])
    x2, x3 = _left(F2, inner), _left(F3, inner)
    return [(X1, F1.T @ X1), (x2, F2.T @ x2), (x3, F3.T @ x3), (F4 @ Y4, Y4)]


def eu_peel(m: sc.Model) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y) = (V, V): the top right singular vectors of the centred E_q at the checker's maximum
    EU rank (16), so C P with P = V V^T keeps C's largest directions and the residual is small."""
    vt = np.linalg.svd(m.Eq - m.Eq.mean(0), full_matrices=False)[2][
        : max(1, min(EU_RANK, m.Eq.shape[1] // 2))
    ]
    return vt.T, vt.T


def eu_centres(m: sc.Model) -> list[np.ndarray]:
    """Candidate centres for the ``svd_query`` EU option: the mean row of E_q (so svd_query is
    never below mean_query), the coordinate-wise median (least total EU slack) and the rank-1
    SVD reconstruction's mean row; the prover keeps the one proving the most inputs."""
    u, s, vt = np.linalg.svd(m.Eq, full_matrices=False)
    return [m.Eq.mean(0), np.median(m.Eq, axis=0), u[:, 0].mean() * s[0] * vt[0]]


def local_search(count, start: np.ndarray, scale: np.ndarray, steps: int = 10) -> np.ndarray:
    """Random-perturbation hill climbing on ``count`` (the float64 proved count) from ``start``,
    at three step sizes; deterministic (fixed seed)."""
    rng = np.random.default_rng(0)
    best, best_count = start, count(start)
    for size in (0.3, 0.1, 0.03):
        for _ in range(steps):
            trial = best + size * scale * rng.standard_normal(best.shape)
            n = count(trial)
            if n > best_count:
                best, best_count = trial, n
    return best


def _provable(t: sc.Tables, gaps: np.ndarray, abar: np.ndarray) -> np.ndarray:
    a_lo, a_hi = sc.attention_bracket(t, gaps)
    bound = sc.logit_bound(t, gaps, abar, a_lo, a_hi)
    return (bound < -sc.MARGIN) & sc.valid_cases(t.v, t.k, gaps)


def _min_gaps(t: sc.Tables, abar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest g in [1, gmax] proving each case (bisection; the bound is monotone in g)."""
    v, k = t.v, t.k
    q, mm, _ = sc.case_grid(v, k)
    gmax = np.broadcast_to(np.where(q == mm, np.maximum(mm, 1), mm - q), (v, v, k)).copy()
    ok = _provable(t, gmax, abar)
    lo, hi = np.ones_like(gmax), gmax.copy()  # invariant: hi proves (where ok)
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        good = _provable(t, mid, abar)
        hi = np.where(good & (lo < hi), mid, hi)
        lo = np.where(~good & (lo < hi), mid + 1, lo)
    return np.where(ok, hi, 1), ok


def _float_counts(v: int, k: int, gaps: np.ndarray) -> np.ndarray:
    """case_counts in float64 (exact: every count is below 2^53), for comparisons."""
    q, mm, c = sc.case_grid(v, k)
    cp = np.where(q == mm, c, c - 1)
    binom = np.array([comb(k - 1, i) for i in range(k)] + [0.0])[np.where(cp >= 0, cp, k)]
    base = np.maximum(mm - gaps + 1, 0).astype(float) ** np.maximum(cp, 0)
    return binom * base * sc.valid_cases(v, k, gaps)


def _first_gaps(v: int, k: int) -> np.ndarray:
    q, mm, _ = sc.case_grid(v, k)
    gaps = np.where(q == mm, np.maximum(mm, 1), np.maximum(mm - q, 1))
    return np.broadcast_to(gaps, (v, v, k)).copy()


def gaps_and_means(t: sc.Tables, use_mean: bool):
    """(gaps, ā, proved, count): two rounds of ā = mean over proved q of α_lo, then gaps."""
    v, k = t.v, t.k
    abar = np.zeros((v, k))
    best = None
    rounds = 3 if use_mean else 1
    q, mm, _ = sc.case_grid(v, k)
    gaps = _first_gaps(v, k)
    for _ in range(rounds):
        if use_mean:
            a_lo, _ = sc.attention_bracket(t, gaps)
            weight = sc.valid_cases(v, k, gaps) & (q < mm)
            total = weight.sum(0)
            mean = np.where(total > 0, (a_lo * weight).sum(0) / np.maximum(total, 1), 1.0)
            abar = np.clip(mean, 0.0, 1.0)
        new_gaps, proved = _min_gaps(t, abar)
        count = int(np.sum(sc.case_counts(v, k, new_gaps)[proved]))
        if best is None or count > best[3]:
            best = (new_gaps, abar.copy(), proved, count)
        gaps = np.where(proved, new_gaps, gaps)
    return best


@np.errstate(all="ignore")
def refine_means(t: sc.Tables, best):
    """Improve ``gaps_and_means``'s ā per (m, c): the cases of one (m, c) depend on ā[m, c] only,
    so try constants on a grid and quantiles of α_lo over q, and keep per (m, c) the ā proving
    the most inputs (never fewer than ``best``)."""
    v, k = t.v, t.k
    gaps, abar, proved, _ = best
    per = (_float_counts(v, k, gaps) * proved).sum(0)
    q, mm, _ = sc.case_grid(v, k)
    a_lo, _ = sc.attention_bracket(t, np.where(proved, gaps, _first_gaps(v, k)))
    spread = np.where(sc.valid_cases(v, k, gaps) & (q < mm), a_lo, np.nan)
    candidates = [np.full((v, k), a) for a in np.linspace(0, 1, 5)]
    for level in (0.25, 0.5, 0.75):
        candidates.append(np.nan_to_num(_nanquantile(spread, level), nan=1.0))
    for cand in candidates:
        new_gaps, ok = _min_gaps(t, cand)
        n = (_float_counts(v, k, new_gaps) * ok).sum(0)
        better = n > per
        per, abar = np.where(better, n, per), np.where(better, cand, abar)
        gaps = np.where(better[None], new_gaps, gaps)
        proved = np.where(better[None], ok, proved)
    gaps = np.where(proved, gaps, 1)
    return gaps, abar, proved, int(np.sum(sc.case_counts(v, k, gaps)[proved]))


def _nanquantile(a: np.ndarray, level: float) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanquantile(a, level, axis=0)
