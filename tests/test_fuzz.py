"""Fuzzing the parser, the --model reader, the cost estimate and the CLI: any input gives a
Certificate (or weights) or one FormatError line, in bounded time; `checker verify` always ends
with a verdict or exit 2, never a traceback, and within its time limit.

FUZZ_EXAMPLES (default 150) sets hypothesis' examples per test; bench/fuzz_parser.py runs
atheris (libFuzzer, coverage-guided) on the same targets when it is installed.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import checker.rules.brute
import checker.rules.cubic
import checker.rules.subcubic  # noqa: F401 (each rule registers its cost estimate)
from certify.certificate import Proof, build, encode_array
from certify.model import validate as validate_weights
from checker.cost import ESTIMATES
from checker.format import Config, FormatError, parse
from checker.safetensors import read_weights
from tests.certgen import SMALL, dumps, random_weights, verify_bytes

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


# --- the --model reader ------------------------------------------------------------------------

MODELS = {
    p.read_bytes(): parse((SMALL / f"{p.stem}.brute.cert.json").read_bytes()).config
    for p in sorted(SMALL.glob("*.safetensors"))
}


def with_header(data: bytes, header: Any) -> bytes:
    text = json.dumps(header).encode()
    n = int.from_bytes(data[:8], "little")
    return len(text).to_bytes(8, "little") + text + data[8 + n :]


@st.composite
def edited_models(draw: st.DrawFn) -> tuple[bytes, Config]:
    """A valid .safetensors file with its header's JSON or its bytes edited at random."""
    data = draw(st.sampled_from(sorted(MODELS)))
    config = MODELS[data]
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    key = draw(st.sampled_from(sorted(header)))
    op = draw(st.sampled_from(["field", "entry", "add", "delete", "bytes"]))
    if op == "field":
        field = draw(st.sampled_from(["dtype", "shape", "data_offsets", "other"]))
        header[key] = {**header[key], field: draw(json_value)}
    elif op == "entry":
        header[key] = draw(json_value)
    elif op == "add":
        name = draw(st.sampled_from(["ln_final.w", "blocks.1.attn.W_Q", "blocks.0.attn.mask"]))
        header[name] = {**header[key], "dtype": draw(st.sampled_from(["F32", "BOOL", "F64"]))}
    elif op == "delete":
        del header[key]
    if op != "bytes":
        return with_header(data, header), config
    edited = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(edited) - 1))
        edited[i : i + 1] = draw(st.binary(min_size=0, max_size=4))
    return bytes(edited), config


@FUZZ
@given(edited_models())
def test_model_reader_reads_or_refuses_cleanly(tmp_path: Path, case: tuple[bytes, Config]) -> None:
    data, config = case
    INPUTS["tried"] += 1
    (tmp_path / "m.safetensors").write_bytes(data)
    start = time.perf_counter()
    try:
        weights = read_weights(tmp_path / "m.safetensors", config)
        assert set(weights) == set(config.shapes())
        assert all(w.shape == config.shapes()[k] for k, w in weights.items())
    except FormatError as e:
        assert "\n" not in str(e) and str(e).startswith("--model ")
    assert time.perf_counter() - start < 5


# --- the cost estimate -------------------------------------------------------------------------


@FUZZ
@given(
    st.sampled_from(sorted(ESTIMATES)),
    st.integers(1, 64),
    st.integers(1, 4096),
    st.integers(1, 4096),
    st.integers(1, 4096),
)
def test_cost_estimates_are_finite_and_grow_with_the_model(
    strategy: str, k: int, v: int, d: int, h: int
) -> None:
    INPUTS["tried"] += 1
    cost = ESTIMATES[strategy]
    base = cost(Config(k, v, d, h))
    assert 0 < base.bytes < math.inf and 0 < base.seconds < math.inf
    for bigger in (Config(k + 1, v, d, h), Config(k, v + 1, d, h), Config(k, v, d + 1, h + 1)):
        more = cost(bigger)
        assert more.bytes >= base.bytes and more.seconds >= base.seconds


def small_certificate(strategy: str, k: int, v: int, d: int, seed: int) -> bytes:
    """A certificate of a random model claiming nothing: the checker does all the work anyway."""
    config, weights = validate_weights(random_weights(v, k, d, seed))
    lemmas = {}
    if strategy == "cubic":
        zeros = np.zeros((v, v, k))
        lemmas = {"proved": encode_array(zeros.astype(np.int64)), "margin": encode_array(zeros)}
    return dumps(build(config, weights, Proof(strategy, 0, lemmas=lemmas)))


@settings(FUZZ, max_examples=max(10, EXAMPLES // 10))
@given(
    st.sampled_from(["brute", "cubic"]),
    st.integers(1, 8),
    st.integers(2, 96),
    st.integers(1, 8),
    st.integers(0, 2**16),
)
def test_checker_ends_within_its_limits_whatever_the_size(
    tmp_path: Path, strategy: str, k: int, v: int, d: int, seed: int
) -> None:
    """Admitted or refused on the estimate, a check never outlives --time-limit by much."""
    INPUTS["tried"] += 1
    data = small_certificate(strategy, k, v, d, seed)
    status, out, err = verify_bytes(data, tmp_path, "--time-limit", "1", "--json")
    result = json.loads(out)
    assert status in (0, 1, 2) and len(err.splitlines()) == 1, err
    assert "internal error" not in err
    assert result["seconds"] < 3, result  # 1 s, then unwinding (a busy machine: generous)
    if status == 2:
        assert "time limit" in err or "--max-memory" in err, err
