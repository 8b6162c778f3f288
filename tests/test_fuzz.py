"""Fuzzing the parser and the CLI: any input gives a Certificate or one FormatError line, in
bounded time; `checker verify` always ends with a verdict or exit 2, never a traceback.

FUZZ_EXAMPLES (default 150) sets hypothesis' examples per test; bench/fuzz_parser.py runs
atheris (libFuzzer, coverage-guided) on the same target when it is installed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.format import FormatError, parse
from tests.certgen import SMALL, dumps, verify_bytes

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SEEDS = [p.read_bytes() for p in sorted(SMALL.glob("*.cert.json"))]
SEED_DOCS = [json.loads(s) for s in SEEDS]
INPUTS = {"tried": 0}  # examples run in this session (reported by bench runs)


def parse_outcome(data: bytes) -> str:
    """'ok' or 'format error'; anything else (an exception, a slow parse) fails the test."""
    INPUTS["tried"] += 1
    start = time.perf_counter()
    try:
        parse(data)
        outcome = "ok"
    except FormatError as e:
        assert "\n" not in str(e) and str(e)
        outcome = "format error"
    assert time.perf_counter() - start < 5 + len(data) / 2**20  # linear-time parsing
    return outcome


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.floats(allow_nan=True, allow_infinity=True)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)


@FUZZ
@given(json_value)
def test_arbitrary_json_is_refused_cleanly(value: Any) -> None:
    assert parse_outcome(json.dumps(value).encode()) == "format error"


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_are_refused_cleanly(data: bytes) -> None:
    assert parse_outcome(data) == "format error"


@st.composite
def edited_bytes(draw: st.DrawFn) -> bytes:
    """A valid certificate with a few random byte edits (delete, insert, replace, truncate)."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        op = draw(st.sampled_from(["delete", "insert", "replace", "truncate"]))
        junk = draw(
            st.binary(min_size=1, max_size=8)
            | st.sampled_from(
                [b"NaN", b"Infinity", b"-", b"1e999", b'"', b"\\", b"{", b"]", b",", b"\xc3", b"0"]
            )
        )
        if op == "delete":
            del data[i : i + len(junk)]
        elif op == "insert":
            data[i:i] = junk
        elif op == "replace":
            data[i : i + len(junk)] = junk
        else:
            del data[i:]
    return bytes(data)


@FUZZ
@given(edited_bytes())
def test_byte_edited_certificates_parse_or_fail_cleanly(data: bytes) -> None:
    parse_outcome(data)


@st.composite
def edited_docs(draw: st.DrawFn) -> bytes:
    """A valid certificate with one subtree replaced by arbitrary JSON."""
    doc = json.loads(json.dumps(draw(st.sampled_from(SEED_DOCS))))
    node, path = doc, []
    while isinstance(node, dict | list) and node and draw(st.integers(0, 3)):
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        path.append((node, key))
        node = node[key]
    if path:
        parent, key = path[-1]
        parent[key] = draw(json_value)
    return dumps(doc)


@FUZZ
@given(edited_docs())
def test_checker_always_gives_a_verdict_or_exit_2(tmp_path: Path, data: bytes) -> None:
    INPUTS["tried"] += 1
    status, out, err = verify_bytes(data, tmp_path, "--time-limit", "30")
    assert status in (0, 1, 2) and len((err if status == 2 else out).splitlines()) == 1, out + err
    assert "internal error" not in err, err
