"""certify report: the page, its figures, and the numbers behind them.

The report is untrusted prover-side analysis, but what it says must add up: per-cell counts sum
to the certificate's claim exactly, each case's terms sum to the prover's own bound, the bound is
never below the model's actual value, and a certificate the checker refuses is shown as such.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest

from certify.certificate import build, write
from certify.circuits import circuits
from certify.cli import main as certify_main
from certify.estimate import correct
from certify.model import MaxOfKConfig, validate
from certify.report import TERMS, cell_inputs, cubic_terms, cubic_terms_c0, make_report
from certify.strategies import cubic, prove
from certify.strategies.brute import correct_by_cell
from tests.certgen import SMALL, random_weights
from tests.oracle import exact_circuits, margin_sign

SHIPPED_SMALL = sorted(SMALL.glob("*.cert.json"))


def emitted(tmp_path: Path, strategy: str, v: int, k: int, seed: int) -> Path:
    """A certificate for a random model with biases, written by the real prover."""
    config, weights = validate(random_weights(v, k, 6, seed))
    proof = prove(strategy, config, weights, circuits(config, weights))
    path = tmp_path / f"{seed}_{strategy.replace(':', '-').replace('/', '_')}.cert.json"
    write(build(config, weights, proof), path)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = certify_main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


SUBCUBIC = "subcubic:max_diff_exact/mean_query+diff/max_diff"


@pytest.mark.parametrize("strategy", ["cubic", "brute", SUBCUBIC])
def test_page_references_the_figures_it_wrote(tmp_path, capsys, strategy):
    cert = emitted(tmp_path, strategy, 7, 3, seed=3)
    out = tmp_path / "report"
    status, stdout, err = run(capsys, "report", str(cert), "-o", str(out))
    assert (status, err) == (0, "")
    assert "verified" in stdout
    page = (out / "index.html").read_text()
    assert "VERIFIED by the checker" in page and "untrusted prover-side analysis" in page
    assert "At a glance" in page and "inputs are lost in" in page
    images = re.findall(r"<img src='([^']+)'", page)
    assert {"cells.png", "by_max.png"} <= set(images)
    assert ("terms.png" in images) == (strategy != "brute")
    for name in images:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "exact accuracy (float64 brute-force count" in page


@pytest.mark.parametrize("cert", SHIPPED_SMALL, ids=lambda p: p.name)
def test_cells_sum_to_the_claim_exactly(cert):
    r = make_report(cert)
    claim = int(json.loads(cert.read_text())["claim"]["correct_count"])
    v, k = r.config.d_vocab, r.config.n_ctx
    assert r.verified and r.analysis is not None
    cells = r.analysis.cells
    assert all(isinstance(int(x), int) for x in cells.ravel())
    assert sum(int(x) for x in cells.ravel()) == claim
    assert sum(int(x) for x in r.totals.ravel()) == v**k
    assert np.all(cells <= r.totals) and np.all(cells >= 0)
    assert sum(x.lost for x in r.analysis.cases) == v**k - claim
    for case in r.analysis.cases:  # model errors (brute force, enumerated) have no terms
        blamed = sum(case.blame.values())
        assert blamed == (pytest.approx(case.lost) if case.terms else 0)
        assert case.terms or r.strategy in ("brute", "hybrid")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("strategy", ["cubic", SUBCUBIC, "brute"])
def test_cells_of_random_models_sum_to_the_claim(tmp_path, strategy, seed):
    cert = emitted(tmp_path, strategy, 6, 4, seed)
    r = make_report(cert)
    claim = int(json.loads(cert.read_text())["claim"]["correct_count"])
    assert r.verified
    assert sum(int(x) for x in r.analysis.cells.ravel()) == claim
    assert sum(x.lost for x in r.analysis.cases) == 6**4 - claim


@pytest.mark.parametrize("seed", range(4))
def test_cubic_terms_sum_to_the_provers_bound(seed):
    config, weights = validate(random_weights(7, 4, 5, seed, scale=1.5))
    c = circuits(config, weights)
    tables = cubic._tables(c)
    for m in range(1, 7):
        split, bound = cubic_terms(m, c, tables)
        reference = cubic.bounds_at(m, 4, c, tables)[:, 1:, :m]
        assert split.shape[0] == 5
        np.testing.assert_allclose(bound[:, 1:, :m], reference, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(split.sum(axis=0)[:, 1:, :m], reference, rtol=1e-9, atol=1e-9)
        split0, bound0 = cubic_terms_c0(m, c, tables)
        np.testing.assert_allclose(bound0, cubic.bounds_c0(m, c, tables), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(split0.sum(axis=0), bound0, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_cubic_cases_are_unproved_and_bound_the_model(tmp_path, seed):
    """Each lost case's worst token is one the prover could not prove, and its bound is an
    upper bound on the model's actual wrong-logit difference there."""
    cert = emitted(tmp_path, "cubic", 6, 4, seed)
    r = make_report(cert)
    c = circuits(r.config, validate(random_weights(6, 4, 6, seed))[1])
    scale = np.abs(c.eu).max() + 2 * np.abs(c.evou).max() + 2 * np.abs(c.pvou).max()
    delta = 2.0**-30 * (1.0 + scale)
    assert r.analysis.cases
    for case in r.analysis.cases:
        assert case.bound >= -2 * delta
        assert case.actual is not None and case.actual <= case.bound + 1e-9
        assert set(case.terms) == set(TERMS[:5])
        assert sum(case.terms.values()) == pytest.approx(case.bound, abs=1e-9)


def test_subcubic_claimed_gap_one_cases_have_negative_bounds(tmp_path):
    cert = emitted(tmp_path, SUBCUBIC, 6, 4, seed=5)
    r = make_report(cert)
    lost = {(x.q, x.m, x.c) for x in r.analysis.cases}
    for case in r.analysis.cases:
        assert sum(case.terms.values()) == pytest.approx(case.bound, abs=1e-9)
        assert case.terms["eps"] >= -1e-12  # a wider attention bracket never helps
    doc = json.loads(cert.read_text())
    assert lost  # this model loses inputs
    assert sum(x.lost for x in r.analysis.cases) == 6**4 - int(doc["claim"]["correct_count"])


def test_per_cell_counts_match_the_exact_oracle():
    weights = random_weights(4, 3, 4, seed=11)
    config, weights = validate(weights)
    exact = exact_circuits(weights)
    expected = np.zeros((4, 4), np.int64)
    for seq in itertools.product(range(4), repeat=3):
        m = max(seq)
        if all(margin_sign(exact, seq, x, config.d_head) > 0 for x in range(4) if x != m):
            expected[seq[-1], m] += 1
    assert np.array_equal(correct_by_cell(circuits(config, weights), workers=1), expected)


def test_per_cell_counts_in_parallel_match_an_independent_enumeration():
    config, weights = validate(random_weights(9, 3, 6, seed=4, scale=0.6))
    c = circuits(config, weights)
    tokens = np.array(list(itertools.product(range(9), repeat=3)))
    right = correct(c, tokens)
    expected = np.zeros((9, 9), np.int64)
    np.add.at(expected, (tokens[right, -1], tokens[right].max(axis=1)), 1)
    assert np.array_equal(correct_by_cell(c, workers=2), expected)
    assert np.array_equal(cell_inputs(9, 3).astype(np.int64).sum(), 9**3)


def _tampered(tmp_path: Path, change) -> Path:
    doc = json.loads((SMALL / "max3_v8.cubic.cert.json").read_text())
    change(doc)
    path = tmp_path / "tampered.cert.json"
    path.write_text(json.dumps(doc))
    return path


def test_over_claiming_certificate_is_reported_not_verified(tmp_path, capsys):
    def raise_claim(doc):
        doc["claim"]["correct_count"] = str(int(doc["claim"]["correct_count"]) + 1)

    cert = _tampered(tmp_path, raise_claim)
    status, stdout, _ = run(capsys, "report", str(cert), "-o", str(tmp_path / "r"))
    page = (tmp_path / "r" / "index.html").read_text()
    assert status == 1 and "NOT verified (rejected)" in stdout
    assert "NOT VERIFIED (rejected)" in page and "VERIFIED by the checker" not in page
    assert "claimed 465 but only 464" in page


def test_certificate_with_foreign_weights_is_reported_not_verified(tmp_path, capsys):
    def flip_bit(doc):
        w = doc["model"]["weights"]["unembed.W_U"]
        raw = bytearray(base64.b64decode(w["data"]))
        raw[0] ^= 1
        w["data"] = base64.b64encode(bytes(raw)).decode()

    cert = _tampered(tmp_path, flip_bit)
    status, stdout, _ = run(capsys, "report", str(cert), "-o", str(tmp_path / "r"))
    page = (tmp_path / "r" / "index.html").read_text()
    assert status == 1 and "NOT verified (error)" in stdout
    assert "NOT VERIFIED (error)" in page and "model.sha256" in page
    assert "VERIFIED by the checker" not in page


def test_strategy_without_analyser_still_gets_a_verdict(tmp_path, capsys):
    def rename(doc):
        doc["strategy"]["name"] = "quartic"

    cert = _tampered(tmp_path, rename)
    status, _, _ = run(capsys, "report", str(cert), "-o", str(tmp_path / "r"))
    page = (tmp_path / "r" / "index.html").read_text()
    assert status == 1 and "No analysis for strategy quartic" in page


@pytest.mark.parametrize(
    "content", [b"", b"{not json", b'{"model": {"weights": {"embed.W_E": 1}}}', b"[]"]
)
def test_unreadable_certificate_is_one_line_and_exit_2(tmp_path, capsys, content):
    cert = tmp_path / "bad.cert.json"
    cert.write_bytes(content)
    status, stdout, err = run(capsys, "report", str(cert), "-o", str(tmp_path / "r"))
    assert status == 2 and stdout == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("certify: error:")
    assert not (tmp_path / "r").exists()


def test_cell_inputs_partition_every_input():
    for v, k in [(1, 1), (3, 1), (4, 2), (5, 3), (6, 4)]:
        cells = cell_inputs(v, k)
        assert sum(int(x) for x in cells.ravel()) == v**k
        counted = np.zeros((v, v), np.int64)
        for seq in itertools.product(range(v), repeat=k):
            counted[seq[-1], max(seq)] += 1
        assert np.array_equal(cells.astype(np.int64), counted)


def test_config_is_read_from_the_certificate(tmp_path):
    cert = emitted(tmp_path, "cubic", 5, 3, seed=8)
    r = make_report(cert)
    assert r.config == MaxOfKConfig(n_ctx=3, d_vocab=5, d_model=6, d_head=6)


def test_every_subcubic_variant_adds_up():
    """All 100 variants (every EU centre, attention and ε option): cells sum to the claim, lost
    cases to the rest, and each case's terms to its bound."""
    from certify.report import analyse_subcubic
    from certify.strategies.subcubic import prove_all

    config, weights = validate(random_weights(6, 3, 5, seed=7))
    c = circuits(config, weights)
    for name, proof in prove_all(config, weights, c).items():
        doc = json.loads(json.dumps(build(config, weights, proof)))
        a = analyse_subcubic(doc, weights, c, None)
        covered = sum(int(x) for x in a.cells.ravel())
        assert covered == proof.correct_count, name
        assert sum(x.lost for x in a.cases) == 6**3 - covered, name
        for case in a.cases:
            assert sum(case.terms.values()) == pytest.approx(case.bound, abs=1e-9), name
