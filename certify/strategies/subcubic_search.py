"""Proof search for the sub-cubic family (untrusted; never part of the checked proof).

- ``peels``: the low-rank directions peeled off the EQKE factors (SVD of the row-centred EQKE
  for the query and size directions; top singular vectors of the residuals and of Q, K).
- ``eu_centre``: the d-vector subtracted from every E_q row in the ``svd_query`` EU option.
- ``gaps_and_means``: the attention means ā[m, c] and the smallest gap g[q, m, c] proving each
  case (the bound is monotone in g: a larger gap only raises Δ and lowers W), by bisection.
"""

from __future__ import annotations

import numpy as np

from certify.strategies import subcubic as sc


def _top_left(a: np.ndarray) -> np.ndarray:
    return np.linalg.svd(a, full_matrices=False)[0][:, 0]


def peels(m: sc.Model, kind: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(X_i, Y_i)] with F_i⊥ = F_i - X_i Y_i^T for each factor of the chain."""
    if kind == "none":
        return []
    eqke = m.eqke
    u_svd, _, vt = np.linalg.svd(eqke - eqke.mean(1, keepdims=True), full_matrices=False)
    u, w = u_svd[:, :1], vt[:1].T  # query direction (vocab) and size direction (vocab)
    if kind == "pair":
        A, B = sc.chain(m, "pair")
        return [(u, A.T @ u), (B @ w, w)]
    F1, F2, F3, F4 = m.F
    u2 = _top_left(F1 - u @ (u.T @ F1))[:, None]
    X1 = np.hstack([u, u2])
    w2 = _top_left((F4 - (F4 @ w) @ w.T).T)[:, None]
    Y4 = np.hstack([w, w2])
    x2, x3 = _top_left(F2)[:, None], _top_left(F3)[:, None]
    return [(X1, F1.T @ X1), (x2, F2.T @ x2), (x3, F3.T @ x3), (F4 @ Y4, Y4)]


def eu_centre(m: sc.Model) -> np.ndarray:
    """The rank-1 SVD reconstruction's mean row of E_q, or the coordinate-wise median, whichever
    gives the smaller total EU slack Σ_q Σ_j |E_q[q,j] - e_j| range_j(U)."""
    u, s, vt = np.linalg.svd(m.Eq, full_matrices=False)
    candidates = [u[:, 0].mean() * s[0] * vt[0], np.median(m.Eq, axis=0)]
    spread = np.ptp(m.U, axis=1)
    return min(candidates, key=lambda e: float(np.sum(np.abs(m.Eq - e) @ spread)))


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


def gaps_and_means(t: sc.Tables, use_mean: bool):
    """(gaps, ā, proved, count): two rounds of ā = mean over proved q of α_lo, then gaps."""
    v, k = t.v, t.k
    abar = np.zeros((v, k))
    best = None
    rounds = 3 if use_mean else 1
    q, mm, _ = sc.case_grid(v, k)
    gaps = np.broadcast_to(
        np.where(q == mm, np.maximum(mm, 1), np.maximum(mm - q, 1)), (v, v, k)
    ).copy()
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
