"""Cubic proof benchmark: bounds and checking times on the shipped models, and the scaling of the
checker's time with d_vocab (power-law fit).

    python bench/bench_cubic.py [--vocab 32 64 128 256] [--repeat 3]

Table 1: for each shipped model, the prover's time, the bound the checker verifies, the whole
`checker verify` command's wall time (a fresh process: imports, parsing, hashing included) and
the checker's FLOP count. Table 2: Max-of-4 models with TransformerLens-initialised random
weights (the checker does the same work whatever the weights: every case and token is
recomputed), best-of-N in-process checking time (parse + rule) per d_vocab, and the exponent of a
least-squares fit time ~ v^p (must be <= 3.2). Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from certify.certificate import build
from certify.circuits import circuits
from certify.model import MaxOfKConfig, init_weights, load
from certify.strategies.cubic import prove
from checker.cost import Work
from checker.format import parse
from checker.rules import cubic

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "certificates" / "models"


def emit(config: MaxOfKConfig, weights: dict) -> tuple[bytes, float]:
    start = time.perf_counter()
    proof = prove(config, weights, circuits(config, weights))
    seconds = time.perf_counter() - start
    return json.dumps(build(config, weights, proof)).encode(), seconds


def check_in_process(data: bytes) -> tuple[float, int, int]:
    """Seconds (parse + rule), verified count, FLOPs."""
    start = time.perf_counter()
    work = Work()
    result = cubic.check(parse(data), work)
    assert result.failed is None, result.failed
    return time.perf_counter() - start, result.verified_count, work.flops


def shipped_table(tmp: str) -> None:
    print("| model | prover s | bound | `checker verify` s | checker FLOPs |")
    print("|---|---:|---:|---:|---:|")
    for path in sorted(MODELS.glob("*.safetensors")):
        config, weights = load(path)
        data, prove_s = emit(config, weights)
        cert = os.path.join(tmp, f"{path.stem}.json")
        Path(cert).write_bytes(data)
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "checker.cli", "verify", cert, "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - start
        result = json.loads(out.stdout)
        print(
            f"| {path.name} | {prove_s:.2f} | {result['bound_decimal']} | {wall:.2f} "
            f"| {result['flops']:,} |"
        )


def scaling_table(vocab: list[int], repeat: int) -> None:
    head = f"| d_vocab | prover s | checker s (best of {repeat}) | checker FLOPs | FLOPs / v^3 |"
    print(f"\n{head}")
    print("|---:|---:|---:|---:|---:|")
    times, flops = [], []
    for v in vocab:
        config = MaxOfKConfig(n_ctx=4, d_vocab=v, d_model=32, d_head=32)
        data, prove_s = emit(config, init_weights(config, seed=v))
        best, _, n_flops = min(check_in_process(data) for _ in range(repeat))
        times.append(best)
        flops.append(n_flops)
        print(f"| {v} | {prove_s:.2f} | {best:.3f} | {n_flops:,} | {n_flops / v**3:.1f} |")
    logv = np.log(vocab)
    p_time = np.polyfit(logv, np.log(times), 1)[0]
    p_flops = np.polyfit(logv, np.log(flops), 1)[0]
    print(
        f"\npower-law fit over d_vocab {vocab}: time ~ v^{p_time:.2f}, FLOPs ~ v^{p_flops:.2f}"
        f" ({'OK' if p_time <= 3.2 else 'ABOVE'} the 3.2 limit)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        shipped_table(tmp)
    scaling_table(args.vocab, args.repeat)


if __name__ == "__main__":
    main()
