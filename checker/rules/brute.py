"""Brute force, soundly: every one of the v^K inputs, counted only when provably correct.

For query token q the softmax factors over positions: with exact scores
sigma_i(t) = EQKE[q, t] + EQKP[q, i], weights w_i(t) = exp(sigma_i(t) / s - tau_q) (s =
sqrt(d_head), tau_q any constant) and tables T_i[t, x] = EVOU[t, x] + PVOU[i, x] + EU[q, x],

    L[x] := sum_i w_i(t_i) T_i[t_i, x] = (positive constant) * logit[x],

so an input is correct iff L[m] > L[x] for every x != m (m its max token; a tie is wrong).

1. Filter (docs/strategies.md, "Brute force", Lemmas 1-3). L is evaluated in plain float64 from
   rounded tables, exactly like the prover's fast path (one [v, v, v] block per choice of the
   other free positions), together with S = sum_i H_i[t_i], H_i[t] >= w_i(t) max_x B_i[t, x],
   which is separable like L. Then |fl(L[x]) - L[x]| <= theta0 S + zeta0 for every x, and the
   input is certainly correct if fl(L[m] - max_{x != m} L[x]) > E := fl(theta S + zeta),
   certainly wrong if it is < -E.
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
from typing import TypeVar

import flint
import numpy as np

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


R = TypeVar("R")
_TABLES: Tables | None = None  # inherited by forked workers
_WORK: Work | None = None


def cost(c: Config) -> Cost:
    """Exact scores [q][i][t]; per worker float tables [K, v, v] and blocks [v^(inner + 1)]."""
    v, k = c.d_vocab, c.n_ctx
    workers = min(os.cpu_count() or 1, 8) if v >= 8 else 1
    floats = workers * (2 * v ** min(3, k) + 4 * k * v * v)
    return rule_cost(c, 3 * v * v + 2 * k * v + k * v * v, floats, v ** (k + 1), k * v * v)


ESTIMATES["brute"] = cost


def check(cert: Certificate, work: Work) -> RuleResult:
    """Count the inputs provably correct in exact real arithmetic (``claim.correct_count``)."""
    global _TABLES, _WORK
    _TABLES, _WORK = tables(cert, Weights(cert, work), work), work
    count, undecided, v = 0, 0, cert.config.d_vocab
    queries = range(v - 1, -1, -1)  # large q first: their blocks are slowest
    for done, (n, flops, und) in enumerate(map_queries(count_query, queries, v), 1):
        count, undecided = count + n, undecided + und
        work.add(flops)
        work.tick("brute force: query tokens", done, v)
    _TABLES = _WORK = None
    report = {"unexplained_dims": v ** (cert.config.n_ctx + 1), "undecided_inputs": undecided}
    return RuleResult(count, report=report)


def tables(cert: Certificate, w: Weights, work: Work) -> Tables:
    """Exact circuits and scores, their float tables, and the thresholds of Lemma 3."""
    k, v = cert.config.n_ctx, cert.config.d_vocab
    exact = (w.evou(), w.pvou(), w.eu())
    evou, pvou, eu = (to_floats(m, work) for m in exact)
    eqke, eqkp = w.eqke(), w.eqkp()
    score = [[[eqke[q, t] + eqkp[q, i] for t in range(v)] for i in range(k)] for q in range(v)]
    work.add(k * v * v)
    big = max(np.abs(a).max() for a in (evou, pvou, eu))
    bmax = 3 * Fraction(float(big))  # >= every B_i[t, x] = |a~| + |b~| + |c~|
    if k * W_MAX * (bmax + 1) >= 2**1000:
        raise FormatError("model: weights too large in magnitude for the float64 filter")
    theta, zeta = thresholds(k, Fraction(W_MAX), bmax)
    return Tables(k, v, cert.config.d_head, evou, pvou, eu, score, exact, theta, zeta)


def map_queries(task: Callable[[int], R], queries: Sequence[int], v: int) -> Iterator[R]:
    """task(q) for each query token, in forked worker processes that inherit the tables; on an
    exception (time limit) queued queries stop at their first tick."""
    workers = min(os.cpu_count() or 1, 8) if v >= 8 and len(queries) > 1 else 1
    with worker_pool(workers, multiprocessing.get_context("fork")) as pool:
        yield from pool.map(task, queries)


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


def count_query(q: int) -> tuple[int, int, int]:
    """(correct inputs, FLOPs, undecided inputs) among the v^(K-1) inputs whose query is q."""
    T = _TABLES
    assert T is not None and _WORK is not None
    table, mag, flops = query_tables(T, q)
    everything = [np.arange(T.v)] * (T.k - 1)
    count, more, undecided = count_block(T, q, table, mag, everything, _WORK)
    return count, flops + more, undecided


def query_tables(T: Tables, q: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-position float tables of query q: p_i[t, x] = fl(w~_i(t) T~_i[t, x]) [k, v, v] and
    H_i[t] >= w~_i(t) max_x B_i[t, x] [k, v] (Lemmas 1-2), with their FLOPs."""
    weight = softmax_weights(T.score[q], T.d_head)  # [k, v]
    raw = (T.evou[None] + T.pvou[:, None, :]) + T.eu[q]  # T~_i[t, x] = fl(fl(a~ + b~) + c~)
    bmag = up(up(np.abs(T.evou)[None] + np.abs(T.pvou)[:, None, :]) + np.abs(T.eu[q]))
    mag = up(weight * bmag.max(axis=2))
    return weight[:, :, None] * raw, mag, 14 * T.k * T.v * T.v


def count_block(
    T: Tables, q: int, table: np.ndarray, mag: np.ndarray, slots: list[np.ndarray], work: Work
) -> tuple[int, int, int]:
    """(correct, FLOPs, undecided) among the inputs with query q and t_i in slots[i], i < K-1.

    The input set is the product of the slot sets. The query row, the rows of single-token
    slots and the two largest sets form an inner block, summed once; every choice of the other
    slots adds its rows to it (Lemmas 2-3 hold for any summation order), then undecided inputs
    are settled exactly (Lemma 4)."""
    v, free = T.v, T.k - 1
    order = sorted(range(free), key=lambda i: len(slots[i]))
    n_inner = min(2, free)
    inner_pos, rest = order[free - n_inner :], order[: free - n_inner]
    fixed = [j for j in rest if len(slots[j]) == 1]
    loop_pos = [j for j in rest if len(slots[j]) > 1]
    tokens = [int(slots[j][0]) for j in fixed]
    inner = table[free, q] + table[fixed, tokens].sum(axis=0)
    inner_s = np.full((1,) * n_inner, mag[free, q] + mag[fixed, tokens].sum())
    inner_max = np.full((1,) * n_inner, max([q, *tokens]))
    inner = inner.reshape((1,) * n_inner + (v,))
    flops = v * (len(fixed) + 1)
    for axis, j in enumerate(inner_pos):
        shape = [1] * n_inner
        shape[axis] = len(slots[j])
        inner = inner + table[j, slots[j]].reshape(*shape, v)
        inner_s = inner_s + mag[j, slots[j]].reshape(shape)
        inner_max = np.maximum(inner_max, slots[j].reshape(shape))
        flops += inner_s.size * (v + 1)
    inner_shape = inner_s.shape
    inner = np.ascontiguousarray(inner.reshape(-1, v).T)  # [x, inputs]: max over axis 0 is fast
    inner_s, inner_max = inner_s.reshape(-1), inner_max.reshape(-1)  # both full: every axis set
    rows = np.arange(len(inner_max))
    count, undecided, n_in = 0, 0, len(rows)
    for outer in itertools.product(*(slots[j].tolist() for j in loop_pos)):
        work.tick()
        block, base_s = inner, 0.0  # one pass: the block may be overwritten
        if loop_pos:
            base = sum(table[j, t] for j, t in zip(loop_pos, outer, strict=True))
            base_s = sum(mag[j, t] for j, t in zip(loop_pos, outer, strict=True))
            block = inner + base[:, None]  # fl(L[x]) of every input in this block
            flops += v * (len(loop_pos) + n_in)
        target = np.maximum(inner_max, max(outer, default=0))
        right = block[target, rows]
        block[target, rows] = -np.inf
        margin = right - block.max(axis=0)  # fl(L[m] - max_{x != m} L[x])
        bound = T.theta * (inner_s + base_s) + T.zeta  # E = fl(theta S + zeta)
        count += int(np.count_nonzero(margin > bound))
        flops += v * n_in + 8 * n_in
        for row in np.flatnonzero(np.abs(margin) <= bound):
            undecided += 1
            seq = [q] * T.k
            for j in fixed:
                seq[j] = int(slots[j][0])
            for j, t in zip(loop_pos, outer, strict=True):
                seq[j] = t
            for j, i in zip(inner_pos, np.unravel_index(row, inner_shape), strict=True):
                seq[j] = int(slots[j][i])
            close = np.flatnonzero(right[row] - block[:, row] <= bound[row])
            count += settle(T, tuple(seq), [int(x) for x in close])
    return count, flops, undecided


def top_two(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per position and token: the largest entry of p_i[t, :], where it is, and the largest of
    the others (exact float comparisons), so max_{x != m} p_i[t, x] costs one choice per m."""
    arg = table.argmax(axis=2)
    first = np.take_along_axis(table, arg[:, :, None], axis=2)[:, :, 0]
    rest = table.copy()
    np.put_along_axis(rest, arg[:, :, None], -np.inf, axis=2)
    return arg, first, rest.max(axis=2)


def count_known_max(
    T: Tables,
    q: int,
    m: int,
    tables: tuple[np.ndarray, ...],
    tokens: np.ndarray,
    full: np.ndarray,
    work: Work,
) -> tuple[np.ndarray, int, int]:
    """(correct [n], FLOPs, undecided) for the inputs (tokens[:, j] .., q), all of max m, with
    tables = (p, H, top_two(p)) of query q.

    Lemma 5 first, at 3K + 1 FLOPs an input: with a_i[t] = p_i[t, m] and b_i[t] =
    max_{x != m} p_i[t, x], r = fl(fl(sum a) - fl(sum b)) > E = fl(theta S + zeta) proves it
    correct. The rest, where ``full`` is set, are evaluated in full (Lemma 3, rows gathered)
    and settled exactly if undecided (Lemma 4); elsewhere they are not counted."""
    table, mag, (arg, first, second) = tables
    v, k, n = T.v, T.k, tokens.shape[1]
    slot = np.arange(k - 1)[:, None]
    a, b = table[:, :, m], np.where(arg == m, second, first)  # [K, v]
    margin = a[k - 1, q] + a[slot, tokens].sum(axis=0) - (b[k - 1, q] + b[slot, tokens].sum(axis=0))
    bound = T.theta * (mag[k - 1, q] + mag[slot, tokens].sum(axis=0)) + T.zeta
    correct = margin > bound
    fail = np.flatnonzero(~correct & full)
    undecided = 0
    for part in np.array_split(fail, len(fail) // 2**14 + 1):
        work.tick()
        rows = table[k - 1, q] + table[slot, tokens[:, part]].sum(axis=0)  # fl(L[x]) [n, v]
        right = rows[:, m].copy()
        rows[:, m] = -np.inf
        decided = right - rows.max(axis=1)
        correct[part] = decided > bound[part]
        for i in np.flatnonzero(np.abs(decided) <= bound[part]):
            undecided += 1
            close = np.flatnonzero(right[i] - rows[i] <= bound[part[i]]).tolist()
            correct[part[i]] = settle(T, (*tokens[:, part[i]].tolist(), q), close)
    return correct, 2 * k * v + n * (3 * k + 1) + len(fail) * (k * v + 4), undecided


def settle(T: Tables, seq: tuple[int, ...], close: list[int]) -> bool:
    """Exactly: is L[m] > L[x] for each x in ``close`` (Lemma 4)? Undecidable -> not counted."""
    q, m = seq[-1], max(seq)
    evou, pvou, eu = T.exact
    for x in close:
        terms: dict[flint.fmpq, flint.fmpq] = {}
        for i, t in enumerate(seq):
            sigma = T.score[q][i][t]
            d = evou[t, m] - evou[t, x] + pvou[i, m] - pvou[i, x] + eu[q, m] - eu[q, x]
            terms[sigma] = terms.get(sigma, flint.fmpq(0)) + d
        try:
            if exp_sum_sign(terms, T.d_head) <= 0:
                return False
        except ValueError:
            return False
    return True
