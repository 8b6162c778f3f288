"""Read model weights from a .safetensors file: 8-byte header length, JSON header, raw bytes.

Safetensors holds no code; this reader accepts only float32 tensors with the expected keys and
shapes (other keys, such as TransformerLens buffers, are ignored).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from checker.format import Config, FormatError


def read_weights(path: Path, config: Config) -> dict[str, np.ndarray]:
    try:
        data = path.read_bytes()
        (n,) = struct.unpack("<Q", data[:8])
        if n > len(data) - 8:
            raise ValueError("header longer than the file")
        header = json.loads(data[8 : 8 + n])
    except (OSError, ValueError, struct.error) as e:
        raise FormatError(f"{path}: not a readable safetensors file ({type(e).__name__})") from None
    body = memoryview(data)[8 + n :]
    weights = {}
    for key, shape in config.shapes().items():
        meta = header.get(key) if isinstance(header, dict) else None
        if not isinstance(meta, dict) or meta.get("dtype") != "F32":
            raise FormatError(f"{path}: tensor {key!r} missing or not float32")
        if tuple(meta.get("shape", ())) != shape:
            raise FormatError(f"{path}: tensor {key!r} has shape {meta.get('shape')}")
        start, end = meta.get("data_offsets", (0, -1))
        if not (0 <= start <= end <= len(body) and end - start == 4 * int(np.prod(shape))):
            raise FormatError(f"{path}: tensor {key!r} has bad data offsets")
        weights[key] = np.frombuffer(body[start:end], dtype="<f4").reshape(shape)
    return weights
