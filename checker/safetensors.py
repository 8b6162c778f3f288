"""Model weights from a .safetensors file (8-byte header length, JSON header, raw bytes): no code,
unlike a .pt pickle. The header is parsed as strictly as a certificate; the file holds the model's
twelve float32 tensors and nothing else but TransformerLens's two harmless attention buffers
(docs/format.md, "--model"): another tensor means another model.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from checker.format import Config, FormatError, load_json, validate

MASK, IGNORE = "blocks.0.attn.mask", "blocks.0.attn.IGNORE"
MAX_HEADER = 2**20
_INTS = {"type": "array", "items": {"type": "integer", "minimum": 0}}
_ENTRY = {"type": "object", "required": ["dtype", "shape", "data_offsets"], "properties": {
    "dtype": {"type": "string"}, "shape": _INTS, "data_offsets": {**_INTS, "minItems": 2,
    "maxItems": 2}}, "additionalProperties": False}  # fmt: skip


def read_weights(
    path: Path, config: Config | None = None, option: str = "--model "
) -> dict[str, np.ndarray]:
    """The twelve float32 weights; with no ``config`` the dimensions come from the header."""
    name = f"{option}{str(path)!r}"
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n > min(MAX_HEADER, path.stat().st_size - 8):
                hint = f"a .pt file? run 'certify convert {path} -o OUT.safetensors'"
                raise FormatError(f"{name}: not a safetensors file: header longer than the file "
                                  f"or 1 MiB ({hint})")  # fmt: skip
            header = load_json(f.read(n), f"{name}: header")
            validate(header, {"type": "object"}, f"{name}: header")
            header.pop("__metadata__", None)  # free-form strings, not part of the model
            for key, meta in header.items():
                validate(meta, _ENTRY, f"{name}: tensor {key[:60]!r}")
            config = config or _config(name, header)
            k = config.n_ctx
            shapes = {**config.shapes(), MASK: (k, k), IGNORE: ()}
            if other := [key for key in header if key not in shapes]:
                raise FormatError(f"{name}: tensor {other[0][:60]!r} is not part of a one-layer "
                                  "model")  # fmt: skip
            if path.stat().st_size > 8 + n + 4 * sum(math.prod(s) for s in shapes.values()):
                raise FormatError(f"{name}: larger than any model of its dimensions")
            body = f.read()
    except OSError as e:
        raise FormatError(f"{name}: cannot read ({e.strerror})") from None
    weights = {}
    for key, meta in header.items():
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


def _config(name: str, header: dict) -> Config:
    """Dimensions from the shapes of W_E [v, d], W_pos [K, d] and W_Q [1, d, d_h]."""
    try:
        keys = ("embed.W_E", "pos_embed.W_pos", "blocks.0.attn.W_Q")
        (v, d), (k, _), (_, _, h) = (header[key]["shape"] for key in keys)
        dims = tuple(int(x) for x in (k, v, d, h) if type(x) is int and 0 < x <= 2**16)
        return Config(*dims)
    except (KeyError, TypeError, ValueError):
        raise FormatError(f"{name}: not a Max-of-K model (W_E, W_pos, W_Q shapes)") from None
