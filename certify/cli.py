"""certify: train Max-of-K models, compute their exact accuracy, emit proof certificates.

certify train [--k 4] [--d-vocab 64] [--d-model 32] [--seed 123] [--steps 3000] -o MODEL
certify accuracy MODEL
certify emit MODEL [--strategy NAME] [-o CERT]
certify strategies
certify sweep [--k 4] [--seeds paper|123,50] [--strategies all|cubic,...] [--db results.sqlite]
certify plot results.sqlite [-o DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from certify.model import ModelError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="certify", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model with the paper's recipe")
    t.add_argument("--k", type=int, default=4, help="sequence length K (n_ctx)")
    t.add_argument("--d-vocab", type=int, default=64)
    t.add_argument("--d-model", type=int, default=32)
    t.add_argument("--seed", type=int, default=123)
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("-o", "--output", required=True, help="model path (.pt or .safetensors)")

    a = sub.add_parser("accuracy", help="exact accuracy over all d_vocab^K inputs")
    a.add_argument("model")
    a.add_argument("--workers", type=int, default=None)
    a.add_argument(
        "--estimate",
        action="store_true",
        help="importance-sampled estimate with a ~95%% interval (not exact; for large v^K)",
    )

    e = sub.add_parser("emit", help="prove a bound and write its certificate")
    e.add_argument("model")
    e.add_argument("--strategy", default="cubic", help="see 'certify strategies'")
    e.add_argument("-o", "--output", help="default: MODEL-STEM.STRATEGY.cert.json beside MODEL")
    e.add_argument(
        "--wide-peels",
        action="store_true",
        help="sub-cubic: also try rank-8 EQKE peels (tighter, longer proofs)",
    )

    sub.add_parser("strategies", help="list every strategy name")
    add_parsers(sub)

    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ModelError as err:
        print(f"certify: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"certify: error: {message}", file=sys.stderr)
        return 2


def cmd_train(args: argparse.Namespace) -> int:
    from certify.model import MaxOfKConfig, save
    from certify.train import train

    if min(args.k, args.d_vocab, args.d_model, args.steps) < 1:
        raise ValueError("--k, --d-vocab, --d-model and --steps must be positive")
    if Path(args.output).suffix not in (".pt", ".pth", ".safetensors"):
        raise ValueError(f"{args.output}: model path must end in .pt or .safetensors")
    config = MaxOfKConfig(
        n_ctx=args.k, d_vocab=args.d_vocab, d_model=args.d_model, d_head=args.d_model
    )
    start = time.perf_counter()
    weights = train(config, seed=args.seed, steps=args.steps)
    save(weights, args.output)
    print(
        f"trained K={args.k} d_vocab={args.d_vocab} seed={args.seed} in "
        f"{time.perf_counter() - start:.1f} s -> {args.output}"
    )
    return 0


def cmd_accuracy(args: argparse.Namespace) -> int:
    from certify.circuits import circuits
    from certify.model import load
    from certify.strategies.brute import correct_count

    config, weights = load(args.model)
    total = config.d_vocab**config.n_ctx
    start = time.perf_counter()
    if args.estimate:
        from certify.estimate import estimate_accuracy

        e = estimate_accuracy(circuits(config, weights))
        print(
            f"ESTIMATE (not exact): accuracy {e.accuracy:.6f}, ~95% interval "
            f"[{e.low:.6f}, {e.high:.6f}] from {e.samples} sampled inputs in {e.strata} strata "
            f"({time.perf_counter() - start:.1f} s)"
        )
        return 0
    if total > BRUTE_FORCE_LIMIT:
        raise ValueError(
            f"{total:.3g} inputs is too many to enumerate (limit {BRUTE_FORCE_LIMIT:.3g}); "
            "use --estimate, or a proof strategy with 'certify emit'"
        )
    correct = correct_count(circuits(config, weights), workers=args.workers)
    print(
        f"{correct} of {total} inputs correct: accuracy {correct / total:.6f} "
        f"({time.perf_counter() - start:.1f} s)"
    )
    return 0


BRUTE_FORCE_LIMIT = 2**34  # about 8 minutes on 2 cores (Max-of-5, 2^30 inputs: 27 s)


def cmd_emit(args: argparse.Namespace) -> int:
    from certify.certificate import build, write
    from certify.circuits import circuits
    from certify.model import load
    from certify.strategies import prove

    config, weights = load(args.model)
    if args.strategy == "all":
        return emit_all(args.model, config, weights, args.wide_peels)
    start = time.perf_counter()
    proof = prove(args.strategy, config, weights, circuits(config, weights), args.wide_peels)
    seconds = time.perf_counter() - start
    out = args.output or default_output(args.model, proof.strategy)
    write(build(config, weights, proof), out)
    total = config.d_vocab**config.n_ctx
    print(
        f"{proof.report.get('variant', proof.strategy)}: at least {proof.correct_count} of "
        f"{total} inputs correct, "
        f"bound {proof.correct_count / total:.6f} ({seconds:.1f} s) -> {out}"
    )
    return 0


def emit_all(model: str, config, weights, wide_peels: bool = False) -> int:
    """Brute force (where v^K <= 2^25), cubic and every sub-cubic variant: each certificate
    is written beside MODEL and checked; prints one table row per strategy."""
    from certify.certificate import build, write
    from certify.circuits import circuits
    from certify.strategies import prove
    from certify.strategies.subcubic import prove_all
    from certify.sweep import run_checker

    c = circuits(config, weights)
    names = (["brute"] if config.d_vocab**config.n_ctx <= 2**25 else []) + ["cubic"]
    timed = []
    for name in names:
        start = time.perf_counter()
        timed.append((name, prove(name, config, weights, c), time.perf_counter() - start))
    start = time.perf_counter()
    subcubic = prove_all(config, weights, c, wide_peels=wide_peels)
    share = (time.perf_counter() - start) / len(subcubic)  # the search is shared
    timed += [(name, proof, share) for name, proof in subcubic.items()]
    columns = ("strategy", "verdict", "bound", "checker FLOPs", "unexplained dims", "prover s")
    print("| " + " | ".join(columns) + " | checker s |\n|---|---|---:|---:|---:|---:|---:|")
    for name, proof, seconds in timed:
        out = default_output(model, name)
        write(build(config, weights, proof), out)
        r = run_checker(Path(out))
        print(
            f"| {name} | {r['verdict']} | {r.get('bound_decimal')} | {r.get('flops', 0):,} | "
            f"{r.get('unexplained_dims')} | {seconds:.2f} | {r.get('seconds')} |",
            flush=True,
        )
    return 0


def default_output(model: str, strategy: str) -> str:
    path = Path(model)
    safe = strategy.replace(":", "-").replace("/", "_")
    return str(path.with_name(f"{path.stem}.{safe}.cert.json"))


def cmd_strategies(args: argparse.Namespace) -> int:
    from certify.strategies import DESCRIPTIONS, strategy_names

    print(
        "\n".join(f"{n}  {DESCRIPTIONS[n]}" if n in DESCRIPTIONS else n for n in strategy_names())
    )
    print("all")
    return 0


def add_parsers(sub) -> None:
    """Subcommands defined in their own modules (``sweep``, ``plot``)."""
    from certify import plot, sweep

    sweep.add_parser(sub)
    plot.add_parser(sub)


def cmd_sweep(args: argparse.Namespace) -> int:
    from certify.sweep import cmd_sweep as run

    return run(args)


def cmd_plot(args: argparse.Namespace) -> int:
    from certify.plot import cmd_plot as run

    return run(args)


COMMANDS = {
    "train": cmd_train,
    "accuracy": cmd_accuracy,
    "emit": cmd_emit,
    "strategies": cmd_strategies,
    "sweep": cmd_sweep,
    "plot": cmd_plot,
}


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
