"""Sweep benchmark: 20 Max-of-4 seeds × every strategy on 2 local processes, then a rerun.

    python bench/bench_sweep.py [--seeds paper:20] [--strategies all] [--workers 2] [--db PATH]

The first run trains (or reuses) the models in models/ beside the database, proves, writes and
checks every certificate; the rerun must skip everything. Prints a Markdown table of the two
wall times and, per strategy family, the mean prover and checker seconds per task.
Target (issue 7): the first run under one hour on 2 cores; the rerun a few seconds.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from certify.sweep import ModelSpec, parse_seeds, resolve_strategies, run_sweep


def family(strategy: str) -> str:
    if strategy.startswith("subcubic:"):
        return "subcubic (144 variants)"
    return strategy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="paper:20")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--d-vocab", type=int, default=64)
    parser.add_argument("--strategies", default="all")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--db", default=None, help="default: a fresh temporary directory")
    args = parser.parse_args()
    db = Path(args.db or Path(tempfile.mkdtemp(prefix="bench_sweep_")) / "results.sqlite")
    specs = [ModelSpec(args.k, args.d_vocab, 32, 3000, s) for s in parse_seeds(args.seeds)]
    plan = [(spec, resolve_strategies(args.strategies, spec)) for spec in specs]

    first = run_sweep(plan, db, workers=args.workers)
    start = time.perf_counter()
    rerun = run_sweep(plan, db, workers=args.workers, progress=False)
    rerun_seconds = time.perf_counter() - start

    print(f"\n{len(specs)} models (K={args.k}, v={args.d_vocab}), {len(plan[0][1])} strategies "
          f"each, {args.workers} workers on {os.cpu_count()} cores; database {db}\n")  # fmt: skip
    print("| run | tasks run | rows skipped | errors | wall s |")
    print("|---|---|---|---|---|")
    print(f"| first | {first.ran} | {first.skipped} | {first.errors} | {first.seconds:.1f} |")
    print(f"| rerun | {rerun.ran} | {rerun.skipped} | {rerun.errors} | {rerun_seconds:.1f} |")

    con = sqlite3.connect(db)
    per: dict[str, list[tuple[float, float, int]]] = {}
    query = "SELECT strategy, prover_seconds, checker_seconds, verdict = 'verified' FROM results"
    for strategy, prover, checker, ok in con.execute(query):
        per.setdefault(family(strategy), []).append((prover or 0.0, checker or 0.0, ok))
    train, acc = con.execute(
        "SELECT avg(train_seconds), avg(accuracy_seconds) FROM models"
    ).fetchone()
    print("\n| task | rows | verified | mean prover s | mean checker s |")
    print("|---|---|---|---|---|")
    print(f"| model (train + accuracy) | {len(specs)} | – | {train + acc:.2f} | – |")
    for name, values in sorted(per.items()):
        n = len(values)
        prover = sum(v[0] for v in values) / n
        checker = sum(v[1] for v in values) / n
        print(f"| {name} | {n} | {sum(v[2] for v in values)} | {prover:.3f} | {checker:.3f} |")


if __name__ == "__main__":
    main()
