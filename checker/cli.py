"""checker: verify a compact-proofs certificate. Exit 0 verified, 1 rejected, 2 unusable input.

Commands: verify, combine (checker/shard.py), hash, schema, selftest (``checker C --help``).
``verify`` prints one line: the theorem it established or the first claim that failed (stdout),
or why it could not decide (stderr: a malformed certificate, the limits, a broken float
environment). With ``--json`` that line goes to stderr and one result object to stdout. No
exception becomes a verdict: anything unexpected is an error (exit 2), never verified.
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

from checker import __version__, selftest
from checker.cost import DEFAULT_MAX_MEMORY, OverBudget, Work
from checker.format import DEFAULT_MAX_BYTES, Certificate, FormatError, parse, weights_sha256
from checker.guard import guarded
from checker.rules import ClaimFailed, rule_for
from checker.safetensors import read_weights
from checker.shard import check_shard, combine, parse_shard, shard_line

VERIFIED, REJECTED, UNUSABLE = 0, 1, 2
SEMANTICS = {  # claim.semantics: what "classified correctly" means in the theorem
    "exact": "in exact real arithmetic",
    "float32-execution": "in every float32 execution of docs/float32.md (any summation order, "
    "with or without FMA; strictly)",
}


@guarded
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="checker", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"checker {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    v = sub.add_parser("verify", help="verify a certificate", formatter_class=fmt)
    v.add_argument("cert", help="certificate JSON file")
    v.add_argument("--model", help="also check the embedded weights are this .safetensors file")
    v.add_argument("--json", action="store_true", help="print one result object on stdout")
    v.add_argument("--time-limit", type=_positive(float), metavar="S", help="give up after S s")
    v.add_argument("--max-bytes", type=_positive(int), default=DEFAULT_MAX_BYTES, help="size cap")
    v.add_argument(
        "--max-memory", type=_positive(int), default=DEFAULT_MAX_MEMORY, help="memory cap (bytes)"
    )
    v.add_argument("--shard", type=parse_shard, metavar="I/N", help="check shard I of N only")
    v.add_argument("--semantics", choices=SEMANTICS, help="reject certificates of other semantics")
    c = sub.add_parser("combine", help="add up the results of 'verify --shard I/N --json'")
    c.add_argument("results", nargs="+", help="shard result JSON files")
    c.add_argument("--json", action="store_true", help="print one result object on stdout")
    h = sub.add_parser("hash", help="print a .safetensors model's weights sha256")
    h.add_argument("model", help="model weights (.safetensors)")
    sub.add_parser("schema", help="print the certificate JSON Schema")
    sub.add_parser("selftest", help="check the floating-point environment and the arithmetic")
    args = parser.parse_args(argv)
    if args.command == "schema":
        print((Path(__file__).parent / "schema.json").read_text(), end="")
        return 0
    if args.command == "selftest":
        return selftest.run()
    return _hash(args.model) if args.command == "hash" else verify(args)


def _hash(path: str) -> int:
    try:
        print(weights_sha256(read_weights(Path(path), option="")))
    except (ValueError, TypeError) as e:  # FormatError, or a malformed header entry
        print(f"checker: error: {e}", file=sys.stderr)
        return UNUSABLE
    return VERIFIED


def _positive(kind: type) -> Any:
    def convert(text: str) -> Any:
        value = kind(text)
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
        return value

    return convert


def verify(args: argparse.Namespace) -> int:
    """Parse, run the strategy's rule, and report. Returns the exit status."""
    keys = ("strategy", "model_sha256", "n_ctx", "d_vocab", "claimed_count", "verified_count")
    keys += ("total", "bound", "bound_decimal", "failed_claim", "theorem", "untrusted_provenance")
    keys += ("semantics",)
    result = {"verdict": "error", "checker_version": __version__, **dict.fromkeys(keys)}
    max_memory = getattr(args, "max_memory", DEFAULT_MAX_MEMORY)
    work = Work(getattr(args, "time_limit", None), sys.stderr.isatty(), max_memory)
    status = UNUSABLE
    try:
        if problem := selftest.environment_problem() or selftest.arithmetic_problem():
            raise FormatError(f"unsafe floating-point environment: {problem}")
        with work.alarm():
            status = (combine if args.command == "combine" else _verify_cert)(args, work, result)
    except ClaimFailed as e:  # a rule found a stated bound false before counting
        status = conclude(result, str(e), 0, 0, 0)
    except FormatError as e:
        result["failed_claim"] = str(e)
    except (OverBudget, ArithmeticError) as e:  # Arithmetic: weights beyond the float fast paths
        result["failed_claim"] = f"no verdict: {e}"
    except MemoryError:
        result["failed_claim"] = "no verdict: out of memory"
    except Exception as e:  # a checker bug must never turn into a verdict
        result["failed_claim"] = f"no verdict: internal error {type(e).__name__}: {e}"
    result["failed_claim"] = result["failed_claim"] and " ".join(result["failed_claim"].split())
    result.update(flops=work.flops, seconds=round(work.seconds(), 3))
    _report(result, args.json)
    return status


def _verify_cert(args: argparse.Namespace, work: Work, result: dict[str, Any]) -> int:
    cert = _read(args)
    c = cert.config
    result.update(strategy=cert.strategy, model_sha256=cert.model_sha256, total=str(cert.total))
    result.update(n_ctx=c.n_ctx, d_vocab=c.d_vocab, claimed_count=str(cert.claimed_count))
    result.update(certificate_sha256=args.cert_sha256, semantics=cert.semantics)
    result["untrusted_provenance"] = cert.provenance  # echoed as stated, never checked
    if getattr(args, "semantics", None) not in (None, cert.semantics):
        why = f"claim.semantics: is {cert.semantics}, but --semantics {args.semantics} was required"
        return conclude(result, why, 0, 0, 0)
    if _other_model(args.model, cert, result):
        return REJECTED
    if args.shard:
        return check_shard(cert, work, result, *args.shard)
    rule = rule_for(cert.strategy)
    work.admit(cert.strategy, cert.config, f32=cert.allowance is not None)  # after rule_for
    outcome = rule(cert, work)
    result.update(outcome.report, verified_count=str(outcome.verified_count))
    return conclude(result, outcome.failed, outcome.verified_count, cert.claimed_count, cert.total)


def _read(args: argparse.Namespace) -> Certificate:
    try:
        with open(args.cert, "rb") as f:
            data = f.read(args.max_bytes + 1)  # never read more than the limit allows
    except OSError as e:
        raise FormatError(f"{args.cert!r}: cannot read ({e.strerror})") from None
    args.cert_sha256 = hashlib.sha256(data).hexdigest()  # names the certificate in shard results
    return parse(data, args.max_bytes)


def _other_model(model: str | None, cert: Certificate, result: dict[str, Any]) -> bool:
    """True (a rejection) if --model has other weights or shapes (the hash covers values only)."""
    if model is None:
        return False
    weights = read_weights(Path(model))
    held, shapes = weights_sha256(weights), [w.shape for w in weights.values()]
    if (held, shapes) == (cert.model_sha256, list(cert.config.shapes().values())):
        return False
    result.update(verdict="rejected", model_file_sha256=held)
    result["failed_claim"] = (
        f"--model {model}: its weights sha256 is {held} (shapes {shapes}) but the certificate's "
        f"is {cert.model_sha256}; the claim is not established for that file"
    )
    return True


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
    v, k = result["d_vocab"], result["n_ctx"]
    result["theorem"] = (
        f"at least {claim} of the {v}^{k} = {total} inputs are classified correctly by the "
        f"Max-of-{k} model (d_vocab {v}) with weights sha256 {result['model_sha256']}, that is, "
        f"for each of them the last position's logit of the input's largest token, "
        f"{SEMANTICS[result['semantics'] or 'exact']}, exceeds every other logit; "
        f"accuracy >= {bound}"
    )
    return VERIFIED


def _report(result: dict[str, Any], as_json: bool) -> None:
    r = result
    if r["verdict"] == "verified":
        line = (
            f"VERIFIED: {r['theorem']} ≈ {r['bound_decimal']} ({r['strategy']}, "
            f"{r['verified_count']} proved, {r['flops']:,} FLOPs, {r['seconds']} s)"
        )
    elif r["verdict"] == "shard":
        line = shard_line(r)
    else:
        line = f"{'REJECTED' if r['verdict'] == 'rejected' else 'ERROR'}: {r['failed_claim']}"
    if as_json:
        print(json.dumps(result))
    print(line, file=sys.stderr if as_json or r["verdict"] == "error" else sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
