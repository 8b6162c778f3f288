"""Read model weights from a .safetensors file: 8-byte header length, JSON header, raw bytes.

Safetensors holds no code. The header is parsed as strictly as a certificate; the file must hold
the model's twelve float32 tensors and nothing else but TransformerLens's two harmless attention
buffers (docs/format.md, "--model"): another tensor means another model.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from checker.format import Config, FormatError, load_json, validate

MASK, IGNORE = "blocks.0.attn.mask", "blocks.0.attn.IGNORE"
_INTS = {"type": "array", "items": {"type": "integer", "minimum": 0}}
_ENTRY = {"type": "object", "required": ["dtype", "shape", "data_offsets"], "properties": {
    "dtype": {"type": "string"}, "shape": _INTS, "data_offsets": {**_INTS, "minItems": 2,
    "maxItems": 2}}, "additionalProperties": False}  # fmt: skip


def read_weights(path: Path, config: Config) -> dict[str, np.ndarray]:
    name, k = f"--model {str(path)!r}", config.n_ctx
    shapes = {**config.shapes(), MASK: (k, k), IGNORE: ()}
    size = 8 + 2**20 + 4 * sum(math.prod(s) for s in shapes.values())  # header: up to 1 MiB
    try:
        if path.stat().st_size > size:
            raise FormatError(f"{name}: larger than any model of the certificate's dimensions")
        data = path.read_bytes()
    except OSError as e:
        raise FormatError(f"{name}: cannot read ({e.strerror})") from None
    n = int.from_bytes(data[:8], "little")
    if len(data) < 8 or n > len(data) - 8:
        raise FormatError(f"{name}: not a safetensors file (header longer than the file)")
    header = load_json(data[8 : 8 + n], f"{name}: header")
    validate(header, {"type": "object"}, f"{name}: header")
    body, weights = memoryview(data)[8 + n :], {}
    for key, meta in header.items():
        if key == "__metadata__":  # free-form strings, not part of the model
            continue
        if key not in shapes:
            raise FormatError(f"{name}: tensor {key[:60]!r} is not part of a one-layer model")
        validate(meta, _ENTRY, f"{name}: tensor {key!r}")
        dtype, kind, width = ("BOOL", "u1", 1) if key == MASK else ("F32", "<f4", 4)
        if meta["dtype"] != dtype or tuple(meta["shape"]) != shapes[key]:
            raise FormatError(f"{name}: tensor {key!r} is not {dtype} of shape {shapes[key]}")
        start, end = meta["data_offsets"]
        if not start <= end <= len(body) or end - start != width * math.prod(shapes[key]):
            raise FormatError(f"{name}: tensor {key!r} has bad data offsets")
        weights[key] = np.frombuffer(body[start:end], dtype=kind).reshape(shapes[key])
    if missing := [key for key in config.shapes() if key not in weights]:
        raise FormatError(f"{name}: tensor {missing[0]!r} missing")
    if MASK in weights and not np.array_equal(weights[MASK], np.tril(np.ones((k, k), "u1"))):
        raise FormatError(f"{name}: {MASK} is not the causal mask")
    return {key: weights[key] for key in config.shapes()}
