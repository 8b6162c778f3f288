"""Every shipped certificate verifies, matches its model, and stays below brute force."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checker.cli import main as checker_main

CERTS = Path(__file__).resolve().parents[1] / "certificates"
SHIPPED = sorted(CERTS.glob("*.cert.json"))


def verify(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:
    status = checker_main(["verify", str(path), "--json", *extra])
    return status, json.loads(capsys.readouterr().out)


STRATEGIES = ("cubic", "best-subcubic", "best-lowrank", "best-quadratic")


def test_every_shipped_model_has_cubic_and_subcubic_certificates() -> None:
    for model in (CERTS / "models").glob("*.safetensors"):
        for strategy in STRATEGIES:
            assert (CERTS / f"{model.stem}.{strategy}.cert.json").is_file()


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_certificate_verifies_against_its_model(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = CERTS / "models" / f"{path.name.split('.')[0]}.safetensors"
    status, result = verify(path, capsys, "--model", str(model))
    assert (status, result["verdict"]) == (0, "verified"), result["failed_claim"]
    assert int(result["verified_count"]) >= int(result["claimed_count"]) > 0


@pytest.mark.parametrize("stem", sorted({p.name.split(".")[0] for p in CERTS.glob("*.brute.*")}))
def test_shipped_bounds_never_exceed_brute_force(
    stem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    exact = int(verify(CERTS / f"{stem}.brute.cert.json", capsys)[1]["verified_count"])
    for strategy in STRATEGIES:
        _, result = verify(CERTS / f"{stem}.{strategy}.cert.json", capsys)
        assert int(result["verified_count"]) <= exact
