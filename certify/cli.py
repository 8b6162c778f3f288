"""certify: train Max-of-K models, compute their exact accuracy, emit proof certificates.

certify train [--k 4] [--d-vocab 64] [--d-model 32] [--seed 123] [--steps 3000] -o MODEL
certify convert MODEL.pt -o MODEL.safetensors
certify accuracy MODEL [--json]
certify emit MODEL [--strategy NAME] [--budget F] [-o CERT] [--json]
certify emit MODEL --strategy all [-o DIR]
certify strategies [--names]
certify sweep [--k 4] [--seeds paper|123,50] [--strategies all|cubic,...] [--db results.sqlite]
certify plot results.sqlite [-o DIR]
certify report CERT -o DIR
certify verify-sharded CERT [--shards N] [--dask ADDRESS | --workers W] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

from certify.model import ModelError
from checker.guard import guarded

EXTRAS = {"torch": "prover", "safetensors": "prover", "tqdm": "prover", "dask": "sweep",
          "distributed": "sweep", "matplotlib": "sweep"}  # fmt: skip


@guarded
def main(argv: list[str] | None = None) -> int:
    from certify import __version__

    parser = argparse.ArgumentParser(prog="certify", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"certify {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model with the paper's recipe")
    t.add_argument("--k", type=int, default=4, help="sequence length K (n_ctx)")
    t.add_argument("--d-vocab", type=int, default=64, help="vocabulary size v")
    t.add_argument("--d-model", type=int, default=32, help="residual width (= d_head)")
    t.add_argument("--seed", type=int, default=123, help="seeds the init and the data stream")
    t.add_argument("--steps", type=int, default=3000, help="AdamW steps of batch 128")
    t.add_argument("-o", "--output", required=True, help="model path (.pt or .safetensors)")

    c = sub.add_parser("convert", help="a .pt state_dict to .safetensors (bit-identical weights)")
    c.add_argument("model", help="TransformerLens state_dict (.pt), loaded weights-only")
    c.add_argument("-o", "--output", required=True, help="the .safetensors file to write")

    a = sub.add_parser("accuracy", help="exact accuracy over all d_vocab^K inputs")
    a.add_argument("model", help="model weights (.pt or .safetensors)")
    a.add_argument("--workers", type=int, default=None, help="processes (default: cores, <= 8)")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.add_argument(
        "--estimate",
        action="store_true",
        help="importance-sampled estimate with a ~95%% interval (not exact; for large v^K)",
    )
    a.add_argument(
        "--float32", action="store_true", help="also count what torch's float32 forward pass gets"
    )

    e = sub.add_parser("emit", help="prove a bound and write its certificate")
    e.add_argument("model", help="model weights (.pt or .safetensors)")
    e.add_argument("--strategy", default="cubic", help="see 'certify strategies'")
    e.add_argument(
        "-o", "--output", help="certificate path (default: MODEL-STEM.STRATEGY.cert.json beside "
        "MODEL); with --strategy all a folder (default: MODEL-STEM.certs/ beside MODEL)",
    )  # fmt: skip
    e.add_argument("--json", action="store_true", help="print JSON (one object per certificate)")
    e.add_argument(
        "--budget",
        type=float,
        metavar="F",
        help="hybrid: enumerate only within F x brute force's checker FLOPs (0 < F <= 1)",
    )
    e.add_argument(
        "--wide-peels",
        action="store_true",
        help="sub-cubic: also try rank-8 EQKE peels (tighter, longer proofs)",
    )
    e.add_argument(
        "--float32-execution",
        action="store_true",
        help="claim correctness under every float32 execution (docs/float32.md), not exact reals",
    )

    s = sub.add_parser("strategies", help="every strategy name, a tab, a one-line description")
    s.add_argument("--names", action="store_true", help="names only, one per line")
    add_parsers(sub)
    for subparser in sub.choices.values():  # every subcommand's --help shows the defaults
        subparser.formatter_class = HelpWithDefaults

    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ModelError as err:
        print(f"certify: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        if err.name is None or err.name.split(".")[0] not in EXTRAS:
            raise
        extra = EXTRAS[err.name.split(".")[0]]
        print(f"certify: error: {args.command} needs {err.name!r}, which is not installed: "
              f"pip install 'compact-proofs[{extra}]'", file=sys.stderr)  # fmt: skip
        return 2
    except BrokenPipeError:
        raise  # handled by guarded: not an error of ours
    except (ValueError, OSError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"certify: error: {message}", file=sys.stderr)
        return 2


class HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" after each help text, except for unset (None) and off flags."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        unset = action.default is None or action.default is False
        return action.help if unset else super()._get_help_string(action)


def cmd_train(args: argparse.Namespace) -> int:
    from certify.model import MaxOfKConfig, save
    from certify.train import recipe, train

    if min(args.k, args.d_vocab, args.d_model, args.steps) < 1:
        raise ValueError("--k, --d-vocab, --d-model and --steps must be positive")
    if Path(args.output).suffix not in (".pt", ".pth", ".safetensors"):
        raise ValueError(f"{args.output}: model path must end in .pt or .safetensors")
    writable(args.output)  # before training, not after
    config = MaxOfKConfig(
        n_ctx=args.k, d_vocab=args.d_vocab, d_model=args.d_model, d_head=args.d_model
    )
    start = time.perf_counter()
    weights = train(config, seed=args.seed, steps=args.steps)
    save(weights, args.output, recipe(config, args.seed, args.steps))
    print(
        f"trained K={args.k} d_vocab={args.d_vocab} seed={args.seed} in "
        f"{time.perf_counter() - start:.1f} s -> {args.output}"
    )
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Validate a state_dict and write its float32 weights, bit for bit, as safetensors."""
    from certify.model import load, save, weights_sha256

    if Path(args.output).suffix != ".safetensors":
        raise ValueError(f"{args.output}: output must end in .safetensors")
    _, weights = load(args.model)
    save(weights, args.output, {"converted_from": Path(args.model).name})
    print(f"{args.output}: weights sha256 {weights_sha256(weights)}")
    return 0


def cmd_accuracy(args: argparse.Namespace) -> int:
    from certify.circuits import circuits
    from certify.model import load, weights_sha256
    from certify.rounding import down, up
    from certify.strategies.brute import correct_count

    config, weights = load(args.model)
    total = config.d_vocab**config.n_ctx
    start = time.perf_counter()
    if args.estimate:
        from certify.estimate import estimate_accuracy

        e = estimate_accuracy(circuits(config, weights))
        seconds = time.perf_counter() - start
        if args.json:
            return _json(kind="estimate", **vars(e), seconds=round(seconds, 3))
        print(
            f"ESTIMATE (not exact): accuracy {e.accuracy:.6f}, ~95% interval "
            f"[{down(e.low)}, {up(e.high)}] from {e.samples} sampled inputs in {e.strata} strata "
            f"({seconds:.1f} s)"
        )
        return 0
    if total > BRUTE_FORCE_LIMIT:
        raise ValueError(
            f"{total:.3g} inputs is too many to enumerate (limit {BRUTE_FORCE_LIMIT:.3g}); "
            "use --estimate, or a proof strategy with 'certify emit'"
        )
    with _bar(config.d_vocab, "accuracy: query tokens", not args.json) as bar:
        correct = correct_count(circuits(config, weights), args.workers, bar.update)
    seconds = time.perf_counter() - start
    torch32 = None
    if args.float32:
        from certify.float32 import torch_float32_count

        torch32 = torch_float32_count(config, weights)
    if args.json:
        sha = weights_sha256(weights)
        fraction = f"{correct}/{total}"
        extra = {} if torch32 is None else {"torch_float32_correct_count": str(torch32)}
        return _json(kind="exact", correct_count=str(correct), total=str(total), accuracy=fraction,
                     accuracy_decimal=down(Fraction(correct, total)), model_sha256=sha,
                     seconds=round(seconds, 3), **extra)  # fmt: skip
    print(
        f"{correct} of {total} inputs correct: accuracy {correct}/{total} ≈ "
        f"{down(Fraction(correct, total))} (rounded down; {seconds:.1f} s)"
    )
    if torch32 is not None:
        print(
            f"torch float32 forward pass on this machine: {torch32} of {total} correct "
            f"({torch32 - correct:+d} against exact; ties count wrong)"
        )
    return 0


def _json(**fields) -> int:
    import json

    print(json.dumps(fields))
    return 0


def _bar(total: int, desc: str, enabled: bool = True):
    """A progress bar on stderr, shown only when stderr is a terminal."""
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, file=sys.stderr, leave=False, disable=None if enabled else True
    )


BRUTE_FORCE_LIMIT = 2**34  # about 8 minutes on 2 cores (Max-of-5, 2^30 inputs: 27 s)


def cmd_emit(args: argparse.Namespace) -> int:
    from certify.certificate import build, provenance, write
    from certify.circuits import circuits
    from certify.model import load, weights_sha256
    from certify.rounding import down
    from certify.strategies import prove

    if args.budget is not None:
        if args.strategy != "hybrid":
            raise ValueError("--budget applies to --strategy hybrid only")
        args.strategy = f"hybrid:{args.budget:g}"
    config, weights = load(args.model)
    writable(args.output or default_output(args.model, "all"))
    if args.strategy == "all" and args.float32_execution:
        raise ValueError("--float32-execution takes one strategy, not 'all'")
    if args.strategy == "all":
        return emit_all(args.model, config, weights, args.wide_peels, args.output, args.json)
    start = time.perf_counter()
    c = circuits(config, weights)
    if args.float32_execution:  # the stronger claim: every float32 execution (docs/float32.md)
        from certify.float32 import allowance

        c = dataclasses.replace(c, allowance=allowance(config, weights))
    proof = prove(args.strategy, config, weights, c, args.wide_peels)
    seconds = time.perf_counter() - start
    name = f"{args.strategy}.float32" if args.float32_execution else args.strategy
    out = args.output or default_output(args.model, name)
    write(build(config, weights, proof, provenance(args.model)), out)
    total = config.d_vocab**config.n_ctx
    bound = Fraction(proof.correct_count, total)
    if args.json:  # the prover's claim; `checker verify` decides whether it holds
        return _json(strategy=proof.strategy, options=proof.options, certificate=str(out),
                     claimed_count=str(proof.correct_count), total=str(total),
                     claimed_bound=f"{bound.numerator}/{bound.denominator}",
                     claimed_bound_decimal=down(bound), model_sha256=weights_sha256(weights),
                     semantics="float32-execution" if args.float32_execution else "exact",
                     seconds=round(seconds, 3))  # fmt: skip
    print(
        f"{proof.report.get('variant', proof.strategy)}: at least {proof.correct_count} of "
        f"{total} inputs correct{' in every float32 execution' * args.float32_execution}, "
        f"bound {down(bound)} (rounded down; {seconds:.1f} s) -> {out}"
    )
    return 0


def emit_all(
    model: str, config, weights, wide_peels: bool = False, out_dir: str | None = None,
    as_json: bool = False,
) -> int:  # fmt: skip
    """Brute force (where v^K <= 2^25), cubic, hybrid at every swept budget and every
    sub-cubic variant: each certificate is written to OUT_DIR (default MODEL-STEM.certs/ beside
    MODEL) and checked; prints one table row (or JSON object) per strategy, the bound being the
    checker's, rounded down."""
    import json

    from certify.certificate import build, provenance, write
    from certify.circuits import circuits
    from certify.strategies import prove, strategy_names
    from certify.strategies.hybrid import feasible
    from certify.strategies.subcubic import prove_all, variant_names
    from certify.sweep import run_checker

    folder = Path(out_dir or Path(model).with_name(f"{Path(model).stem}.certs"))
    folder.mkdir(parents=True, exist_ok=True)
    c = circuits(config, weights)
    total = config.d_vocab**config.n_ctx
    names = (["brute"] if total <= 2**25 else []) + ["cubic"]
    names += [n for n in strategy_names() if n.startswith("hybrid") and feasible(config, n)]
    count = len(names) + len(variant_names())
    print(f"emit all: {count} certificates -> {folder}/", file=sys.stderr)
    timed = []
    with _bar(count, "prove and check") as bar:
        for name in names:
            start = time.perf_counter()
            timed.append((name, prove(name, config, weights, c), time.perf_counter() - start))
        bar.set_postfix_str("sub-cubic search (all variants at once)")
        start = time.perf_counter()
        subcubic = prove_all(config, weights, c, wide_peels=wide_peels)
        share = (time.perf_counter() - start) / len(subcubic)  # the search is shared
        timed += [(name, proof, share) for name, proof in subcubic.items()]
        columns = ("strategy", "verdict", "bound", "checker FLOPs", "unexplained dims", "prover s")
        if not as_json:
            print("| " + " | ".join(columns) + " | checker s |\n|---|---|---:|---:|---:|---:|---:|")
        for name, proof, seconds in timed:
            out = folder / Path(default_output(model, name)).name
            write(build(config, weights, proof, provenance(model)), out)
            r = run_checker(out)
            bar.update()
            if as_json:
                print(json.dumps({**r, "strategy": name, "certificate": str(out)}), flush=True)
                continue
            print(
                f"| {name} | {r['verdict']} | {r.get('bound_decimal')} | {r.get('flops', 0):,} | "
                f"{r.get('unexplained_dims')} | {seconds:.2f} | {r.get('seconds')} |",
                flush=True,
            )
    return 0


def writable(path: str | Path) -> None:
    """Refuse an output path that cannot be written, before any work is done."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a file name")
    if not path.parent.is_dir():
        raise ValueError(f"{path}: directory {str(path.parent)!r} does not exist")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"{path}: not writable")


def default_output(model: str, strategy: str) -> str:
    path = Path(model)
    safe = strategy.replace(":", "-").replace("/", "_")
    return str(path.with_name(f"{path.stem}.{safe}.cert.json"))


def cmd_strategies(args: argparse.Namespace) -> int:
    from certify.strategies import describe, strategy_names

    names = [*strategy_names(), "all"]
    lines = names if args.names else [f"{n}\t{describe(n)}" for n in names]
    sys.stdout.write("".join(f"{line}\n" for line in lines))  # one write: `| head` reads it whole
    sys.stdout.flush()
    return 0


def add_parsers(sub) -> None:
    """Subcommands defined in their own modules (``sweep``, ``plot``)."""
    from certify import plot, report, sharded, sweep

    sweep.add_parser(sub)
    plot.add_parser(sub)
    report.add_parser(sub)
    sharded.add_parser(sub)


def cmd_sweep(args: argparse.Namespace) -> int:
    from certify.sweep import cmd_sweep as run

    return run(args)


def cmd_plot(args: argparse.Namespace) -> int:
    from certify.plot import cmd_plot as run

    return run(args)


def cmd_report(args: argparse.Namespace) -> int:
    from certify.report import cmd_report as run

    return run(args)


def cmd_verify_sharded(args: argparse.Namespace) -> int:
    from certify.sharded import cmd_verify_sharded as run

    return run(args)


COMMANDS = {
    "train": cmd_train,
    "convert": cmd_convert,
    "accuracy": cmd_accuracy,
    "emit": cmd_emit,
    "strategies": cmd_strategies,
    "sweep": cmd_sweep,
    "plot": cmd_plot,
    "report": cmd_report,
    "verify-sharded": cmd_verify_sharded,
}


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
