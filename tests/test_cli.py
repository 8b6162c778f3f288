"""The `checker` command line: exit statuses, one-line messages, --json, --model, limits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import checker
from certify.model import MaxOfKConfig, load, save
from checker.format import SCHEMA
from tests.certgen import (
    ROOT,
    brute_doc,
    dumps,
    run_checker,
    tiny_weights,
    verify_bytes,
    zero_weights,
)

JSON_KEYS = {
    "verdict",
    "strategy",
    "model_sha256",
    "claimed_count",
    "verified_count",
    "total",
    "bound",
    "bound_decimal",
    "flops",
    "seconds",
    "failed_claim",
    "theorem",
    "checker_version",
    "untrusted_provenance",
}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return brute_doc(tiny_weights())


@pytest.fixture
def brute_rule() -> None:
    pytest.importorskip("checker.rules.brute")


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_schema_command_prints_the_schema() -> None:
    status, out, _ = run_checker("schema")
    assert status == 0 and json.loads(out) == SCHEMA


@pytest.mark.usefixtures("brute_rule")
def test_verified_prints_the_theorem(doc: dict[str, Any], tmp_path: Path) -> None:
    status, out, _ = verify_bytes(dumps(doc), tmp_path)
    line = one_line(out)
    assert status == 0 and line.startswith("VERIFIED: at least 10 of the 4^2 = 16 inputs")
    assert doc["model"]["sha256"] in line and "5/8" in line and "0.625000" in line


@pytest.mark.usefixtures("brute_rule")
def test_json_is_one_object_on_stdout(doc: dict[str, Any], tmp_path: Path) -> None:
    status, out, err = verify_bytes(dumps(doc), tmp_path, "--json")
    result = json.loads(one_line(out))
    assert status == 0 and set(result) >= JSON_KEYS
    assert result["verdict"] == "verified" and result["strategy"] == "brute"
    assert (result["claimed_count"], result["total"], result["bound"]) == ("10", "16", "5/8")
    assert int(result["verified_count"]) >= 10 and result["bound_decimal"] == "0.625000"
    assert result["failed_claim"] is None and result["flops"] > 0
    assert result["model_sha256"] == doc["model"]["sha256"]
    assert one_line(err).startswith("VERIFIED")
    assert result["theorem"] in one_line(err) and "exact real arithmetic" in result["theorem"]
    assert result["checker_version"] == checker.__version__ and result["theorem"].endswith("5/8")
    assert result["untrusted_provenance"] is None


@pytest.mark.usefixtures("brute_rule")
def test_provenance_is_echoed_as_untrusted_and_never_stated(
    doc: dict[str, Any], tmp_path: Path
) -> None:
    said = {"prover_version": "9.9", "training": {"seed": 7, "note": "MARKER-claims-100%"}}
    status, out, err = verify_bytes(dumps({**doc, "provenance": said}), tmp_path, "--json")
    assert status == 0 and json.loads(out)["untrusted_provenance"] == said
    assert "MARKER" not in err and "MARKER" not in verify_bytes(dumps(doc), tmp_path)[1]
    status, _, err = verify_bytes(dumps({**doc, "provenance": ["x"]}), tmp_path)
    assert status == 2 and "provenance: must be an object" in one_line(err)


def test_versions_agree() -> None:
    import tomllib

    import certify

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert checker.__version__ == certify.__version__ == version
    with pytest.raises(SystemExit) as e:
        run_checker("--version")
    assert e.value.code == 0


def test_hash_is_the_weights_hash_not_the_file_hash(tmp_path: Path) -> None:
    import hashlib

    from certify.model import weights_sha256

    path = ROOT / "certificates" / "models" / "max4_seed123.safetensors"
    status, out, _ = run_checker("hash", str(path))
    assert status == 0 and one_line(out) == weights_sha256(load(path)[1])
    assert out.strip() != hashlib.sha256(path.read_bytes()).hexdigest()
    save(tiny_weights(), tmp_path / "tiny.pt")
    for bad, why in (
        (tmp_path / "tiny.pt", "certify convert"),
        (tmp_path / "no.st", "cannot read"),
    ):
        status, out, err = run_checker("hash", str(bad))
        assert status == 2 and not out and why in one_line(err)


@pytest.mark.usefixtures("brute_rule")
def test_claim_plus_one_is_rejected(doc: dict[str, Any], tmp_path: Path) -> None:
    bad = {**doc, "claim": {**doc["claim"], "correct_count": "11"}}
    status, out, _ = verify_bytes(dumps(bad), tmp_path)
    assert status == 1 and one_line(out).startswith("REJECTED: ")
    status, out, _ = verify_bytes(dumps(bad), tmp_path, "--json")
    result = json.loads(out)
    assert status == 1 and result["verdict"] == "rejected" and result["failed_claim"]
    assert result["bound"] is None


@pytest.mark.parametrize(
    ("tamper", "match"),
    [
        (lambda b: b[: len(b) // 2], "not valid JSON"),
        (lambda b: b.replace(b'"lemmas": {}', b'"lemmas": {}, "lemmas": {}'), "duplicate key"),
        (lambda b: b.replace(b'"n_ctx": 2', b'"n_ctx": NaN'), "NaN"),
        (lambda b: b.replace(b'"format_version": 1', b'"format_version": 2'), "format_version"),
        (lambda b: b"\xff" + b, "UTF-8"),
    ],
)
def test_tampered_file_is_unusable(doc: dict[str, Any], tmp_path: Path, tamper, match) -> None:
    data = tamper(dumps(doc))
    assert data != dumps(doc)
    status, out, err = verify_bytes(data, tmp_path)
    assert status == 2 and match in one_line(err) and err.startswith("ERROR: ") and not out
    status, out, err = verify_bytes(data, tmp_path, "--json")
    result = json.loads(one_line(out))
    assert status == 2 and set(result) >= JSON_KEYS and result["verdict"] == "error"
    assert match in result["failed_claim"] and one_line(err).startswith("ERROR")


def test_unreadable_and_oversized_inputs(doc: dict[str, Any], tmp_path: Path) -> None:
    status, _, err = run_checker("verify", str(tmp_path / "missing.json"))
    assert status == 2 and "cannot read (No such file" in one_line(err)
    status, _, err = run_checker("verify", str(tmp_path))
    assert status == 2 and "cannot read (Is a directory)" in one_line(err)
    status, _, err = verify_bytes(dumps(doc), tmp_path, "--max-bytes", "100")
    assert status == 2 and "over the limit of 100" in one_line(err)


@pytest.mark.parametrize(
    "flag", [["--time-limit", "-1"], ["--time-limit", "nan"], ["--max-bytes", "0"]]
)
def test_bad_options_are_usage_errors(flag: list[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as e:
        run_checker("verify", str(tmp_path / "c.json"), *flag)
    assert e.value.code == 2


def test_model_option_checks_the_weights(doc: dict[str, Any], tmp_path: Path) -> None:
    other = tiny_weights()
    other["unembed.b_U"][0] = np.float32(0.5)
    save(other, tmp_path / "other.safetensors")
    status, out, _ = verify_bytes(
        dumps(doc), tmp_path, "--model", str(tmp_path / "other.safetensors")
    )
    assert status == 1 and one_line(out).startswith("REJECTED: ")
    assert (
        doc["model"]["sha256"] in out
        and run_checker("hash", str(tmp_path / "other.safetensors"))[1].strip() in out
    )
    save(zero_weights(5, 3, 2), tmp_path / "other_shape.safetensors")  # another model entirely
    status, out, _ = verify_bytes(
        dumps(doc), tmp_path, "--model", str(tmp_path / "other_shape.safetensors"), "--json"
    )
    assert status == 1 and json.loads(out)["verdict"] == "rejected"
    # the same 124 floats, in the same order, as a model of other dimensions: same hash, other model
    stream = np.concatenate([w.ravel() for w in tiny_weights().values()])
    other = MaxOfKConfig(n_ctx=2, d_vocab=6, d_model=2, d_head=8).shapes()
    pieces = np.split(stream, np.cumsum([int(np.prod(x)) for x in other.values()])[:-1])
    same_bytes = {k: p.reshape(x) for (k, x), p in zip(other.items(), pieces, strict=True)}
    from safetensors.numpy import save_file

    save_file(same_bytes, str(tmp_path / "same_bytes.safetensors"))
    status, out, _ = verify_bytes(
        dumps(doc), tmp_path, "--model", str(tmp_path / "same_bytes.safetensors")
    )
    assert status == 1 and f"sha256 is {doc['model']['sha256']}" in out and "shapes" in out
    save(tiny_weights(), tmp_path / "same.pt")
    status, _, err = verify_bytes(dumps(doc), tmp_path, "--model", str(tmp_path / "same.pt"))
    assert status == 2 and "certify convert" in one_line(err)
    save(tiny_weights(), tmp_path / "same.safetensors")
    pytest.importorskip("checker.rules.brute")
    status, out, _ = verify_bytes(
        dumps(doc), tmp_path, "--model", str(tmp_path / "same.safetensors")
    )
    assert status == 0, out


@pytest.mark.usefixtures("brute_rule")
def test_time_limit_stops_without_a_verdict(tmp_path: Path) -> None:
    """A Max-of-4 (v 64) brute-force certificate cannot be checked in a millisecond (refused on
    its estimate) nor in 0.3 s (stopped while it runs)."""
    _, weights = load(ROOT / "certificates" / "models" / "max4_seed123.safetensors")
    data = dumps(brute_doc(weights))
    for flags in ([], ["--json"], ["--time-limit", "0.3"]):
        status, out, err = verify_bytes(data, tmp_path, "--time-limit", "0.001", *flags)
        assert status == 2 and "time limit" in one_line(err)
        assert "VERIFIED" not in out + err and "REJECTED" not in out + err


def test_module_entry_point_exit_status(doc: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_bytes(dumps(doc)[:100])
    proc = subprocess.run(
        [sys.executable, "-m", "checker.cli", "verify", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and one_line(proc.stderr).startswith("ERROR: ")
    assert not proc.stdout
