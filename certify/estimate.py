"""An importance-sampled ESTIMATE of a model's accuracy, for K where brute force is too costly.

Not a proof and not a bound: a statistical estimate with a confidence interval, used only to
normalise bounds (docs/strategies.md, last section). As in the paper, the inputs are stratified by

    (m = max token, q = query = last token, n_m = copies of m among the K-1 other positions,
     j = the largest non-max token among those positions; j = -1 when there is none)

Every input lies in exactly one stratum, and a stratum's size is known exactly:
C(K-1, n_m) * ((j+1)^r - j^r) with r = K-1-n_m (1 when r = 0). Strata no larger than the sample
budget are enumerated completely (zero variance); the others are sampled uniformly, so the
stratified estimator sum_s N_s p_s / v^K is unbiased. Errors are rare, so a stratum's observed
error rate is often 0; its variance uses the add-half smoothed rate (x + 1/2) / (n + 1) with
the finite-population correction, and the interval is estimate ± z·sd, clipped to [0, 1].
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from certify.circuits import Circuits


@dataclass(frozen=True)
class Estimate:
    """Estimated accuracy with a normal-approximation confidence interval (not a bound)."""

    accuracy: float
    low: float
    high: float
    samples: int  # inputs evaluated
    strata: int
    confidence: float = 0.95


def strata(v: int, k: int) -> np.ndarray:
    """All strata as rows (m, q, n_m, j, size); the sizes sum to v^k (int64, or float64 when
    v^k does not fit in int64)."""
    n = k - 1
    rows = []
    for m in range(v):
        for q in range(m + 1):
            for n_m in range(0 if q == m else 1, n + 1):
                r = n - n_m
                choose = math.comb(n, n_m)
                if r == 0:
                    rows.append((m, q, n_m, -1, choose))
                    continue
                rows.extend((m, q, n_m, j, choose * ((j + 1) ** r - j**r)) for j in range(m))
    exact = v**k < 2**63  # else (e.g. K = 20) sizes are floats; the other columns stay integral
    return np.array(rows, dtype=np.int64 if exact else np.float64).reshape(-1, 5)


def enumerate_stratum(m: int, q: int, n_m: int, j: int, k: int) -> np.ndarray:
    """Every input of one stratum, as rows of k tokens."""
    n, r = k - 1, k - 1 - n_m
    out = []
    for where in itertools.combinations(range(n), n_m):
        rest = [p for p in range(n) if p not in where]
        for values in itertools.product(range(j + 1), repeat=r):
            if r and max(values) != j:
                continue
            seq = [m] * n + [q]
            for p, t in zip(rest, values, strict=True):
                seq[p] = t
            out.append(seq)
    return np.array(out, dtype=np.int64).reshape(-1, k)


def sample_strata(table: np.ndarray, k: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` inputs drawn uniformly from each stratum row (m, q, n_m, j, ...) of ``table``.

    The r = K-1-n_m non-max slots are a uniform random subset of the K-1 non-query slots; the
    number t >= 1 of them equal to j has P(t) ∝ C(r, t) j^(r-t), and the other r-t are uniform
    on {0..j-1}. Returns rows of k tokens, stratum after stratum.
    """
    n = k - 1
    rows = np.repeat(table[:, :4].astype(np.int64), count, axis=0)
    m, q, n_m, j = rows.T
    r = n - n_m
    seqs = np.repeat(m[:, None], k, axis=1)
    seqs[:, -1] = q
    if len(rows) == 0:
        return seqs
    t = np.arange(1, n + 1)[None, :]
    binomial = np.array([[math.comb(a, b) for b in range(n + 1)] for a in range(n + 1)], float)
    power = np.maximum(j, 0)[:, None].astype(float) ** np.maximum(r[:, None] - t, 0)
    weights = np.where(t <= r[:, None], binomial[r[:, None], np.minimum(t, r[:, None])] * power, 0)
    cumulative = np.cumsum(weights, axis=1)
    u = rng.random(len(rows)) * cumulative[:, -1]
    n_j = 1 + np.sum(cumulative[:, :-1] <= u[:, None], axis=1)  # t with P ∝ weights
    slots = np.argsort(rng.random((len(rows), n)), axis=1)  # a uniform permutation per row
    lower = np.floor(rng.random((len(rows), n)) * np.maximum(j, 1)[:, None]).astype(np.int64)
    for i in range(n):  # the i-th slot of the permutation
        value = np.where(i < n_j, j, lower[:, i])
        value = np.where(i < r, value, m)
        seqs[np.arange(len(rows)), slots[:, i]] = value
    return seqs


def enumerate_strata(table: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every input of every stratum row of ``table``, and the row each input came from.

    Strata sharing (n_m, j) differ only in m and q: one template per pair, with m and q filled in.
    """
    tokens, owner = [np.zeros((0, k), np.int64)], [np.zeros(0, np.int64)]
    table = table[:, :4].astype(np.int64)
    for n_m, j in np.unique(table[:, 2:4], axis=0):
        rows = np.flatnonzero((table[:, 2] == n_m) & (table[:, 3] == j))
        template = enumerate_stratum(-1, -2, n_m, j, k)[None]  # -1 marks m, -2 marks q
        m, q = table[rows, 0, None, None], table[rows, 1, None, None]
        filled = np.where(template == -1, m, np.where(template == -2, q, template))
        tokens.append(filled.reshape(-1, k))
        owner.append(np.repeat(rows, template.shape[1]))
    return np.concatenate(tokens), np.concatenate(owner)


def correct(c: Circuits, tokens: np.ndarray, batch: int = 16384) -> np.ndarray:
    """Which inputs the model gets right (float64; a tie counts as wrong).

    The same closed form as ``certify.circuits.logits``, summed position by position.
    """
    out = np.empty(len(tokens), dtype=bool)
    for start in range(0, len(tokens), batch):
        t = tokens[start : start + batch]
        q, rows = t[:, -1], np.arange(len(t))
        scores = (c.eqke[q[:, None], t] + c.eqkp[q]) / c.scale
        a = np.exp(scores - scores.max(axis=1, keepdims=True))
        a /= a.sum(axis=1, keepdims=True)
        lg = c.eu[q] + a @ c.pvou
        for i in range(t.shape[1]):
            lg += a[:, i, None] * c.evou[t[:, i]]
        target = t.max(axis=1)
        right = lg[rows, target].copy()
        lg[rows, target] = -np.inf
        out[start : start + len(t)] = right > lg.max(axis=1)
    return out


def estimate_accuracy(
    c: Circuits, samples_per_stratum: int = 10, seed: int = 0, z: float = 1.959964
) -> Estimate:
    """Stratified estimate of the accuracy over all v^K inputs, with a ~95% interval."""
    v, k = c.config.d_vocab, c.config.n_ctx
    rng = np.random.default_rng(seed)
    table = strata(v, k)
    small = np.flatnonzero(table[:, 4] <= samples_per_stratum)
    large = np.flatnonzero(table[:, 4] > samples_per_stratum)
    hits, drawn = np.zeros(len(table)), np.zeros(len(table))

    def tally(tokens: np.ndarray, owner: np.ndarray) -> None:
        hits[:] += np.bincount(owner, weights=correct(c, tokens), minlength=len(table))
        drawn[:] += np.bincount(owner, minlength=len(table))

    enumerated, owner = enumerate_strata(table[small], k)
    tally(enumerated, small[owner])
    chunk = max(1, 2**16 // samples_per_stratum)  # strata per chunk: keep arrays in cache
    for start in range(0, len(large), chunk):
        part = large[start : start + chunk]
        tally(
            sample_strata(table[part], k, samples_per_stratum, rng),
            part.repeat(samples_per_stratum),
        )
    size = table[:, 4].astype(float)
    total = float(v) ** k
    accuracy = float(np.sum(size * hits / drawn) / total)
    smoothed = (hits + 0.5) / (drawn + 1.0)
    fpc = np.where(drawn >= size, 0.0, (size - drawn) / np.maximum(size - 1.0, 1.0))
    variance = float(np.sum((size / total) ** 2 * smoothed * (1 - smoothed) / drawn * fpc))
    half = z * math.sqrt(variance)
    return Estimate(
        accuracy=accuracy,
        low=max(0.0, accuracy - half),
        high=min(1.0, accuracy + half),
        samples=int(drawn.sum()),
        strata=len(table),
    )
