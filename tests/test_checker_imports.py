"""The trusted checker runs without the prover: neither torch nor certify is ever imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from certify.certificate import Proof, build
from certify.model import MaxOfKConfig

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
from checker.cli import main
import checker.arith, checker.circuits, checker.format, checker.rules.brute, checker.selftest
status = main(["verify", sys.argv[1], "--json"])
banned = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "certify"))
print("BANNED", banned, file=sys.stderr)
sys.exit(10 if banned else status)
"""


def test_checker_never_imports_torch_or_certify(tmp_path: Path) -> None:
    config = MaxOfKConfig(n_ctx=2, d_vocab=4, d_model=3, d_head=3)
    rng = np.random.default_rng(0)
    weights = {k: rng.standard_normal(s).astype(np.float32) for k, s in config.shapes().items()}
    cert = tmp_path / "cert.json"
    cert.write_text(json.dumps(build(config, weights, Proof("brute", 0))))
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(cert)], cwd=ROOT, capture_output=True, text=True
    )
    assert "BANNED []" in run.stderr, run.stderr
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["verdict"] == "verified"
