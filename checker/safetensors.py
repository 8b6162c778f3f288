"""Read model weights from a .safetensors file: 8-byte header length, JSON header, raw bytes.

Safetensors holds no code; this reader accepts only float32 tensors with the expected keys and
shapes (other keys, such as TransformerLens buffers, are ignored). Never a .pt file (a pickle).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np

from checker.format import Config, FormatError


def read_weights(path: Path, config: Config | None = None) -> dict[str, np.ndarray]:
    """The twelve float32 weights; with no ``config``, the dimensions come from the file."""
    try:
        data = path.read_bytes()
        (n,) = struct.unpack("<Q", data[:8])
        if n > len(data) - 8:
            raise ValueError("header longer than the file")
        header = json.loads(data[8 : 8 + n])
    except (OSError, ValueError, struct.error) as e:
        hint = f"{type(e).__name__}; a .pt file? run 'certify convert {path} -o OUT.safetensors'"
        raise FormatError(f"{path}: not a readable safetensors file ({hint})") from None
    config = config or _config(path, header)
    body = memoryview(data)[8 + n :]
    weights = {}
    for key, shape in config.shapes().items():
        meta = header.get(key) if isinstance(header, dict) else None
        if not isinstance(meta, dict) or meta.get("dtype") != "F32":
            raise FormatError(f"{path}: tensor {key!r} missing or not float32")
        if tuple(meta.get("shape", ())) != shape:
            raise FormatError(f"{path}: tensor {key!r} has shape {meta.get('shape')}")
        start, end = meta.get("data_offsets", (0, -1))
        if not (0 <= start <= end <= len(body) and end - start == 4 * math.prod(shape)):
            raise FormatError(f"{path}: tensor {key!r} has bad data offsets")
        weights[key] = np.frombuffer(body[start:end], dtype="<f4").reshape(shape)
    return weights


def _config(path: Path, header: object) -> Config:
    """Dimensions from the shapes of W_E [v, d], W_pos [K, d] and W_Q [1, d, d_h]."""
    try:
        keys = ("embed.W_E", "pos_embed.W_pos", "blocks.0.attn.W_Q")
        (v, d), (k, _), (_, _, h) = (header[key]["shape"] for key in keys)  # type: ignore[index]
        return Config(int(k), int(v), int(d), int(h))
    except (KeyError, TypeError, ValueError):
        raise FormatError(f"{path}: not a Max-of-K model (W_E, W_pos, W_Q shapes)") from None
