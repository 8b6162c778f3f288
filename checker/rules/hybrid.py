"""Hybrid proofs: the cubic lemmas, and the inputs they leave unproved settled one by one
(docs/strategies.md, "Hybrid", proves each step below).

Cases (q, m, c) as in the cubic rule (checker/rules/cubic.py); they partition {0..v-1}^K. An
input of case c >= 1 has its c tokens < m at positions J = (j_0 < .. < j_{c-1}), values t_J.

Lemmas: the cubic lemmas at margin 0, strictly (S < 0), with h(t) = alpha(t) g(t) computed once
per (q, m) and a threshold per case. Let R >= X h(m) + beta_q h(q) (rounded up) and h^ >= h(k').
Then S < 0 follows from h^ < tau, with tau = down(-R / Y_lo) if R >= 0 (so h^ < 0 and Y h(k') <=
Y_lo h^ < -R), and tau = max(down(-R / Y_hi), 0) if R < 0 (h^ < 0 gives S <= R < 0; 0 <= h^ <
tau gives Y h(k') <= Y_hi h^ < -R); tau = -inf if R is not a number or Y_lo = 0 < R. So
A(q, m, c) = {k' < m : h^(k') < min(tau_A, tau_B)}. For c = 0 the input (m, .., m, q) is proved
iff R < 0 with X = T, the sum of every non-query beta.

Partition. The lemmas cover the C(K-1, c) |A|^c inputs with t_J in A^c (the mediant argument).
The rest of the case is the disjoint union over r = 0..c-1 of the product sets

    P_r = A^r x B x {0..m-1}^(c-1-r)    (j_0..j_{r-1} in A, j_r in B = {0..m-1} - A),

classified by the first position j_r whose token is outside A; for c = 0 the one input is
covered or enumerated. The checker derives both parts from its own A (the certificate lists
cases, never inputs), so no input is counted twice or skipped, whatever the certificate says.
The inputs of every P_r of one (q, m) are settled in batches by ``brute.count_known_max`` (Lemma
5, then at level 2 the float filter and exact settlement, ties wrong): a case at level 2 counts
exactly its correct inputs. The certificate (docs/format.md) names the lemmas to evaluate, the
remainders to enumerate and each case's claim; the first case proved below its claim rejects it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from math import comb, prod

import numpy as np

from checker.arith import down, up, up_mul
from checker.circuits import Weights
from checker.cost import ESTIMATES, Cost, Work, rule_cost
from checker.format import Certificate, Config, FormatError, decode_field
from checker.rules import RuleResult, brute, cubic

CHUNK = 2**20  # inputs settled at a time: bounds a worker's memory (tests lower it)


def cost(c: Config) -> Cost:
    """The cubic and brute-force rules' tables and per worker a batch of at most CHUNK inputs
    ([K-1, n] tokens and gathered table, a few [n] vectors); at least the exact circuits' time."""
    v, k = c.d_vocab, c.n_ctx
    batch = brute.workers(v) * (4 * (k - 1) + 4) * min(CHUNK, v ** (k - 1))
    memory = cubic.cost(c).bytes + brute.cost(c).bytes + 8 * batch
    return Cost(memory, rule_cost(c, 0, 0, 0, 0).seconds)


ESTIMATES["hybrid"] = cost


def check(cert: Certificate, work: Work, inputs: range | None = None) -> RuleResult:
    """Check the cases, and count the inputs, of every query token in the shard ``inputs`` (whole
    queries: a case is one query's, so shards' counts add up; docs/strategies.md, "Shards")."""
    v, k = cert.config.d_vocab, cert.config.n_ctx
    if v < 2:
        raise FormatError("strategy hybrid needs d_vocab >= 2")
    lemma, enumerate_, claimed = read_lemmas(cert, v, k)
    per_query = v ** (k - 1)  # the inputs of one query token, consecutive indices
    inputs = range(v**k) if inputs is None else inputs
    if inputs.start % per_query or inputs.stop % per_query:  # span() never does this
        raise ValueError(f"hybrid: shard {inputs} does not hold whole query tokens")
    queries = range(inputs.start // per_query, inputs.stop // per_query)
    claimed[: queries.start], claimed[queries.stop :] = 0, 0  # other shards' claims
    w = Weights(cert, work)
    counts, plan = cover(cert, w, lemma, enumerate_, queries)
    undecided = enumerated = 0
    todo, t = sorted(plan.items())[::-1], brute.tables(cert, w, work) if plan else None
    for q, found, und in brute.map_queries(settle_query, todo, t, work, "hybrid: queries"):
        for m, c, n, size in found:
            counts[q, m, c] += n
            enumerated += size
        undecided += und
    bad = np.argwhere(counts < claimed)
    if len(bad):
        q, m, c = (int(i) for i in bad[0])
        why = f"claimed {claimed[q, m, c]} correct inputs, proved {counts[q, m, c]}"
        return RuleResult(0, failed=f"lemmas.correct[{q},{m},{c}]: {why}")
    dims = 3 * v * v + 2 * k * v + enumerated * v
    report = dict(unexplained_dims=dims, enumerated_inputs=enumerated, undecided_inputs=undecided)
    return RuleResult(int(counts.sum()), report=report)


def read_lemmas(cert: Certificate, v: int, k: int) -> tuple[np.ndarray, ...]:
    """int64 ``lemma`` [m] (0/1), ``enumerate`` [q, m, c] (0/1/2), ``correct`` (<= case sizes)."""
    lem, sizes = cert.lemmas, case_sizes(v, k)
    lemma = decode_field(lem, "lemma", "lemmas.", (v,), "int64", top=1)
    enumerate_ = decode_field(lem, "enumerate", "lemmas.", sizes.shape, "int64", top=2)
    return lemma, enumerate_, decode_field(lem, "correct", "lemmas.", sizes.shape, "int64", sizes)


def case_sizes(v: int, k: int) -> np.ndarray:
    """[q, m, c]: the number of inputs in case (q, m, c), 0 where it does not exist."""
    m, c = np.arange(v, dtype=object)[None, :, None], np.arange(k)[None, None, :]
    n = np.array([comb(k - 1, i) for i in range(k)], dtype=object) * m**c
    return np.where(cubic.case_limits(v, k) > 0, n, 0)


def cover(cert: Certificate, w: Weights, lemma: np.ndarray, todo: np.ndarray, queries: range):
    """The inputs the cubic lemmas cover per case, and per query the remainder blocks of the
    cases to enumerate (the partition of the module docstring), for the cases of ``queries``."""
    v, k, work = cert.config.d_vocab, cert.config.n_ctx, w.work
    tables = cubic.tables(cert, w, work) if lemma.any() else None
    exists = cubic.case_limits(v, k) > 0
    exists[: queries.start], exists[queries.stop :] = False, False
    counts = np.zeros((v, v, k), dtype=object)  # exact integers: C(K-1, c) |A|^c can be huge
    plan: dict[int, list[tuple[int, int, int, np.ndarray]]] = {}  # q -> [(m, c, level, A)]
    for m in range(v):
        work.tick("hybrid: lemmas", m, v)
        ok, ok0 = np.zeros((v, k, m), dtype=bool), np.zeros(v, dtype=bool)
        if tables is not None and lemma[m]:
            h, tau, ok0 = lemma_bounds(m, k, tables, work)
            ok = h[:, None, :m] < tau[:, :, None]  # [q, c, k']
            work.add(ok.size)
        for q, c in np.argwhere(exists[:, m, :]).tolist():
            inside = np.flatnonzero(ok[q, c]) if c else np.array([], np.int64)
            counts[q, m, c] = comb(k - 1, c) * len(inside) ** c if c else int(ok0[q])
            complete = len(inside) == m if c else bool(ok0[q])  # an empty remainder
            if todo[q, m, c] and not complete:
                plan.setdefault(q, []).append((m, c, int(todo[q, m, c]), inside))
    return counts, plan


def lemma_bounds(m: int, k: int, t: cubic.Tables, work: Work) -> tuple[np.ndarray, ...]:
    """h^[q, k'] >= h(k'), the thresholds tau[q, c] (c >= 1) and ok0[q] (c = 0) of the module
    docstring, for max m. Every + - x / is rounded outward; NaN never proves anything."""
    alpha, beta, asc, desc = t[:4]
    v = alpha[0].shape[0]
    q, c = np.arange(v), np.arange(k)
    g = cubic.slot_bounds(m, k, t, work)[3]
    h = up_mul(alpha, g)  # [q, t]
    query = up_mul((beta[0][:, -1], beta[1][:, -1]), h[q, q])  # beta_q h(q)  [q]
    tau = np.full((v, k), np.inf)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for xs, ys in ((asc, desc), (desc, asc)):  # arrangement A then B
            x = (xs[0][:, k - 1 - c], xs[1][:, k - 1 - c])
            r = up(up_mul(x, h[:, m, None]) + query[:, None])  # [q, c]
            y_lo, y_hi = ys[0][:, c], ys[1][:, c]
            positive = np.where(y_lo > 0, down(-r / y_lo), -np.inf)
            negative = np.maximum(down(-r / y_hi), 0.0)
            tau = np.minimum(tau, np.where(r < 0, negative, np.where(r >= 0, positive, -np.inf)))
    ok0 = up(up_mul((asc[0][:, -1], asc[1][:, -1]), h[:, m]) + query) < 0
    work.add(4 * v * v + 24 * v * k + 8 * v)
    return h, tau, ok0


def remainder(m: int, c: int, k: int, inside: np.ndarray) -> Iterator[np.ndarray]:
    """The inputs of the product sets P_r, for every placement J of the c tokens < m: their
    K-1 non-query tokens as the columns of int arrays [K-1, n], n <= CHUNK (or one input)."""
    if c == 0:
        yield np.full((k - 1, 1), m)
        return
    top, below = np.array([m]), np.arange(m)
    outside = np.setdiff1d(below, inside)
    pending: list[np.ndarray] = []  # small pieces joined up to CHUNK inputs
    size = 0
    for placement in itertools.combinations(range(k - 1), c):
        for r in range(c):
            slots = [top] * (k - 1)
            for i, j in enumerate(placement):
                slots[j] = inside if i < r else outside if i == r else below
            for piece in product_pieces(slots):
                if size + piece.shape[1] > CHUNK:
                    yield np.concatenate(pending, axis=1)
                    pending, size = [], 0
                pending.append(piece)
                size += piece.shape[1]
    if pending:
        yield np.concatenate(pending, axis=1)


def product_pieces(slots: list[np.ndarray]) -> Iterator[np.ndarray]:
    """The product of the token sets ``slots`` as columns [len(slots), n], n <= CHUNK (or 1):
    the leading positions fixed one token at a time until the product of the rest fits."""
    lead = 0
    while prod(len(s) for s in slots[lead:]) > CHUNK:
        lead += 1
    rest = slots[lead:]
    n = prod(len(s) for s in rest)
    if n == 0:
        return
    index = np.indices([len(s) for s in rest]).reshape(len(rest), n)
    tail = np.array([s[i] for s, i in zip(rest, index, strict=True)], np.int64).reshape(-1, n)
    for head in itertools.product(*slots[:lead]):
        yield np.concatenate([np.repeat(np.array(head, np.int64).reshape(lead, 1), n, 1), tail])


def settle_query(item: tuple) -> tuple[int, int, list[tuple[int, int, int, int]], int]:
    """(FLOPs, q, [(m, c, correct, enumerated)], undecided) for item = (q, plan[q]): the remainders
    settled by ``brute.count_known_max``, CHUNK inputs at a time (its a, b: 2Kv FLOPs per m)."""
    (q, plan), T, work = item, brute.TABLES, brute.WORK
    assert T is not None and work is not None
    table, mag, wt, flops = brute.query_tables(T, q)
    tables = (table, mag, wt, brute.top_two(table))
    flops += 2 * table.size + 2 * T.k * T.v * len({m for m, *_ in plan})
    found, undecided = [], 0
    for m, c, level, inside in plan:
        n_correct = n_inputs = 0
        for tokens in remainder(m, c, T.k, inside):
            full = np.full(tokens.shape[1], level == 2)
            correct, f, u = brute.count_known_max(T, q, m, tables, tokens, full, work)
            flops, undecided = flops + f, undecided + u
            n_correct, n_inputs = n_correct + int(correct.sum()), n_inputs + tokens.shape[1]
        found.append((m, c, n_correct, n_inputs))
    return flops, q, found, undecided
