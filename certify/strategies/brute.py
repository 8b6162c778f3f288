"""Brute force: the model's accuracy over all v^K inputs, from the circuit tables (float64).

Never a per-input forward pass. For a fixed query token q the softmax weights factor over
positions, w_i = exp((EQKE[q, t_i] + EQKP[q, i]) / s - top), so multiplying every logit by the
positive denominator sum_i w_i gives

    den * logits[x] = sum_i G_i[t_i, x],   G_i[t, x] = w_i(t) (EVOU[t, x] + PVOU[i, x] + EU[q, x])

a sum of one table row per position. The last two free positions form a precomputed
[v, v, v] block (small enough to stay in cache); the others are looped over, one block each.
Input ``t`` is correct iff den*logit[max t] exceeds every other den*logit strictly (ties are
wrong). Work is split over query tokens between worker processes.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterator

import numpy as np

from certify.certificate import Proof
from certify.circuits import Circuits
from checker.guard import worker_pool

_SHARED: Circuits | None = None  # inherited by forked workers


def correct_count(
    c: Circuits, workers: int | None = None, progress: Callable[[int], None] | None = None
) -> int:
    """Number of inputs in {0..v-1}^K the model classifies correctly (float64 evaluation)."""
    global _SHARED
    v = c.config.d_vocab
    workers = workers or min(os.cpu_count() or 1, 8)
    if workers == 1 or v < 8:
        total = 0
        for q in range(v):
            total += count_for_query(c, q)
            if progress:
                progress(1)
        return total
    _SHARED = c
    ctx = multiprocessing.get_context("fork")
    total = 0
    with worker_pool(workers, ctx) as pool:  # Ctrl-C: no worker left behind
        for n in pool.map(_count_shared, range(v - 1, -1, -1)):  # large q first: slowest
            total += n
            if progress:
                progress(1)
    _SHARED = None
    return total


def _count_shared(q: int) -> int:
    assert _SHARED is not None
    return count_for_query(_SHARED, q)


def count_for_query(c: Circuits, q: int) -> int:
    """Correct inputs among the v^(K-1) whose last token is q."""
    return sum(int(np.count_nonzero(ok)) for _, ok in _blocks(c, q))


def correct_for_query(c: Circuits, q: int) -> np.ndarray:
    """correct[t_0, .., t_{K-2}]: is the input (t_0, .., t_{K-2}, q) classified correctly?"""
    v, free = c.config.d_vocab, c.config.n_ctx - 1
    out = np.empty((v,) * free, dtype=bool)
    for outer, ok in _blocks(c, q):
        out[outer] = ok.reshape((v,) * min(2, free))
    return out


def _blocks(c: Circuits, q: int) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    """(outer tokens, correct[inner inputs]) for each block of the inputs whose last token is q:
    the last two free positions form the block, the others are its outer tokens."""
    v, free = c.config.d_vocab, c.config.n_ctx - 1
    table, g_query = query_table(c, q)
    weight, w_query = query_weights(c, q)
    n_inner = min(2, free)
    inner = np.zeros((1,) * n_inner + (v,))
    inner_den = np.zeros((1,) * n_inner)
    inner_max = np.full((1,) * n_inner, q)
    for j in range(free - n_inner, free):
        axis = j - (free - n_inner)
        shape = [1] * n_inner
        shape[axis] = v
        inner = inner + table[j].reshape(*shape, v)
        inner_den = inner_den + weight[j].reshape(shape)
        inner_max = np.maximum(inner_max, np.arange(v).reshape(shape))
    inner = np.ascontiguousarray(inner.reshape(-1, v).T)  # [x, input]: max over axis 0 is fast
    inner_max, inner_den = inner_max.reshape(-1), inner_den.reshape(-1)
    rows = np.arange(len(inner_max))
    block = np.empty_like(inner)
    for outer in itertools.product(range(v), repeat=free - n_inner):
        base = g_query + sum((table[j, t] for j, t in enumerate(outer)), np.zeros(v))
        target = np.maximum(inner_max, max(outer, default=q))
        np.add(inner, base[:, None], out=block)
        right = block[target, rows]
        if c.allowance is not None:  # float32: den (logit+[m] - 2 D[q, m]) against den logit+[x]
            den = inner_den + w_query + sum((weight[j, t] for j, t in enumerate(outer)), 0.0)
            right = right - 2 * c.allowance[q, target] * den
        block[target, rows] = -np.inf
        yield outer, right > block.max(axis=0)


def query_weights(c: Circuits, q: int) -> tuple[np.ndarray, float]:
    """The softmax weights w_i(t) of the free positions [K-1, v] and of the query, scaled."""
    free = c.config.n_ctx - 1
    scores = (c.eqke[q][None, :] + c.eqkp[q, :free, None]) / c.scale  # [free, v]
    score_q = (c.eqke[q, q] + c.eqkp[q, free]) / c.scale
    top = max(score_q, scores.max(initial=-np.inf))
    return np.exp(scores - top), float(np.exp(score_q - top))


def query_table(c: Circuits, q: int) -> tuple[np.ndarray, np.ndarray]:
    """G_i[t, x] of the free positions [K-1, v, v] and the query's row G_{K-1}[q, x] [v]; with
    a float32 allowance D, EU[q] + D[q] (logit+ = logit + D)."""
    free = c.config.n_ctx - 1
    w, w_q = query_weights(c, q)
    eu = c.eu[q] if c.allowance is None else c.eu[q] + c.allowance[q]
    table = w[..., None] * (c.evou[None] + c.pvou[:free, None, :] + eu)  # [free, t, x]
    return table, w_q * (c.evou[q] + c.pvou[free] + eu)


def prove(c: Circuits) -> Proof:
    """The brute-force claim: every input the float64 table evaluation finds correct.

    The checker recounts soundly; an input whose float64 margin is a rounding artefact makes the
    claim fail there, never pass wrongly.
    """
    return Proof(strategy="brute", correct_count=correct_count(c))


def correct_by_cell(c: Circuits, workers: int | None = None) -> np.ndarray:
    """[q, m]: correct inputs by query token q and max token m (int64; float64 evaluation)."""
    global _SHARED
    v = c.config.d_vocab
    workers = workers or min(os.cpu_count() or 1, 8)
    if workers == 1 or v < 8:
        return np.stack([counts_by_max(c, q) for q in range(v)])
    _SHARED = c
    ctx = multiprocessing.get_context("fork")
    with worker_pool(workers, ctx) as pool:  # Ctrl-C: no worker left behind
        rows = list(pool.map(_counts_by_max_shared, range(v)))
    _SHARED = None
    return np.stack(rows)


def _counts_by_max_shared(q: int) -> np.ndarray:
    assert _SHARED is not None
    return counts_by_max(_SHARED, q)


def counts_by_max(c: Circuits, q: int) -> np.ndarray:
    """[m]: correct inputs among the v^(K-1) whose last token is q, by their max token m."""
    v, free = c.config.d_vocab, c.config.n_ctx - 1
    top = np.full((v,) * free, q)
    for axis in range(free):
        top = np.maximum(top, np.arange(v).reshape([v if i == axis else 1 for i in range(free)]))
    return np.bincount(top[correct_for_query(c, q)], minlength=v).astype(np.int64)
