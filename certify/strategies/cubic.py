"""The cubic proof's prover (docs/strategies.md): float64, vectorised over (q, c, k') per max m.

For every case (query q, max m, c non-max non-query copies) it evaluates the per-slot bound of
docs/strategies.md ("Cubic") for each non-max token k' < m, at both extreme positional
arrangements, in the ratio form

    b = (X h(m) + Y h(k') + beta_q h(q)) / (X alpha(m) + Y alpha(k') + beta_q alpha(q)),
    h(t) = alpha(t) g(t),  g(t) = EU*[q] + F[t],

i.e. the largest wrong-logit difference the proof allows. The lemma for (q, m, c) lists the
tokens with b < -2 delta: N = their number, margin = -(their largest b) - delta. The shading
delta (2^-30 of the logits' scale, far above float64 rounding) makes the sound checker accept
what float64 found. For c = 0 the single input (m, .., m, q) gets the joint-over-x bound.
Nothing here is trusted: the checker recomputes every lemma soundly.
"""

from __future__ import annotations

from math import comb

import numpy as np

from certify.certificate import Proof, encode_array
from certify.circuits import Circuits
from certify.model import MaxOfKConfig


def prove(config: MaxOfKConfig, weights: dict[str, np.ndarray], c: Circuits) -> Proof:
    v, k = config.d_vocab, config.n_ctx
    if v < 2:
        raise ValueError("the cubic strategy needs d_vocab >= 2")
    delta = shading(c)
    tables = _tables(c)
    proved = np.zeros((v, v, k), np.int64)
    margin = np.zeros((v, v, k))
    tight = np.zeros((v, v, k))  # -(largest b among the proved): the margin before shading
    next_bound = np.full((v, v, k), np.inf)  # smallest b among the tokens left unproved
    exists = case_exists(v, k)
    for m in range(v):
        b = bounds_at(m, k, c, tables)  # [q, c, t]; c = 0 and t >= m meaningless
        b0 = bounds_c0(m, c, tables)  # [q]
        ok = b < -2 * delta
        ok[:, :, m:] = False
        ok[:, 0, :] = False
        n = ok.sum(axis=2)
        n[:, 0] = b0 < -2 * delta
        worst = np.where(ok, b, -np.inf).max(axis=2, initial=-np.inf)
        worst[:, 0] = b0
        unproved = np.where(~ok[:, :, :m], b[:, :, :m], np.inf).min(axis=2, initial=np.inf)
        unproved[:, 0] = np.where(n[:, 0] > 0, np.inf, b0)
        n = np.where(exists[:, m, :], n, 0)
        proved[:, m, :] = n
        margin[:, m, :] = np.where(n > 0, -worst - delta, 0.0)
        tight[:, m, :] = np.where(n > 0, -worst, 0.0)
        next_bound[:, m, :] = np.where(exists[:, m, :], unproved, np.inf)
    count = count_covered(proved, k)
    return Proof(
        strategy="cubic",
        correct_count=count,
        lemmas={"proved": encode_array(proved), "margin": encode_array(margin)},
        report={"tight_margin": tight, "next_bound": next_bound, "delta": delta},
    )


def shading(c: Circuits) -> float:
    """delta: 2^-30 of the logits' scale, far above float64 rounding of the bounds."""
    scale = np.abs(c.eu).max() + 2 * np.abs(c.evou).max() + 2 * np.abs(c.pvou).max()
    return 2.0**-30 * (1.0 + scale)


def lemma_tokens(c: Circuits) -> tuple[np.ndarray, np.ndarray]:
    """inside[q, m, c, k']: token k' < m has bound < -2 delta in case (q, m, c >= 1);
    inside0[q, m]: the input (m, .., m, q) has. The hybrid rule's sound test at margin 0 finds
    at least these."""
    v, k = c.config.d_vocab, c.config.n_ctx
    delta, tables = shading(c), _tables(c)
    inside = np.zeros((v, v, k, v), dtype=bool)
    inside0 = np.zeros((v, v), dtype=bool)
    for m in range(v):
        ok = bounds_at(m, k, c, tables) < -2 * delta
        inside0[:, m] = ok[:, 0, 0]  # c = 0 with the per-slot bound, as the hybrid rule checks
        ok[:, 0, :] = False
        ok[:, :, m:] = False
        inside[:, m] = ok
    exists = case_exists(v, k)
    return inside & exists[..., None], inside0 & exists[:, :, 0]


def case_exists(v: int, k: int) -> np.ndarray:
    """[q, m, c]: q <= m, and if q < m at least one non-query position holds m (c <= k-2)."""
    q, m, c = np.ogrid[:v, :v, :k]
    return (q == m) | ((q < m) & (c <= k - 2))


def count_covered(proved: np.ndarray, k: int) -> int:
    """Inputs covered: N for c = 0, C(k-1, c) N^c for c >= 1 (exact Python integers)."""
    total = int(proved[:, :, 0].sum())
    for c in range(1, k):
        values, freq = np.unique(proved[:, :, c], return_counts=True)
        pairs = zip(values.tolist(), freq.tolist(), strict=True)
        total += comb(k - 1, c) * sum(n**c * f for n, f in pairs)
    return total


def _tables(c: Circuits) -> dict[str, np.ndarray]:
    """Per-q scaled softmax factors and the sums of the n smallest / largest non-query beta."""
    s, k = c.scale, c.config.n_ctx
    alpha = np.exp((c.eqke - c.eqke.max(axis=1, keepdims=True)) / s)
    beta = np.exp((c.eqkp - c.eqkp.max(axis=1, keepdims=True)) / s)
    rest = np.sort(beta[:, : k - 1], axis=1)
    zero = np.zeros((len(beta), 1))
    asc = np.concatenate([zero, np.cumsum(rest, axis=1)], axis=1)
    desc = np.concatenate([zero, np.cumsum(rest[:, ::-1], axis=1)], axis=1)
    return {"alpha": alpha, "beta_q": beta[:, k - 1], "asc": asc, "desc": desc}


def _centred(m: int, c: Circuits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PVOU*[x], EVOU_c[t, x], EU_c[q, x] for the wrong tokens x != m."""
    x = np.arange(c.config.d_vocab) != m
    pvou_star = (c.pvou[:, x] - c.pvou[:, m : m + 1]).max(axis=0)
    d = 0 if c.allowance is None else c.allowance  # float32: EU + D for x, EU - D for m
    eu_c = (c.eu + d)[:, x] - (c.eu - d)[:, m : m + 1]
    return pvou_star, c.evou[:, x] - c.evou[:, m : m + 1], eu_c


def bounds_at(m: int, k: int, c: Circuits, t: dict[str, np.ndarray]) -> np.ndarray:
    """b[q, c, k']: the wrong-logit bound of lemma (q, m, c) for token k', worst arrangement."""
    v = c.config.d_vocab
    pvou_star, evou_c, eu_c = _centred(m, c)
    g = eu_c.max(axis=1)[:, None] + (evou_c + pvou_star).max(axis=1)[None, :]  # [q, t]
    alpha = t["alpha"]
    q = np.arange(v)
    cc = np.arange(k)
    worst = np.full((v, k, v), -np.inf)
    for xs, ys in ((t["asc"], t["desc"]), (t["desc"], t["asc"])):
        x_sum, y_sum = xs[:, k - 1 - cc], ys[:, cc]  # [q, c]
        w_q = (t["beta_q"] * alpha[q, q])[:, None]
        num = x_sum * (alpha[:, m] * g[:, m])[:, None] + w_q * g[q, q][:, None]
        den = x_sum * alpha[:, m, None] + w_q
        num = num[:, :, None] + y_sum[:, :, None] * (alpha * g)[:, None, :]
        den = den[:, :, None] + y_sum[:, :, None] * alpha[:, None, :]
        worst = np.maximum(worst, _ratio(num, den))
    return worst


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, or +inf where the weights are too close to underflow to trust float64."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 1e-200, num / den, np.inf)


def bounds_c0(m: int, c: Circuits, t: dict[str, np.ndarray]) -> np.ndarray:
    """b[q]: the wrong-logit bound of the input (m, .., m, q), not splitting the max over x."""
    v = c.config.d_vocab
    q = np.arange(v)
    pvou_star, evou_c, eu_c = _centred(m, c)
    w_m = t["alpha"][:, m] * t["asc"][:, -1]
    w_q = t["alpha"][q, q] * t["beta_q"]
    base = eu_c + pvou_star
    num = w_m[:, None] * (base + evou_c[m]) + w_q[:, None] * (base + evou_c)
    return _ratio(num, (w_m + w_q)[:, None]).max(axis=1)
