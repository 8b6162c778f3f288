"""Writes certificates (docs/format.md, version 1): exact encodings of weights and numbers.

Every number is a string: integers in decimal, exact values as "p/q" rationals or exact hex
floats; arrays are little-endian base64 with dtype and shape. The checker re-derives everything;
what the prover writes here can only save the checker work, never make it believe more.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from certify.model import WEIGHT_KEYS, MaxOfKConfig, weights_sha256

FORMAT = "compact-proofs/certificate"
FORMAT_VERSION = 1
_DTYPES = {
    np.dtype(np.float32): "float32",
    np.dtype(np.float64): "float64",
    np.dtype(np.int64): "int64",
}


@dataclass
class Proof:
    """What a strategy's prover produces: everything but the model."""

    strategy: str
    correct_count: int
    options: dict[str, Any] = field(default_factory=dict)
    witnesses: dict[str, Any] = field(default_factory=dict)
    lemmas: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)  # prover-side info, not in the cert
    allowance: np.ndarray | None = None  # float32-execution claim: D [q, x]; None: exact


def encode_array(a: np.ndarray) -> dict[str, Any]:
    a = np.asarray(a)
    if a.dtype.kind == "i":
        a = a.astype(np.int64)
    name = _DTYPES[a.dtype]
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ValueError("cannot encode a non-finite array")
    raw = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
    return {"dtype": name, "shape": list(a.shape), "data": base64.b64encode(raw).decode()}


def encode_number(x: float | int | Fraction) -> str:
    """Exact: ints and Fractions as "p/q", floats as exact hex floats."""
    if isinstance(x, (bool, np.bool_)):
        raise TypeError("booleans are not numbers")
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, Fraction):
        return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"
    f = float(x)
    if not np.isfinite(f):
        raise ValueError("cannot encode a non-finite number")
    return f.hex()


def build(
    config: MaxOfKConfig,
    weights: dict[str, np.ndarray],
    proof: Proof,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The certificate document; ``provenance`` (see ``provenance``) is optional and untrusted."""
    from certify import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "prover": {"name": "certify", "version": __version__},
        **({"provenance": provenance} if provenance is not None else {}),
        "model": {
            "n_ctx": config.n_ctx,
            "d_vocab": config.d_vocab,
            "d_model": config.d_model,
            "d_head": config.d_head,
            "sha256": weights_sha256(weights),
            "weights": {k: encode_array(weights[k].astype(np.float32)) for k in WEIGHT_KEYS},
        },
        "strategy": {"name": proof.strategy, "options": proof.options},
        "witnesses": proof.witnesses,
        "lemmas": proof.lemmas,
        "claim": {
            "correct_count": str(proof.correct_count),
            "total": str(config.d_vocab**config.n_ctx),
            **_semantics(proof.allowance),
        },
    }


def _semantics(allowance: np.ndarray | None) -> dict[str, Any]:
    """The claim's semantics fields: nothing for exact (the default), else the allowance."""
    if allowance is None:
        return {}
    return {"semantics": "float32-execution", "float32_allowance": encode_array(allowance)}


def provenance(model: str | Path) -> dict[str, Any]:
    """The untrusted ``provenance`` block: which prover and torch wrote the certificate, when,
    from which file, and the training recipe ``certify train`` stored in that file's metadata.
    Informational only: the checker proves nothing from it (docs/format.md)."""
    from datetime import UTC, datetime

    import torch

    from certify import __version__
    from certify.model import read_metadata

    block: dict[str, Any] = {
        "untrusted": "stated by the prover; no checker verifies any of it",
        "prover": f"certify {__version__}",
        "torch": torch.__version__,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model_file": Path(model).name,
    }
    if training := read_metadata(model):
        block["training"] = training
    return block


def write(doc: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")


def decode_array(obj: dict[str, Any]) -> np.ndarray:
    """The inverse of ``encode_array`` (prover side, untrusted use: shapes are not checked)."""
    dtype = next(d for d, name in _DTYPES.items() if name == obj["dtype"])
    raw = base64.b64decode(obj["data"], validate=True)
    return np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype).reshape(obj["shape"])


def read(path: str | Path, max_bytes: int = 2**28) -> tuple[dict[str, Any], MaxOfKConfig, dict]:
    """(document, config, float32 weights) of a certificate, for prover-side analysis only.

    Nothing is verified here (not even the hash): that is the checker's job.
    """
    from certify.model import validate

    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{path}: larger than {max_bytes} bytes")
    try:
        doc = json.loads(data)
        weights = {key: decode_array(a) for key, a in doc["model"]["weights"].items()}
    except (KeyError, TypeError, StopIteration, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable certificate ({type(e).__name__}: {e})") from None
    config, weights = validate(weights)
    return doc, config, weights
