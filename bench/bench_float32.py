"""Float32-execution certificates against exact-semantics ones, one run per model
(docs/benchmarks.md, "Float32 execution").

    python bench/bench_float32.py                      # the shipped Max-of-4 models
    python bench/bench_float32.py MODEL.safetensors …  # any models

Per model: the exact accuracy and torch's own float32 count (``certify accuracy --float32``),
the largest and mean float32 allowance D[q, x], then per strategy (brute, cubic, full hybrid,
best-subcubic, best-lowrank, best-quadratic) the verified bound under each semantics, the
float32 one as a ratio of the exact one and its loss in accuracy points, and the checker's
FLOPs and seconds for each (fresh processes, same run).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "certificates" / "models"
STRATEGIES = ("brute", "cubic", "hybrid", "best-subcubic", "best-lowrank", "best-quadratic")


def run(*argv: str) -> tuple[dict, float]:
    """A CLI command in a fresh process: (its last JSON line, wall seconds)."""
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()[-300:]}")
    return json.loads(lines[-1]), seconds


def bench(model: Path, tmp: Path) -> None:
    from certify.float32 import allowance
    from certify.model import load

    acc, _ = run(sys.executable, "-m", "certify.cli", "accuracy", str(model), "--float32", "--json")
    exact, torch32 = int(acc["correct_count"]), int(acc["torch_float32_correct_count"])
    d = allowance(*load(model))
    print(f"\n### {model.stem}\n")
    print(f"exact accuracy {exact} / {acc['total']}; torch's float32 forward pass here: "
          f"{torch32} ({torch32 - exact:+d}); allowance D max {d.max():.3g}, "
          f"mean {d.mean():.3g}\n")  # fmt: skip
    print("| strategy | exact bound | float32 bound | float32 / exact | loss (points) | "
          "FLOPs exact | FLOPs float32 | s exact | s float32 |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for strategy in STRATEGIES:
        rows = []
        for flag in ((), ("--float32-execution",)):
            cert = tmp / f"{model.stem}.{strategy}{'.f32' if flag else ''}.cert.json"
            run(sys.executable, "-m", "certify.cli", "emit", str(model), "--strategy", strategy,
                "-o", str(cert), "--json", *flag)  # fmt: skip
            result, seconds = run(
                sys.executable, "-m", "checker.cli", "verify", str(cert), "--json"
            )
            assert result["verdict"] == "verified", result
            rows.append((Fraction(result["bound"]), result["flops"], seconds))
        (be, fe, se), (bf, ff, sf) = rows
        print(f"| {strategy} | {float(be):.6f} | {float(bf):.6f} | {float(bf / be):.6f} | "
              f"{100 * float(be - bf):.4f} | {fe:,} | {ff:,} | {se:.2f} | {sf:.2f} |",
              flush=True)  # fmt: skip


def main() -> None:
    models = [Path(p) for p in sys.argv[1:]] or sorted(MODELS.glob("max4_*.safetensors"))
    np.set_printoptions(precision=3)
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            bench(model, Path(tmp))


if __name__ == "__main__":
    main()
