"""certify report CERT -o DIR: where a certificate's bound loses inputs (HTML page with PNGs).

Untrusted, prover-side analysis. The page shows the checker's verdict (``checker verify --json``
run in-process) and, recomputed from the certificate's weights and lemmas in float64:

- per cell (query q, max m): the inputs the certificate's lemmas cover, against the model's
  exact per-cell accuracy (brute-force count) where v^K is small enough to enumerate;
- per case that loses inputs: its bound on the largest wrong-logit difference
  max_{x != m} logit[x] - logit[m] (< 0 would prove the case) split into one additive
  contribution per circuit, so the largest positive one is "the term that ate the margin":

    bound = EU + EVOU + PVOU + EQKE + EQKP (+ eps, sub-cubic)

  EVOU is the copying signal: the max token's own row of EVOU at the wrong token the bound
  picks (x*), as if all attention were on the copies of m; EU and PVOU are the direct path and
  positional OV at x*; EQKE is the push of the non-max tokens (their EVOU above the max's)
  weighted by the attention they get from the token scores alone (positions made neutral);
  EQKP is the change when the positional scores enter; eps (sub-cubic) the further change
  from the error bound of the low-rank EQKE. The split is sequential and exact: the
  contributions sum to the bound. "actual" is the model's true wrong-logit difference on the
  same (pure) input; bound - actual is the proof's own pessimism.

Strategies plug in through ``ANALYSERS`` (strategy name -> function returning an ``Analysis``:
per-cell covered counts and the lost cases with their terms); a certificate with no analyser still
gets the verdict and totals. A hybrid of cubic lemmas and an enumerated remainder would reuse
``analyse_cubic`` for its lemmas and add the remainder's per-cell counts (``correct_by_cell``).
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from math import comb
from pathlib import Path
from typing import Any

import numpy as np

from certify.certificate import decode_array, read
from certify.circuits import Circuits, circuits, logits
from certify.model import MaxOfKConfig

EXACT_LIMIT = 2**25  # v^K up to which the exact per-cell accuracy is counted (~1 s at 2^24)
TERMS = ("EU", "EVOU", "PVOU", "EQKE", "EQKP", "eps")
COLOURS = {
    "EU": "#4c72b0",
    "EVOU": "#55a868",
    "PVOU": "#8172b2",
    "EQKE": "#c44e52",
    "EQKP": "#dd8452",
    "eps": "#937860",
}


@dataclass
class Case:
    """One proof case that loses inputs, with its bound split by term."""

    q: int
    m: int
    c: int
    inputs: int  # inputs of the case
    lost: int  # of those, inputs the certificate does not prove
    bound: float  # recomputed bound on max_{x != m} logit[x] - logit[m] (worst input shown)
    terms: dict[str, float]  # contributions, summing to ``bound``
    blame: dict[str, float]  # lost inputs attributed to each term (sums to ``lost``)
    margin: float | None = None  # the lemma's stated margin, where the strategy has one
    token: int | None = None  # the worst unproved non-max token, where the case has one
    proved_tokens: str = ""  # e.g. "12 of 40"
    actual: float | None = None  # the model's true wrong-logit difference on that input

    @property
    def main_term(self) -> str:
        return max(self.terms, key=lambda t: self.terms[t]) if self.terms else ""


@dataclass
class Analysis:
    cells: np.ndarray  # [q, m] Python ints: inputs the certificate's lemmas prove per cell
    cases: list[Case]  # the cases that lose inputs
    notes: list[str] = field(default_factory=list)


# (certificate document, weights, circuits, exact per-cell counts or None) -> Analysis
Analyser = Callable[[dict[str, Any], dict[str, np.ndarray], Circuits, Any], Analysis]


def cell_inputs(v: int, k: int) -> np.ndarray:
    """[q, m]: number of inputs with query q and max m (Python ints; sums to v^k)."""
    out = np.zeros((v, v), dtype=object)
    for m in range(v):
        out[m, m] = (m + 1) ** (k - 1)
        out[:m, m] = (m + 1) ** (k - 1) - m ** (k - 1)
    return out


def _lemma(doc: dict[str, Any], section: str, key: str, shape: tuple[int, ...]) -> np.ndarray:
    a = decode_array(doc[section][key])
    if a.shape != shape:
        raise ValueError(f"{section}.{key}: shape {list(a.shape)}, expected {list(shape)}")
    return a


# --- brute force ----------------------------------------------------------------------------


def analyse_brute(doc: dict[str, Any], weights: dict, c: Circuits, exact: Any) -> Analysis:
    """Brute force proves exactly the inputs the model gets right: the cells are the exact
    counts (recomputed), and the "cases" are the cells with the most errors (no error terms)."""
    from certify.strategies.brute import correct_by_cell

    v, k = c.config.d_vocab, c.config.n_ctx
    counts = exact if exact is not None else correct_by_cell(c)
    cells = counts.astype(object)
    totals = cell_inputs(v, k)
    lost = totals - cells
    cases = []
    for q, m in zip(*np.nonzero(lost > 0), strict=True):
        case = Case(int(q), int(m), -1, int(totals[q, m]), int(lost[q, m]), math.nan, {}, {})
        case.proved_tokens = f"{int(counts[q, m]):,} correct"
        cases.append(case)
    note = "Brute force has no error terms: every lost input is one the model gets wrong."
    return Analysis(cells, cases, [note])


# --- cubic ----------------------------------------------------------------------------------


def analyse_cubic(doc: dict[str, Any], weights: dict, c: Circuits, exact: Any) -> Analysis:
    v, k = c.config.d_vocab, c.config.n_ctx
    proved = _lemma(doc, "lemmas", "proved", (v, v, k))
    margin = _lemma(doc, "lemmas", "margin", (v, v, k))
    covered = cubic_covered(proved, k)
    return Analysis(covered.sum(axis=2), cubic_cases(c, proved, covered, margin))


def cubic_covered(proved: np.ndarray, k: int) -> np.ndarray:
    """[q, m, c] Python ints: inputs lemma (q, m, c) covers, C(K-1, c) N^c (c >= 1) or N."""
    from certify.strategies.cubic import case_exists

    v = len(proved)
    n = np.where(case_exists(v, k), proved, 0).astype(object)
    out = np.array([comb(k - 1, i) for i in range(k)], dtype=object) * n ** np.arange(k)
    out[:, :, 0] = n[:, :, 0]
    return out


def case_sizes(v: int, k: int) -> np.ndarray:
    """[q, m, c] Python ints: inputs of case (q, m, c): every candidate proved (m tokens, c >= 1;
    the single input, c = 0)."""
    every = np.broadcast_to(np.arange(v)[None, :, None], (v, v, k)).copy()
    every[:, :, 0] = 1
    return cubic_covered(every, k)


def cubic_cases(
    c: Circuits, proved: np.ndarray, covered: np.ndarray, margin: np.ndarray | None = None
) -> list[Case]:
    """The cases (q, m, c) that cover fewer than all their inputs, each split at its worst token
    among those outside the lemma's N (the N tokens with the smallest bounds are taken as
    proved: any N will do for the count)."""
    from certify.strategies import cubic

    v, k = c.config.d_vocab, c.config.n_ctx
    sizes = case_sizes(v, k)
    tables = cubic._tables(c)
    cases = []
    for m in range(v):
        terms, bound = cubic_terms(m, c, tables)  # [term, q, c, t], [q, c, t]
        terms0, bound0 = cubic_terms_c0(m, c, tables)  # [term, q], [q]
        for q, cc in zip(*np.nonzero(sizes[:, m, :] > covered[:, m, :]), strict=True):
            n, lost = int(proved[q, m, cc]), int(sizes[q, m, cc] - covered[q, m, cc])
            if cc == 0:
                split, b, token, blame_of = terms0[:, q], bound0[q], None, [terms0[:, q]]
            else:
                order = np.argsort(bound[q, cc, :m], kind="stable")
                unproved = order[max(min(n, m), 0) :]  # the tokens this lemma's N leaves out
                token = int(order[-1])
                split, b = terms[:, q, cc, token], bound[q, cc, token]
                blame_of = [terms[:, q, cc, t] for t in unproved]
            case = Case(
                int(q),
                m,
                int(cc),
                int(sizes[q, m, cc]),
                lost,
                float(b),
                dict(zip(TERMS[:5], split.tolist(), strict=True)),
                _blame(blame_of, lost),
                None if margin is None else float(margin[q, m, cc]),
                token,
                f"{n} of {m}" if cc else f"{n} of 1",
            )
            cases.append(case)
    _actual_cubic(cases, c)
    return cases


def _blame(splits: list[np.ndarray], lost: int) -> dict[str, float]:
    """Share ``lost`` equally among the unproved tokens, each to its largest contribution."""
    out: dict[str, float] = {}
    for split in splits:
        # non-finite: the attention weights underflowed, nothing is known but the scores
        term = TERMS[int(np.argmax(split))] if np.all(np.isfinite(split)) else "EQKE"
        out[term] = out.get(term, 0.0) + lost / len(splits)
    return out


def _pieces(m: int, c: Circuits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per token t: EVOU_c[t, x_t] and PVOU*[x_t] at x_t = argmax_{x != m} (EVOU_c + PVOU*),
    and EU*[q]; so F[t] = ev[t] + pv[t] and g(t) = EU*[q] + F[t] (docs/strategies.md)."""
    from certify.strategies.cubic import _centred

    pvou_star, evou_c, eu_c = _centred(m, c)
    x = (evou_c + pvou_star).argmax(axis=1)
    rows = np.arange(len(x))
    return evou_c[rows, x], pvou_star[x], eu_c.max(axis=1)


def _split(eu, ev_m, weights, weights0, ev, pv, total, total0) -> tuple[np.ndarray, np.ndarray]:
    """Contributions (EU, EVOU, PVOU, EQKE, EQKP) for one arrangement: ``weights`` are the
    (unnormalised) attention weights of the m-slots then each other slot, ``weights0`` the same
    with neutral positions; ``ev``/``pv`` the per-slot pieces of F, ev_m = ev[m]."""
    with np.errstate(all="ignore"):
        a = [w / total for w in weights]
        a0 = [w / total0 for w in weights0]
        pvou = sum(ai * p for ai, p in zip(a, pv, strict=True))
        leak = sum(ai * (e - ev_m) for ai, e in zip(a[1:], ev[1:], strict=True))
        leak0 = sum(ai * (e - ev_m) for ai, e in zip(a0[1:], ev[1:], strict=True))
    parts = np.broadcast_arrays(eu, ev_m, pvou, leak0, leak - leak0)
    split = np.stack(parts)
    ok = (total > 1e-200) & (total0 > 1e-200)
    split = np.where(ok, split, np.nan)
    return split, np.where(ok, split.sum(axis=0), np.inf)


def cubic_terms(m: int, c: Circuits, t: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """[term, q, c, t'] contributions and [q, c, t'] bounds of the pure inputs of token t' in
    lemma (q, m, c), at the worse of the two extreme arrangements (as ``cubic.bounds_at``)."""
    v, k = c.config.d_vocab, c.config.n_ctx
    ev, pv, eu = _pieces(m, c)
    alpha, q, cc = t["alpha"], np.arange(v), np.arange(k)
    w_q = (t["beta_q"] * alpha[q, q])[:, None, None]  # [q, 1, 1]
    shape = (v, k, v)
    slots_ev = (ev[m], ev[None, None, :], ev[q][:, None, None])
    slots_pv = (pv[m], pv[None, None, :], pv[q][:, None, None])
    neutral = (
        (k - 1 - cc)[None, :, None] * alpha[:, m, None, None],
        cc[None, :, None] * alpha[:, None, :],
        alpha[q, q][:, None, None],
    )
    total0 = sum(neutral)
    best_split, best = np.full((5, *shape), np.nan), np.full(shape, -np.inf)
    for xs, ys in ((t["asc"], t["desc"]), (t["desc"], t["asc"])):
        w_m = (xs[:, k - 1 - cc] * alpha[:, m, None])[:, :, None]
        w_t = ys[:, cc][:, :, None] * alpha[:, None, :]
        weights = (w_m, w_t, w_q)
        split, bound = _split(
            eu[:, None, None], ev[m], weights, neutral, slots_ev, slots_pv, w_m + w_t + w_q, total0
        )
        take = bound > best
        best = np.where(take, bound, best)
        best_split = np.where(take[None], split, best_split)
    return best_split, best


def cubic_terms_c0(m: int, c: Circuits, t: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """[term, q] and [q] for the single input (m, .., m, q): the bound is joint over x, so the
    split is taken at the x that attains it (as ``cubic.bounds_c0``)."""
    from certify.strategies.cubic import _centred

    v, k = c.config.d_vocab, c.config.n_ctx
    q = np.arange(v)
    pvou_star, evou_c, eu_c = _centred(m, c)
    w_m = (t["alpha"][:, m] * t["asc"][:, -1])[:, None]
    w_q = (t["alpha"][q, q] * t["beta_q"])[:, None]
    neutral = ((k - 1) * t["alpha"][:, m, None], t["alpha"][q, q][:, None])
    split, bound = _split(
        eu_c,
        evou_c[m][None],
        (w_m, w_q),
        neutral,
        (evou_c[m][None], evou_c),
        (pvou_star[None], pvou_star[None]),
        w_m + w_q,
        sum(neutral),
    )
    x = np.where(np.isfinite(bound), bound, np.inf).argmax(axis=1)
    return split[:, q, x], bound[q, x]


def _actual_cubic(cases: list[Case], c: Circuits) -> None:
    """Fill ``actual``: the true largest wrong-logit difference over the case's pure inputs of
    its worst token (every arrangement), from the circuits in float64."""
    k = c.config.n_ctx
    seqs, owner = [], []
    for i, case in enumerate(cases):
        token = case.m if case.token is None else case.token
        for slots in itertools.combinations(range(k - 1), case.c):
            seq = [case.m] * (k - 1) + [case.q]
            for s in slots:
                seq[s] = token
            seqs.append(seq)
            owner.append(i)
    if not seqs:
        return
    tokens = np.array(seqs, dtype=np.int64)
    lg = logits(c, tokens)
    rows, target = np.arange(len(tokens)), tokens.max(axis=1)
    right = lg[rows, target].copy()
    lg[rows, target] = -np.inf
    diff = lg.max(axis=1) - right
    worst = np.full(len(cases), -np.inf)
    np.maximum.at(worst, np.array(owner), diff)
    for case, value in zip(cases, worst.tolist(), strict=True):
        case.actual = value


def analyse_hybrid(doc: dict[str, Any], weights: dict, c: Circuits, exact: Any) -> Analysis:
    """Hybrid: cubic lemmas, the remainder of chosen cases enumerated. The certificate states
    each case's correct inputs; an enumerated case loses only the model's own errors there (no
    terms), the others are cubic lemmas whose N is the c-th root of their count."""
    v, k = c.config.d_vocab, c.config.n_ctx
    correct = _lemma(doc, "lemmas", "correct", (v, v, k)).astype(object)
    enumerated = _lemma(doc, "lemmas", "enumerate", (v, v, k)) != 0
    sizes = case_sizes(v, k)
    proved = np.zeros((v, v, k), np.int64)
    for q, m, cc in zip(*np.nonzero(~enumerated & (correct > 0)), strict=True):
        proved[q, m, cc] = _root(int(correct[q, m, cc]) // comb(k - 1, cc), cc) if cc else 1
    cases = cubic_cases(c, proved, np.where(enumerated, sizes, correct))
    for q, m, cc in zip(*np.nonzero(enumerated & (sizes > correct)), strict=True):
        lost = int(sizes[q, m, cc] - correct[q, m, cc])
        case = Case(int(q), int(m), int(cc), int(sizes[q, m, cc]), lost, math.nan, {}, {})
        case.proved_tokens = "enumerated"
        cases.append(case)
    note = "Enumerated cases have no error terms: their lost inputs are the model's errors."
    return Analysis(correct.sum(axis=2), cases, [note])


def _root(x: int, c: int) -> int:
    """The largest n with n^c <= x (exact integers)."""
    n = round(x ** (1 / c))
    while n**c > x:
        n -= 1
    while (n + 1) ** c <= x:
        n += 1
    return n


# --- sub-cubic ------------------------------------------------------------------------------


def analyse_subcubic(doc: dict[str, Any], weights: dict, c: Circuits, exact: Any) -> Analysis:
    """Cells from the claimed cases and their gaps; every case that loses inputs is split at
    gap 1 (the whole case), with the certificate's own witnesses (peels, ε, EU centre, ā)."""
    from certify.strategies import subcubic as sc

    cfg, v, k = c.config, c.config.d_vocab, c.config.n_ctx
    opts, wit = doc["strategy"]["options"], doc["witnesses"]
    eu_opt, att, eps_opt = opts["eu"], opts["attention"], opts["eps"]
    gaps = _lemma(doc, "witnesses", "gaps", (v, v, k))
    proved = _lemma(doc, "lemmas", "proved", (v, v, k)) != 0
    eps = _lemma(doc, "lemmas", "eps", (v,))
    peels = [(decode_array(p["x"]), decode_array(p["y"])) for p in wit["peels"]]
    centre = decode_array(wit["eu_centre"]) if "eu_centre" in wit else None
    abar = decode_array(wit["attention_mean"]) if att == "mean_query+diff" else np.zeros((v, k))
    eu_peel = wit.get("eu_peel")
    eu_peel = eu_peel and (decode_array(eu_peel["x"]), decode_array(eu_peel["y"]))
    md = sc.model(cfg, weights, c)
    approx, err = sc.attention_error(md, eps_opt, peels)
    err = eps if err.ndim == 1 else err  # the certificate's ε; the norm options' δ per entry
    t = sc.tables(md, approx, err, *sc.direct_path(md, eu_opt, centre, eu_peel))
    covered = np.where(proved, sc.case_counts(v, k, gaps), 0)
    ones = np.ones((v, v, k), np.int64)
    inputs = sc.case_counts(v, k, ones)
    split, bound = subcubic_terms(sc, md, t, abar)
    cases = []
    for q, m, cc in zip(*np.nonzero(inputs - covered > 0), strict=True):
        lost = int(inputs[q, m, cc] - covered[q, m, cc])
        s = split[:, q, m, cc]
        case = Case(
            int(q),
            int(m),
            int(cc),
            int(inputs[q, m, cc]),
            lost,
            float(bound[q, m, cc]),
            dict(zip(TERMS, s.tolist(), strict=True)),
            _blame([s], lost),
        )
        case.proved_tokens = f"gap {int(gaps[q, m, cc])}" if proved[q, m, cc] else "unclaimed"
        cases.append(case)
    note = (
        f"Sub-cubic variant {eu_opt}/{att}/{eps_opt}: a case (q, m, c) counts c non-max tokens, "
        "the query included when q < m; each lost case is split at gap 1 (all its inputs)."
    )
    return Analysis(covered.sum(axis=2), cases, [note])


def subcubic_terms(sc: Any, md: Any, t: Any, abar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[term, q, m, c] contributions and [q, m, c] bounds (gap 1), splitting the attention part
    in three stages: neutral positions and ε = 0 (EQKE), real positions (EQKP), real ε (eps)."""
    v, k = t.v, t.k
    gaps = np.ones((v, v, k), np.int64)

    def bound_with(tables: Any) -> np.ndarray:
        return sc.logit_bound(tables, gaps, abar, *sc.attention_bracket(tables, gaps))

    no_eps = replace(t, eps_factor=np.ones_like(t.eps_factor))
    hi0, lo0 = sc.positional_odds(np.zeros_like(md.eqkp), md.s)
    neutral = replace(no_eps, pos_hi=hi0, pos_lo=lo0)
    stages = [bound_with(neutral), bound_with(no_eps), bound_with(t)]
    x = np.argmax(t.M[:, None, :] + abar[:, :, None] * t.R[:, None, :], axis=2)  # [m, c]
    mm = np.arange(v)[:, None]
    mu_diff = t.M[mm, x] - _pstar(md)[mm, x]  # μ[x*] - μ[m]
    eu = mu_diff[None] + t.delta_eu
    pvou = np.broadcast_to(_pstar(md)[mm, x][None], (v, v, k))
    evou = np.broadcast_to(t.R[mm, x][None], (v, v, k))
    signal = eu + pvou + evou
    with np.errstate(invalid="ignore"):
        parts = [eu, evou, pvou, stages[0] - signal, stages[1] - stages[0], stages[2] - stages[1]]
    return np.stack(np.broadcast_arrays(*parts)), stages[2]


def _pstar(md: Any) -> np.ndarray:
    """[m, x]: PVOU*[x] = max_i PVOU[i, x] - PVOU[i, m] (as ``subcubic.tables``)."""
    return np.max(md.pvou[:, None, :] - md.pvou[:, :, None], axis=0)


ANALYSERS: dict[str, Analyser] = {
    "brute": analyse_brute,
    "cubic": analyse_cubic,
    "hybrid": analyse_hybrid,
    "subcubic": analyse_subcubic,
}


# --- the page -------------------------------------------------------------------------------


@dataclass
class Report:
    """Everything the page shows; ``verdict`` is the checker's JSON object."""

    cert: Path
    doc: dict[str, Any]
    config: MaxOfKConfig
    verdict: dict[str, Any]
    totals: np.ndarray  # [q, m] inputs per cell
    exact: np.ndarray | None  # [q, m] correct inputs per cell (float64 brute force) or None
    analysis: Analysis | None

    @property
    def strategy(self) -> str:
        return str(self.doc.get("strategy", {}).get("name", "?"))

    @property
    def verified(self) -> bool:
        return self.verdict.get("verdict") == "verified"


def make_report(cert: str | Path, exact_limit: int = EXACT_LIMIT) -> Report:
    """Run the checker on ``cert`` and analyse it (prover side)."""
    from certify.sweep import run_checker

    cert = Path(cert)
    verdict = run_checker(cert)
    doc, config, weights = read(cert)
    c = circuits(config, weights)
    v, k = config.d_vocab, config.n_ctx
    exact = None
    if v**k <= exact_limit:
        from certify.strategies.brute import correct_by_cell

        exact = correct_by_cell(c)
    analyser = ANALYSERS.get(str(doc.get("strategy", {}).get("name")))
    try:
        analysis = analyser(doc, weights, c, exact) if analyser else None
    except (KeyError, TypeError, IndexError) as e:
        why = f"{type(e).__name__}: {e}"
        raise ValueError(f"{cert}: lemmas or witnesses not readable ({why})") from None
    return Report(cert, doc, config, verdict, cell_inputs(v, k), exact, analysis)


def write_report(r: Report, out: str | Path, top: int = 25) -> Path:
    """Write ``index.html`` and its PNGs into ``out``; returns the page's path."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = [("cells.png", _plot_cells(r)), ("by_max.png", _plot_by_max(r))]
    cases = sorted(r.analysis.cases, key=lambda x: (-x.lost, x.m, x.q, x.c)) if r.analysis else []
    if any(x.terms for x in cases):
        figures.append(("terms.png", _plot_terms(r, cases[: min(top, 15)])))
    for name, fig in figures:
        fig.savefig(out / name, dpi=110)
        matplotlib.pyplot.close(fig)
    page = out / "index.html"
    page.write_text(_html(r, [name for name, _ in figures], cases[:top]))
    return page


def _floor6(x: Fraction) -> str:
    """A non-negative fraction rounded down to 6 decimals (never overstates a lower bound)."""
    d = math.floor(x * 10**6)
    return f"{d // 10**6}.{d % 10**6:06d}"


def _masked(values: np.ndarray, totals: np.ndarray) -> np.ma.MaskedArray:
    with np.errstate(all="ignore"):
        frac = values.astype(float) / totals.astype(float)
    return np.ma.masked_where(totals == 0, frac)


def _plot_cells(r: Report):
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    v = r.config.d_vocab
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), constrained_layout=True)
    panels = [
        ("fraction of inputs proved (certificate's lemmas)", r.analysis and r.analysis.cells),
        ("exact accuracy (brute-force count)", r.exact),
    ]
    for ax, (title, values) in zip(axes, panels, strict=False):
        ax.set_title(title, fontsize=10)
        if values is None:
            ax.text(
                0.5,
                0.5,
                "not computed\n(v^K too large to enumerate)",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            continue
        im = ax.imshow(
            _masked(values, r.totals),
            origin="lower",
            vmin=0,
            vmax=1,
            cmap="viridis",
            interpolation="nearest",
        )
        fig.colorbar(im, ax=ax, shrink=0.85)
    ax = axes[2]
    if r.analysis is not None:
        base = r.exact if r.exact is not None else r.totals
        lost = np.maximum((base - r.analysis.cells).astype(float), 0)
        ax.set_title(
            "correct inputs the proof does not cover"
            if r.exact is not None
            else "inputs the proof does not cover",
            fontsize=10,
        )
        shown = np.ma.masked_where((r.totals == 0) | (lost == 0), lost)
        if shown.count():
            im = ax.imshow(
                shown,
                origin="lower",
                cmap="magma_r",
                interpolation="nearest",
                norm=LogNorm(vmin=1, vmax=max(float(shown.max()), 2)),
            )
            fig.colorbar(im, ax=ax, shrink=0.85, label="inputs (log scale)")
        else:
            ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
    for ax in axes:
        ax.set_xlabel("max token m")
        ax.set_ylabel("query token q")
        ax.set_xlim(-0.5, v - 0.5)
        ax.set_ylim(-0.5, v - 0.5)
    return fig


def _plot_by_max(r: Report):
    import matplotlib.pyplot as plt

    v = r.config.d_vocab
    m = np.arange(v)
    per_m = r.totals.sum(axis=0).astype(float)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.2), sharex=True, constrained_layout=True)
    if r.exact is not None:
        top.plot(m, r.exact.sum(axis=0) / per_m, "k-", lw=1.5, label="exact accuracy")
    if r.analysis is not None:
        proved = r.analysis.cells.sum(axis=0).astype(float)
        top.plot(m, proved / per_m, "-", color="#c44e52", lw=1.5, label="fraction proved")
        blame = np.zeros((len(TERMS) + 1, v))
        for case in r.analysis.cases:
            for term, n in case.blame.items():
                blame[TERMS.index(term), case.m] += n
            blame[-1, case.m] += case.lost - sum(case.blame.values())
        bottom_edge = np.zeros(v)
        for i, name in enumerate([*TERMS, "no error terms (model errors)"]):
            if blame[i].any():
                bottom.bar(
                    m,
                    blame[i],
                    bottom=bottom_edge,
                    width=0.85,
                    label=name,
                    color=COLOURS.get(name, "#999999"),
                )
                bottom_edge += blame[i]
        bottom.legend(fontsize=8, title="largest term", title_fontsize=8, loc="upper left")
    top.set_ylabel("fraction of inputs with max m")
    top.set_ylim(0, 1.02)
    top.legend(fontsize=8, loc="lower left")
    top.grid(alpha=0.3)
    bottom.set_ylabel("inputs lost")
    bottom.set_xlabel("max token m")
    bottom.grid(alpha=0.3)
    return fig


def _plot_terms(r: Report, cases: list[Case]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 0.42 * len(cases) + 1.6), constrained_layout=True)
    y = np.arange(len(cases))[::-1]
    pos, neg = np.zeros(len(cases)), np.zeros(len(cases))
    for term in TERMS:
        values = np.array([x.terms.get(term, 0.0) for x in cases])
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        if not values.any():
            continue
        start = np.where(values >= 0, pos, neg)
        ax.barh(y, values, left=start, color=COLOURS[term], label=term, height=0.7)
        pos += np.maximum(values, 0)
        neg += np.minimum(values, 0)
    bounds = [x.bound for x in cases]
    ax.plot(bounds, y, "kD", ms=5, label="bound (sum)")
    actual = [np.nan if x.actual is None else x.actual for x in cases]
    if not np.all(np.isnan(actual)):
        ax.plot(actual, y, "o", mfc="white", mec="k", ms=6, label="actual (model)")
    ax.axvline(0, color="k", lw=0.8)
    ax.margins(x=0.04)
    ax.set_yticks(y, [_case_label(x) for x in cases], fontsize=8)
    ax.set_xlabel("contribution to max wrong logit − logit[m]  (the bound must be < 0)")
    ax.legend(fontsize=8, loc="lower right", ncol=2)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _case_label(x: Case) -> str:
    if x.c < 0:
        return f"q={x.q}, m={x.m}"
    token = "" if x.token is None else f", k'={x.token}"
    return f"q={x.q}, m={x.m}, c={x.c}{token}"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
.verdict { padding: 0.8em 1em; border-radius: 6px; font-weight: 600; }
.ok { background: #e3f4e1; border: 1px solid #55a868; }
.bad { background: #fbe3e3; border: 1px solid #c44e52; }
.note { background: #fff8e1; border: 1px solid #e0c060; padding: 0.6em 1em; border-radius: 6px; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; } td.l, th.l { text-align: left; }
td.pos { color: #b0302f; } code { font-size: 0.95em; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.4em 0; }
"""

_TERM_TEXT = {
    "EU": "direct path: EU at the wrong token x* (centred at m)",
    "EVOU": "copying signal: the max token's own EVOU row at x*, as if all attention were on m",
    "PVOU": "positional OV at x*, weighted by the attention",
    "EQKE": "non-max tokens' EVOU push, weighted by the attention the token scores give them",
    "EQKP": "change when the positional scores enter (worst arrangement)",
    "eps": "sub-cubic only: change from the error bound of the low-rank EQKE",
}


def _int(text: Any) -> str:
    return f"{int(text):,}" if str(text).isdigit() else html.escape(str(text))


def _shown_path(path: Path) -> str:
    """The certificate's path relative to the working directory when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _num(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:+.{digits}f}" if math.isfinite(x) else ("+∞" if x > 0 else "−∞")


def _html(r: Report, figures: list[str], cases: list[Case]) -> str:
    e = html.escape
    v, k = r.config.d_vocab, r.config.n_ctx
    total = v**k
    claim = r.doc.get("claim", {}).get("correct_count", "?")
    verdict = r.verdict
    if r.verified:
        bound = Fraction(verdict["bound"])
        head = (
            f"VERIFIED by the checker: at least {e(str(verdict['claimed_count']))} of "
            f"{total} inputs correct; accuracy ≥ {e(verdict['bound'])} ≈ {_floor6(bound)}"
        )
    else:
        reason = verdict.get("failed_claim") or verdict.get("verdict")
        head = f"NOT VERIFIED ({e(str(verdict.get('verdict')))}): {e(str(reason))}"
    rows = [
        ("certificate", f"<code>{e(_shown_path(r.cert))}</code>"),
        ("model", f"Max-of-{k}, d_vocab {v}, d_model {r.config.d_model}, d_head {r.config.d_head}"),
        ("weights sha256", f"<code>{e(str(verdict.get('model_sha256') or 'unknown'))}</code>"),
        ("strategy", e(r.strategy)),
        ("claimed correct inputs", f"{_int(claim)} of {total:,}"),
    ]
    if r.analysis is not None:
        covered = int(r.analysis.cells.sum())
        label = "inputs the certificate covers (recounted from its lemmas)"
        rows.append((label, f"{covered:,} of {total:,}"))
    if r.exact is not None:
        correct = int(r.exact.sum())
        rows.append(
            (
                "exact accuracy (float64 brute-force count, not a bound)",
                f"{correct:,} of {total:,} ≈ {_floor6(Fraction(correct, total))} (rounded down)",
            )
        )
        if r.analysis is not None:
            rows.append(
                (
                    "inputs the proof loses: model errors + correct but not proved",
                    f"{total - covered:,} = {total - correct:,} + {correct - covered:,}",
                )
            )
    else:
        rows.append(
            (
                "exact accuracy",
                f"unknown: {v}^{k} inputs is more than this report "
                "enumerates (<code>--exact-limit</code>)",
            )
        )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>certify report: {e(r.cert.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Where the bound is lost: <code>{e(r.cert.name)}</code></h1>",
        f"<p class='verdict {'ok' if r.verified else 'bad'}'>{head}</p>",
        "<p class='note'>Everything below the verdict is <b>untrusted prover-side analysis</b> "
        "(<code>certify report</code>, float64, recomputed from the certificate's weights and "
        "lemmas). Only the checker's verdict is a theorem, and only when it says VERIFIED.</p>",
        "<table>"
        + "".join(f"<tr><th class='l'>{a}</th><td class='l'>{b}</td></tr>" for a, b in rows)
        + "</table>",
    ]
    if r.analysis is None:
        parts.append(
            f"<p>No analysis for strategy {e(r.strategy)} (see certify/report.py, "
            "<code>ANALYSERS</code>).</p>"
        )
    else:
        parts += _glance(r.analysis, r.config.d_vocab) + _blame_table(r.analysis)
    captions = {
        "cells.png": (
            "Per cell: which (max, query) pairs the proof covers",
            "Max token m across, query token q up (q > m holds no inputs): the fraction of the "
            "cell's inputs the certificate proves, the model's exact accuracy, and the inputs "
            "lost by the proof (log scale).",
        ),
        "by_max.png": (
            "Per max token: how much is lost, and to which term",
            "Top: fraction proved against exact accuracy, per max token m. Bottom: inputs lost, "
            "coloured by the term that contributes most to each lost case's bound (a case's "
            "lost inputs are shared equally among its unproved tokens).",
        ),
        "terms.png": (
            "The cases that lose the most inputs, term by term",
            "Each bar is the bound for the case (cubic: its worst unproved input) split into its "
            "terms (they sum to the ◆; the proof needs it < 0). ○ is the model's actual value on "
            "that input: ○ < 0 < ◆ means the model is right there and the proof's pessimism "
            "lost it.",
        ),
    }
    for name in figures:
        title, caption = captions[name]
        parts.append(f"<h2>{title}</h2><img src='{e(name)}' alt='{e(title)}'><p>{caption}</p>")
    if r.analysis is not None:
        parts += _cases_table(cases, r.analysis)
    parts.append("</body></html>\n")
    return "\n".join(parts)


def glance(a: Analysis, v: int) -> list[str]:
    """Plain-text facts about the lost inputs, each a share of all lost inputs (case-weighted)."""
    lost = sum(x.lost for x in a.cases)
    if not lost:
        return ["No input is lost."]

    def share(test: Callable[[Case], bool]) -> str:
        return f"{sum(x.lost for x in a.cases if test(x)) / lost:.0%}"

    attention = ("EQKE", "EQKP", "eps")
    facts = [f"{lost:,} inputs are lost in {len(a.cases):,} cases."]
    if any(x.terms for x in a.cases):
        blamed = sum(sum(n for t, n in x.blame.items() if t in attention) for x in a.cases)
        facts.append(
            f"Attention terms (EQKE, EQKP, eps) are the largest for {blamed / lost:.0%} "
            "of the lost inputs."
        )
        direct = share(
            lambda x: x.terms.get("EU", 0) + x.terms.get("EVOU", 0) + x.terms.get("PVOU", 0) < 0
        )
        facts.append(
            f"With all attention on the max (EU + EVOU + PVOU alone) the bound would be "
            f"negative in cases holding {direct} of the lost inputs."
        )
    if any(x.actual is not None for x in a.cases):
        right = share(lambda x: x.actual is not None and x.actual < 0)
        facts.append(
            f"In cases holding {right} of the lost inputs the model classifies even the "
            "worst input shown correctly (actual < 0): the proof, not the model, lost "
            "them."
        )
    if any(x.token is not None for x in a.cases):
        near = share(lambda x: x.token == x.m - 1)
        close = share(lambda x: x.token is not None and x.token >= x.m - 3)
        facts.append(
            f"The worst unproved token is m − 1 for {near} of the lost inputs and "
            f"within 3 of the max for {close}."
        )
    facts.append(f"{share(lambda x: 2 * x.m >= v)} of the lost inputs have max m ≥ {(v + 1) // 2}.")
    return facts


def _glance(a: Analysis, v: int) -> list[str]:
    items = "".join(f"<li>{html.escape(f)}</li>" for f in glance(a, v))
    return [f"<h2>At a glance</h2><ul>{items}</ul>"]


def _blame_table(a: Analysis) -> list[str]:
    lost = sum(x.lost for x in a.cases)
    blame: dict[str, float] = {}
    for case in a.cases:
        for term, n in case.blame.items():
            blame[term] = blame.get(term, 0.0) + n
    out = [
        "<h2>Which term ate the margin</h2>",
        "<table><tr><th class='l'>term</th>"
        "<th>inputs lost (attributed)</th><th>share</th><th class='l'>what it is</th></tr>",
    ]
    for term in sorted(blame, key=lambda t: -blame[t]):
        out.append(
            f"<tr><td class='l'>{term}</td><td>{blame[term]:,.0f}</td>"
            f"<td>{blame[term] / max(lost, 1):.1%}</td>"
            f"<td class='l'>{_TERM_TEXT[term]}</td></tr>"
        )
    out.append(f"<tr><th class='l'>total</th><th>{lost:,}</th><th></th><th></th></tr></table>")
    out += [f"<p>{html.escape(n)}</p>" for n in a.notes]
    return out


def _cases_table(cases: list[Case], a: Analysis) -> list[str]:
    """The worst cases; a column that is empty for every row (e.g. brute force's) is left out."""
    columns: list[tuple[str, Callable[[Case], str]]] = [
        ("case", lambda x: f"<td class='l'>{html.escape(_case_label(x))}</td>"),
        ("inputs", lambda x: f"<td>{x.inputs:,}</td>"),
        ("proved", lambda x: f"<td>{html.escape(x.proved_tokens)}</td>"),
        ("lost", lambda x: f"<td>{x.lost:,}</td>"),
        ("margin", lambda x: f"<td>{'—' if x.margin is None else f'{x.margin:.4f}'}</td>"),
        ("bound", lambda x: f"<td>{_num(x.bound)}</td>"),
        *((t, _term_cell(t)) for t in TERMS),
        ("actual", lambda x: f"<td>{_num(x.actual)}</td>"),
        ("largest", lambda x: f"<td class='l'>{x.main_term}</td>"),
    ]
    empty = ("<td>—</td>", "<td></td>", "<td class='l'></td>")
    shown = [(h, f) for h, f in columns if any(f(x) not in empty for x in cases)]
    out = [
        f"<h2>The {len(cases)} cases that lose the most inputs (of {len(a.cases)})</h2>",
        "<table><tr>" + "".join(f"<th>{h}</th>" for h, _ in shown) + "</tr>",
    ]
    out += ["<tr>" + "".join(f(x) for _, f in shown) + "</tr>" for x in cases]
    out.append("</table>")
    out.append(
        "<p>case: query q, max m, c non-max copies (sub-cubic: the query counted when q &lt; m), "
        "k′ the worst unproved non-max token; proved: tokens the lemma proves (cubic) or the "
        "claimed gap (sub-cubic); margin: the lemma's stated margin; bound: the recomputed bound "
        "on max<sub>x≠m</sub> logit[x] − logit[m] for the worst input of the case (proof needs "
        "&lt; 0) = the sum of the term columns; actual: the model's value on that input.</p>"
    )
    return out


def _term_cell(term: str) -> Callable[[Case], str]:
    def cell(x: Case) -> str:
        value = x.terms.get(term)
        if value is None:
            return "<td></td>"
        return f"<td{' class=pos' if value > 0 else ''}>{_num(value)}</td>"

    return cell


# --- command line ---------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    """Register ``certify report`` on the CLI's subparsers."""
    p = sub.add_parser(
        "report",
        help="HTML page with figures: where a certificate's bound loses inputs (untrusted)",
    )
    p.add_argument("cert", help="certificate (JSON)")
    p.add_argument("-o", "--output", required=True, help="output directory (index.html, PNGs)")
    p.add_argument(
        "--exact-limit",
        type=int,
        default=EXACT_LIMIT,
        metavar="N",
        help="count the exact per-cell accuracy when v^K <= N (default: %(default)s)",
    )
    p.add_argument("--top", type=int, default=25, help="cases in the table (default: 25)")


def cmd_report(args: Any) -> int:
    """Exit 0: report written and the certificate verified; 1: written, not verified."""
    r = make_report(args.cert, args.exact_limit)
    page = write_report(r, args.output, args.top)
    state = "verified" if r.verified else f"NOT verified ({r.verdict.get('verdict')})"
    print(f"{r.cert}: {state}; report -> {page}")
    return 0 if r.verified else 1
