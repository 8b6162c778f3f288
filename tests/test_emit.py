"""`certify emit --strategy all`: every strategy's certificate is written and verified."""

from __future__ import annotations

from pathlib import Path

import pytest

from certify.cli import main as certify_main
from certify.model import MaxOfKConfig, save
from certify.train import train


def test_emit_all_writes_and_verifies_every_strategy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = MaxOfKConfig(n_ctx=3, d_vocab=6, d_model=8, d_head=8)
    model = tmp_path / "tiny.safetensors"
    save(train(config, seed=1, steps=400, progress=False), model)
    assert certify_main(["emit", str(model), "--strategy", "all"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    assert len(rows) == 146 == len(list(tmp_path.glob("tiny.*.cert.json")))  # 2 + 144 variants
    assert all(row.split(" | ")[1] == "verified" for row in rows)
    bounds = {row.split(" | ")[0][2:]: float(row.split(" | ")[2]) for row in rows}
    assert all(bound <= bounds["brute"] for bound in bounds.values())
