"""Strict parsing of certificates (docs/format.md): bytes -> a typed ``Certificate`` or one error.

Every failure raises ``FormatError`` with a one-line message naming the field; the CLI prints it
and exits 2. Nothing here trusts the certificate: sizes are limited before decoding, numbers are
decoded exactly, weights are checked for shape and finiteness, and the model hash is recomputed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

FORMAT = "compact-proofs/certificate"
FORMAT_VERSION = 1
DEFAULT_MAX_BYTES = 256 * 2**20
MAX_DEPTH = 32
MAX_NUMBER_CHARS = 4096
WEIGHT_KEYS = (
    "embed.W_E",
    "pos_embed.W_pos",
    "blocks.0.attn.W_Q",
    "blocks.0.attn.W_K",
    "blocks.0.attn.W_V",
    "blocks.0.attn.W_O",
    "blocks.0.attn.b_Q",
    "blocks.0.attn.b_K",
    "blocks.0.attn.b_V",
    "blocks.0.attn.b_O",
    "unembed.W_U",
    "unembed.b_U",
)
_DTYPES = {"float32": "<f4", "float64": "<f8", "int64": "<i8"}
_RATIONAL = re.compile(r"-?(0|[1-9][0-9]*)(/[1-9][0-9]*)?")
_HEXFLOAT = re.compile(r"-?0x[01]\.[0-9a-f]{0,13}p[+-]?[0-9]{1,4}")
_INTEGER = re.compile(r"(0|[1-9][0-9]*)")


class FormatError(ValueError):
    """An unusable certificate; the message is one line and names the field."""


@dataclass(frozen=True)
class Config:
    n_ctx: int
    d_vocab: int
    d_model: int
    d_head: int

    def shapes(self) -> dict[str, tuple[int, ...]]:
        v, k, d, h = self.d_vocab, self.n_ctx, self.d_model, self.d_head
        return dict(
            zip(
                WEIGHT_KEYS,
                [(v, d), (k, d), (1, d, h), (1, d, h), (1, d, h), (1, h, d),
                 (1, h), (1, h), (1, h), (d,), (d, v), (v,)],
                strict=True,
            )
        )


@dataclass(frozen=True)
class Certificate:
    config: Config
    weights: dict[str, np.ndarray]  # float32, TransformerLens keys and shapes
    model_sha256: str  # recomputed from the weights, never taken from the file
    strategy: str
    options: dict[str, Any]
    witnesses: dict[str, Any]
    lemmas: dict[str, Any]
    claimed_count: int

    @property
    def total(self) -> int:
        return self.config.d_vocab**self.config.n_ctx


def parse(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Certificate:
    if len(data) > max_bytes:
        raise FormatError(f"certificate is {len(data)} bytes, over the limit of {max_bytes}")
    doc = load_json(data)
    if not isinstance(doc, dict):
        raise FormatError("certificate: top level must be an object")
    _expect(doc, "format", FORMAT)
    _expect(doc, "format_version", FORMAT_VERSION)
    model = field(doc, "model", dict)
    config = Config(*(positive_int(model, k) for k in ("n_ctx", "d_vocab", "d_model", "d_head")))
    weights_doc = field(model, "weights", dict)
    extra = sorted(set(weights_doc) - set(WEIGHT_KEYS))
    if extra:
        raise FormatError(f"model.weights: unexpected key {extra[0]!r}")
    weights = {}
    for key, shape in config.shapes().items():
        arr = decode_array(field(weights_doc, key, dict), f"model.weights.{key}", shape)
        if arr.dtype != np.float32:
            raise FormatError(f"model.weights.{key}: dtype must be float32")
        weights[key] = arr
    sha = weights_sha256(weights)
    if "sha256" in model and model["sha256"] != sha:
        raise FormatError("model.sha256 does not match the embedded weights")
    strategy = field(doc, "strategy", dict)
    claim = field(doc, "claim", dict)
    claimed = decode_integer(field(claim, "correct_count", str), "claim.correct_count")
    total = config.d_vocab**config.n_ctx
    if "total" in claim and decode_integer(claim["total"], "claim.total") != total:
        raise FormatError(f"claim.total must be d_vocab^n_ctx = {total}")
    if claimed > total:
        raise FormatError(f"claim.correct_count {claimed} exceeds the {total} inputs")
    return Certificate(
        config=config,
        weights=weights,
        model_sha256=sha,
        strategy=field(strategy, "name", str),
        options=strategy.get("options", {}),
        witnesses=field(doc, "witnesses", dict) if "witnesses" in doc else {},
        lemmas=field(doc, "lemmas", dict) if "lemmas" in doc else {},
        claimed_count=claimed,
    )


def load_json(data: bytes) -> Any:
    """JSON with no NaN/Infinity, no duplicate keys, no float literals, bounded nesting."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("certificate is not UTF-8 text") from None
    _check_depth(text)

    def no_constants(name: str) -> Any:
        raise FormatError(f"certificate contains {name}; numbers must be strings")

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise FormatError(f"duplicate key {k!r}")
            out[k] = v
        return out

    def small_int(s: str) -> int:
        if len(s) > 18:
            raise FormatError("integer literal too long; large numbers must be strings")
        return int(s)

    def no_float(s: str) -> Any:
        raise FormatError(f"float literal {s[:20]} not allowed; numbers must be strings")

    try:
        return json.loads(
            text,
            object_pairs_hook=unique,
            parse_constant=no_constants,
            parse_int=small_int,
            parse_float=no_float,
        )
    except json.JSONDecodeError as e:
        raise FormatError(f"certificate is not valid JSON ({e.msg} at line {e.lineno})") from None
    except RecursionError:
        raise FormatError("certificate nests too deeply") from None


def _check_depth(text: str) -> None:
    """Reject nesting deeper than MAX_DEPTH before json.loads (brackets in strings ignored)."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise FormatError(f"certificate nests deeper than {MAX_DEPTH} levels")
        elif ch in "]}":
            depth -= 1


# --- field access and exact decoding ----------------------------------------------------------


def field(obj: dict[str, Any], key: str, kind: type, where: str = "") -> Any:
    if key not in obj:
        raise FormatError(f"missing field {where + key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FormatError(f"field {where + key!r} must be {kind.__name__}")
    return value


def positive_int(obj: dict[str, Any], key: str) -> int:
    value = field(obj, key, int)
    if not 1 <= value <= 4096:
        raise FormatError(f"field {key!r} must be an integer in 1..4096")
    return value


def _expect(obj: dict[str, Any], key: str, value: Any) -> None:
    if obj.get(key) != value:
        raise FormatError(f"field {key!r} must be {value!r}, got {str(obj.get(key))[:40]!r}")


def decode_integer(s: Any, where: str) -> int:
    if not isinstance(s, str) or len(s) > MAX_NUMBER_CHARS or not _INTEGER.fullmatch(s):
        raise FormatError(f"{where}: expected a non-negative decimal integer string")
    return int(s)


def decode_number(s: Any, where: str) -> Fraction:
    """An exact number: a rational "p/q" (or integer "p") or an exact hex float "0x1.8p+3"."""
    if not isinstance(s, str) or len(s) > MAX_NUMBER_CHARS:
        raise FormatError(f"{where}: expected a number string")
    if _RATIONAL.fullmatch(s):
        return Fraction(s)
    if _HEXFLOAT.fullmatch(s):
        return Fraction(float.fromhex(s))
    raise FormatError(f"{where}: {s[:30]!r} is not a rational 'p/q' or a hex float")


def decode_array(obj: Any, where: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A little-endian base64 array {"dtype", "shape", "data"}; float values must be finite."""
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "data"}:
        raise FormatError(f"{where}: expected an object with exactly dtype, shape, data")
    dtype = obj["dtype"]
    if dtype not in _DTYPES:
        raise FormatError(f"{where}.dtype: must be one of {sorted(_DTYPES)}")
    dims = obj["shape"]
    if not isinstance(dims, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 2**20 for n in dims
    ):
        raise FormatError(f"{where}.shape: must be a list of integers in 0..2^20")
    if shape is not None and tuple(dims) != tuple(shape):
        raise FormatError(f"{where}.shape: is {dims}, expected {list(shape)}")
    itemsize = np.dtype(_DTYPES[dtype]).itemsize
    size = int(np.prod(dims, dtype=object)) if dims else 1
    data = obj["data"]
    if not isinstance(data, str) or len(data) != 4 * ((size * itemsize + 2) // 3):
        raise FormatError(f"{where}.data: length does not match shape {dims} and dtype {dtype}")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{where}.data: invalid base64") from None
    arr = np.frombuffer(raw, dtype=_DTYPES[dtype]).reshape(dims)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise FormatError(f"{where}: contains NaN or infinity")
    return arr.astype(arr.dtype.newbyteorder("="))


def weights_sha256(weights: dict[str, np.ndarray]) -> str:
    """sha256 over the float32 little-endian bytes of WEIGHT_KEYS in order (format-independent)."""
    h = hashlib.sha256()
    for key in WEIGHT_KEYS:
        h.update(np.ascontiguousarray(weights[key], dtype="<f4").tobytes())
    return h.hexdigest()
