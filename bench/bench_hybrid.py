"""Hybrid proofs against brute force, measured in one run per model (docs/benchmarks.md).

    python bench/bench_hybrid.py                      # the shipped Max-of-4 models, then Max-of-5
    python bench/bench_hybrid.py MODEL.safetensors …  # any models

Per model: the exact accuracy, then one row per proof (brute force, cubic, hybrid at each swept
budget, and the full hybrid): the verified bound, bound / exact accuracy, the checker's FLOPs
and its wall-clock seconds for the whole `checker verify` (a fresh process), each also as a
ratio to the brute-force check's, measured in the same run. Brute force is checked from the
shipped certificate where there is one (else emitted first); Max-of-5 skips the budgets.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "certificates" / "models"
BUDGETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)


def run(*argv: str) -> tuple[dict, float]:
    """A CLI command in a fresh process: (its last JSON line or {}, wall seconds)."""
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()[-300:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return (json.loads(lines[-1]) if lines else {}), seconds


def emit(model: Path, strategy: str, out: Path) -> Path:
    name = strategy.replace(":", "-")
    cert = out / f"{model.stem}.{name}.cert.json"
    run(sys.executable, "-m", "certify.cli", "emit", str(model), "--strategy", strategy,
        "-o", str(cert))  # fmt: skip
    return cert


def check(cert: Path) -> tuple[dict, float]:
    return run(sys.executable, "-m", "checker.cli", "verify", str(cert), "--json")


def floor6(bound: str) -> str:
    """A lower bound p/q printed rounded down to 6 decimals."""
    value = Fraction(bound)
    return f"{int(value * 10**6) / 10**6:.6f}"


def bench(model: Path, tmp: Path) -> None:
    k = int(model.stem.split("_")[0].removeprefix("max"))
    shipped = ROOT / "certificates" / f"{model.stem}.brute.cert.json"
    brute_cert = shipped if shipped.exists() else emit(model, "brute", tmp)
    strategies = ["cubic", *(f"hybrid:{f:g}" for f in BUDGETS if k == 4), "hybrid"]
    certs = {"brute": brute_cert} | {s: emit(model, s, tmp) for s in strategies}
    results = {name: check(cert) for name, cert in certs.items()}  # checked back to back
    brute, brute_s = results["brute"]
    if brute.get("verdict") != "verified":
        raise RuntimeError(f"brute force: {brute.get('failed_claim')}")
    exact = Fraction(brute["bound"])
    print(f"\n**{model.stem}** (exact accuracy {floor6(brute['bound'])}, from the brute check)\n")
    print("| proof | verdict | bound | bound / exact | checker FLOPs | FLOPs / brute | "
          "checker s | time / brute |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, (r, seconds) in results.items():
        ratio = Fraction(r["bound"]) / exact if r.get("bound") else None
        print(
            f"| {name} | {r.get('verdict')} | {floor6(r['bound']) if r.get('bound') else '–'} | "
            f"{'–' if ratio is None else f'{int(ratio * 10**4) / 10**4:.4f}'} | "
            f"{r.get('flops', 0):,} | {r.get('flops', 0) / brute['flops']:.4f} | "
            f"{seconds:.2f} | {seconds / brute_s:.3f} |",
            flush=True,
        )


def main() -> None:
    paths = [Path(p) for p in sys.argv[1:]] or [
        *(MODELS / f"max4_seed{s}.safetensors" for s in (123, 50, 104)),
        MODELS / "max5_seed123.safetensors",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            bench(path, Path(tmp))


if __name__ == "__main__":
    main()
