"""Strict parsing of certificates (docs/format.md): bytes -> a typed ``Certificate``, or a
``FormatError`` whose one-line message names the field (the CLI prints it and exits 2). Nothing
here trusts the certificate: the size is limited before decoding, nesting is bounded, JSON
constants (NaN, Infinity), float literals and duplicate keys are refused, the document is
validated against ``schema.json`` (by ``validate``, for the subset of JSON Schema that file uses),
numbers are decoded exactly, weights checked for shape and finiteness, the model hash recomputed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "compact-proofs/certificate"
FORMAT_VERSION = 1
DEFAULT_MAX_BYTES = 256 * 2**20
MAX_DEPTH = 32
MAX_VALUES = 100_000  # JSON values in a certificate (arrays are base64 strings: one value each)
MAX_NUMBER_CHARS = 4096
_ATTENTION = ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O")
WEIGHT_KEYS = ("embed.W_E", "pos_embed.W_pos", *(f"blocks.0.attn.{w}" for w in _ATTENTION),
               "unembed.W_U", "unembed.b_U")  # fmt: skip
SCHEMA: dict[str, Any] = json.loads((Path(__file__).parent / "schema.json").read_text())
_DTYPES = {"float32": "<f4", "float64": "<f8", "int64": "<i8"}
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
        qkv, bias = (1, d, h), (1, h)
        dims = [(v, d), (k, d), qkv, qkv, qkv, (1, h, d), bias, bias, bias, (d,), (d, v), (v,)]
        return dict(zip(WEIGHT_KEYS, dims, strict=True))


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
    provenance: dict[str, Any] | None = None  # untrusted: echoed, never believed
    allowance: np.ndarray | None = None  # [q, x] float32 allowance; None: exact semantics

    @property
    def semantics(self) -> str:
        return "exact" if self.allowance is None else "float32-execution"

    @property
    def total(self) -> int:
        return self.config.d_vocab**self.config.n_ctx


def parse(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Certificate:
    """Parse and check a whole certificate; everything a rule reads has been validated."""
    if len(data) > max_bytes:
        raise FormatError(f"certificate is {len(data)} bytes, over the limit of {max_bytes}")
    doc = load_json(data)
    version = doc.get("format_version", FORMAT_VERSION) if isinstance(doc, dict) else None
    if version is not None and not _same(version, FORMAT_VERSION):
        reads = f"this checker reads version {FORMAT_VERSION}"
        raise FormatError(f"format_version: unsupported version {version!r:.40}; {reads}")
    validate(doc, SCHEMA)
    model, claim = doc["model"], doc["claim"]
    config = Config(*(model[k] for k in ("n_ctx", "d_vocab", "d_model", "d_head")))
    weights = {
        key: decode_array(model["weights"][key], f"model.weights.{key}", shape)
        for key, shape in config.shapes().items()
    }
    sha = weights_sha256(weights)
    if model["sha256"] != sha:
        raise FormatError("model.sha256: does not match the embedded weights")
    total = config.d_vocab**config.n_ctx
    if decode_integer(claim["total"], "claim.total") != total:
        raise FormatError(f"claim.total: must be d_vocab^n_ctx = {total}")
    claimed = decode_integer(claim["correct_count"], "claim.correct_count")
    if claimed > total:
        raise FormatError(f"claim.correct_count: {claimed} exceeds the {total} inputs")
    strategy = doc["strategy"]
    parts = (strategy["name"], strategy["options"], doc["witnesses"], doc["lemmas"], claimed)
    extra = (doc.get("provenance"), allowance(claim, config))
    return Certificate(config, weights, sha, *parts, *extra)


def allowance(claim: dict[str, Any], c: Config) -> np.ndarray | None:
    """claim.float32_allowance, present exactly when claim.semantics is float32-execution."""
    if claim.get("semantics", "exact") == "exact":
        if "float32_allowance" in claim:
            raise FormatError("claim.float32_allowance: only with semantics float32-execution")
        return None
    shape = (c.d_vocab, c.d_vocab)
    return decode_field(claim, "float32_allowance", "claim.", shape, "float64", top=np.inf)


def load_json(data: bytes, what: str = "certificate") -> Any:
    """JSON with no NaN/Infinity, duplicate keys or float literals; bounded nesting and size."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{what} is not UTF-8 text") from None
    # Memory linear in the file (with a small factor): each value but the first follows a [ , :
    if 1 + sum(map(data.count, (b"[", b",", b":"))) > MAX_VALUES:
        raise FormatError(f"{what} has more than {MAX_VALUES} JSON values")

    def no_constant(name: str) -> Any:
        raise FormatError(f"{what} contains {name}; numbers must be strings")

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise FormatError(f"{what}: duplicate key {k[:40]!r}")
            out[k] = v
        return out

    def small_int(s: str) -> int:
        if len(s) > 18:
            raise FormatError(f"{what}: integer literal {s[:20]}... too long; use strings")
        return int(s)

    def no_float(s: str) -> Any:
        raise FormatError(f"{what}: float literal {s[:20]} not allowed; numbers must be strings")

    try:
        hooks = {"parse_int": small_int, "parse_float": no_float, "parse_constant": no_constant}
        doc = json.loads(text, object_pairs_hook=unique, **hooks)
    except json.JSONDecodeError as e:
        raise FormatError(f"{what} is not valid JSON ({e.msg} at line {e.lineno})") from None
    except RecursionError:
        raise FormatError(f"{what} nests deeper than {MAX_DEPTH} levels") from None
    _check_depth(doc, 0, what)
    return doc


def _check_depth(value: Any, depth: int, what: str) -> None:
    if depth > MAX_DEPTH:
        raise FormatError(f"{what} nests deeper than {MAX_DEPTH} levels")
    children = value.values() if isinstance(value, dict) else value
    for child in children if isinstance(value, dict | list) else ():
        _check_depth(child, depth + 1, what)


# --- schema validation (the subset of JSON Schema 2020-12 that schema.json uses) --------------

_TYPES = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool}
_KEYWORDS = {"$schema", "$id", "$defs", "$ref", "title", "description", "type", "properties",
             "required", "additionalProperties", "const", "enum", "pattern", "maxLength", "items",
             "minItems", "maxItems", "minimum", "maximum"}  # fmt: skip


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b  # JSON equality: true is not 1


def validate(value: Any, schema: dict[str, Any], where: str = "") -> None:
    """Raise FormatError naming the first place where ``value`` does not conform to ``schema``."""
    name = where or "certificate"
    if unknown := set(schema) - _KEYWORDS:
        raise FormatError(f"schema uses unsupported keyword {sorted(unknown)[0]}")
    if "$ref" in schema:
        return validate(value, SCHEMA["$defs"][schema["$ref"].removeprefix("#/$defs/")], where)
    kind = schema.get("type")
    is_int = type(value) is int  # a JSON true is not the integer 1
    if kind and not (is_int if kind == "integer" else isinstance(value, _TYPES[kind])):
        raise FormatError(f"{name}: must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}")
    if "const" in schema and not _same(value, schema["const"]):
        raise FormatError(f"{name}: must be {json.dumps(schema['const'])}")
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        raise FormatError(f"{name}: must be one of {json.dumps(schema['enum'])}")
    if isinstance(value, str) and len(value) > schema.get("maxLength", len(value)):
        raise FormatError(f"{name}: longer than {schema['maxLength']} characters")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        raise FormatError(f"{name}: {value[:30]!r} is not of the expected form")
    if is_int and not schema.get("minimum", value) <= value <= schema.get("maximum", value):
        raise FormatError(f"{name}: must be in {schema.get('minimum')}..{schema.get('maximum')}")
    if isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            raise FormatError(f"{name}: wrong number of items ({len(value)})")
        for i, item in enumerate(value):
            validate(item, schema.get("items", {}), f"{name}[{i}]")
    if isinstance(value, dict):
        if missing := [key for key in schema.get("required", ()) if key not in value]:
            raise FormatError(f"{where + '.' if where else ''}{missing[0]}: missing")
        props, extra = schema.get("properties", {}), schema.get("additionalProperties", {})
        for key, item in value.items():
            if key not in props and extra is False:
                raise FormatError(f"{name}: unexpected key {key[:40]!r}")
            validate(item, props.get(key, extra or {}), f"{where + '.' if where else ''}{key}")


# --- field access and exact decoding (also used by the rules) ---------------------------------


def decode_integer(s: Any, where: str) -> int:
    if not isinstance(s, str) or len(s) > MAX_NUMBER_CHARS or not _INTEGER.fullmatch(s):
        raise FormatError(f"{where}: expected a non-negative decimal integer string")
    return int(s)


def decode_array(obj: Any, where: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A little-endian base64 array {"dtype", "shape", "data"}; float values must be finite."""
    # The checker always passes the expected shape (None is for tests reading their own arrays).
    validate(obj, SCHEMA["$defs"]["array"], where)
    dtype, dims, data = obj["dtype"], obj["shape"], obj["data"]
    if shape is not None and tuple(dims) != tuple(shape):
        raise FormatError(f"{where}.shape: is {dims}, expected {list(shape)}")
    nbytes = int(np.prod(dims, dtype=object)) * np.dtype(_DTYPES[dtype]).itemsize
    if len(data) != 4 * ((nbytes + 2) // 3):
        raise FormatError(f"{where}.data: length does not match shape {dims} and dtype {dtype}")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{where}.data: invalid base64") from None
    if len(raw) != nbytes:
        raise FormatError(f"{where}.data: decodes to {len(raw)} bytes, expected {nbytes}")
    arr = np.frombuffer(raw, dtype=_DTYPES[dtype]).reshape(dims)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise FormatError(f"{where}: contains NaN or infinity")
    return arr.astype(arr.dtype.newbyteorder("="))


def decode_field(obj: Any, key: str, where: str, shape: tuple, dtype: Any = None, top: Any = None):
    """The array ``obj[key]`` (named ``where + key`` in errors) of this shape and, if given, dtype;
    with ``top`` (a number, or an array of this shape) every entry must be in 0..top."""
    if not isinstance(obj, dict) or key not in obj:
        raise FormatError(f"{where + key}: missing")
    a = decode_array(obj[key], where + key, shape)
    if dtype is not None and a.dtype != np.dtype(dtype):
        raise FormatError(f"{where + key}: must be {dtype}")
    if top is not None and (np.any(a < 0) or np.any(a > top)):
        raise FormatError(f"{where + key}: an entry is negative or above its largest value")
    return a


def weights_sha256(weights: dict[str, np.ndarray]) -> str:
    """sha256 over the float32 little-endian bytes of WEIGHT_KEYS in order (format-independent)."""
    h = hashlib.sha256()
    for key in WEIGHT_KEYS:
        h.update(np.ascontiguousarray(weights[key], dtype="<f4").tobytes())
    return h.hexdigest()
