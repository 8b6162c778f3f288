"""The cubic proof: one sound check per (query q, max m, copies c, token k'); docs/strategies.md,
"Cubic", derives each step below (Steps 1-4).

Cases: split the inputs by max m, query q = t_{k-1} <= m, and c = the number of the k-1 non-query
positions holding a token < m (the others hold m; c <= k-2 if q < m). Lemma (q, m, c), c >= 1,
claims: at least N = proved[q,m,c] tokens k' < m have "wrong-logit bound <= -margin[q,m,c] < 0"
for every arrangement of c copies of k' (the pure inputs); for c = 0, N <= 1 (one input).

Per-slot bound. With attention weights a_i, every path centred at column m (X_c[., x] =
X[., x] - X[., m]) and x != m,
    logit[x] - logit[m] <= sum_i a_i g(t_i),    g(t) = EU*[q] + F[t],                      (1)
    EU*[q] = max_{x!=m} EU_c[q,x],   F[t] = max_{x!=m} (EVOU_c[t,x] + PVOU*[x]),
    PVOU*[x] = max_p PVOU_c[p,x].
So "bound <= -margin" follows from
    S := sum_i w_i (g(t_i) + margin) <= 0,   w_i = alpha(t_i) beta_i,                       (2)
alpha(t) = exp(EQKE[q,t] / s), beta_i = exp(EQKP[q,i] / s) (each scaled by a per-q constant).
With X the sum of beta over the m-slots, T over the k-1 non-query slots and h(t) =
alpha(t)(g(t) + margin), S = X h(m) + (T - X) h(k') + beta_q h(q) is linear in X, which lies
between X_A (m in the k-1-c slots of smallest EQKP, an exact sort) and X_B (largest): S <=
max(S_A, S_B). An input whose c non-max tokens are each one of the N proved tokens then has
S <= 0 too (the mediant argument: each slot's term depends on its own token only), so lemma
(q, m, c >= 1) covers C(k-1, c) N^c inputs and (q, m, 0) covers N; the cases partition
{0..v-1}^k. For c = 0, (1) is checked per x without splitting the max: with W_m = alpha(m) T
and W_q = alpha(q) beta_q, for every x != m,
    W_m (EU_c[q,x] + PVOU*[x] + EVOU_c[m,x] + margin) + W_q (EU_c[q,x] + PVOU*[x] + EVOU_c[q,x]
    + margin) <= 0.

Soundness of the arithmetic. Circuits are exact (checker.circuits); alpha and beta are arb
balls turned into float intervals [lo, hi] with lo >= 0; EVOU, PVOU, EU are enclosed by one ulp
around their nearest floats. All later values are upper bounds only, each + - x rounded up
with ``up`` (one ulp outward covers round-to-nearest, arith.py). A product w y with true w >= 0
in [lo, hi] and true y <= y_hi is bounded by up(max(lo y_hi, hi y_hi)) (linear in w). A lemma
holds only if the rounded-up S_A and S_B are < 0 (strict, so margin 0 stays sound).
"""

from __future__ import annotations

from math import comb
from typing import NamedTuple

import flint
import numpy as np

from checker import float32
from checker.arith import down, down0, enclose_matrix, exp_enclosure, prefix_sums, up, up_mul
from checker.circuits import Weights
from checker.cost import ESTIMATES, Cost, Work, rule_cost
from checker.format import Certificate, Config, FormatError, decode_field
from checker.rules import RuleResult

Interval = tuple[np.ndarray, np.ndarray]


class Tables(NamedTuple):
    """Float enclosures of what every case reads: exps [q, t] / [q, p], extreme sums, circuits."""

    alpha: Interval
    beta: Interval
    asc: Interval
    desc: Interval
    evou: Interval
    pvou: Interval
    eu: Interval


def check(cert: Certificate, work: Work) -> RuleResult:
    v, k = cert.config.d_vocab, cert.config.n_ctx
    if v < 2:
        raise FormatError("strategy cubic needs d_vocab >= 2")
    proved, margin = read_lemmas(cert, v, k)
    t = tables(cert, Weights(cert, work), work)
    for m in range(v):
        work.tick("cubic: max token", m, v)
        ok, ok0 = proved_tokens(m, k, margin[:, m, :], t, work)
        counts = ok.sum(axis=2)
        counts[:, 0] = ok0
        bad = np.argwhere(proved[:, m, :] > counts)
        if len(bad):
            q, c = (int(i) for i in bad[0])
            n, bound = proved[q, m, c], margin[q, m, c].hex()
            why = f"only {counts[q, c]} of the claimed {n} have wrong-logit bound <= -{bound}"
            return RuleResult(0, failed=f"lemmas (q={q}, m={m}, c={c}): {why}")
    dims = 3 * v * v + 2 * k * v  # EU, EQKE, EVOU (v^2 each); PVOU, EQKP (kv each)
    return RuleResult(count_covered(proved, k), report={"unexplained_dims": dims})


def tables(cert: Certificate, w: Weights, work: Work) -> Tables:
    """The float enclosures every case reads (softmax factors via arb, circuits one ulp out).
    Float32 semantics: EU's enclosure widened by D' (docs/float32.md), so (1) bounds
    logit[x] + D'[q, x] - (logit[m] - D'[q, m]) and a lemma proves the float32 margin."""
    alpha, beta = (exp_scaled(x, cert.config.d_head, work) for x in (w.eqke, w.eqkp))
    circuits = [enclose_matrix(x) for x in (w.evou, w.pvou, w.eu)]
    if (allow := float32.allowance(cert, w)) is not None:  # EU -/+ D': the margin's D'[m] + D'[x]
        circuits[2] = (down(circuits[2][0] - allow), up(circuits[2][1] + allow))
    return Tables(alpha, beta, *extreme_sums(w.eqkp, beta, work), *circuits)


def read_lemmas(cert: Certificate, v: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``proved`` (int64) and ``margin`` (float64), both [q, m, c]; shapes and ranges checked."""
    proved = decode_field(cert.lemmas, "proved", "lemmas.", (v, v, k))
    margin = decode_field(cert.lemmas, "margin", "lemmas.", (v, v, k))
    if proved.dtype != np.int64 or margin.dtype != np.float64:
        raise FormatError("lemmas: proved must be int64 and margin float64")
    if np.any(proved < 0) or np.any(proved > case_limits(v, k)):
        raise FormatError("lemmas.proved: a count is negative or exceeds its case's tokens")
    if np.any((proved > 0) != (margin > 0)) or np.any(margin < 0):
        raise FormatError("lemmas.margin: must be > 0 where proved > 0 and 0 elsewhere")
    return proved, margin


def case_limits(v: int, k: int) -> np.ndarray:
    """[q, m, c]: the most tokens lemma (q, m, c) can prove (0 for cases that do not exist)."""
    q, m, c = np.ogrid[:v, :v, :k]
    exists = (q == m) | ((q < m) & (c <= k - 2))
    return np.where(exists, np.where(c == 0, 1, m), 0)


def count_covered(proved: np.ndarray, k: int) -> int:
    """Exact count of the inputs the lemmas cover: sum of N (c = 0) and C(k-1, c) N^c."""
    total = int(proved[:, :, 0].sum())
    for c in range(1, k):
        hist = np.bincount(proved[:, :, c].ravel())
        total += comb(k - 1, c) * sum(int(n) ** c * int(h) for n, h in enumerate(hist) if h)
    return total


def exp_scaled(scores: flint.fmpq_mat, d_head: int, work: Work) -> Interval:
    """Float enclosures of exp((scores[q, j] - max_j scores[q, j]) / sqrt(d_head)), via arb."""
    rows, cols, entries = scores.nrows(), scores.ncols(), scores.entries()
    shifts = [max(entries[r * cols : (r + 1) * cols]) for r in range(rows)]
    return exp_enclosure(entries, shifts, cols, 1 / flint.arb(d_head).sqrt(), work, flops=4)


def extreme_sums(eqkp: flint.fmpq_mat, beta: Interval, work: Work) -> tuple[Interval, Interval]:
    """asc[q, n] / desc[q, n]: the sum of the n smallest / largest non-query beta[q, .], rounded
    outward; positions sorted by exact EQKP (exp increases: beta's exact order, ties equal)."""
    v, k = eqkp.nrows(), eqkp.ncols()
    entries = eqkp.entries()
    rows = [sorted(range(k - 1), key=lambda i, r=r: entries[r * k + i]) for r in range(v)]
    order = np.array(rows, dtype=np.int64).reshape(v, k - 1)
    work.add(v * max(k - 2, 0))  # checking a sort of k-1 values: k-2 comparisons
    sums = []
    for idx in (order, order[:, ::-1]):
        lo, hi = (np.take_along_axis(b, idx, axis=1) for b in beta)
        sums.append((prefix_sums(lo, down0), prefix_sums(hi, up)))
        work.add(2 * lo.size)
    return sums[0], sums[1]


def proved_tokens(m: int, k: int, margin: np.ndarray, t: Tables, work: Work) -> tuple:
    """For max m and margins margin[q, c]: ok[q, c, k'] (k' < m, c >= 1), whether token k'
    certainly satisfies (2) at both arrangements, and ok0[q], whether the input (m, .., m, q)
    (c = 0) certainly does (S < 0 strictly: margin 0 is sound too; absent cases: meaningless)."""
    alpha, beta, asc, desc = t[:4]
    v = alpha[0].shape[0]
    q = np.arange(v)
    pvou_star, evou_c, eu_c, g = slot_bounds(m, k, t, work)
    # c >= 1: h[q, c, t] and S for both arrangements, every k' < m at once
    y = up(g[:, None, :] + margin[:, :, None])
    h = up_mul((alpha[0][:, None, :], alpha[1][:, None, :]), y)
    h_m, h_q, h_k = h[:, :, m], h[q, :, q], h[:, :, :m]
    query = up_mul((beta[0][:, -1:], beta[1][:, -1:]), h_q)  # [q, c]
    c = np.arange(k)
    s = []
    for xs, ys in ((asc, desc), (desc, asc)):  # arrangement A then B: (X, Y) sums
        sx = up(up_mul((xs[0][:, k - 1 - c], xs[1][:, k - 1 - c]), h_m) + query)
        sy = up_mul((ys[0][:, c, None], ys[1][:, c, None]), h_k)
        s.append(up(sx[:, :, None] + sy))
    ok = np.maximum(s[0], s[1]) < 0
    work.add(4 * h.size + 11 * h_k.size + 11 * v * k)
    # c = 0: the single input (m, .., m, q), wrong tokens not split from the attention
    base = up(up(eu_c + pvou_star) + margin[:, 0, None])  # [q, x]
    w_m = mul_iv((alpha[0][:, m], alpha[1][:, m]), (asc[0][:, -1], asc[1][:, -1]))
    w_q = mul_iv((alpha[0][q, q], alpha[1][q, q]), (beta[0][:, -1], beta[1][:, -1]))
    at_m = up_mul((w_m[0][:, None], w_m[1][:, None]), up(base + evou_c[m]))
    at_q = up_mul((w_q[0][:, None], w_q[1][:, None]), up(base + evou_c))
    work.add(12 * v * (v - 1) + 4 * v)
    return ok, up(at_m + at_q).max(axis=1) < 0


def slot_bounds(m: int, k: int, t: Tables, work: Work) -> tuple[np.ndarray, ...]:
    """Upper bounds of (1) for max m: PVOU*[x], EVOU_c[t, x], EU_c[q, x] over the wrong tokens
    x != m, and g[q, t] = EU*[q] + F[t]."""
    evou, pvou, eu = t[4:]
    v = eu[0].shape[0]
    x = np.arange(v) != m  # the wrong tokens
    pvou_star = up(pvou[1][:, x] - pvou[0][:, m : m + 1]).max(axis=0)  # [x]
    evou_c = up(evou[1][:, x] - evou[0][:, m : m + 1])  # [t, x]
    eu_c = up(eu[1][:, x] - eu[0][:, m : m + 1])  # [q, x]
    f = up(evou_c + pvou_star).max(axis=1)  # F[t]
    g = up(eu_c.max(axis=1)[:, None] + f)  # g[q, t] = EU*[q] + F[t]
    work.add(2 * k * v + 6 * v * (v - 1) + v * v)
    return pvou_star, evou_c, eu_c, g


def mul_iv(a: Interval, b: Interval) -> Interval:
    """[lo, hi] enclosing a b for non-negative intervals a, b (lower ends clamped at 0)."""
    return down0(a[0] * b[0]), up(a[1] * b[1])


def cost(c: Config) -> Cost:
    """Exact circuits; per max token a dozen float tables [v, K, v]; K v³ float operations."""
    v, k = c.d_vocab, c.n_ctx
    return rule_cost(c, 3 * v * v + 2 * k * v, 12 * k * v * v + 20 * v * v, k * v**3, v * v + k * v)


ESTIMATES["cubic"] = cost
