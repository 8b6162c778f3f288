"""The hybrid proof's prover: cubic lemmas, and the unproved remainder of chosen cases enumerated.

Cases (q, m, c) as in the cubic proof (docs/strategies.md, "Hybrid"). Per case, in float64:
- the lemma tokens A_p, whose cubic bound is below -2 delta (``cubic.lemma_tokens``): the
  checker, testing the same bound soundly at margin 0, finds at least these;
- how many of the case's inputs are correct, from every input evaluated on the circuit tables as
  brute force does, and how many of them lie outside the lemma part (the remainder);
- the checker FLOPs of enumerating the remainder, by the block formula of the brute-force rule.
Without a budget every case whose remainder holds a correct input is enumerated (the others
would add nothing), so the claim is the exact accuracy. With budget F, the cases with the most
correct remainder inputs per checker FLOP go first while the checker's total FLOPs stay
<= F x the brute-force check's. Nothing here is trusted: the checker derives its own lemma
tokens, the partition and every enumerated input.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from math import comb, prod
from pathlib import Path

import numpy as np

from certify.certificate import Proof, encode_array
from certify.circuits import Circuits
from certify.model import MaxOfKConfig
from certify.strategies.brute import correct_for_query
from certify.strategies.cubic import case_exists, lemma_tokens

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
    inside, inside0 = lemma_tokens(c)
    covered = covered_counts(inside, inside0, k)
    total, rem_size, rem_correct = case_stats(c, inside, inside0)
    cost = remainder_flops(inside, inside0, k)
    if budget is None and rem_size[rem_correct > 0].sum() > REMAINDER_LIMIT:
        raise ValueError(
            f"hybrid: the unproved remainder ({rem_size.sum()} inputs) is too large to enumerate "
            "in one check; use --budget F"
        )
    candidates = rem_correct > 0
    if budget is not None:
        base = base_flops(config, weights, covered)
        limit = budget * brute_flops(config) - base
        candidates = choose(rem_correct, cost, limit, query_flops(v, k))
    enumerate_ = candidates.astype(np.int64)
    correct = np.where(candidates, total, covered).astype(np.int64)
    return Proof(
        strategy="hybrid",
        correct_count=int(correct.sum(dtype=object)),
        options={} if budget is None else {"budget": f"{budget:g}"},
        lemmas={"enumerate": encode_array(enumerate_), "correct": encode_array(correct)},
        report={"enumerated_inputs": int(rem_size[candidates].sum())},
    )


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
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        rows = list(pool.map(_query_stats, range(v)))
    _SHARED = None
    return tuple(np.stack([r[i] for r in rows]) for i in range(3))  # type: ignore[return-value]


def _query_stats(q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For query q, per (m, c): correct inputs, remainder inputs, correct remainder inputs."""
    assert _SHARED is not None
    c, inside, inside0 = _SHARED
    v, k = c.config.d_vocab, c.config.n_ctx
    correct = correct_for_query(c, q).reshape(-1)
    grid = np.indices((v,) * (k - 1), dtype=np.int16).reshape(k - 1, -1)
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


def query_flops(v: int, k: int) -> int:
    """The checker's FLOPs per query token with something to enumerate (its float tables)."""
    return 14 * k * v * v


def choose(gain: np.ndarray, cost: np.ndarray, limit: float, per_query: int) -> np.ndarray:
    """Greedy: cases by correct remainder inputs per FLOP, each taken if it (and its query's
    tables, the first time) fits in what is left of ``limit``."""
    chosen = np.zeros(gain.shape, dtype=bool)
    used, queries = 0, set()
    useful = np.argwhere(gain > 0)
    ratio = gain[tuple(useful.T)] / np.maximum(cost[tuple(useful.T)], 1)
    for q, m, c in useful[np.argsort(-ratio, kind="stable")].tolist():
        extra = int(cost[q, m, c]) + (0 if q in queries else per_query)
        if used + extra <= limit:
            chosen[q, m, c], used = True, used + extra
            queries.add(q)
    return chosen


def brute_flops(config: MaxOfKConfig) -> int:
    """The FLOPs the checker reports for a brute-force check of this model's shape (its exact
    circuits, float tables, and per query the full block enumeration)."""
    v, k, d, h = config.d_vocab, config.n_ctx, config.d_model, config.d_head
    circuits = (
        v * d  # E_q
        + v * h * (2 * d - 1) + v * h + v * d * (2 * h - 1) + v * d  # (E V + b_V) O + b_O
        + v * v * (2 * d - 1) + v * v  # EVOU
        + k * h * (2 * d - 1) + k * d * (2 * h - 1) + k * v * (2 * d - 1)  # PVOU
        + v * v * (2 * d - 1)  # EU
        + 2 * (v * h * (2 * d - 1) + v * h) + v * v * (2 * h - 1)  # query, key, EQKE
        + k * h * (2 * d - 1) + v * k * (2 * h - 1)  # EQKP
    )  # fmt: skip
    tables = 2 * v * v + k * v + k * v * v
    full = block_flops([v] * (k - 1), v, k)
    return circuits + tables + v * (query_flops(v, k) + full)


def base_flops(config: MaxOfKConfig, weights: dict[str, np.ndarray], covered: np.ndarray) -> int:
    """The checker's FLOPs with nothing enumerated (measured by checking such a certificate)
    plus the float tables that any enumeration adds."""
    from certify.certificate import build, write
    from certify.sweep import run_checker

    v, k = config.d_vocab, config.n_ctx
    lemmas = {
        "enumerate": encode_array(np.zeros((v, v, k), np.int64)),
        "correct": encode_array(covered.astype(np.int64)),
    }
    proof = Proof("hybrid", int(covered.sum(dtype=object)), lemmas=lemmas)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base.cert.json"
        write(build(config, weights, proof), path)
        result = run_checker(path)
    if result.get("verdict") != "verified":
        raise ValueError(f"hybrid: the lemma part did not verify: {result.get('failed_claim')}")
    return int(result["flops"]) + 2 * v * v + k * v + k * v * v
