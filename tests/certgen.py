"""Small models and their certificates, for the format, CLI and reliability tests.

Certificates are built with the prover's public pieces (``certify.certificate.build`` and the
float64 brute-force count), so every test exercises the real writer. The hand-made ``tiny`` model
is the worked example of docs/format.md.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np

from certify.certificate import Proof, build
from certify.circuits import circuits
from certify.model import MaxOfKConfig, validate
from certify.strategies.brute import correct_count

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "certificates" / "small"
INVALID = ROOT / "certificates" / "invalid"


def zero_weights(v: int, k: int, d: int) -> dict[str, np.ndarray]:
    config = MaxOfKConfig(n_ctx=k, d_vocab=v, d_model=d, d_head=d)
    return {key: np.zeros(shape, np.float32) for key, shape in config.shapes().items()}


def tiny_weights() -> dict[str, np.ndarray]:
    """docs/format.md's example: d_vocab 4, K 2, d_model 4; W_E = W_V = W_O = W_U = I, the rest 0.

    Attention is uniform (W_Q = 0), so logit[x] = [q = x] + (1/2)([t0 = x] + [t1 = x]):
    input (t0, t1) is classified correctly iff t1 >= t0 — 10 of the 16 inputs.
    """
    w = zero_weights(4, 2, 4)
    eye = np.eye(4, dtype=np.float32)
    w["embed.W_E"], w["unembed.W_U"] = eye.copy(), eye.copy()
    w["blocks.0.attn.W_V"], w["blocks.0.attn.W_O"] = eye[None].copy(), eye[None].copy()
    return w


def random_weights(v: int, k: int, d: int, seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = zero_weights(v, k, d)
    return {key: (rng.standard_normal(a.shape) * scale).astype(np.float32) for key, a in w.items()}


def brute_doc(weights: dict[str, np.ndarray], count: int | None = None) -> dict[str, Any]:
    """A brute-force certificate claiming ``count`` (default: the prover's float64 count)."""
    config, weights = validate(weights)
    if count is None:
        count = correct_count(circuits(config, weights), workers=1)
    return build(config, weights, Proof(strategy="brute", correct_count=count))


def dumps(doc: Any) -> bytes:
    return (json.dumps(doc, indent=1) + "\n").encode()


def run_checker(*argv: str) -> tuple[int, str, str]:
    """``checker`` in-process: (exit status, stdout, stderr)."""
    from checker.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def verify_bytes(data: bytes, tmp: Path, *flags: str) -> tuple[int, str, str]:
    path = tmp / "cert.json"
    path.write_bytes(data)
    return run_checker("verify", str(path), *flags)
