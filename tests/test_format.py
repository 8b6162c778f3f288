"""checker/format.py: strict parsing, exact decoding, and the schema (validator vs jsonschema)."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checker.format import (
    SCHEMA,
    FormatError,
    decode_array,
    decode_integer,
    load_json,
    parse,
    validate,
)
from tests.certgen import brute_doc, dumps, tiny_weights


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return brute_doc(tiny_weights())


def rejects(data: bytes | dict[str, Any], match: str, **kw: Any) -> str:
    raw = dumps(data) if isinstance(data, dict) else data
    with pytest.raises(FormatError, match=match) as e:
        parse(raw, **kw)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_valid_certificate_parses(doc: dict[str, Any]) -> None:
    cert = parse(dumps(doc))
    assert (cert.config.d_vocab, cert.config.n_ctx, cert.total) == (4, 2, 16)
    assert cert.claimed_count == 10 and cert.strategy == "brute"
    assert cert.model_sha256 == doc["model"]["sha256"]
    assert np.array_equal(cert.weights["embed.W_E"], np.eye(4))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"a": NaN}', "NaN"),
        ('{"a": Infinity}', "Infinity"),
        ('{"a": [-Infinity]}', "Infinity"),
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ('{"a": 1.5}', "float literal"),
        ('{"a": 1e3}', "float literal"),
        ('{"a": ' + "9" * 1_000_000 + "}", "too long"),
        ("[" * 40 + "]" * 40, "nests deeper"),
        ("[" * 100_000 + "]" * 100_000, "more than 100000 JSON values"),
        ("[" * 5_000 + "]" * 5_000, "nests deeper"),
        ("[" + "[], " * 100_000 + "[]]", "more than 100000 JSON values"),
        ('{"a": [1, 2', "not valid JSON"),
        ("", "not valid JSON"),
    ],
)
def test_load_json_refuses(text: str, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        load_json(text.encode())


def test_not_utf8_is_refused() -> None:
    with pytest.raises(FormatError, match="UTF-8"):
        load_json(b'{"a": "\xff"}')


def test_size_limit_is_checked_first(doc: dict[str, Any]) -> None:
    data = dumps(doc)
    rejects(data, "over the limit", max_bytes=len(data) - 1)
    assert parse(data, max_bytes=len(data)).claimed_count == 10


@pytest.mark.parametrize("version", [2, 0, "1", True, None, [1]])
def test_unknown_format_version_is_refused(doc: dict[str, Any], version: Any) -> None:
    rejects({**doc, "format_version": version}, "format_version")


def test_truncated_certificate_is_refused(doc: dict[str, Any]) -> None:
    data = dumps(doc)
    for cut in (1, len(data) // 3, len(data) // 2, len(data) - 3):
        rejects(data[:cut], "not valid JSON")


def edit(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of doc with the field at dotted ``path`` (split on '/') set, or deleted if ...."""
    out = copy.deepcopy(doc)
    *parents, last = path.split("/")
    node = out
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


W_E = "model/weights/embed.W_E"


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        ("format", "compact-proofs/other", "format: must be"),
        ("claim", ..., "claim: missing"),
        ("model/sha256", ..., "model.sha256: missing"),
        ("model/sha256", "0" * 64, "model.sha256: does not match"),
        ("model/n_ctx", 3, r"model.weights.pos_embed.W_pos.shape: is \[2, 4\], expected \[3, 4\]"),
        ("model/d_vocab", 5, r"model.weights.embed.W_E.shape"),
        ("model/n_ctx", "2", "model.n_ctx: must be an integer"),
        ("model/n_ctx", True, "model.n_ctx: must be an integer"),
        ("model/n_ctx", 0, "model.n_ctx: must be in 1..64"),
        ("model/extra", 1, "model: unexpected key 'extra'"),
        ("model/weights/embed.W_E/dtype", "float64", "embed.W_E.dtype: must be"),
        (f"{W_E}/shape", [4, 4, 1], r"W_E.shape: is \[4, 4, 1\]"),
        (f"{W_E}/shape", [2**20, 2**11], r"W_E.shape: is"),
        (f"{W_E}/data", "AAAA", "W_E.data: length"),
        (f"{W_E}/data", "!" * 88, "W_E.data"),
        ("model/weights/unembed.b_U", ..., "unembed.b_U: missing"),
        ("strategy/name", "magic", "strategy.name: must be one of"),
        ("strategy/options", [], "strategy.options: must be an object"),
        ("witnesses", "none", "witnesses: must be an object"),
        ("claim/correct_count", 10, "claim.correct_count: must be a string"),
        ("claim/correct_count", "17", "claim.correct_count: 17 exceeds"),
        ("claim/correct_count", "010", "claim.correct_count"),
        ("claim/correct_count", "1" * 5000, "claim.correct_count: longer than"),
        ("claim/total", "15", "claim.total: must be d_vocab"),
        ("claim/total", "-16", "claim.total"),
    ],
)
def test_bad_field_is_named(doc: dict[str, Any], path: str, value: Any, match: str) -> None:
    rejects(edit(doc, path, value), match)


def test_nan_weight_is_refused(doc: dict[str, Any]) -> None:
    nan = base64.b64encode(np.full((4, 4), np.nan, "<f4").tobytes()).decode()
    rejects(edit(doc, f"{W_E}/data", nan), "W_E: contains NaN")


def test_integers_are_non_negative_decimal() -> None:
    assert decode_integer("0", "n") == 0 and decode_integer("123", "n") == 123
    for bad in ("-1", "1.0", "00", "", "1" * 5000, 5):
        with pytest.raises(FormatError):
            decode_integer(bad, "n")


def test_arrays_decode_exactly_and_check_lengths() -> None:
    a = np.array([[1.5, -(2.0**-1074)], [3.0, 2.0**1000]])
    obj = {"dtype": "float64", "shape": [2, 2], "data": base64.b64encode(a.tobytes()).decode()}
    assert np.array_equal(decode_array(obj, "w"), a)
    with pytest.raises(FormatError, match=r"w.shape: is \[2, 2\], expected \[4\]"):
        decode_array(obj, "w", (4,))
    padded = {"dtype": "int64", "shape": [1], "data": base64.b64encode(b"\0" * 6).decode()}
    padded["data"] += "AAAA"  # right length for 8 bytes, but decodes to 9
    with pytest.raises(FormatError, match="decodes to 9 bytes"):
        decode_array(padded, "w")


# --- the schema: well-formed, within the validator's subset, and agreeing with jsonschema ----


def test_schema_is_draft_2020_12_and_accepts_valid_certificates(doc: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(doc, SCHEMA, cls=jsonschema.Draft202012Validator)
    validate(doc, SCHEMA)


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8)
    scalars |= st.sampled_from(["0", "16", "10", "brute", "float32", "0x1.0p+0", "1/2", "a" * 64])
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
        max_leaves=12,
    )


def nodes(value: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += nodes(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += nodes(v, (*path, i))
    return out


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_validator_agrees_with_jsonschema(doc: dict[str, Any], data: st.DataObject) -> None:
    mutated = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(nodes(mutated)))
        value = data.draw(json_values())
        if not path:
            mutated = value
            continue
        node = mutated
        for key in path[:-1]:
            node = node[key]
        if isinstance(node, dict) and data.draw(st.booleans()):
            node.pop(path[-1])
        else:
            node[path[-1]] = value
    expected = jsonschema.Draft202012Validator(SCHEMA).is_valid(mutated)
    try:
        validate(mutated, SCHEMA)
        ours = True
    except FormatError as e:
        assert "\n" not in str(e)
        ours = False
    assert ours == expected, json.dumps(mutated)[:300]
