"""Sound brute-force checker vs the prover's float64 count, measured in the same run.

    python bench/bench_brute.py [MODEL.safetensors ...]   (default: shipped Max-of-4 and Max-of-5)

Prints, per model: the prover's float64 count and time (``certify.strategies.brute``), the
checker's verified count, time, peak memory (this process + its workers), FLOPs and the ratio;
then the checker's size in non-blank non-comment lines (target: under 1,500 for checker/).
"""

from __future__ import annotations

import io
import json
import resource
import sys
import time
import tokenize
from pathlib import Path

from certify.certificate import Proof, build
from certify.circuits import circuits
from certify.model import load
from certify.strategies.brute import correct_count
from checker.cost import Work
from checker.format import parse
from checker.rules.brute import check

ROOT = Path(__file__).resolve().parents[1]


def code_lines(path: Path) -> int:
    """Non-blank lines that are not only a comment (docstrings count)."""
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type not in (
            tokenize.COMMENT,
            tokenize.NL,
            tokenize.NEWLINE,
            tokenize.INDENT,
            tokenize.DEDENT,
            tokenize.ENDMARKER,
        ):
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines)


def peak_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def bench(path: str) -> None:
    config, weights = load(path)
    c = circuits(config, weights)
    t = time.perf_counter()
    prover = correct_count(c)
    t_prover = time.perf_counter() - t
    cert = parse(json.dumps(build(config, weights, Proof("brute", prover))).encode())
    work = Work()
    t = time.perf_counter()
    result = check(cert, work)
    t_checker = time.perf_counter() - t
    print(
        f"| {Path(path).name} (K {config.n_ctx}, v {config.d_vocab}) | {prover} | "
        f"{t_prover:.2f} | {result.verified_count} | {t_checker:.2f} | "
        f"{t_checker / t_prover:.2f} | {peak_mib():.0f} | {work.flops:.3g} | "
        f"{result.report['undecided_inputs']} |",
        flush=True,
    )


def main() -> None:
    models = ROOT / "certificates" / "models"
    paths = sys.argv[1:] or [models / f"max{k}_seed123.safetensors" for k in (4, 5)]
    print(
        "| model | prover count | prover s | checker count | checker s | ratio | "
        "peak MiB | checker FLOPs | undecided |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        bench(path)
    brute = [ROOT / "checker/rules/brute.py", ROOT / "checker/arith.py"]
    total = sum(code_lines(p) for p in (ROOT / "checker").rglob("*.py"))
    print(
        "\nchecker size (non-blank non-comment lines): "
        + ", ".join(f"{p.relative_to(ROOT)} {code_lines(p)}" for p in brute)
        + f"; all of checker/ {total}"
    )


if __name__ == "__main__":
    main()
