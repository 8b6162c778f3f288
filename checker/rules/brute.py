"""Brute force, soundly: every one of the v^K inputs, counted only when provably correct.

For query token q the softmax factors over positions: with exact scores
sigma_i(t) = EQKE[q, t] + EQKP[q, i], weights w_i(t) = exp(sigma_i(t) / s - tau_q) (s =
sqrt(d_head), tau_q any constant) and tables T_i[t, x] = EVOU[t, x] + PVOU[i, x] + EU[q, x],

    L[x] := sum_i w_i(t_i) T_i[t_i, x] = (positive constant) * logit[x],

so an input is correct iff L[m] > L[x] for every x != m (m its max token; a tie is wrong).

1. Filter (docs/strategies.md, "Brute force", Lemmas 1-3). L is evaluated in float64 from
   rounded tables, one [v, v, v] block per choice of the other free positions, with S = sum_i
   H_i[t_i], H_i[t] >= w_i(t) max_x B_i[t, x] (separable like L). Then |fl(L[x]) - L[x]| <=
   theta0 S + zeta0 for every x: the input is certainly correct if fl(L[m] - max_{x != m} L[x])
   > E := fl(theta S + zeta), certainly wrong if it is < -E.
2. Settle (Lemma 4). Undecided inputs are decided exactly: for each x whose float margin is
   within E, den * margin = sum_g D_g exp(sigma_g / s) over groups of equal exact score, whose
   sign ``exp_sum_sign`` finds exactly (Lindemann-Weierstrass: zero iff every D_g is zero).
Query tokens are split between forked worker processes.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import flint
import numpy as np

from checker import arith, float32
from checker.arith import ETA, U, arb_float, exp_sum_sign, float_above, gamma, nearest_float, up
from checker.circuits import Weights
from checker.cost import ESTIMATES, Cost, Work, rule_cost
from checker.format import Certificate, Config, FormatError
from checker.guard import worker_pool
from checker.rules import RuleResult

W_MAX = 4.0  # every float softmax weight is <= W_MAX (checked)
EPS_W = 2 * U  # each float softmax weight w~ satisfies |w - w~| <= EPS_W w~ + ETA (arb-checked)


@dataclass
class Tables:
    """What the workers need: float tables for the filter, exact ones to settle."""

    k: int
    v: int
    d_head: int
    evou: np.ndarray  # [v, v] nearest floats of the exact circuits
    pvou: np.ndarray  # [k, v]
    eu: np.ndarray  # [v, v]
    score: list[list[list[flint.fmpq]]]  # [q][i][t] exact sigma_i(t)
    exact: tuple[flint.fmpq_mat, flint.fmpq_mat, flint.fmpq_mat]  # EVOU, PVOU, EU
    theta: float
    zeta: float
    shift: np.ndarray | None = None  # float32 semantics: [q] c_M of Lemma 6; None: exact
    twice: flint.fmpq_mat | None = None  # 2 D' [q, x] exact (Lemma 6)


TABLES: Tables | None = None  # what ``map_queries`` tasks read (forked workers inherit it)
WORK: Work | None = None


def cost(c: Config) -> Cost:
    """Exact scores [q][i][t]; per worker float tables [K, v, v] and blocks [v^(inner + 1)]."""
    v, k = c.d_vocab, c.n_ctx
    floats = workers(v) * (2 * v ** min(3, k) + 4 * k * v * v)
    return rule_cost(c, 3 * v * v + 2 * k * v + k * v * v, floats, v ** (k + 1), k * v * v)


ESTIMATES["brute"] = cost


def workers(v: int) -> int:  # forked workers for d_vocab v (one for small v: forking costs more)
    return min(os.cpu_count() or 1, 8) if v >= 8 else 1


def check(cert: Certificate, work: Work, inputs: range | None = None) -> RuleResult:
    """Count the inputs (in the shard ``inputs``, if given) provably correct in exact reals."""
    count, undecided, v, k = 0, 0, cert.config.d_vocab, cert.config.n_ctx
    # Blocks: inputs differing only in the inner free positions; block q * per_q + (outer index)
    size, per_q = v ** min(2, k - 1), v ** max(k - 3, 0)
    first, stop = (0, v * per_q) if inputs is None else (inputs.start // size, inputs.stop // size)
    pieces = [(q, max(first - q * per_q, 0), min(stop - q * per_q, per_q)) for q in range(v)]
    pieces = [p for p in reversed(pieces) if p[1] < p[2]]  # large q first: slowest blocks
    t = tables(cert, Weights(cert, work), work)
    for n, und in map_queries(count_query, pieces, t, work, "brute force: query tokens"):
        count, undecided = count + n, undecided + und
    report = {"unexplained_dims": v ** (k + 1), "undecided_inputs": undecided}
    return RuleResult(count, report=report)


def tables(cert: Certificate, w: Weights, work: Work) -> Tables:
    """Exact circuits and scores, their float tables, and the thresholds of Lemma 3."""
    k, v = cert.config.n_ctx, cert.config.d_vocab
    allow = float32.allowance(cert, w)
    eu = w.eu if allow is None else w.eu + arith.exact_matrix(allow)  # float32: EU+ = EU + D'
    exact = (w.evou, w.pvou, eu)
    evou, pvou, eu = (to_floats(m, work) for m in exact)
    eqke, eqkp = w.eqke, w.eqkp
    score = [[[eqke[q, t] + eqkp[q, i] for t in range(v)] for i in range(k)] for q in range(v)]
    work.add(k * v * v)
    big = max(np.abs(a).max() for a in (evou, pvou, eu))
    bmax = 3 * Fraction(float(big))  # >= every B_i[t, x] = |a~| + |b~| + |c~|
    if k * W_MAX * (bmax + 1) >= 2**1000:
        raise FormatError("model: weights too large in magnitude for the float64 filter")
    theta, zeta = thresholds(k, Fraction(W_MAX), bmax)
    t = Tables(k, v, cert.config.d_head, evou, pvou, eu, score, exact, theta, zeta)
    if allow is not None:  # Lemma 6: c_M >= 2 max_x D'[q, x] (1 + u) / ((1 - gamma_{K-1})(1 - u))
        scale = 2 * (1 + U) / ((1 - gamma(k - 1)) * (1 - U))
        t.shift = np.array([float_above(Fraction(float(row.max())) * scale) for row in allow])
        t.twice = arith.exact_matrix(2 * allow)  # exact: doubling a float
    return t


def map_queries(task: Callable, queries: Sequence, t: Any, work: Work, label: str) -> Iterator:
    """task(q) = (FLOPs, *result) for each query, in forked worker processes that inherit
    TABLES = t (None only if there are no queries) and WORK; yields the results, FLOPs added to
    ``work``. On an exception (time limit) queued queries stop at their first tick."""
    global TABLES, WORK
    TABLES, WORK = t, work
    n = workers(t.v) if len(queries) > 1 else 1
    try:
        with worker_pool(n, multiprocessing.get_context("fork")) as pool:
            # not pool.map: leaving it early cancels the queued futures, which races the pool's
            # own cleanup once worker_pool has killed the workers (InvalidStateError, < 3.12)
            futures = [pool.submit(task, q) for q in queries]
            for done, future in enumerate(futures, 1):
                flops, *result = future.result()
                work.add(flops)
                work.tick(label, done, len(queries))
                yield result
    finally:
        TABLES = WORK = None


def to_floats(m: flint.fmpq_mat, work: Work) -> np.ndarray:
    """Each exact entry rounded to the nearest float64 (|a~ - a| <= u|a| + ETA)."""
    work.add(m.nrows() * m.ncols())
    flat = [nearest_float(x) for x in m.entries()]
    return np.array(flat, dtype=np.float64).reshape(m.nrows(), m.ncols())


def softmax_weights(score: list[list[flint.fmpq]], d_head: int) -> np.ndarray:
    """Float weights w~[i, t] ~ exp(sigma_i(t) / s - tau) for one query token's exact scores.

    Each weight is an arb ball at 128 bits; w~ is its midpoint's nearest float, kept only if arb
    proves |w - w~| <= EPS_W w~ + ETA. tau, a float near the largest sigma / s, cancels in the
    sign of L; W_MAX bounds every w~ (used in zeta). Failures: FormatError (exit 2).
    """
    weight = np.empty((len(score), len(score[0])))
    eta = flint.arb(2) ** -1075
    with flint.ctx.workprec(128):
        s = flint.arb(d_head).sqrt()
        tau = arb_float(flint.arb(max(max(row) for row in score)) / s)
        for i, row in enumerate(score):
            for t, sigma in enumerate(row):
                w = (flint.arb(sigma) / s - tau).exp()
                weight[i, t] = arb_float(w)
                if not abs(w - weight[i, t]) <= flint.arb(weight[i, t]) * float(EPS_W) + eta:
                    raise FormatError("model: a softmax weight is not enclosed at 128 bits")
    if not weight.max() <= W_MAX:
        raise FormatError("model: scores too large for the float64 filter")
    return weight


def thresholds(k: int, w_max: Fraction, bmax: Fraction) -> tuple[float, float]:
    """theta, zeta of Lemma 3 (docs/strategies.md): |fl(L) - L| <= theta0 S + zeta0, and an
    input whose float margin exceeds fl(theta S + zeta) has every exact margin > 0."""
    rho = U * (1 + gamma(2)) + gamma(2) + (U + EPS_W) / (1 - U)
    theta0 = (rho + gamma(k - 1) * (1 + U) * (1 + gamma(2))) / (1 - gamma(k - 1))
    omega = ETA * (2 + 4 * w_max + 2 * bmax)
    zeta0 = k * (omega + ETA)
    theta = 2 * theta0 * (1 + U) / (1 - U) ** 2
    zeta = (2 * zeta0 * (1 + U) + ETA) / (1 - U)
    return float_above(theta), float_above(zeta)


def count_query(piece: tuple[int, int, int]) -> tuple[int, int, int]:
    """(FLOPs, correct, undecided) among the inputs with query q in blocks lo..hi-1 (check)."""
    q, lo, hi = piece
    T = TABLES
    assert T is not None and WORK is not None
    k, v, free = T.k, T.v, T.k - 1
    table, mag, wt, flops = query_tables(T, q)
    n_inner = min(2, free)
    inner, inner_s = np.zeros((1,) * n_inner + (v,)), np.zeros((1,) * n_inner)
    inner_w = np.zeros((1,) * n_inner)
    inner_max = np.full((1,) * n_inner, q)
    for axis, j in enumerate(range(free - n_inner, free)):
        shape = [1] * n_inner
        shape[axis] = v
        inner = inner + table[j].reshape(*shape, v)
        inner_s = inner_s + mag[j].reshape(shape)
        inner_w = inner_w + wt[j].reshape(shape)
        inner_max = np.maximum(inner_max, np.arange(v).reshape(shape))
    tokens = np.indices(inner_s.shape).reshape(n_inner, inner_s.size)  # each input's inner tokens
    inner = np.ascontiguousarray(inner.reshape(-1, v).T)  # [x, inputs]: max over axis 0 is fast
    inner_s, inner_max, inner_w = inner_s.reshape(-1), inner_max.reshape(-1), inner_w.reshape(-1)
    block = np.empty_like(inner)
    count, undecided, n_outer = 0, 0, 0
    for outer in itertools.islice(itertools.product(range(v), repeat=free - n_inner), lo, hi):
        WORK.tick()
        n_outer += 1
        base, base_s, base_w = table[free, q].copy(), mag[free, q], wt[free, q]
        for j, t in enumerate(outer):
            base, base_s, base_w = base + table[j, t], base_s + mag[j, t], base_w + wt[j, t]
        target = np.maximum(inner_max, max(outer, default=q))
        np.add(inner, base[:, None], out=block)  # fl(L[x]) of every input in this block
        bound = T.theta * (inner_s + base_s) + T.zeta
        shift = None if T.shift is None else up(T.shift[q] * (inner_w + base_w))
        correct, und = decide(T, block, target, bound, (outer, tokens, q), shift)
        count, undecided = count + int(np.count_nonzero(correct)), undecided + und
    n = len(inner_max)
    return flops + n_outer * (k * v + 2 * v * n + 8 * n), count, undecided


def query_tables(T: Tables, q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per-position float tables of query q: p_i[t, x] = fl(w~_i(t) T~_i[t, x]) [k, v, v],
    H_i[t] >= w~_i(t) max_x B_i[t, x] [k, v] (Lemmas 1-2) and, for Lemma 6, each exact weight's
    upper bound w <= w~ (1 + EPS_W) + ETA <= up(w~ (1 + 4u)) (up adds >= 2^-1074 > ETA)."""
    weight = softmax_weights(T.score[q], T.d_head)  # [k, v]
    raw = (T.evou[None] + T.pvou[:, None, :]) + T.eu[q]  # T~_i[t, x] = fl(fl(a~ + b~) + c~)
    bmag = up(up(np.abs(T.evou)[None] + np.abs(T.pvou)[:, None, :]) + np.abs(T.eu[q]))
    mag, wt = up(weight * bmag.max(axis=2)), up(weight * float_above(1 + 4 * U))
    return weight[:, :, None] * raw, mag, wt, 14 * T.k * T.v * T.v


def top_two(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per position and token: the largest entry of p_i[t, :], where it is, and the largest of
    the others (exact float comparisons), so max_{x != m} p_i[t, x] costs one choice per m."""
    arg = table.argmax(axis=2)
    first = np.take_along_axis(table, arg[:, :, None], axis=2)[:, :, 0]
    rest = table.copy()
    np.put_along_axis(rest, arg[:, :, None], -np.inf, axis=2)
    return arg, first, rest.max(axis=2)


def count_known_max(
    T: Tables, q: int, m: int, tables: tuple, tokens: np.ndarray, full: np.ndarray, work: Work
) -> tuple[np.ndarray, int, int]:
    """(correct [n], FLOPs, undecided) for the inputs (tokens[:, j] .., q), all of max m, with
    tables = (p, H, weight bounds, top_two(p)) of query q. The FLOPs leave out a and b below
    (2Kv), which the caller counts once per (q, m) however many batches it settles.

    Lemma 5 first, at 3K + 1 FLOPs an input: with a_i[t] = p_i[t, m] and b_i[t] =
    max_{x != m} p_i[t, x], r = fl(fl(sum a) - fl(sum b)) > E = fl(theta S + zeta) proves it
    correct. The rest, where ``full`` is set, are evaluated in full (Lemma 3, rows gathered)
    and settled exactly if undecided (Lemma 4); elsewhere they are not counted."""
    table, mag, wt, (arg, first, second) = tables
    k, n = T.k, tokens.shape[1]
    slot = np.arange(k - 1)[:, None]
    a, b = table[:, :, m], np.where(arg == m, second, first)  # [K, v]
    margin = a[k - 1, q] + a[slot, tokens].sum(axis=0) - (b[k - 1, q] + b[slot, tokens].sum(axis=0))
    bound = T.theta * (mag[k - 1, q] + mag[slot, tokens].sum(axis=0)) + T.zeta
    weights = wt[k - 1, q] + wt[slot, tokens].sum(axis=0)
    shift = None if T.shift is None else up(T.shift[q] * weights)
    correct = margin > (bound if shift is None else up(bound + shift))
    fail = np.flatnonzero(~correct & full)
    undecided = 0
    for part in np.array_split(fail, len(fail) // 2**14 + 1):
        work.tick()
        rows = table[k - 1, q] + table[slot, tokens[:, part]].sum(axis=0)  # fl(L[x]) [n, v]
        part_shift = None if shift is None else shift[part]
        correct[part], und = decide(T, rows.T, m, bound[part], ((), tokens[:, part], q), part_shift)
        undecided += und
    return correct, n * (3 * k + 1) + len(fail) * (k * T.v + 4), undecided


def decide(T: Tables, logits: np.ndarray, target: Any, bound: Any, inputs: tuple, shift=None):
    """(correct [n], undecided) for the inputs j = (*outer, *tokens[:, j], q), inputs = (outer,
    tokens, q), with float logits fl(L[x]) in the columns of logits [v, n] (overwritten) and max
    tokens target: correct if fl(L[m] - max_{x != m} L[x]) > E = bound (Lemma 3; float32
    semantics: > up(E + M), M = shift, Lemma 6), wrong if < -E, else settled exactly (Lemma 4)."""
    outer, tokens, q = inputs
    cols = np.arange(logits.shape[1])
    right = logits[target, cols]
    logits[target, cols] = -np.inf
    margin = right - logits.max(axis=0)
    high = bound if shift is None else up(bound + shift)
    correct = margin > high
    undecided = np.flatnonzero(~correct & (margin >= -bound))
    for j in undecided:
        close = np.flatnonzero(right[j] - logits[:, j] <= high[j]).tolist()
        correct[j] = settle(T, (*outer, *tokens[:, j].tolist(), q), close)
    return correct, len(undecided)


def settle(T: Tables, seq: tuple[int, ...], close: list[int]) -> bool:
    """Exactly: is L[m] > L[x] for each x in ``close`` (Lemma 4)? Undecidable -> not counted."""
    q, m = seq[-1], max(seq)
    evou, pvou, eu = T.exact
    for x in close:
        terms: dict[flint.fmpq, flint.fmpq] = {}
        for i, t in enumerate(seq):
            sigma = T.score[q][i][t]
            d = evou[t, m] - evou[t, x] + pvou[i, m] - pvou[i, x] + eu[q, m] - eu[q, x]
            d = d if T.twice is None else d - T.twice[q, m]  # float32: L+[m] - 2D'W > L+[x]
            terms[sigma] = terms.get(sigma, flint.fmpq(0)) + d
        try:
            if exp_sum_sign(terms, T.d_head) <= 0:
                return False
        except ValueError:
            return False
    return True
