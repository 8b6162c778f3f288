"""The `certify` command line for auditors: convert, --json, --version, strategies, --help."""

from __future__ import annotations

import argparse
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from certify.cli import main as certify_main
from certify.model import MaxOfKConfig, load, read_metadata, save, weights_sha256
from certify.strategies import strategy_names
from certify.train import train
from tests.certgen import run_checker

CONFIG = MaxOfKConfig(n_ctx=3, d_vocab=6, d_model=8, d_head=8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model written by `certify train`, so it carries the recipe metadata."""
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    argv = ["train", "--k", "3", "--d-vocab", "6", "--d-model", "8", "--steps", "200"]
    assert certify_main([*argv, "--seed", "5", "-o", str(path)]) == 0
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = certify_main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_train_records_the_recipe_in_the_metadata(trained: Path) -> None:
    meta = read_metadata(trained)
    assert (meta["seed"], meta["steps"], meta["n_ctx"], meta["d_vocab"]) == ("5", "200", "3", "6")
    assert meta["torch"] and meta["cpu_capability"] and "AdamW" in meta["recipe"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_convert_keeps_the_weights_bit_for_bit(
    dtype: type, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = train(CONFIG, seed=3, steps=50, progress=False)
    weights["embed.W_E"][0, 0] = np.float32(-0.0)  # a sign a careless copy would lose
    save({k: w.astype(dtype) for k, w in weights.items()}, tmp_path / "m.pt")
    out = tmp_path / "m.safetensors"
    status, text, _ = run(capsys, "convert", str(tmp_path / "m.pt"), "-o", str(out))
    converted = load(out)[1]
    for key, w in weights.items():
        assert np.array_equal(converted[key].view(np.uint32), w.view(np.uint32)), key
    assert status == 0 and weights_sha256(weights) in text
    assert run_checker("hash", str(out))[1].strip() == weights_sha256(weights)
    status, _, err = run(capsys, "convert", str(tmp_path / "m.pt"), "-o", str(tmp_path / "x.pt"))
    assert status == 2 and "must end in .safetensors" in err


def test_accuracy_json_is_exact_and_rounds_down(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "accuracy", str(trained), "--json", "--workers", "1")
    r = json.loads(out)
    exact = Fraction(int(r["correct_count"]), int(r["total"]))
    assert status == 0 and r["kind"] == "exact" and Fraction(r["accuracy"]) == exact
    assert exact - Fraction(1, 10**6) < Fraction(r["accuracy_decimal"]) <= exact
    assert r["model_sha256"] == weights_sha256(load(trained)[1])


def test_emit_json_and_untrusted_provenance(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = tmp_path / "c.json"
    status, out, _ = run(capsys, "emit", str(trained), "-o", str(cert), "--json")
    r = json.loads(out)
    claimed = Fraction(int(r["claimed_count"]), int(r["total"]))
    assert status == 0 and r["certificate"] == str(cert) and Fraction(r["claimed_bound"]) == claimed
    assert Fraction(r["claimed_bound_decimal"]) <= claimed
    provenance = json.loads(cert.read_text())["provenance"]
    assert "untrusted" in provenance and provenance["training"] == read_metadata(trained)
    status, out, err = run_checker("verify", str(cert), "--json", "--model", str(trained))
    assert status == 0 and json.loads(out)["untrusted_provenance"] == provenance
    assert provenance["date"] not in err  # the verdict line states nothing from it


def test_strategies_lists_names_first_then_a_description(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = run(capsys, "strategies")
    lines = [line.split("\t") for line in out.splitlines()]
    assert status == 0 and [n for n, _ in lines] == [*strategy_names(), "all"]
    assert all(len(d) > 10 for _, d in lines)
    assert len({d for _, d in lines}) == len(lines)  # each says something of its own
    assert run(capsys, "strategies", "--names")[1].split() == [*strategy_names(), "all"]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_argument_has_help_and_help_shows_defaults(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from certify import __version__
    from checker.cli import main as checker_main

    for main, prog in ((certify_main, "certify"), (checker_main, "checker")):
        parsers = {}
        monkeypatch.setattr(argparse.ArgumentParser, "parse_args", _capture(parsers))
        with pytest.raises(_Captured):
            main([])
        for name, sub in _subparsers(parsers["top"]).items():
            for action in sub._actions:
                assert action.help, f"{prog} {name} {action.dest}: no help text"
        monkeypatch.undo()
    with pytest.raises(SystemExit):
        certify_main(["train", "--help"])
    assert "(default: 3000)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        certify_main(["--version"])
    assert capsys.readouterr().out.strip() == f"certify {__version__}"


class _Captured(Exception):
    pass


def _capture(store: dict[str, argparse.ArgumentParser]):
    def parse_args(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        store["top"] = self
        raise _Captured

    return parse_args


def test_emit_all_writes_into_the_given_folder_and_says_so(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    """-o DIR and --json for `--strategy all` (the sub-cubic search cut to one variant here;
    tests/test_emit.py runs all 100)."""
    from certify.strategies import subcubic

    one = "subcubic:max_diff_exact/mean_query+diff/exact_EQKE+max_diff_exact"
    full = subcubic.prove_all
    monkeypatch.setattr(subcubic, "prove_all", lambda *a, **k: full(*a, names=[one]))
    folder = tmp_path / "out"
    status, out, err = run(capsys, "emit", str(trained), "--strategy", "all", "-o", str(folder),
                           "--json")  # fmt: skip
    rows = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and f"-> {folder}/" in err
    names = [r["strategy"] for r in rows]
    assert names[:3] == ["brute", "cubic", "hybrid"] and names[-1] == one
    assert all(name.startswith("hybrid") for name in names[2:-1])
    assert all(r["verdict"] == "verified" and Path(r["certificate"]).parent == folder for r in rows)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        Path(r["certificate"]).name for r in rows
    )


def test_strategies_piped_into_head_exits_cleanly() -> None:
    """`certify strategies | head -1`: the reader leaves early; no broken-pipe error."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-m", "certify.cli", "strategies"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().startswith(b"brute\t")
        proc.stdout.close()
        assert proc.wait(timeout=120) == 0 and proc.stderr.read() == b""  # type: ignore[union-attr]
