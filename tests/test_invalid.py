"""certificates/invalid/: every planted-bad certificate is refused as its README says; the valid
small certificates verify; the built-in schema validator and jsonschema agree on the corpus."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import jsonschema
import pytest

from checker.format import SCHEMA, FormatError, load_json, validate
from tests.certgen import INVALID, SMALL, run_checker

ROW = re.compile(r"\| (\S+\.json) \| ([0-9]) \| `([^`]+)` \| (.+) \|")
CORPUS = [
    m.groups() for m in map(ROW.fullmatch, (INVALID / "README.md").read_text().splitlines()) if m
]
HAVE_RULES = {
    s: importlib.util.find_spec(f"checker.rules.{s}") is not None
    for s in ("brute", "cubic", "hybrid", "subcubic")
}


def test_corpus_is_complete() -> None:
    assert len(CORPUS) >= 30
    listed = {name for name, *_ in CORPUS}
    assert listed == {p.name for p in INVALID.glob("*.json")}
    assert sum(p.stat().st_size for p in INVALID.iterdir()) < 5 * 2**20


@pytest.mark.parametrize(("name", "status", "match", "reason"), CORPUS, ids=[c[0] for c in CORPUS])
def test_invalid_certificate_is_refused(name: str, status: str, match: str, reason: str) -> None:
    doc = (INVALID / name).read_bytes()
    if status == "1":  # a false claim needs the strategy's rule to be refuted
        strategy = json.loads(doc)["strategy"]["name"]
        if not HAVE_RULES[strategy]:
            pytest.skip(f"checker rule {strategy!r} not present")
    code, out, err = run_checker("verify", str(INVALID / name))
    lines = (out if code == 1 else err).splitlines()
    assert not (err if code == 1 else out), (out, err)
    assert len(lines) == 1, out
    assert code == int(status), f"{name} ({reason}): exit {code}: {out}"
    assert match in lines[0], f"{name}: expected {match!r} in {lines[0]!r}"
    assert lines[0].startswith("REJECTED: " if code == 1 else "ERROR: ")
    assert "internal error" not in lines[0]


@pytest.mark.parametrize("path", sorted(SMALL.glob("*.cert.json")), ids=lambda p: p.name)
def test_small_certificates_verify(path: Path) -> None:
    strategy = json.loads(path.read_bytes())["strategy"]["name"]
    if not HAVE_RULES[strategy]:
        pytest.skip(f"checker rule {strategy!r} not present")
    code, out, _ = run_checker(
        "verify",
        str(path),
        "--model",
        str(path.parent / (path.name.split(".")[0] + ".safetensors")),
    )
    assert code == 0 and out.startswith("VERIFIED"), out


@pytest.mark.parametrize("name", [c[0] for c in CORPUS])
def test_schema_and_validator_agree(name: str) -> None:
    try:
        doc = load_json((INVALID / name).read_bytes())
    except FormatError:
        return  # refused before the schema (not JSON, NaN, duplicates, depth): nothing to compare
    expected = jsonschema.Draft202012Validator(SCHEMA).is_valid(doc)
    try:
        validate(doc, SCHEMA)
        ours = True
    except FormatError:
        ours = False
    assert ours == expected
