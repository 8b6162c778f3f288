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
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from certify.certificate import Proof
from certify.circuits import Circuits

_SHARED: Circuits | None = None  # inherited by forked workers


def correct_count(
    c: Circuits, workers: int | None = None, progress: Callable[[int], None] | None = None
) -> int:
    """Number of inputs in {0..v-1}^K the model classifies correctly (float64 evaluation)."""
    return int(correct_by_cell(c, workers, progress).sum())


def correct_by_cell(
    c: Circuits, workers: int | None = None, progress: Callable[[int], None] | None = None
) -> np.ndarray:
    """[q, m]: correct inputs by query token q and max token m (int64; float64 evaluation)."""
    global _SHARED
    v = c.config.d_vocab
    workers = workers or min(os.cpu_count() or 1, 8)
    out = np.zeros((v, v), np.int64)
    if workers == 1 or v < 8:
        for q in range(v):
            out[q] = counts_by_max(c, q)
            if progress:
                progress(1)
        return out
    _SHARED = c
    ctx = multiprocessing.get_context("fork")
    queries = range(v - 1, -1, -1)  # large q first: slowest
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        for q, counts in zip(queries, pool.map(_counts_shared, queries), strict=True):
            out[q] = counts
            if progress:
                progress(1)
    _SHARED = None
    return out


def _counts_shared(q: int) -> np.ndarray:
    assert _SHARED is not None
    return counts_by_max(_SHARED, q)


def count_for_query(c: Circuits, q: int) -> int:
    """Correct inputs among the v^(K-1) whose last token is q."""
    return int(counts_by_max(c, q).sum())


def counts_by_max(c: Circuits, q: int) -> np.ndarray:
    """[m]: correct inputs among the v^(K-1) whose last token is q, by their max token m."""
    v, k = c.config.d_vocab, c.config.n_ctx
    free = k - 1
    scores = (c.eqke[q][None, :] + c.eqkp[q, :free, None]) / c.scale  # [free, v]
    score_q = (c.eqke[q, q] + c.eqkp[q, free]) / c.scale
    top = max(score_q, scores.max(initial=-np.inf))
    w = np.exp(scores - top)
    table = w[..., None] * (c.evou[None] + c.pvou[:free, None, :] + c.eu[q])  # [free, t, x]
    g_query = np.exp(score_q - top) * (c.evou[q] + c.pvou[free] + c.eu[q])

    n_inner = min(2, free)
    inner = np.zeros((1,) * n_inner + (v,))
    inner_max = np.full((1,) * n_inner, q)
    for j in range(free - n_inner, free):
        axis = j - (free - n_inner)
        shape = [1] * n_inner
        shape[axis] = v
        inner = inner + table[j].reshape(*shape, v)
        inner_max = np.maximum(inner_max, np.arange(v).reshape(shape))
    inner = np.ascontiguousarray(inner.reshape(-1, v).T)  # [x, input]: max over axis 0 is fast
    inner_max = inner_max.reshape(-1)
    rows = np.arange(len(inner_max))
    block = np.empty_like(inner)

    count = np.zeros(v, np.int64)
    for outer in itertools.product(range(v), repeat=free - n_inner):
        base = g_query + sum((table[j, t] for j, t in enumerate(outer)), np.zeros(v))
        target = np.maximum(inner_max, max(outer, default=q))
        np.add(inner, base[:, None], out=block)
        right = block[target, rows]
        block[target, rows] = -np.inf
        count += np.bincount(target[right > block.max(axis=0)], minlength=v)
    return count


def prove(c: Circuits) -> Proof:
    """The brute-force claim: every input the float64 table evaluation finds correct.

    The checker recounts soundly; an input whose float64 margin is a rounding artefact makes the
    claim fail there, never pass wrongly.
    """
    return Proof(strategy="brute", correct_count=correct_count(c))
