"""checker: verify a compact-proofs certificate. Exit 0 verified, 1 rejected, 2 unusable input.

    checker verify CERT [--model W] [--json] [--time-limit S] [--max-bytes N] [--shard I/N]
    checker combine SHARD_RESULT.json... [--json]     (see checker/shard.py)
    checker schema | checker selftest

``verify`` prints one line: the theorem it established, the first claim that failed, or why it
could not decide (a malformed certificate, the time limit, a broken float environment). With
``--json`` that line goes to stderr and one result object goes to stdout. No exception becomes a
verdict: anything unexpected is reported as an error (exit 2), never as verified.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

from checker.cost import TimeLimitExceeded, Work
from checker.format import DEFAULT_MAX_BYTES, Certificate, FormatError, parse, weights_sha256
from checker.shard import check_shard, combine, parse_shard, shard_line

VERIFIED, REJECTED, UNUSABLE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="checker", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="verify a certificate")
    v.add_argument("cert")
    v.add_argument("--model", help="also check the embedded weights are this .safetensors file")
    v.add_argument("--json", action="store_true", help="print one result object on stdout")
    v.add_argument("--time-limit", type=_positive(float), default=None, metavar="S")
    v.add_argument("--max-bytes", type=_positive(int), default=DEFAULT_MAX_BYTES, metavar="N")
    v.add_argument("--shard", type=parse_shard, metavar="I/N", help="check shard I of N only")
    c = sub.add_parser("combine", help="add up the results of 'verify --shard I/N --json'")
    c.add_argument("results", nargs="+")
    c.add_argument("--json", action="store_true", help="print one result object on stdout")
    sub.add_parser("schema", help="print the certificate JSON Schema")
    sub.add_parser("selftest", help="check the floating-point environment and the arithmetic")
    args = parser.parse_args(argv)
    if args.command == "schema":
        print((Path(__file__).parent / "schema.json").read_text(), end="")
        return 0
    if args.command == "selftest":
        from checker.selftest import run

        return run()
    return verify(args)


def _positive(kind: type) -> Any:
    def convert(text: str) -> Any:
        value = kind(text)
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
        return value

    return convert


def verify(args: argparse.Namespace) -> int:
    """Parse, run the strategy's rule, and report. Returns the exit status."""
    from checker.selftest import arithmetic_problem, environment_problem

    keys = ("strategy", "model_sha256", "n_ctx", "d_vocab", "claimed_count", "verified_count")
    result = {"verdict": "error", **dict.fromkeys((*keys, "total", "bound", "bound_decimal"))}
    result["failed_claim"] = None
    work = Work(getattr(args, "time_limit", None), progress=sys.stderr.isatty())
    status = UNUSABLE
    try:
        if problem := environment_problem() or arithmetic_problem():
            raise FormatError(f"unsafe floating-point environment: {problem}")
        status = (combine if args.command == "combine" else _verify_cert)(args, work, result)
    except FormatError as e:
        result["failed_claim"] = str(e)
    except TimeLimitExceeded as e:
        result["failed_claim"] = f"no verdict: {e}"
    except MemoryError:
        result["failed_claim"] = "no verdict: out of memory"
    except ArithmeticError as e:  # e.g. weights beyond what the float fast paths can enclose
        result["failed_claim"] = f"no verdict: {e}"
    except Exception as e:  # a checker bug must never turn into a verdict
        result["failed_claim"] = f"no verdict: internal error {type(e).__name__}: {e}"
    result["failed_claim"] = result["failed_claim"] and " ".join(result["failed_claim"].split())
    result.update(flops=work.flops, seconds=round(work.seconds(), 3))
    _report(result, args.json)
    return status


def _verify_cert(args: argparse.Namespace, work: Work, result: dict[str, Any]) -> int:
    cert = _read(args)
    work.tick()
    c = cert.config
    result.update(strategy=cert.strategy, model_sha256=cert.model_sha256, total=str(cert.total))
    result.update(n_ctx=c.n_ctx, d_vocab=c.d_vocab, claimed_count=str(cert.claimed_count))
    result["certificate_sha256"] = args.cert_sha256
    return _check(cert, work, result, args.shard)


def _read(args: argparse.Namespace) -> Certificate:
    try:
        with open(args.cert, "rb") as f:
            data = f.read(args.max_bytes + 1)  # never read more than the limit allows
    except OSError as e:
        raise FormatError(f"{args.cert}: cannot read ({e.strerror})") from None
    cert = parse(data, args.max_bytes)
    args.cert_sha256 = hashlib.sha256(data).hexdigest()  # names the certificate in shard results
    if args.model:
        from checker.safetensors import read_weights

        if weights_sha256(read_weights(Path(args.model), cert.config)) != cert.model_sha256:
            raise FormatError(f"--model {args.model}: weights differ from the certificate's")
    return cert


def _check(cert: Certificate, work: Work, result: dict[str, Any], shard: Any = None) -> int:
    from checker.rules import rule_for

    if shard:
        return check_shard(cert, work, result, *shard)
    rule = rule_for(cert.strategy)
    if rule is None:
        raise FormatError(f"strategy.name: no rule for strategy {cert.strategy!r}")
    outcome = rule(cert, work)
    result.update(outcome.report, verified_count=str(outcome.verified_count))
    return conclude(result, outcome.failed, outcome.verified_count, cert.claimed_count, cert.total)


def conclude(result: dict[str, Any], failed: str | None, got: int, claim: int, total: int) -> int:
    """The verdict: verified iff no claim failed and ``got`` inputs proved reach the claim."""
    if failed is None and got < claim:
        failed = f"claim.correct_count: claimed {claim} but only {got} inputs were proved correct"
    if failed is not None:
        result.update(verdict="rejected", failed_claim=failed)
        return REJECTED
    bound = Fraction(claim, total)
    decimal = math.floor(bound * 10**6)  # rounded down: the decimal never overstates the bound
    result.update(
        verdict="verified",
        bound=f"{bound.numerator}/{bound.denominator}",
        bound_decimal=f"{decimal // 10**6}.{decimal % 10**6:06d}",
    )
    return VERIFIED


def _report(result: dict[str, Any], as_json: bool) -> None:
    r = result
    if r["verdict"] == "verified":
        line = (
            f"VERIFIED: at least {r['claimed_count']} of the {r['d_vocab']}^{r['n_ctx']} = "
            f"{r['total']} inputs are classified correctly by the Max-of-{r['n_ctx']} model "
            f"(d_vocab {r['d_vocab']}) with weights sha256 {r['model_sha256']}; accuracy >= "
            f"{r['bound']} ≈ {r['bound_decimal']} ({r['strategy']}, "
            f"{r['verified_count']} proved, {r['flops']:,} FLOPs, {r['seconds']} s)"
        )
    elif r["verdict"] == "shard":
        line = shard_line(r)
    else:
        line = f"{'REJECTED' if r['verdict'] == 'rejected' else 'ERROR'}: {r['failed_claim']}"
    if as_json:
        print(json.dumps(result))
    print(line, file=sys.stderr if as_json else sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
