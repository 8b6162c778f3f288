"""`certify emit --strategy all`: every strategy's certificate is written and verified."""

from __future__ import annotations

from pathlib import Path

import pytest

from certify.cli import main as certify_main
from certify.model import MaxOfKConfig, save
from certify.strategies import strategy_names
from certify.strategies.hybrid import feasible
from certify.train import train


def test_emit_all_writes_and_verifies_every_strategy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = MaxOfKConfig(n_ctx=3, d_vocab=6, d_model=8, d_head=8)
    model = tmp_path / "tiny.safetensors"
    save(train(config, seed=1, steps=400, progress=False), model)
    assert certify_main(["emit", str(model), "--strategy", "all"]) == 0
    out, err = capsys.readouterr()
    rows = [line for line in out.splitlines() if line.startswith("| ")][1:]
    folder = tmp_path / "tiny.certs"  # the default: a folder of its own beside the model
    hybrids = [n for n in strategy_names() if n.startswith("hybrid") and feasible(config, n)]
    n = 146 + len(hybrids)  # brute, cubic, 144 sub-cubic variants and the affordable budgets
    assert f"{n} certificates -> {folder}/" in err and not list(tmp_path.glob("*.cert.json"))
    assert len(rows) == n == len(list(folder.glob("tiny.*.cert.json")))
    assert "hybrid" in hybrids
    assert all(row.split(" | ")[1] == "verified" for row in rows)
    bounds = {row.split(" | ")[0][2:]: float(row.split(" | ")[2]) for row in rows}
    assert all(bound <= bounds["brute"] for bound in bounds.values())
