"""Sweeps, the accuracy estimate and the plots, on tiny models (d_vocab 5-6, a few steps)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certify.circuits import circuits
from certify.estimate import enumerate_stratum, estimate_accuracy, sample_strata, strata
from certify.model import MaxOfKConfig, load
from certify.plot import GROUPS, colour_group, pareto
from certify.strategies import strategy_names
from certify.strategies.brute import correct_count
from certify.sweep import PAPER_SEEDS, ModelSpec, parse_seeds, resolve_strategies, run_sweep
from certify.train import train

SUBCUBIC = "subcubic:mean_query+max_diff/mean_query+diff/max_diff"
STRATEGIES = [s for s in ("brute", "cubic", SUBCUBIC) if s in strategy_names()]
PLAN = [(ModelSpec(3, 5, 8, 150, seed), STRATEGIES) for seed in (1, 2)]
DETERMINISTIC = "k, d_vocab, d_model, steps, seed, strategy, verdict, claimed_count, \
verified_count, total, bound_exact, flops, unexplained_dims"


def tiny_circuits(k: int, v: int, seed: int = 0, steps: int = 150):
    config = MaxOfKConfig(n_ctx=k, d_vocab=v, d_model=8, d_head=8)
    return circuits(config, train(config, seed=seed, steps=steps, progress=False))


# --- the estimate -----------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(v=st.integers(1, 6), k=st.integers(1, 4))
def test_strata_partition_every_input_exactly_once(v: int, k: int):
    table = strata(v, k)
    assert table[:, 4].sum() == v**k
    seen = set()
    for m, q, n_m, j, size in table:
        members = {tuple(s) for s in enumerate_stratum(m, q, n_m, j, k)}
        assert len(members) == size
        assert not members & seen
        seen |= members
    assert len(seen) == v**k


def test_samples_are_uniform_over_their_stratum():
    k, table = 4, strata(7, 4)
    row = table[(table[:, 1] < table[:, 0]) & (table[:, 4] > 30)][0]
    members = {tuple(s) for s in enumerate_stratum(*row[:4], k)}
    draws = sample_strata(row[None], k, 300 * len(members), np.random.default_rng(0))
    values, counts = np.unique(draws, axis=0, return_counts=True)
    assert {tuple(s) for s in values} == members
    assert counts.min() > 200 and counts.max() < 400  # 300 expected per member


def test_estimate_interval_contains_exact_accuracy():
    c = tiny_circuits(k=5, v=6, steps=120)
    exact = correct_count(c, workers=1) / 6**5
    est = estimate_accuracy(c, samples_per_stratum=4, seed=1)
    assert est.low <= exact <= est.high
    assert est.samples < 6**5
    full = estimate_accuracy(c, samples_per_stratum=10**6)  # every stratum enumerated
    assert full.accuracy == pytest.approx(exact, abs=1e-12)
    assert full.low == pytest.approx(full.high, abs=1e-12)


def test_estimate_runs_where_stratum_sizes_overflow_int64():
    """K = 20 (the paper's largest): v^K > 2^63, so stratum sizes are floats; still a partition."""
    table = strata(10, 20)
    assert table.dtype == np.float64 and table[:, 4].sum() == pytest.approx(10.0**20, rel=1e-12)
    est = estimate_accuracy(tiny_circuits(k=20, v=10, steps=30), samples_per_stratum=2)
    assert 0 <= est.low <= est.accuracy <= est.high <= 1 and est.strata == len(table)


# --- arguments and groups -------------------------------------------------------------------


def test_seed_lists():
    assert len(parse_seeds("paper")) == 151 == len(set(PAPER_SEEDS))
    assert parse_seeds("paper:20") == list(PAPER_SEEDS[:20])
    assert parse_seeds("123,1-3,2") == [123, 1, 2, 3]


def test_all_strategies_skips_infeasible_brute():
    assert "brute" in resolve_strategies("all", ModelSpec(4, 64, 32, 3000, 1))
    assert "brute" not in resolve_strategies("all", ModelSpec(5, 64, 32, 3000, 1))
    assert "brute" in resolve_strategies("all,brute", ModelSpec(5, 64, 32, 3000, 1))
    assert resolve_strategies("brute,cubic", ModelSpec(6, 64, 32, 3000, 1)) == ["cubic"]
    small = resolve_strategies("all", ModelSpec(4, 8, 8, 10, 1))
    assert small == [n for n in strategy_names() if not n.startswith("hybrid:")]  # too small
    assert "hybrid:0.001" in resolve_strategies("all", ModelSpec(4, 64, 32, 3000, 1))
    assert not any("hybrid" in n for n in resolve_strategies("all", ModelSpec(10, 64, 32, 1, 1)))
    with pytest.raises(ValueError, match="unknown strategy"):
        resolve_strategies("nonsense", ModelSpec(4, 8, 8, 10, 1))


def test_groups_follow_the_variant_options():
    name = "subcubic:mean_query+max_diff/mean_query+diff/svd"
    assert GROUPS["Low-rank QK & EU"](name) and GROUPS["Sub-cubic (best)"](name)
    assert not GROUPS["Low-rank QK"](name) and not GROUPS["  w/o mean+diff"](name)
    quad = "subcubic:max_diff_exact/drop_average_query_per_output_logit_reasoning/" + (
        "max_diff_subproduct_recursive"
    )
    assert GROUPS["Quadratic QK"](quad) and GROUPS["  w/o mean+diff"](quad)
    assert colour_group(quad) == "quadratic QK, exact EU"
    assert not any(f("cubic") for g, f in GROUPS.items() if g != "Cubic")


def test_pareto_frontier_keeps_only_undominated_points():
    points = [(10, 0.5), (100, 0.4), (100, 0.9), (1000, 0.95), (5, 0.1), (50, 0.5)]
    assert pareto(points) == [(5, 0.1), (10, 0.5), (100, 0.9), (1000, 0.95)]


# --- the sweep --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("sweep") / "results.sqlite"
    from certify.cli import main

    argv = ["sweep", "--k", "3", "--d-vocab", "5", "--d-model", "8", "--steps", "150",
            "--seeds", "1,2", "--strategies", ",".join(STRATEGIES), "--db", str(db),
            "--workers", "2", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    return db


def rows(db: Path, columns: str = DETERMINISTIC) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(f"SELECT {columns} FROM results ORDER BY seed, strategy").fetchall()


def test_sweep_records_one_verified_row_per_model_and_strategy(swept: Path):
    con = sqlite3.connect(swept)
    models = con.execute("SELECT seed, accuracy, accuracy_kind, correct_count, sigma_ratio, path "
                         "FROM models ORDER BY seed").fetchall()  # fmt: skip
    assert [m[0] for m in models] == [1, 2]
    for _seed, accuracy, kind, count, ratio, path in models:
        c = circuits(*load(path))
        assert kind == "exact" and int(count) == correct_count(c, workers=1)
        assert accuracy == int(count) / 5**3
        s = np.linalg.svd(c.eqke, compute_uv=False)
        assert ratio == pytest.approx(s[0] / s[1])
    results = con.execute("SELECT seed, strategy, verdict, bound, flops, certificate, "
                          "prover_seconds, checker_seconds FROM results").fetchall()  # fmt: skip
    assert len(results) == 2 * len(STRATEGIES)
    accuracy = {m[0]: m[1] for m in models}
    for seed, strategy, verdict, bound, flops, cert, prover_s, checker_s in results:
        assert verdict == "verified", (seed, strategy)
        assert Path(cert).is_file() and flops > 0 and prover_s >= 0 and checker_s >= 0
        assert bound <= accuracy[seed] + 1e-12
        if strategy == "brute":
            assert bound == pytest.approx(accuracy[seed], abs=1e-12)


def test_rerun_skips_everything(swept: Path):
    before = rows(swept, "*")
    stats = run_sweep(PLAN, swept, progress=False)
    assert stats.ran == 0 and stats.skipped == 2 * len(STRATEGIES)
    assert rows(swept, "*") == before


def test_new_strategy_or_seed_runs_only_the_missing_rows(swept: Path, tmp_path: Path):
    db = tmp_path / "r.sqlite"
    first = run_sweep(PLAN[:1], db, workers=1, progress=False)
    assert first.ran == 1 + len(STRATEGIES)
    stats = run_sweep(PLAN, db, workers=1, progress=False)
    assert (stats.ran, stats.skipped) == (1 + len(STRATEGIES), len(STRATEGIES))
    assert rows(db) == rows(swept)


def test_a_committed_database_resumes_without_its_model_files(swept: Path, tmp_path: Path):
    """A database copied without models/ (as committed in the repo): finished models are not
    retrained, a model with missing rows is retrained and its rows added."""
    db = tmp_path / "copy.sqlite"
    shutil.copy(swept, db)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE models SET path = ?", (str(tmp_path / "gone.safetensors"),))
        con.execute("DELETE FROM results WHERE seed = 2 AND strategy = 'cubic'")
    stats = run_sweep(PLAN, db, workers=1, progress=False)
    assert (stats.ran, stats.errors) == (2, 0)  # seed 2: its model, then cubic
    assert rows(db) == rows(swept)


def test_dask_cluster_gives_the_same_rows(swept: Path, tmp_path: Path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        stats = run_sweep(PLAN, tmp_path / "dask.sqlite", dask=cluster.scheduler_address,
                          progress=False)  # fmt: skip
    assert stats.errors == 0 and stats.ran == 2 + 2 * len(STRATEGIES)
    assert rows(tmp_path / "dask.sqlite") == rows(swept)


def test_plot_writes_the_figures_and_table(swept: Path, tmp_path: Path):
    pytest.importorskip("matplotlib")
    from certify.plot import plot

    paths = plot(swept, tmp_path)
    for stem in ("bound_vs_flops_k3", "dims_vs_flops_k3", "bound_vs_sigma_k3"):
        assert (tmp_path / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (tmp_path / f"{stem}.svg").read_bytes()[:2000]
    table = (tmp_path / "table.md").read_text()
    assert tmp_path / "table.md" in paths
    for strategy in STRATEGIES:
        label = {"brute": "| Brute force |", "cubic": "| Cubic |", SUBCUBIC: "| Low-rank QK & EU |"}
        assert label[strategy] in table
    assert "exact accuracy" in table


def test_a_broken_model_file_is_reported_and_the_rest_still_runs(tmp_path: Path):
    broken, fine = ModelSpec(3, 5, 8, 150, 3), ModelSpec(3, 5, 8, 150, 4)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / f"{broken.stem}.safetensors").write_bytes(b"not a model")
    plan = [(broken, ["cubic"]), (fine, ["cubic"])]
    stats = run_sweep(plan, tmp_path / "r.sqlite", workers=1, progress=False)
    assert stats.errors == 2 and stats.ran == 3
    assert [r[4:7] for r in rows(tmp_path / "r.sqlite")] == [(4, "cubic", "verified")]


def test_best_subcubic_is_drawn_without_variants_and_the_frontier_only_joins_drawn_points():
    pytest.importorskip("matplotlib")
    from certify.plot import _bound_vs_flops, _plotted

    def row(seed: int, strategy: str, flops: float, bound: float) -> dict:
        model = dict(k=4, d_vocab=6, d_model=8, steps=10, seed=seed, accuracy_kind="exact")
        return model | dict(strategy=strategy, verdict="verified", flops=flops, normalised=bound)

    rows = [row(1, "cubic", 100.0, 0.9), row(1, "best-subcubic", 10.0, 0.8)]  # no variants
    rows += [row(2, SUBCUBIC, 20.0, 0.7), row(2, "best-subcubic", 5.0, 0.95)]  # a repeat
    drawn = _plotted(rows, "flops", "normalised")
    shown = [(1, "cubic"), (1, "best-subcubic"), (2, SUBCUBIC)]
    assert [(r["seed"], r["strategy"]) for r in drawn] == shown
    ax = _bound_vs_flops(rows, 4).axes[0]
    points = {tuple(p) for c in ax.collections for p in c.get_offsets().tolist()}
    xs, ys = ax.lines[0].get_data()
    assert {(float(x), float(y)) for x, y in zip(xs, ys, strict=True)} <= points
    assert (5.0, 0.95) not in points


def test_prover_reports_are_stored_as_plain_json_not_numpy_printouts():
    import json
    from fractions import Fraction

    from certify.sweep import _plain

    report = {"a": np.arange(3), "b": np.float32(1.5), "c": np.int64(2), "d": Fraction(1, 3)}
    stored = json.loads(json.dumps(report, default=_plain))
    assert stored == {"a": [0, 1, 2], "b": 1.5, "c": 2, "d": "1/3"}


def test_the_sub_cubic_family_runs_as_one_task_with_aliases_as_emit_chooses(tmp_path):
    """Variants and aliases of one model share one task; each alias row is the member that
    ``certify.strategies.prove(alias)`` picks, verified, and its certificate is that member's."""
    from certify.strategies import prove

    names = [SUBCUBIC, "best-quadratic", "best-lowrank"]
    spec = ModelSpec(3, 5, 8, 150, 1)
    stats = run_sweep([(spec, names)], tmp_path / "r.sqlite", progress=False, workers=1)
    assert stats.errors == 0 and stats.ran == 1 + len(names)  # the model, then three rows
    con = sqlite3.connect(tmp_path / "r.sqlite")
    rows = dict(
        con.execute("SELECT strategy, verified_count FROM results WHERE verdict = 'verified'")
    )
    assert set(rows) == set(names)
    config, weights = load(next((tmp_path / "models").glob("*.safetensors")))
    c = circuits(config, weights)
    for alias in ("best-quadratic", "best-lowrank"):
        assert int(rows[alias]) == prove(alias, config, weights, c).correct_count
    reports = dict(con.execute("SELECT strategy, prover_report FROM results"))
    assert '"variant": "subcubic:' in reports["best-lowrank"]


def test_hybrid_budgets_share_one_evaluation_and_match_single_runs(tmp_path):
    """The budgets of one model run as one task (the prover's statistics computed once); each
    row's claim is what a lone ``prove(name)`` claims, and every certificate verifies."""
    from certify.strategies import prove
    from certify.strategies.hybrid import feasible

    spec = ModelSpec(3, 6, 8, 150, 2)
    config = MaxOfKConfig(3, 6, 8, 8)
    names = [n for n in strategy_names() if n.startswith("hybrid") and feasible(config, n)]
    stats = run_sweep([(spec, names)], tmp_path / "r.sqlite", progress=False, workers=1)
    assert stats.errors == 0 and stats.ran == 1 + len(names)
    con = sqlite3.connect(tmp_path / "r.sqlite")
    rows = dict(
        con.execute("SELECT strategy, claimed_count FROM results WHERE verdict = 'verified'")
    )
    config, weights = load(next((tmp_path / "models").glob("*.safetensors")))
    for name in names:
        alone = prove(name, config, weights, circuits(config, weights))
        assert int(rows[name]) == alone.correct_count
