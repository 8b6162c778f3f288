"""Training is bit-for-bit reproducible across processes and thread settings.

Two trainings of the shipped shape (Max-of-4, v 64, d 32; a few hundred steps) run in separate
Python processes, one with one OpenMP/MKL/torch thread, the other with two, must give identical
weights. (The torch version and the CPU kernel level do change the weights:
certificates/models/README.md.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from certify.model import load

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
from certify.model import MaxOfKConfig, save
from certify.train import train
save(train(MaxOfKConfig(), seed=123, steps=300, progress=False), sys.argv[2])
print(torch.get_num_threads())
"""


def _train(threads: int, out: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env |= {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(threads), str(out)],
        env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return proc.stdout.strip()


def test_two_processes_with_different_thread_counts_train_identical_weights(
    tmp_path: Path,
) -> None:
    _train(1, tmp_path / "one.safetensors")
    _train(2, tmp_path / "two.safetensors")
    one, two = load(tmp_path / "one.safetensors")[1], load(tmp_path / "two.safetensors")[1]
    assert all(np.array_equal(one[k].view(np.uint32), two[k].view(np.uint32)) for k in one)
    assert any(np.any(w != 0) for w in one.values())
