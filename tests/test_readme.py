"""The README's results table states only what the shipped certificates prove, rounded down.

Each figure must satisfy exact - 10⁻⁶ < figure ≤ exact, where exact is the rational
correct_count / total of the shipped certificate (checked in tests/test_shipped.py) or, for the
exact-accuracy column, the brute-force count (the Max-of-5 count is enumerated in a slow test).
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest

from checker.format import parse

ROOT = Path(__file__).resolve().parents[1]
CERTS = ROOT / "certificates"
COLUMNS = {"exact accuracy": "brute", "brute force": "brute", "cubic": "cubic"}
COLUMNS |= {"best sub-cubic": "best-subcubic", "best low-rank": "best-lowrank"}
COLUMNS["best quadratic"] = "best-quadratic"


def results_table() -> list[tuple[str, str, str]]:
    """(model stem, column, figure) for every number in the README's results table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Results on the shipped models", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = []
    for line in lines[2:]:
        row = [c.strip() for c in line.strip("|").split("|")]
        match = re.fullmatch(r"Max-of-(\d+), seed (\d+)", row[0])
        assert match, row[0]
        stem = "max{}_seed{}".format(*match.groups())
        cells += [(stem, col, fig) for col, fig in zip(header[1:], row[1:], strict=True)]
    return cells


def exact(stem: str, column: str) -> Fraction | None:
    path = CERTS / f"{stem}.{COLUMNS[column]}.cert.json"
    if not path.exists():
        return None
    cert = parse(path.read_bytes())
    return Fraction(cert.claimed_count, cert.total)


def test_the_table_covers_every_shipped_certificate() -> None:
    cells = results_table()
    stems = {stem for stem, _, _ in cells}
    assert stems == {p.stem for p in (CERTS / "models").glob("*.safetensors")}
    shown = {(stem, COLUMNS[col]) for stem, col, fig in cells if fig != "—"}
    for cert in CERTS.glob("*.cert.json"):
        assert tuple(cert.name.split(".")[:2]) in shown, cert.name


@pytest.mark.parametrize("cell", results_table(), ids=lambda c: f"{c[0]}-{c[1]}")
def test_each_figure_is_the_exact_bound_rounded_down(cell: tuple[str, str, str]) -> None:
    stem, column, figure = cell
    value = exact(stem, column)
    if figure == "—":
        assert value is None
        return
    if value is None:
        pytest.skip("no certificate for this figure: see the slow exact-accuracy test")
    assert value - Fraction(1, 10**6) < Fraction(figure) <= value


@pytest.mark.slow
def test_max_of_5_exact_accuracy_is_rounded_down() -> None:
    from certify.circuits import circuits
    from certify.model import load
    from certify.strategies.brute import correct_count

    for stem, column, figure in results_table():
        if column == "exact accuracy" and exact(stem, column) is None:
            config, weights = load(CERTS / "models" / f"{stem}.safetensors")
            value = Fraction(correct_count(circuits(config, weights)), config.d_vocab**config.n_ctx)
            assert value - Fraction(1, 10**6) < Fraction(figure) <= value
