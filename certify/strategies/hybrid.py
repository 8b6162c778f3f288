"""The hybrid proof's prover: cubic lemmas, and the unproved remainder of chosen cases enumerated.

Cases (q, m, c) as in the cubic proof (docs/strategies.md, "Hybrid"). Per case, in float64:
- the lemma tokens A_p, whose cubic bound is below -2 delta (``cubic.lemma_tokens``): the
  checker, testing the same bound soundly at margin 0, finds at least these;
- how many of the case's inputs are correct, how many lie outside the lemma part (the
  remainder), how many of those are correct and how many the cheap test of Lemma 5 passes with
  room to spare;
- hence the checker FLOPs of the remainder at level 1 (Lemma 5 only) and level 2 (then the full
  evaluation), by ``FlopModel``.
Without a budget every case with a remainder is at level 2, so the checker counts exactly the
exact accuracy (float64 may misjudge an input whose logits nearly tie; the checker does not);
then only the remainder is evaluated (``remainder_stats``: the checker's product sets P_r, a
piece of at most CHUNK inputs at a time), and correct = covered + the correct remainder inputs.
With budget F every input is evaluated on the circuit tables as brute force does
(``case_stats``; beyond FULL_STATS_LIMIT inputs only the remainder, whose statistics then also
stand for a case whose lemmas are not run: exact if they cover nothing, else an under-claim),
and the lemmas' max tokens, then cases at level 1, then at level 2 go in order
of correct inputs per checker FLOP while the checker's total FLOPs stay <= F x the brute-force
check's.
Nothing here is trusted: the checker derives its own lemma tokens, the partition and every
enumerated input.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Iterator
from math import comb, prod
from typing import NamedTuple

import numpy as np

from certify.certificate import Proof, encode_array
from certify.circuits import Circuits
from certify.model import MaxOfKConfig
from certify.strategies.brute import correct_for_query, query_table, query_weights
from certify.strategies.cubic import case_exists, lemma_tokens
from checker.guard import worker_pool

EVALUATION_LIMIT = 2**31  # the largest input space a budgeted hybrid proof is planned for
REMAINDER_LIMIT = 2**33  # inputs one unbudgeted check may enumerate (Max-of-6: 5.5e9)
FULL_STATS_LIMIT = 2**28  # beyond, a budget is planned from the remainder alone (Max-of-5)
CHUNK = 2**20  # inputs the remainder path evaluates at a time: bounds a worker's memory
_SHARED: tuple[Circuits, np.ndarray, np.ndarray] | None = None  # inherited by forked workers
_LAST_STATS: tuple[Circuits, dict[bool, Stats]] | None = None  # the last model's case_stats


def prove(
    config: MaxOfKConfig,
    weights: dict[str, np.ndarray],
    c: Circuits,
    budget: float | None = None,
) -> Proof:
    v, k = config.d_vocab, config.n_ctx
    if v < 2:
        raise ValueError("the hybrid strategy needs d_vocab >= 2")
    if budget is not None and not 0 < budget <= 1:
        raise ValueError(f"--budget must be in (0, 1], got {budget}")
    if budget is not None and v**k > EVALUATION_LIMIT:
        raise ValueError(
            f"hybrid: with a budget the prover evaluates all {v}^{k} inputs, beyond its limit "
            "of 2^31; use plain hybrid, cubic or a sub-cubic strategy"
        )
    flops = FlopModel(config)
    inside, inside0 = lemma_tokens(c)
    covered = covered_counts(inside, inside0, k)
    if budget is None:
        remainder = np.where(case_exists(v, k), case_sizes(v, k) - covered, 0).sum()
        if remainder > REMAINDER_LIMIT:
            raise ValueError(
                f"hybrid: the unproved remainder ({remainder} inputs) is too large to "
                "enumerate in one check; use --budget F"
            )
        stats = {True: remainder_stats(c, inside, inside0, covered)}
        stats[False] = stats[True]  # every lemma is run
        lemma, level = np.ones(v, dtype=bool), np.where(stats[True].remainder > 0, 2, 0)
    elif v**k > FULL_STATS_LIMIT:  # the remainder's stats stand in for a whole case's
        stats = {True: remainder_stats(c, inside, inside0, covered)}
        stats[False] = stats[True]  # exact where a max token's lemmas cover nothing; else the
        lemma, level = choose(flops, budget, covered, stats)  # claim is below the rule's count
    else:
        stats = case_stats(c, inside, inside0)
        lemma, level = choose(flops, budget, covered, stats)
    on = lemma[None, :, None]
    pick = Stats(*(np.where(on, a, b) for a, b in zip(stats[True], stats[False], strict=True)))
    base = np.where(on, covered, 0)
    correct = np.select([level == 2, level == 1], [pick.correct, base + pick.passed], base)
    return Proof(
        strategy="hybrid",
        correct_count=int(correct.sum(dtype=object)),
        options={} if budget is None else {"budget": f"{budget:g}"},
        lemmas={
            "lemma": encode_array(lemma.astype(np.int64)),
            "enumerate": encode_array(level.astype(np.int64)),
            "correct": encode_array(correct.astype(np.int64)),
        },
        report={
            "enumerated_inputs": int(pick.remainder[level > 0].sum()),
            "predicted_flops": flops.total(lemma, level, pick),
        },
    )


def case_sizes(v: int, k: int) -> np.ndarray:
    """[q, m, c]: inputs in case (q, m, c) (C(K-1, c) m^c, 1 for c = 0; 0 if it does not exist)."""
    n = np.array([comb(k - 1, i) for i in range(k)], dtype=object)[None, None, :]
    n = n * np.arange(v, dtype=object)[None, :, None] ** np.arange(k)[None, None, :]
    return np.where(case_exists(v, k), n, 0).astype(np.int64)


def covered_counts(inside: np.ndarray, inside0: np.ndarray, k: int) -> np.ndarray:
    """[q, m, c]: inputs the lemmas cover, C(K-1, c) |A_p|^c (c >= 1) or 0/1 (c = 0)."""
    n = inside.sum(axis=3).astype(object)
    out = np.array([comb(k - 1, i) for i in range(k)], dtype=object) * n ** np.arange(k)
    out[:, :, 0] = inside0
    return out


class Stats(NamedTuple):
    """Per case [q, m, c], in float64 (int64 counts): the case's correct inputs, its remainder
    (inputs outside the lemma part), the correct ones among them, and those Lemma 5's cheap test
    passes with room to spare (so the checker passes them too)."""

    correct: np.ndarray
    remainder: np.ndarray
    remainder_correct: np.ndarray
    passed: np.ndarray


def case_stats(c: Circuits, inside: np.ndarray, inside0: np.ndarray) -> dict[bool, Stats]:
    """``Stats`` with the lemma tokens (True) and with none, as for a max token whose lemmas are
    not run (False), from one evaluation of every input."""
    global _SHARED, _LAST_STATS
    if _LAST_STATS is not None and _LAST_STATS[0] is c:  # several budgets for one model
        return _LAST_STATS[1]
    v = c.config.d_vocab
    _SHARED = (c, inside, inside0)
    workers = min(os.cpu_count() or 1, 8) if v >= 8 else 1
    ctx = multiprocessing.get_context("fork")
    with worker_pool(workers, ctx) as pool:  # Ctrl-C: no worker left behind
        rows = list(pool.map(_query_stats, range(v)))
    _SHARED = None
    correct, rem, rem_correct, passed, every, passed_all = (
        np.stack([r[i] for r in rows]) for i in range(6)
    )
    stats = {
        True: Stats(correct, rem, rem_correct, passed),
        False: Stats(correct, every, correct, passed_all),
    }
    _LAST_STATS = (c, stats)
    return stats


def _query_stats(q: int) -> list[np.ndarray]:
    """For query q, per (m, c): correct inputs, remainder, correct remainder, remainder passing
    the cheap test, all inputs, all passing; a block of v^(K-2) inputs at a time."""
    assert _SHARED is not None
    c, inside, inside0 = _SHARED
    v, k = c.config.d_vocab, c.config.n_ctx
    correct_all, n_free = correct_for_query(c, q).reshape(-1), k - 1
    block = v ** max(n_free - 1, 0)
    inner = np.indices((v,) * max(n_free - 1, 0), dtype=np.int16).reshape(-1, block)
    tables = cheap_tables(c, q)
    sums = [np.zeros(v * k, dtype=np.int64) for _ in range(6)]
    for first in range(v if n_free else 1):
        head = np.full((min(n_free, 1), block), first, np.int16)
        grid, correct = (
            np.concatenate([head, inner]),
            correct_all[first * block : (first + 1) * block],
        )
        top = np.maximum(grid.max(axis=0, initial=0), q)
        below = grid < top
        n_below = below.sum(axis=0)
        in_lemma = np.ones(len(top), dtype=bool)
        for j in range(k - 1):
            in_lemma &= ~below[j] | inside[q][top, n_below, grid[j]]
        in_lemma = np.where(n_below == 0, inside0[q][top], in_lemma)
        case = top.astype(np.int64) * k + n_below
        rem, passed = ~in_lemma, cheap_test(tables, q, grid, top)
        everything = np.ones(len(top), dtype=bool)
        for total, mask in zip(
            sums, (correct, rem, rem & correct, rem & passed, everything, passed), strict=True
        ):
            total += np.bincount(case[mask], minlength=v * k)
    return [total.reshape(v, k) for total in sums]


def remainder_stats(
    c: Circuits, inside: np.ndarray, inside0: np.ndarray, covered: np.ndarray
) -> Stats:
    """``Stats`` with the lemma tokens from the remainder alone: correct = covered + the correct
    remainder inputs (the lemma part is correct by the lemmas), the remainder enumerated as the
    checker partitions it, query tokens split between forked workers."""
    global _SHARED
    v = c.config.d_vocab
    _SHARED = (c, inside, inside0)
    workers = min(os.cpu_count() or 1, 8) if v >= 8 else 1
    with worker_pool(workers, multiprocessing.get_context("fork")) as pool:
        rows = list(pool.map(_query_remainder, range(v)))  # small q first: the most cases
    _SHARED = None
    rem, rem_correct, passed = (np.stack([r[i] for r in rows]) for i in range(3))
    correct = (covered + rem_correct).astype(np.int64)
    return Stats(correct, rem, rem_correct, passed)


def _query_remainder(q: int) -> list[np.ndarray]:
    """For query q, per (m, c): the remainder's inputs, its correct ones and those passing the
    cheap test, evaluated in product pieces of at most CHUNK inputs."""
    assert _SHARED is not None
    c, inside, inside0 = _SHARED
    v, k = c.config.d_vocab, c.config.n_ctx
    tables, full = cheap_tables(c, q), (*query_table(c, q), *query_weights(c, q))
    sums = [np.zeros((v, k), dtype=np.int64) for _ in range(3)]
    exists = case_exists(v, k)
    for m, n_below in np.argwhere(exists[q]).tolist():
        if n_below == 0:
            pieces = [] if inside0[q, m] else [[np.array([m])] * (k - 1)]
        else:
            pieces = remainder_products(m, n_below, k, np.flatnonzero(inside[q, m, n_below]))
        for slots in pieces:
            counts = evaluate(tables, full, q, m, slots)
            for total, n in zip(sums, counts, strict=True):
                total[m, n_below] += n
    return sums


def remainder_products(m: int, n_below: int, k: int, lemma: np.ndarray) -> Iterator[list]:
    """The remainder of case (q, m, c = n_below >= 1) with lemma tokens ``lemma``: over every
    placement J of the c tokens < m and r = 0..c-1, the product set P_r = A^r x B x
    {0..m-1}^(c-1-r) (the checker's partition, docs/strategies.md), as per-position token sets
    in pieces of at most CHUNK inputs."""
    top, below = np.array([m]), np.arange(m)
    outside = np.setdiff1d(below, lemma)
    for placement in itertools.combinations(range(k - 1), n_below):
        for r in range(n_below):
            slots = [top] * (k - 1)
            for i, j in enumerate(placement):
                slots[j] = lemma if i < r else outside if i == r else below
            yield from split(slots, CHUNK)


def split(slots: list[np.ndarray], limit: int) -> Iterator[list[np.ndarray]]:
    """The product of the token sets ``slots`` in pieces of at most max(limit, 1) inputs: the
    leading positions fixed one token at a time until the rest fits."""
    if prod(len(s) for s in slots) == 0:
        return
    lead = 0
    while prod(len(s) for s in slots[lead:]) > limit:
        lead += 1
    for head in itertools.product(*slots[:lead]):
        yield [np.array([t]) for t in head] + slots[lead:]


def evaluate(
    tables: tuple[np.ndarray, ...],
    full: tuple[np.ndarray, np.ndarray],
    q: int,
    m: int,
    slots: list[np.ndarray],
) -> tuple[int, int, int]:
    """(inputs, correct, passing the cheap test) of the product of ``slots`` (query q, max m):
    the cheap test (as ``cheap_test``, summed over the product by broadcasting), then the full
    float64 logits (as brute force sums them) of the inputs it does not pass."""
    table, arg, first, second, w, twice = tables
    shape = [len(s) for s in slots]
    a, b, den = np.zeros(()), np.zeros(()), w[len(slots), q]
    for j, s in enumerate(slots):
        axis = [1] * len(slots)
        axis[j] = len(s)
        a = a + table[j, s, m].reshape(axis)
        b = b + np.where(arg[j, s] == m, second[j, s], first[j, s]).reshape(axis)
        if twice[m]:  # float32 only: the softmax denominator, for the target's 2 D[q, m] den
            den = den + w[j, s].reshape(axis)
    k = len(slots) + 1
    a = a + table[k - 1, q, m]
    if twice[m]:
        a = a - twice[m] * den
    b = b + (second if arg[k - 1, q] == m else first)[k - 1, q]
    passed = (a - b > 2.0**-30 * (np.abs(a) + np.abs(b))).reshape(-1)
    n_passed = n_correct = int(passed.sum())
    fail = np.flatnonzero(~passed)
    for part in np.array_split(fail, len(fail) // 2**14 + 1):  # logits [n, v]: a few MB at most
        index = np.unravel_index(part, shape) if slots else ()
        tokens = np.array([s[i] for s, i in zip(slots, index, strict=True)], dtype=np.int64)
        logit = logits(*full[:2], tokens.reshape(len(slots), len(part)))
        right = logit[:, m].copy()
        if twice[m]:  # float32: den in the full tables' own scaling (brute.query_weights)
            weight, w_query = full[2:]
            right = right - twice[m] * (weight[np.arange(k - 1)[:, None], tokens].sum(0) + w_query)
        logit[:, m] = -np.inf
        n_correct += int((right > logit.max(axis=1, initial=-np.inf)).sum())
    return passed.size, n_correct, n_passed


def logits(table: np.ndarray, g_query: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """[n, v]: the float64 logits (times the softmax denominator) of the inputs (tokens[:, i],
    q), summed in brute force's order (its last two free positions, then the query's row plus
    the others), so that both paths judge an input alike."""
    free, n = tokens.shape
    n_inner = min(2, free)
    inner, base = np.zeros((n, len(g_query))), np.zeros((n, len(g_query)))
    for j in range(free - n_inner, free):
        inner = inner + table[j][tokens[j]]
    for j in range(free - n_inner):
        base = base + table[j][tokens[j]]
    return inner + (g_query + base)


def cheap_tables(c: Circuits, q: int) -> tuple[np.ndarray, ...]:
    """p_i[t, x] = w_i(t) (EVOU[t, x] + PVOU[i, x] + EU[q, x]) of query q, the argmax of each
    row, its largest entry and the largest of the others."""
    scores = (c.eqke[q][None, :] + c.eqkp[q, :, None]) / c.scale  # [K, v]
    w = np.exp(scores - scores.max())
    eu, twice = c.eu[q], np.zeros(len(w[0]))
    if c.allowance is not None:  # float32: logit+ = logit + D[q]; target side 2 D[q, m] den
        eu, twice = eu + c.allowance[q], 2 * c.allowance[q]
    table = w[..., None] * (c.evou[None] + c.pvou[:, None, :] + eu)  # [K, t, x]
    arg = table.argmax(axis=2)
    rest = table.copy()
    np.put_along_axis(rest, arg[:, :, None], -np.inf, axis=2)
    return table, arg, table.max(axis=2), rest.max(axis=2), w, twice


def cheap_test(
    tables: tuple[np.ndarray, ...], q: int, grid: np.ndarray, top: np.ndarray
) -> np.ndarray:
    """Lemma 5 in float64, with a margin of 2^-30 of the terms' size: sum_i p_i[t_i, m] against
    sum_i max_{x != m} p_i[t_i, x]."""
    table, arg, first, second, w, twice = tables
    tokens = np.concatenate([grid, np.full((1, grid.shape[1]), q, dtype=grid.dtype)])
    slot = np.arange(len(tokens))[:, None]
    a = table[slot, tokens, top[None, :]].sum(axis=0)
    if twice.any():  # float32: the target's 2 D[q, m] times the softmax denominator
        a = a - twice[top] * w[slot, tokens].sum(axis=0)
    wrong = np.where(arg[slot, tokens] == top[None, :], second[slot, tokens], first[slot, tokens])
    b = wrong.sum(axis=0)
    return a - b > 2.0**-30 * (np.abs(a) + np.abs(b))


class FlopModel:
    """The FLOPs the checker counts for a hybrid certificate, term by term (checker/circuits.py,
    rules/cubic.py, rules/hybrid.py, rules/brute.py); tests compare it with the checker's count,
    and ``brute`` with the checker's count for a brute-force certificate."""

    def __init__(self, config: MaxOfKConfig):
        v, k, d, h = config.d_vocab, config.n_ctx, config.d_model, config.d_head
        self.v, self.k = v, k
        self.always = v * d  # E_q
        self.circuits = (
            v * h * (2 * d - 1) + v * h + v * d * (2 * h - 1) + v * d  # (E V + b_V) O + b_O
            + v * v * (2 * d - 1) + v * v  # EVOU
            + k * h * (2 * d - 1) + k * d * (2 * h - 1) + k * v * (2 * d - 1)  # PVOU
            + v * v * (2 * d - 1)  # EU
            + 2 * (v * h * (2 * d - 1) + v * h) + v * v * (2 * h - 1)  # query, key, EQKE
            + k * h * (2 * d - 1) + v * k * (2 * h - 1)  # EQKP
        )  # fmt: skip
        self.lemma_tables = 4 * v * v + 4 * v * k + v * max(k - 2, 0) + 4 * v * (k - 1)
        self.lemma_at = [
            2 * k * v + 6 * v * (v - 1) + v * v + 4 * v * v + 24 * v * k + 8 * v + v * k * m
            for m in range(v)
        ]
        self.enum_tables = 2 * v * v + k * v + k * v * v
        self.per_query = 14 * k * v * v  # the float tables p, H
        self.per_max = 2 * k * v  # a and b of Lemma 5 for one (q, m)
        self.cheap = 3 * k + 1  # Lemma 5, per input
        self.full = k * v + 4  # Lemma 3, per input Lemma 5 leaves

    def brute(self) -> int:
        """A brute-force check: per query, blocks of v^n inputs (n = min(2, K-1) inner
        positions), one for each choice of the other v^(K-1-n)."""
        v, k = self.v, self.k
        n = v ** min(2, k - 1)
        blocks = v ** (k - 1) // n * (k * v + 2 * v * n + 8 * n)
        return self.always + self.circuits + self.enum_tables + v * (self.per_query + blocks)

    def cost(self, level: np.ndarray, stats: Stats) -> np.ndarray:
        """[q, m, c]: the inputs' FLOPs of each case's remainder at that level (an upper bound:
        the checker's lemma tokens and cheap test take in at least the prover's)."""
        fails = stats.remainder - stats.passed
        return np.where(level > 0, stats.remainder * self.cheap, 0) + np.where(
            level == 2, fails * self.full, 0
        )

    def total(self, lemma: np.ndarray, level: np.ndarray, stats: Stats) -> int:
        """A hybrid check running the lemmas at ``lemma`` and enumerating at ``level``."""
        out = self.always + (self.circuits if lemma.any() or level.any() else 0)
        if lemma.any():
            out += self.lemma_tables + sum(self.lemma_at[m] for m in np.flatnonzero(lemma))
        if level.any():
            queries = int(level.any(axis=(1, 2)).sum())
            out += self.enum_tables + queries * (self.per_query + 2 * self.k * self.v**2)
            out += int(level.any(axis=2).sum()) * self.per_max
            out += int(self.cost(level, stats).sum())
        return out


def feasible(config: MaxOfKConfig, name: str) -> bool:
    """Does the sweep run strategy ``name`` (hybrid or hybrid:F) on a model of this shape: every
    input evaluable by the budgeted prover, and F x brute force's FLOPs at least the exact
    circuits' cost? (Plain hybrid also runs beyond, on the remainder alone, but that is too
    long for the sweep: Max-of-6 takes about 3 CPU minutes to prove and 25 to check.)"""
    from certify.strategies import budget_of

    if config.d_vocab**config.n_ctx > EVALUATION_LIMIT:
        return False
    budget, flops = budget_of(name), FlopModel(config)
    return budget is None or budget * flops.brute() >= flops.always + flops.circuits


def choose(
    flops: FlopModel, budget: float, covered: np.ndarray, stats: dict[bool, Stats]
) -> tuple[np.ndarray, np.ndarray]:
    """Lemma max tokens, then remainders at level 1 (Lemma 5 only), then at level 2, greedily by
    correct inputs per checker FLOP, each taken while the whole check (tables included) stays
    within budget x brute force's FLOPs."""
    limit = budget * flops.brute()
    if limit < flops.always + flops.circuits:
        raise ValueError(f"--budget {budget:g} is below the cost of the circuits alone")
    gain = covered.sum(axis=(0, 2)).astype(np.float64)
    lemma = np.zeros(flops.v, dtype=bool)
    level = np.zeros(covered.shape, dtype=np.int64)
    for m in np.argsort(-gain / np.array(flops.lemma_at), kind="stable").tolist():
        trial = lemma.copy()
        trial[m] = True
        if gain[m] > 0 and flops.total(trial, level, stats[True]) <= limit:
            lemma = trial
    on = lemma[None, :, None]
    pick = Stats(*(np.where(on, a, b) for a, b in zip(stats[True], stats[False], strict=True)))
    used = flops.total(lemma, level, pick) + (0 if lemma.any() else flops.circuits)
    for target, gains in ((1, pick.passed), (2, pick.remainder_correct)):
        base = flops.cost(level, pick)
        trial_level = np.full_like(level, target)
        extra = flops.cost(trial_level, pick) - base  # the inputs' FLOPs of raising each case
        useful = np.argwhere((gains > 0) & (level < target))
        ratio = gains[tuple(useful.T)] / np.maximum(extra[tuple(useful.T)], 1)
        for q, m, c in useful[np.argsort(-ratio, kind="stable")].tolist():
            more = int(extra[q, m, c]) + flops.per_max * (not level[q, m].any())
            more += (flops.per_query + 2 * flops.k * flops.v**2) * (not level[q].any())
            more += flops.enum_tables * (not level.any())
            if used + more <= limit:
                level[q, m, c], used = target, used + more
    return lemma, level
