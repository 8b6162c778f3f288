"""checker: verify a compact-proofs certificate. Exit 0 verified, 1 rejected, 2 unusable input.

    checker verify CERT [--model WEIGHTS.safetensors] [--json] [--time-limit S] [--max-bytes N]
    checker schema
    checker selftest
"""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

from checker.cost import TimeLimitExceeded, Work
from checker.format import FormatError, parse, weights_sha256

VERIFIED, REJECTED, UNUSABLE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="checker", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="verify a certificate")
    v.add_argument("cert")
    v.add_argument("--model", help="also check the embedded weights are this .safetensors file")
    v.add_argument("--json", action="store_true", help="print one result object on stdout")
    v.add_argument("--time-limit", type=float, default=None, metavar="S")
    v.add_argument("--max-bytes", type=int, default=None, metavar="N")
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


def verify(args: argparse.Namespace) -> int:
    from checker.selftest import environment_problem

    problem = environment_problem()
    result: dict[str, Any] = {"verdict": "error", "strategy": None, "model_sha256": None,
                              "claimed_count": None, "verified_count": None, "total": None,
                              "bound": None, "bound_decimal": None, "flops": 0, "seconds": 0.0,
                              "failed_claim": None}
    work = Work(args.time_limit, progress=not args.json and sys.stderr.isatty())
    status = UNUSABLE
    try:
        if problem:
            raise FormatError(f"unsafe floating-point environment: {problem}")
        cert = _read(args)
        result.update(strategy=cert.strategy, model_sha256=cert.model_sha256,
                      claimed_count=str(cert.claimed_count), total=str(cert.total))
        from checker.rules import rule_for

        rule = rule_for(cert.strategy)
        if rule is None:
            raise FormatError(f"strategy.name: unknown strategy {cert.strategy!r}")
        outcome = rule(cert, work)
        result.update(outcome.report)
        result["verified_count"] = str(outcome.verified_count)
        failed = outcome.failed
        if failed is None and outcome.verified_count < cert.claimed_count:
            failed = (f"claim.correct_count: claimed {cert.claimed_count} but only "
                      f"{outcome.verified_count} inputs were proved correct")
        if failed is None:
            bound = Fraction(cert.claimed_count, cert.total)
            result.update(verdict="verified", bound=f"{bound.numerator}/{bound.denominator}",
                          bound_decimal=f"{float(bound):.6f}")
            status = VERIFIED
        else:
            result.update(verdict="rejected", failed_claim=failed)
            status = REJECTED
    except FormatError as e:
        result["failed_claim"] = str(e)
    except TimeLimitExceeded as e:
        result["failed_claim"] = f"no verdict: {e}"
    except MemoryError:
        result["failed_claim"] = "no verdict: out of memory"
    result["flops"] = work.flops
    result["seconds"] = round(work.seconds(), 3)
    _report(result, args.json)
    return status


def _read(args: argparse.Namespace):
    try:
        data = Path(args.cert).read_bytes()
    except OSError as e:
        raise FormatError(f"{args.cert}: cannot read ({e.strerror})") from None
    cert = parse(data) if args.max_bytes is None else parse(data, args.max_bytes)
    if args.model:
        from checker.safetensors import read_weights

        if weights_sha256(read_weights(Path(args.model), cert.config)) != cert.model_sha256:
            raise FormatError(f"--model {args.model}: weights differ from the certificate's")
    return cert


def _report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    if result["verdict"] == "verified":
        print(f"VERIFIED: at least {result['verified_count']} of {result['total']} inputs "
              f"(claimed {result['claimed_count']}) are classified correctly by the model with "
              f"weights sha256 {result['model_sha256']}; bound {result['bound']} ≈ "
              f"{result['bound_decimal']} ({result['strategy']}, {result['flops']:,} FLOPs, "
              f"{result['seconds']} s)")
    elif result["verdict"] == "rejected":
        print(f"REJECTED: {result['failed_claim']}")
    else:
        print(f"ERROR: {result['failed_claim']}")


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
