"""The hybrid proof's prover: cubic lemmas, and the unproved remainder of chosen cases enumerated.

Cases (q, m, c) as in the cubic proof (docs/strategies.md, "Hybrid"). Per case, in float64:
- the lemma tokens A_p, whose cubic bound is below -2 delta (``cubic.lemma_tokens``): the
  checker, testing the same bound soundly at margin 0, finds at least these;
- how many of the case's inputs are correct, from every input evaluated on the circuit tables as
  brute force does, and how many of them lie outside the lemma part (the remainder);
- the checker FLOPs of enumerating the remainder, by the block formula of the brute-force rule.
Without a budget every case with a remainder is enumerated, so the checker counts exactly the
exact accuracy (float64 may misjudge an input whose logits nearly tie; the checker does not).
With budget F, the lemmas' max tokens and then the cases with the most correct remainder inputs
per checker FLOP go first while the checker's total FLOPs stay <= F x the brute-force check's.
Nothing here is trusted: the checker derives its own lemma tokens, the partition and every
enumerated input.
"""

from __future__ import annotations

import multiprocessing
import os
from math import comb, prod

import numpy as np

from certify.certificate import Proof, encode_array
from certify.circuits import Circuits
from certify.model import MaxOfKConfig
from certify.strategies.brute import correct_for_query
from certify.strategies.cubic import case_exists, lemma_tokens
from checker.guard import worker_pool

EVALUATION_LIMIT = 2**31  # the prover evaluates every input (Max-of-5, 2^30: about a minute)
REMAINDER_LIMIT = 2**31  # inputs one unbudgeted check may enumerate
_SHARED: tuple[Circuits, np.ndarray, np.ndarray] | None = None  # inherited by forked workers


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
    if v**k > EVALUATION_LIMIT:
        raise ValueError(
            f"hybrid: the prover evaluates all {v}^{k} inputs, beyond its limit of 2^31; "
            "use cubic or a sub-cubic strategy"
        )
    flops = FlopModel(config)
    inside, inside0 = lemma_tokens(c)
    covered = covered_counts(inside, inside0, k)
    total, rem_size, rem_correct = case_stats(c, inside, inside0)
    cost = remainder_flops(inside, inside0, k)
    empty = remainder_flops(np.zeros_like(inside), np.zeros_like(inside0), k)
    if budget is None:
        if rem_size.sum() > REMAINDER_LIMIT:
            raise ValueError(
                f"hybrid: the unproved remainder ({rem_size.sum()} inputs) is too large to "
                "enumerate in one check; use --budget F"
            )
        lemma, enumerate_ = np.ones(v, dtype=bool), rem_size > 0
    else:
        lemma, enumerate_ = choose(flops, budget, covered, total, rem_correct, cost, empty)
    lemma_m = lemma[None, :, None]
    correct = np.where(enumerate_, total, np.where(lemma_m, covered, 0)).astype(np.int64)
    enumerated = np.where(lemma_m, rem_size, case_sizes(v, k))[enumerate_]
    return Proof(
        strategy="hybrid",
        correct_count=int(correct.sum(dtype=object)),
        options={} if budget is None else {"budget": f"{budget:g}"},
        lemmas={
            "lemma": encode_array(lemma.astype(np.int64)),
            "enumerate": encode_array(enumerate_.astype(np.int64)),
            "correct": encode_array(correct),
        },
        report={
            "enumerated_inputs": int(enumerated.sum()),
            "predicted_flops": flops.total(lemma, enumerate_, np.where(lemma_m, cost, empty)),
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


def case_stats(
    c: Circuits, inside: np.ndarray, inside0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[q, m, c] int64: correct inputs, remainder inputs and correct remainder inputs."""
    global _SHARED
    v = c.config.d_vocab
    _SHARED = (c, inside, inside0)
    workers = min(os.cpu_count() or 1, 8) if v >= 8 else 1
    ctx = multiprocessing.get_context("fork")
    with worker_pool(workers, ctx) as pool:  # Ctrl-C: no worker left behind
        rows = list(pool.map(_query_stats, range(v)))
    _SHARED = None
    return tuple(np.stack([r[i] for r in rows]) for i in range(3))  # type: ignore[return-value]


def _query_stats(q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For query q, per (m, c): correct inputs, remainder inputs, correct remainder inputs."""
    assert _SHARED is not None
    c, inside, inside0 = _SHARED
    v, k = c.config.d_vocab, c.config.n_ctx
    correct = correct_for_query(c, q).reshape(-1)
    grid = np.indices((v,) * (k - 1), dtype=np.int16).reshape(k - 1, v ** (k - 1))
    top = np.maximum(grid.max(axis=0, initial=0), q)
    below = grid < top
    n_below = below.sum(axis=0)
    in_lemma = np.ones(len(top), dtype=bool)
    for j in range(k - 1):
        in_lemma &= ~below[j] | inside[q][top, n_below, grid[j]]
    in_lemma = np.where(n_below == 0, inside0[q][top], in_lemma)
    case = top.astype(np.int64) * k + n_below
    rem = ~in_lemma
    return tuple(
        np.bincount(case[mask], minlength=v * k).reshape(v, k)
        for mask in (correct, rem, rem & correct)
    )  # type: ignore[return-value]


def block_flops(sizes: list[int], v: int, k: int) -> int:
    """The checker's FLOPs for one product block of slot-set sizes (brute.count_block): the
    inner block of the two largest sets with the query and single-token rows folded in, then
    per choice of the other slots an add (if any), a max and the decision."""
    free = k - 1
    n_inner = min(2, free)
    order = sorted(sizes)
    inner, rest = order[free - n_inner :], order[: free - n_inner]
    loops = [s for s in rest if s > 1]
    cumulative = [prod(inner[: i + 1]) for i in range(len(inner))]
    n_in, n_outer = prod(inner), prod(loops)
    per_outer = (v * (len(loops) + n_in) if loops else 0) + v * n_in + 8 * n_in
    return v * (len(rest) - len(loops) + 1) + sum(cumulative) * (v + 1) + n_outer * per_outer


def remainder_flops(inside: np.ndarray, inside0: np.ndarray, k: int) -> np.ndarray:
    """[q, m, c]: the checker's FLOPs to enumerate the case's remainder (the sets P_r)."""
    v = inside.shape[0]
    n_inside = inside.sum(axis=3)
    cost = np.zeros((v, v, k), dtype=np.int64)
    exists = case_exists(v, k)
    cost[:, :, 0] = np.where(exists[:, :, 0] & ~inside0, block_flops([1] * (k - 1), v, k), 0)
    for q, m, cc in np.argwhere(exists[:, :, 1:]).tolist():
        a = int(n_inside[q, m, cc + 1])
        pieces = ([1] * (k - 2 - cc) + [a] * r + [m - a] + [m] * (cc - r) for r in range(cc + 1))
        total = sum(block_flops(s, v, k) for s in pieces if min(s) > 0)
        cost[q, m, cc + 1] = comb(k - 1, cc + 1) * total
    return cost


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
        self.per_query = 14 * k * v * v

    def brute(self) -> int:
        """A brute-force check: every query's full block enumeration."""
        full = block_flops([self.v] * (self.k - 1), self.v, self.k)
        return self.always + self.circuits + self.enum_tables + self.v * (self.per_query + full)

    def total(self, lemma: np.ndarray, enumerate_: np.ndarray, cost: np.ndarray) -> int:
        """A hybrid check running the lemmas at ``lemma`` and enumerating ``enumerate_``."""
        out = self.always + (self.circuits if lemma.any() or enumerate_.any() else 0)
        if lemma.any():
            out += self.lemma_tables + sum(self.lemma_at[m] for m in np.flatnonzero(lemma))
        if enumerate_.any():
            queries = np.flatnonzero(enumerate_.any(axis=(1, 2)))
            out += self.enum_tables + len(queries) * self.per_query + int(cost[enumerate_].sum())
        return out


def feasible(config: MaxOfKConfig, name: str) -> bool:
    """Can strategy ``name`` (hybrid or hybrid:F) run on a model of this shape: every input
    evaluable by the prover, and F x brute force's FLOPs at least the exact circuits' cost?"""
    from certify.strategies import budget_of

    if config.d_vocab**config.n_ctx > EVALUATION_LIMIT:
        return False
    budget, flops = budget_of(name), FlopModel(config)
    return budget is None or budget * flops.brute() >= flops.always + flops.circuits


def choose(
    flops: FlopModel,
    budget: float,
    covered: np.ndarray,
    total: np.ndarray,
    rem_correct: np.ndarray,
    cost: np.ndarray,
    empty: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Lemma max tokens, then enumerated cases, greedily by correct inputs per checker FLOP,
    each taken if it (with the tables it needs first) fits in budget x brute force's FLOPs."""
    left = budget * flops.brute() - flops.always - flops.circuits
    if left < 0:
        raise ValueError(f"--budget {budget:g} is below the cost of the circuits alone")
    gain = covered.sum(axis=(0, 2)).astype(np.float64)
    lemma = np.zeros(flops.v, dtype=bool)
    for m in np.argsort(-gain / np.array(flops.lemma_at), kind="stable").tolist():
        extra = flops.lemma_at[m] + (0 if lemma.any() else flops.lemma_tables)
        if gain[m] > 0 and extra <= left:
            lemma[m], left = True, left - extra
    lemma_m = lemma[None, :, None]
    gain, cost = np.where(lemma_m, rem_correct, total), np.where(lemma_m, cost, empty)
    enumerate_ = np.zeros(gain.shape, dtype=bool)
    useful = np.argwhere(gain > 0)
    ratio = gain[tuple(useful.T)] / np.maximum(cost[tuple(useful.T)], 1)
    for q, m, c in useful[np.argsort(-ratio, kind="stable")].tolist():
        extra = int(cost[q, m, c]) + (0 if enumerate_[q].any() else flops.per_query)
        extra += 0 if enumerate_.any() else flops.enum_tables
        if extra <= left:
            enumerate_[q, m, c], left = True, left - extra
    return lemma, enumerate_
