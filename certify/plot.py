"""The paper's figures and Table 1 from a sweep database (certify/sweep.py).

Per K, as PNG and SVG:
- ``bound_vs_flops_k{K}``: normalised bound (bound / reference accuracy) against checker FLOPs,
  log x, one point per (model, strategy), the Pareto frontier drawn;
- ``dims_vs_flops_k{K}``: unexplained dimensionality against checker FLOPs (log-log);
- ``bound_vs_sigma_k{K}``: per family of sub-cubic proofs (colour), the best normalised bound
  of each model against σ1/σ2 of that model's EQKE.
And ``table.md``: per strategy group, the best verified bound per seed, then mean ± std over
seeds, with the FLOPs, unexplained dimensionality and checker seconds of those best proofs.
A reference accuracy that is an importance-sampled estimate (K > 4) is labelled as such.
Bounds are never rounded up: table means to 4 places downwards, plotted points to the float
below. A model's best-subcubic row is drawn only when its single variants were not run.
"""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from certify.rounding import down
from certify.strategies import HYBRID_BUDGETS
from certify.sweep import KEY

# The table's rows (docs/results.md): name -> does this strategy belong to the group?
# Sub-cubic names are "subcubic:<eu>/<attention>/<eps>" (docs/strategies.md, "Sub-cubic").


def _parts(name: str) -> tuple[str, str, str] | None:
    if not name.startswith("subcubic:"):
        return None
    parts = name.removeprefix("subcubic:").split("/")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def eu_class(eu: str) -> str:
    """ "exact" (EU formed, O(v^2 d)) or "low-rank" (mean/svd query + max_diff, or the EU peel
    with row norms: O(vd))."""
    return "exact" if "exact" in eu else "low-rank"


def eps_class(eps: str) -> str:
    """ "exact" (O(v^2 d)), "quadratic" (recursive, O(vd + d^2)) or "low-rank" (O(v d^2))."""
    if "recursive" in eps:
        return "quadratic"
    return "exact" if "exact" in eps else "low-rank"


def _sub(
    qk: str | None = None,
    eu: str | None = None,
    svd_qk: bool = False,
    svd_eu: bool = False,
    drop: bool = False,
    paper: bool = False,
) -> Callable[[str], bool]:
    """Membership test for the sub-cubic variants with these EQKE-error / EU classes (``paper``:
    only the paper's options, none of those beyond it)."""
    from certify.strategies.subcubic import PAPER_EPS, PAPER_EU

    def member(name: str) -> bool:
        p = _parts(name)
        if p is None:
            return False
        eu_opt, attention, eps = p
        return (
            (qk is None or eps_class(eps) == qk)
            and (eu is None or eu_class(eu_opt) == eu)
            and (not svd_qk or eps == "svd")
            and (not svd_eu or eu_opt.startswith("svd"))
            and (not drop or attention.startswith("drop"))
            and (not paper or (eu_opt in PAPER_EU and eps in PAPER_EPS))
        )

    return member


def _hybrid(budget: str | None) -> Callable[[str], bool]:
    """Membership test for ``hybrid`` (budget None) or ``hybrid:<budget>``."""
    return lambda n: n == ("hybrid" if budget is None else f"hybrid:{budget}")


GROUPS: dict[str, Callable[[str], bool]] = {
    "Brute force": lambda n: n == "brute",
    "Hybrid (exact)": _hybrid(None),
    **{f"Hybrid, budget {f:g}": _hybrid(f"{f:g}") for f in sorted(HYBRID_BUDGETS, reverse=True)},
    "Cubic": lambda n: n == "cubic",
    "Sub-cubic (best)": lambda n: n == "best-subcubic" or _parts(n) is not None,
    "  w/o mean+diff": _sub(drop=True),
    "Low-rank QK": _sub(qk="low-rank", eu="exact"),
    "  SVD only (QK)": _sub(qk="low-rank", eu="exact", svd_qk=True),
    "Low-rank EU": _sub(qk="exact", eu="low-rank"),
    "  SVD only (EU)": _sub(qk="exact", eu="low-rank", svd_eu=True),
    "Low-rank QK & EU": _sub(qk="low-rank", eu="low-rank"),
    "  paper's options only (QK & EU)": _sub(qk="low-rank", eu="low-rank", paper=True),
    "  SVD only (QK & EU)": _sub(qk="low-rank", eu="low-rank", svd_qk=True, svd_eu=True),
    "Quadratic QK": _sub(qk="quadratic", eu="exact"),
    "Quadratic QK & EU": _sub(qk="quadratic", eu="low-rank"),
    "  paper's options only (quadratic)": _sub(qk="quadratic", eu="low-rank", paper=True),
}


def colour_group(name: str) -> str:
    """The one group a point is coloured by in the figures."""
    p = _parts(name)
    if name.startswith("hybrid"):
        return "Hybrid"
    if p is None:
        return {"brute": "Brute force", "cubic": "Cubic", "best-subcubic": COLOUR_BEST}.get(
            name, name
        )
    eu, _, eps = p
    qk = {"exact": "exact QK", "low-rank": "low-rank QK", "quadratic": "quadratic QK"}
    return f"{qk[eps_class(eps)]}, {eu_class(eu)} EU"


def load_rows(db: str | Path) -> list[dict[str, Any]]:
    """Every results row joined with its model's reference accuracy and σ ratio."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    rows = con.execute(
        "SELECT r.*, m.accuracy, m.accuracy_kind, m.accuracy_low, m.accuracy_high, "
        "m.sigma_ratio FROM results r JOIN models m USING (k, d_vocab, d_model, steps, seed)"
    ).fetchall()
    con.close()
    out = [dict(r) for r in rows]
    for r in out:
        ok = r["verdict"] == "verified" and r["bound"] is not None and r["accuracy"]
        r["normalised"] = _ratio_down(r["bound"], r["accuracy"]) if ok else None
    return out


def _ratio_down(bound: float, accuracy: float) -> float:
    """bound / accuracy rounded down (both floats are exact rationals), so no figure overstates."""
    from fractions import Fraction

    from certify.rounding import float_down

    return float_down(Fraction(bound) / Fraction(accuracy))


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated by one with fewer-or-equal FLOPs and a higher-or-equal bound."""
    frontier: list[tuple[float, float]] = []
    for flops, bound in sorted(points, key=lambda p: (p[0], -p[1])):
        if not frontier or bound > frontier[-1][1]:
            frontier.append((flops, bound))
    return frontier


def group_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table 1 for one K: per group the best verified bound per seed, then mean ± std."""
    table = []
    for group, member in GROUPS.items():
        best: dict[tuple, dict[str, Any]] = {}
        for r in rows:
            if member(r["strategy"]) and r["normalised"] is not None:
                key = (r["d_vocab"], r["d_model"], r["steps"], r["seed"])
                if key not in best or r["bound"] > best[key]["bound"]:
                    best[key] = r
        if not best:
            continue
        picks = list(best.values())
        table.append({
            "group": group,
            "seeds": len(picks),
            "bound": _mean_std([r["bound"] for r in picks]),
            "normalised": _mean_std([r["normalised"] for r in picks]),
            "flops": _mean([r["flops"] for r in picks]),
            "dims": _mean([r["unexplained_dims"] for r in picks]),
            "checker_seconds": _mean([r["checker_seconds"] for r in picks]),
        })  # fmt: skip
    return table


def markdown_table(rows: list[dict[str, Any]], k: int) -> str:
    """Table 1 as Markdown, with the reference accuracy (exact or estimated) on top."""
    models = {(r["d_vocab"], r["seed"]): r for r in rows}
    accuracies = [r["accuracy"] for r in models.values()]
    kinds = {r["accuracy_kind"] for r in models.values()}
    label = "exact accuracy" if kinds == {"exact"} else "ESTIMATED accuracy (importance sampling)"
    acc = _mean_std(accuracies)
    verified = sum(r["verdict"] == "verified" for r in rows)
    if kinds != {"exact"}:  # the estimate's ~95% intervals, widest half-width (not a bound)
        half = max((r["accuracy_high"] - r["accuracy_low"]) / 2 for r in models.values())
        label += f" (per-model ~95% intervals, half-width <= {math.ceil(half * 1e5) / 1e5:.5f})"
    lines = [
        f"**K = {k}**: {len(models)} models, {label} {acc[0]:.5f} ± {acc[1]:.5f}; "
        f"{verified} of {len(rows)} certificates verified.",
        "",
        "| proof | seeds | bound (mean ± std) | normalised bound | checker FLOPs | "
        "unexplained dims | checker s |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in group_table(rows):
        lines.append(
            f"| {'↳ ' if t['group'].startswith(' ') else ''}{t['group'].strip()} | {t['seeds']} "
            f"| {down(t['bound'][0], 4)} ± {t['bound'][1]:.4f} "
            f"| {down(t['normalised'][0], 4)} ± {t['normalised'][1]:.4f} | {_pow2(t['flops'])} "
            f"| {_pow2(t['dims'])} | {_num(t['checker_seconds'])} |"
        )
    return "\n".join(lines) + "\n"


def transfer_table(by_k: dict[int, list[dict[str, Any]]]) -> str:
    """Across K: each group's mean normalised bound (rounded down) and its number of seeds."""
    tables = {k: {t["group"]: t for t in group_table(rows)} for k, rows in sorted(by_k.items())}
    head = " | ".join(f"K = {k}" for k in tables)
    lines = [f"| proof | {head} |", "|---|" + "---:|" * len(tables)]
    for group in GROUPS:
        cells = [tables[k].get(group) for k in tables]
        if any(cells):
            text = [f"{_down(c['normalised'][0])} ({c['seeds']})" if c else "–" for c in cells]
            name = f"{'↳ ' if group.startswith(' ') else ''}{group.strip()}"
            lines.append(f"| {name} | {' | '.join(text)} |")
    return (
        "Normalised bound by K (mean over seeds; seeds in brackets):\n\n" + "\n".join(lines) + "\n"
    )


def _down(x: float) -> str:
    """Four decimals, rounded down: a printed bound never overstates the proved one."""
    return f"{math.floor(x * 10**4) / 10**4:.4f}"


def _mean(xs: list[Any]) -> float | None:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _mean_std(xs: list[float]) -> tuple[float, float]:
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else 0.0
    return mean, math.sqrt(var)


def _pow2(x: float | None) -> str:
    return "–" if not x else f"2^{math.log2(x):.1f} ({x:.3g})"


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}"


# --- figures --------------------------------------------------------------------------------


def plot(db: str | Path, out_dir: str | Path) -> list[Path]:
    """Write every figure (PNG and SVG) and table.md for each K in the database."""
    import matplotlib

    matplotlib.use("Agg")
    rows = load_rows(db)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    by_k: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_k[r["k"]].append(r)
    tables = []
    for k in sorted(by_k):
        ks = by_k[k]
        written += _save(_bound_vs_flops(ks, k), out / f"bound_vs_flops_k{k}")
        written += _save(_dims_vs_flops(ks, k), out / f"dims_vs_flops_k{k}")
        written += _save(_bound_vs_sigma(ks, k), out / f"bound_vs_sigma_k{k}")
        tables.append(markdown_table(ks, k))
    if len(by_k) > 1:
        tables.append(transfer_table(by_k))
    (out / "table.md").write_text("\n".join(tables))
    return [*written, out / "table.md"]


def _save(fig, stem: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=130, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


COLOURS = {
    "Brute force": "black",
    "Hybrid": "tab:cyan",
    "Cubic": "tab:blue",
    "exact QK, exact EU": "tab:green",
    "exact QK, low-rank EU": "tab:olive",
    "low-rank QK, exact EU": "tab:purple",
    "low-rank QK, low-rank EU": "tab:orange",
    "quadratic QK, exact EU": "tab:red",
    "quadratic QK, low-rank EU": "tab:brown",
}
COLOUR_BEST = "best sub-cubic (single variants not run)"
COLOURS[COLOUR_BEST] = "tab:cyan"


def _plotted(rows: list[dict[str, Any]], x: str, y: str) -> list[dict[str, Any]]:
    """Rows with both values. A model's best-* alias rows are left out when that model's single
    variants were run too (each repeats a variant's point), and drawn otherwise."""
    with_variants = {_model(r) for r in rows if _parts(r["strategy"])}
    repeated = [r["strategy"].startswith("best-") and _model(r) in with_variants for r in rows]
    return [
        r
        for r, skip in zip(rows, repeated, strict=True)
        if not skip and r[x] is not None and r[y] is not None and r[x] > 0 and math.isfinite(r[x])
    ]


def _scatter(ax, rows: list[dict[str, Any]], x: str, y: str) -> None:
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in _plotted(rows, x, y):
        groups[colour_group(r["strategy"])].append((r[x], r[y]))
    for name in sorted(groups, key=lambda g: list(COLOURS).index(g) if g in COLOURS else 99):
        xs, ys = zip(*groups[name], strict=True)
        colour = COLOURS.get(name, "grey")
        ax.scatter(xs, ys, s=10, alpha=0.55, color=colour, label=f"{name} ({len(xs)})")
    if groups:
        ax.legend(fontsize=7, loc="best", markerscale=1.5)


def _accuracy_label(rows: list[dict[str, Any]]) -> str:
    return "exact" if all(r["accuracy_kind"] == "exact" for r in rows) else "estimated"


def _bound_vs_flops(rows: list[dict[str, Any]], k: int):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = _plotted([r for r in rows if r["normalised"] is not None], "flops", "normalised")
    _scatter(ax, drawn, "flops", "normalised")
    curves: dict[tuple, list[tuple[float, float]]] = defaultdict(list)  # per model: its budgets
    for r in drawn:
        if r["strategy"].startswith("hybrid"):
            curves[(r["d_vocab"], r["seed"])].append((r["flops"], r["normalised"]))
    for points in curves.values():
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, "-", lw=0.6, alpha=0.4, color=COLOURS["Hybrid"])
    front = pareto([(r["flops"], r["normalised"]) for r in drawn])  # only drawn points
    if front:
        xs, ys = zip(*front, strict=True)
        ax.step(xs, ys, where="post", color="black", lw=1.2, label="Pareto frontier")
        ax.legend(fontsize=7, loc="best", markerscale=1.5)
    ax.set_xscale("log")
    ax.set_xlabel("checker FLOPs (proof length)")
    ax.set_ylabel(f"bound / {_accuracy_label(rows)} accuracy")
    ax.set_title(f"Max-of-{k}: normalised accuracy bound vs proof length")
    ax.grid(alpha=0.3)
    return fig


def _dims_vs_flops(rows: list[dict[str, Any]], k: int):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    _scatter(ax, [r for r in rows if r["verdict"] == "verified"], "flops", "unexplained_dims")
    ax.set_xscale("log")
    ax.set_yscale("log", base=2)
    ax.set_xlabel("checker FLOPs (proof length)")
    ax.set_ylabel("unexplained dimensionality")
    ax.set_title(f"Max-of-{k}: unexplained dimensionality vs proof length")
    ax.grid(alpha=0.3)
    return fig


def _bound_vs_sigma(rows: list[dict[str, Any]], k: int):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    best: dict[str, dict[float, float]] = defaultdict(dict)  # group -> sigma ratio -> bound
    for r in _plotted(rows, "sigma_ratio", "normalised"):
        if _parts(r["strategy"]):
            per_model = best[colour_group(r["strategy"])]
            per_model[r["sigma_ratio"]] = max(per_model.get(r["sigma_ratio"], 0), r["normalised"])
    for name in [g for g in COLOURS if g in best]:
        xs, ys = zip(*sorted(best[name].items()), strict=True)
        ax.plot(xs, ys, "o-", ms=4, lw=0.8, alpha=0.8, color=COLOURS[name], label=name)
    if best:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_xscale("log")
    ax.set_xlabel("σ1 / σ2 of EQKE")
    ax.set_ylabel(f"bound / {_accuracy_label(rows)} accuracy")
    ax.set_title(f"Max-of-{k}: best sub-cubic bound per model and family vs σ1/σ2 of EQKE")
    ax.grid(alpha=0.3)
    return fig


# --- command line -----------------------------------------------------------------------------


def add_parser(sub) -> None:
    """Register ``certify plot`` on the CLI's subparsers."""
    p = sub.add_parser("plot", help="figures (PNG, SVG) and Table 1 from a sweep database")
    p.add_argument("db", help="SQLite database written by certify sweep")
    p.add_argument("-o", "--output", default="figures", help="output directory")


def cmd_plot(args) -> int:
    if not Path(args.db).is_file():
        raise ValueError(f"{args.db}: no such database")
    for path in plot(args.db, args.output):
        print(path)
    return 0


def _model(row: dict[str, Any]) -> tuple:
    return tuple(row[key] for key in KEY)
