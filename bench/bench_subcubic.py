"""Sub-cubic family benchmark: prints tables (not a test).

1. Every sub-cubic variant on a Max-of-4 model (default: the shipped seed-123 model):
   bound, checker seconds, checker FLOPs, unexplained dimensionality; prover seconds in total.
2. Checker FLOPs of the cheapest (quadratic) variant against the cubic proof's checker.
3. The aliases best-lowrank and best-quadratic on each shipped Max-of-4 model: the winning
   variant, bound / exact accuracy, and its checker FLOPs against the cubic checker's on the same
   model (both counted per operation, in this run).
4. Checker seconds over d_vocab in {32, ..., 512} (random weights, d_model 32, K 4) of the paper's
   quadratic variant and of the two alias winners, with the fitted exponent of time over d_vocab.

    python bench/bench_subcubic.py [MODEL.safetensors] [--skip-variants] [--skip-aliases]
                                   [--skip-scaling] [--wide-peels]
"""

from __future__ import annotations

import json
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from certify.certificate import build
from certify.circuits import circuits
from certify.model import MaxOfKConfig, init_weights, load
from certify.rounding import down
from certify.strategies import subcubic as sc
from checker.cost import Work
from checker.format import parse
from checker.rules import subcubic

ROOT = Path(__file__).resolve().parents[1]
QUADRATIC = "subcubic:mean_query+max_diff/mean_query+diff/mean+max_diff_subproduct_recursive"
WINNERS = [  # the alias winners on the shipped models (best-quadratic, best-lowrank)
    "subcubic:peel_query+norm/mean_query+diff/norm_recursive",
    "subcubic:peel_query+norm/mean_query+diff/norm_subproduct",
]
SHIPPED = [ROOT / "certificates" / "models" / f"max4_seed{s}.safetensors" for s in (123, 50, 104)]


def check(config, weights, proof) -> tuple[object, Work, float]:
    cert = parse(json.dumps(build(config, weights, proof)).encode())
    work = Work()
    start = time.perf_counter()
    result = subcubic.check(cert, work)
    return result, work, time.perf_counter() - start


def all_variants(model: Path) -> dict[str, int]:
    config, weights = load(model)
    total = config.d_vocab**config.n_ctx
    start = time.perf_counter()
    wide = "--wide-peels" in sys.argv
    proofs = sc.prove_all(config, weights, circuits(config, weights), wide_peels=wide)
    prover = time.perf_counter() - start
    print(
        f"## {model.name}: all {len(proofs)} sub-cubic variants (prover {prover:.1f} s for all)\n"
    )
    print("| bound | checker s | checker FLOPs | unexplained dims | variant |")
    print("|---|---|---|---|---|")
    flops = {}
    rows = []
    for name, proof in proofs.items():
        result, work, seconds = check(config, weights, proof)
        assert result.failed is None, (name, result.failed)
        flops[name] = work.flops
        dims = result.report["unexplained_dims"]
        rows.append((Fraction(result.verified_count, total), seconds, work.flops, dims, name))
    for bound, seconds, fl, dims, name in sorted(rows, reverse=True):  # bounds rounded down
        print(f"| {down(bound, 4)} | {seconds:.2f} | {fl:,} | {dims} | `{name[9:]}` |")
    return flops


def versus_cubic(model: Path, flops: dict[str, int]) -> None:
    config, weights = load(model)
    v, k = config.d_vocab, config.n_ctx
    try:
        from certify.strategies.cubic import prove
        from checker.rules import cubic

        cert = parse(json.dumps(build(config, weights, prove(config, weights, circuits(
            config, weights)))).encode())  # fmt: skip
        work = Work()
        cubic.check(cert, work)
        cubic_flops, source = work.flops, "cubic checker"
    except ImportError:
        cubic_flops, source = v**3 * k**2, "v^3 K^2 formula"
    cheapest = min(flops, key=flops.get)
    ratio = cubic_flops / flops[cheapest]
    print(f"\ncheapest sub-cubic variant `{cheapest[9:]}`: {flops[cheapest]:,} FLOPs; "
          f"{source}: {cubic_flops:,} FLOPs; ratio {ratio:.1f}x")  # fmt: skip


def cubic_flops(config, weights) -> int:
    from certify.strategies.cubic import prove
    from checker.rules import cubic

    proof = prove(config, weights, circuits(config, weights))
    work = Work()
    cubic.check(parse(json.dumps(build(config, weights, proof)).encode()), work)
    return work.flops


def aliases(models: list[Path]) -> None:
    from certify.strategies import prove
    from certify.strategies.brute import correct_count

    print("\n## aliases on the shipped Max-of-4 models (FLOPs counted per operation, one run)\n")
    print("| model | alias | winning variant | bound | bound / exact | checker FLOPs | "
          "cubic FLOPs | ratio |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    for model in models:
        config, weights = load(model)
        c = circuits(config, weights)
        exact, cubic = correct_count(c), cubic_flops(config, weights)
        for alias in ("best-lowrank", "best-quadratic"):
            proof = prove(alias, config, weights, c)
            result, work, _ = check(config, weights, proof)
            assert result.failed is None
            bound = Fraction(result.verified_count, config.d_vocab**config.n_ctx)
            print(f"| {model.stem} | {alias} | `{result.report['variant'][9:]}` | "
                  f"{down(bound, 4)} | {down(Fraction(result.verified_count, exact), 4)} | "
                  f"{work.flops:,} | {cubic:,} | {down(Fraction(cubic, work.flops), 2)}x |",
                  flush=True)  # fmt: skip


def scaling(vocabs=(32, 64, 128, 256, 512)) -> None:
    for name in [QUADRATIC, *WINNERS]:
        print(f"\n## checker scaling, `{name[9:]}` (random weights, d_model 32, K 4)\n")
        print("| d_vocab | checker s | checker FLOPs |")
        print("|---|---|---|")
        times = []
        for v in vocabs:
            config = MaxOfKConfig(n_ctx=4, d_vocab=v, d_model=32, d_head=32)
            weights = init_weights(config, seed=v)
            proof = sc.prove_all(config, weights, circuits(config, weights), [name])[name]
            result, work, seconds = check(config, weights, proof)
            assert result.failed is None
            times.append(seconds)
            print(f"| {v} | {seconds:.2f} | {work.flops:,} |", flush=True)
        slope = np.polyfit(np.log(vocabs), np.log(times), 1)[0]
        tail = np.polyfit(np.log(vocabs[-3:]), np.log(times[-3:]), 1)[0]
        print(f"\nfitted exponent of checker time over d_vocab: {slope:.2f} (last three: "
              f"{tail:.2f})")  # fmt: skip


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    model = Path(args[0]) if args else ROOT / "certificates" / "models" / "max4_seed123.safetensors"
    if "--skip-variants" not in sys.argv:
        versus_cubic(model, all_variants(model))
    if "--skip-aliases" not in sys.argv:
        aliases([model] if args else SHIPPED)
    if "--skip-scaling" not in sys.argv:
        scaling()


if __name__ == "__main__":
    main()
