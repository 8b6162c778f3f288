"""Foundation benchmark: training time and exact-accuracy computation (wall time, peak memory).

    python bench/bench_foundation.py [--skip-k5]

Each job runs in a fresh process; peak memory is the largest resident set of that process and
its worker processes (ru_maxrss of the children). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "certificates" / "models"


def run(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) of the job's process tree, and its last stdout line."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--measure", *args], capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - start
    *lines, peak = proc.stdout.strip().splitlines()
    return wall, float(peak) / 1024, lines[-1]


def measure(args: list[str]) -> None:
    """Run one job as a child, then print its output and the largest child RSS (KiB)."""
    proc = subprocess.run(args, capture_output=True, text=True, check=True)
    print(proc.stdout.strip())
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def main() -> None:
    if sys.argv[1:2] == ["--measure"]:
        return measure(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-k5", action="store_true", help="skip the 1.07e9-input Max-of-5")
    args = parser.parse_args()
    certify = [sys.executable, "-m", "certify.cli"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "m.safetensors")
        wall, peak, out = run([*certify, "train", "--seed", "123", "-o", model])
        rows.append(("train Max-of-4 (3000 steps, batch 128), whole command", wall, peak, out))
    jobs = [("accuracy Max-of-4, v 64 (1.7e7 inputs)", MODELS / "max4_seed123.safetensors")]
    if not args.skip_k5:
        jobs.append(("accuracy Max-of-5, v 64 (1.1e9 inputs)", MODELS / "max5_seed123.safetensors"))
    for label, path in jobs:
        wall, peak, out = run([*certify, "accuracy", str(path)])
        rows.append((label, wall, peak, out.split(" (")[0]))
    print(f"cores: {os.cpu_count()}\n")
    print("| job | wall s | peak MiB | result |\n|---|---:|---:|---|")
    for label, wall, peak, out in rows:
        print(f"| {label} | {wall:.1f} | {peak:.0f} | {out} |")


if __name__ == "__main__":
    main()
