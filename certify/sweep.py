"""Sweeps: many models × many strategies, proved, checked and recorded in SQLite.

Per model (K, d_vocab, d_model, steps, seed) one *model task* trains the model (or reuses the
file in the models directory) and stores its reference accuracy — exact (brute-force count) when
v^K <= EXACT_LIMIT, otherwise the importance-sampled ESTIMATE of certify.estimate with its
confidence interval — and σ1/σ2 of EQKE (float64 SVD: a descriptive statistic, untrusted).
Per (model, strategy) one *strategy task* runs the prover, writes the certificate and runs the
trusted checker on it (``checker verify CERT --json``, in-process); one row per task records the
checker's verdict, bound, FLOPs, unexplained dimensionality and both running times.

Resumable: a (model, strategy) row already in the database is never recomputed. Tasks run on a
local process pool, or on an existing Dask distributed scheduler (``dask=ADDRESS``); only the
driver writes the database. A task that raises is recorded with verdict "error" (rerun with
``retry_errors`` to try again).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import fnmatch
import io
import json
import math
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from checker.guard import worker_pool

PAPER_SEEDS = (
    50, 104, 123, 519, 742, 913, 1185, 1283, 1412, 1490, 1681, 1696, 1895, 1951, 2236, 2306,
    2345, 2549, 2743, 2773, 3175, 3254, 3284, 4157, 4305, 4430, 4647, 4729, 4800, 4810, 5358,
    5615, 5781, 5928, 6082, 6155, 6159, 6204, 6532, 6549, 6589, 6910, 7098, 7238, 7310, 7467,
    7790, 7884, 8048, 8299, 8721, 8745, 8840, 8893, 9132, 9134, 9504, 9816, 10248, 11124, 11130,
    11498, 11598, 11611, 12141, 12287, 12457, 12493, 12552, 12561, 13036, 13293, 13468, 13654,
    13716, 14095, 14929, 15043, 15399, 15622, 15662, 16069, 16149, 16197, 16284, 17080, 17096,
    17194, 17197, 18146, 18289, 18668, 19004, 19093, 19451, 19488, 19538, 19917, 20013, 20294,
    20338, 20415, 20539, 20751, 20754, 20976, 21317, 21598, 22261, 22286, 22401, 22545, 23241,
    23367, 23447, 23633, 23696, 24144, 24173, 24202, 24262, 24438, 24566, 25516, 26278, 26374,
    26829, 26932, 27300, 27484, 27584, 27671, 27714, 28090, 28716, 28778, 29022, 29052, 29110,
    29195, 29565, 29725, 29726, 30371, 30463, 30684, 30899, 31308, 32103, 32374, 32382,
)  # fmt: skip
EXACT_LIMIT = 2**30  # v^K up to which accuracy is counted exactly and `brute` may be asked for
# (64^5 = 2^30: Max-of-5 is counted in about a minute per core; Max-of-6 is 64 times that)
BRUTE_IN_ALL = 2**25  # v^K up to which "all" includes `brute` (its check costs ~2 counts more)
SAMPLES_PER_STRATUM = {4: 50, 5: 30}  # the paper's; 10 for larger K

MODEL_COLUMNS = (
    "k", "d_vocab", "d_model", "steps", "seed", "path", "sha256", "accuracy", "accuracy_kind",
    "accuracy_low", "accuracy_high", "correct_count", "sigma1", "sigma2", "sigma_ratio",
    "train_seconds", "accuracy_seconds",
)  # fmt: skip
RESULT_COLUMNS = (
    "k", "d_vocab", "d_model", "steps", "seed", "strategy", "verdict", "claimed_count",
    "verified_count", "total", "bound", "bound_exact", "flops", "unexplained_dims",
    "prover_seconds", "checker_seconds", "certificate", "failed_claim", "prover_report",
)  # fmt: skip
KEY = ("k", "d_vocab", "d_model", "steps", "seed")


@dataclass(frozen=True, order=True)
class ModelSpec:
    k: int
    d_vocab: int
    d_model: int
    steps: int
    seed: int

    @property
    def stem(self) -> str:
        return f"max{self.k}_v{self.d_vocab}_d{self.d_model}_steps{self.steps}_seed{self.seed}"

    @property
    def total(self) -> int:
        return self.d_vocab**self.k


# --- argument helpers -----------------------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    """ "paper" (151 seeds), "paper:N" (the first N), or comma-separated ints and ranges a-b."""
    if text == "paper":
        return list(PAPER_SEEDS)
    if text.startswith("paper:"):
        return list(PAPER_SEEDS[: int(text.split(":", 1)[1])])
    seeds: list[int] = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    return list(dict.fromkeys(seeds))


def resolve_strategies(text: str, spec: ModelSpec) -> list[str]:
    """Comma-separated names; "all" = every registered strategy, brute only up to BRUTE_IN_ALL
    inputs; an explicit "brute" is kept up to EXACT_LIMIT inputs and dropped above; "-PATTERN"
    (a glob, e.g. "-hybrid*") drops the names matching it from those before."""
    from certify.model import MaxOfKConfig
    from certify.strategies import strategy_names
    from certify.strategies.hybrid import feasible

    config = MaxOfKConfig(spec.k, spec.d_vocab, spec.d_model, spec.d_model)
    known = strategy_names()
    names: list[str] = []
    for name in filter(None, text.split(",")):
        if name == "all":
            names.extend(
                n
                for n in known
                if (n != "brute" or spec.total <= BRUTE_IN_ALL)
                and (not n.startswith("hybrid") or feasible(config, n))
            )
        elif name.startswith("-"):
            names = [n for n in names if not fnmatch.fnmatchcase(n, name[1:])]
        elif name == "brute" and spec.total > EXACT_LIMIT:
            continue
        elif name in known:
            names.append(name)
        else:
            raise ValueError(f"unknown strategy {name!r} (see 'certify strategies')")
    return list(dict.fromkeys(names))


# --- the tasks (run in worker processes or on Dask workers) ---------------------------------


def model_task(spec: ModelSpec, models_dir: str, samples: int | None = None) -> dict[str, Any]:
    """Train or reuse the model; its reference accuracy and EQKE's σ1/σ2 (a models row)."""
    import numpy as np

    from certify.circuits import circuits
    from certify.model import MaxOfKConfig, load, save, weights_sha256

    path = Path(models_dir) / f"{spec.stem}.safetensors"
    config = MaxOfKConfig(spec.k, spec.d_vocab, spec.d_model, spec.d_model)
    start = time.perf_counter()
    if not path.exists():
        from certify.train import train

        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.partial{path.suffix}")
        save(train(config, seed=spec.seed, steps=spec.steps, progress=False), partial)
        partial.replace(path)
    train_seconds = time.perf_counter() - start
    loaded, weights = load(path)
    if loaded != config:
        raise ValueError(f"{path}: model is {loaded}, expected {config}")
    c = circuits(config, weights)
    start = time.perf_counter()
    row: dict[str, Any] = {**asdict(spec), "path": str(path), "sha256": weights_sha256(weights)}
    if spec.total <= EXACT_LIMIT:
        from certify.strategies.brute import correct_count

        count = correct_count(c, workers=1)
        accuracy = count / spec.total
        row |= dict(accuracy_kind="exact", correct_count=str(count), accuracy=accuracy,
                    accuracy_low=accuracy, accuracy_high=accuracy)  # fmt: skip
    else:
        from certify.estimate import estimate_accuracy

        est = estimate_accuracy(c, samples or SAMPLES_PER_STRATUM.get(spec.k, 10), spec.seed)
        row |= dict(accuracy_kind="estimate", correct_count=None, accuracy=est.accuracy,
                    accuracy_low=est.low, accuracy_high=est.high)  # fmt: skip
    sigma = np.linalg.svd(c.eqke, compute_uv=False)
    sigma2 = float(sigma[1]) if len(sigma) > 1 else 0.0
    return row | {
        "sigma1": float(sigma[0]),
        "sigma2": sigma2,
        "sigma_ratio": float(sigma[0]) / sigma2 if sigma2 > 0 else math.inf,
        "train_seconds": train_seconds,
        "accuracy_seconds": time.perf_counter() - start,
    }


def strategy_task(
    spec: ModelSpec, model_path: str, strategy: str, certs_dir: str
) -> dict[str, Any]:
    """Prove, write the certificate, check it; one results row (verdict from the checker).

    In a daemonic process (a Dask worker), which may not start the worker pools of the brute
    force prover and checker, the task runs in a fresh Python subprocess instead.
    """
    if multiprocessing.current_process().daemon:
        return _detached(spec, model_path, strategy, certs_dir)
    row = {**asdict(spec), "strategy": strategy, "total": str(spec.total)}
    return row | prove_and_check(model_path, strategy, _cert(certs_dir, spec, strategy))


def prove_and_check(
    model_path: str | Path, strategy: str, cert: Path, model: tuple | None = None
) -> dict[str, Any]:
    """Run the prover, write its certificate to ``cert``, check it: result columns. ``model``
    = (config, weights, circuits) already loaded, for several strategies of one model."""
    try:
        from certify.circuits import circuits
        from certify.model import load
        from certify.strategies import prove

        if model is None:
            config, weights = load(model_path)
            model = (config, weights, circuits(config, weights))
        config, weights, c = model
        start = time.perf_counter()
        proof = prove(strategy, config, weights, c)
        seconds = time.perf_counter() - start
    except Exception as err:  # a prover bug is recorded, not fatal to the sweep
        return {"verdict": "error", "failed_claim": f"prover: {_one_line(err)}"}
    return {"prover_seconds": seconds} | write_and_check(config, weights, proof, model_path, cert)


def write_and_check(config, weights, proof, model_path: str | Path, cert: Path) -> dict[str, Any]:
    """Write ``proof``'s certificate to ``cert`` and check it: result columns."""
    try:
        from certify.certificate import build, provenance, write

        cert.parent.mkdir(parents=True, exist_ok=True)
        write(build(config, weights, proof, provenance(model_path)), cert)
    except Exception as err:
        return {"verdict": "error", "failed_claim": f"prover: {_one_line(err)}"}
    row = {"prover_report": _small_report(proof.report), "certificate": str(cert)}
    dims = paper_dims(config.d_vocab, config.n_ctx, proof.strategy)
    return row | checker_row(run_checker(cert), dims)


def subcubic_task(
    spec: ModelSpec, model_path: str, names: list[str], certs_dir: str
) -> list[dict[str, Any]]:
    """The sub-cubic variants and aliases among ``names``, for one model, in one task: one shared
    search (``prove_all``) instead of one per variant, and each alias taken from its members'
    proofs exactly as ``certify emit --strategy ALIAS`` chooses (most inputs claimed, first in
    ``variant_names`` order on a tie), its certificate the winner's. One results row per name;
    a prover failure becomes an error row for every name."""
    from certify.strategies import ALIASES
    from certify.strategies.subcubic import alias_members, variant_names

    base = {**asdict(spec), "total": str(spec.total)}
    aliases = [n for n in names if n in ALIASES]
    members = {a: alias_members(a) for a in aliases}
    wanted = set(names) | {m for ms in members.values() for m in ms}
    needed = [n for n in variant_names() if n in wanted]
    try:
        from certify.circuits import circuits
        from certify.model import load
        from certify.strategies.subcubic import prove_all

        config, weights = load(model_path)
        start = time.perf_counter()
        proofs = prove_all(config, weights, circuits(config, weights), needed)
        share = (time.perf_counter() - start) / len(needed)  # the search is shared
    except Exception as err:
        row = {"verdict": "error", "failed_claim": f"prover: {_one_line(err)}"}
        return [base | row | {"strategy": name} for name in names]
    rows: dict[str, dict[str, Any]] = {}

    def checked(name: str) -> dict[str, Any]:
        if name not in rows:
            cert = _cert(certs_dir, spec, name)
            row = write_and_check(config, weights, proofs[name], model_path, cert)
            rows[name] = base | {"strategy": name, "prover_seconds": share} | row
        return rows[name]

    out = [checked(n) for n in names if n not in ALIASES]
    for alias in aliases:
        winner = max(members[alias], key=lambda n: proofs[n].correct_count)  # first on a tie
        row = checked(winner) | {"strategy": alias, "prover_seconds": share * len(members[alias])}
        out.append(row | {"prover_report": json.dumps({"variant": winner})})
    return out


def hybrid_task(
    spec: ModelSpec, model_path: str, names: list[str], certs_dir: str
) -> list[dict[str, Any]]:
    """Every hybrid budget among ``names`` for one model in one task: the prover's evaluation of
    the inputs (its per-case statistics) is made once and shared by the budgets (not on a Dask
    worker, where each budget runs in a subprocess of its own: ``strategy_task``)."""
    if multiprocessing.current_process().daemon:
        return [strategy_task(spec, model_path, name, certs_dir) for name in names]
    from certify.circuits import circuits
    from certify.model import load

    config, weights = load(model_path)
    model = (config, weights, circuits(config, weights))  # the same circuits: stats shared
    base = {**asdict(spec), "total": str(spec.total)}
    return [
        base | {"strategy": n} | prove_and_check(model_path, n, _cert(certs_dir, spec, n), model)
        for n in names
    ]


FAMILIES = {"subcubic": subcubic_task, "hybrid": hybrid_task}


def _cert(certs_dir: str, spec: ModelSpec, strategy: str) -> Path:
    """Where a strategy's certificate for this model is written."""
    safe = strategy.replace(":", "-").replace("/", "_")
    return Path(certs_dir) / f"{spec.stem}.{safe}.cert.json"


def _detached(spec: ModelSpec, model_path: str, strategy: str, certs_dir: str) -> dict[str, Any]:
    args = json.dumps([asdict(spec), model_path, strategy, certs_dir])
    proc = subprocess.run([sys.executable, "-m", "certify.sweep", args], capture_output=True,
                          text=True, check=True)  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


_CHECKER_LOCK = threading.Lock()  # redirect_stdout is process-wide: one check per process


def run_checker(cert: Path) -> dict[str, Any]:
    """``checker verify CERT --json`` in-process; its JSON object (verdict "error" on a crash)."""
    from checker.cli import main

    out, err_out = io.StringIO(), io.StringIO()
    try:
        with _CHECKER_LOCK, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err_out):
            status = main(["verify", str(cert), "--json"])
        if status == 130:  # the checker caught a Ctrl-C meant for us
            raise KeyboardInterrupt
        return json.loads(out.getvalue().strip().splitlines()[-1])
    except Exception as err:
        return {"verdict": "error", "failed_claim": f"checker crashed: {_one_line(err)}"}


def checker_row(result: dict[str, Any], fallback_dims: int | None = None) -> dict[str, Any]:
    """Map the checker's JSON to result columns; the bound counts only if verified."""
    verified = result.get("verdict") == "verified"
    bound_exact = result.get("bound") if verified else None
    dims = result.get("unexplained_dims", fallback_dims)
    return {
        "verdict": result.get("verdict", "error"),
        "claimed_count": result.get("claimed_count"),
        "verified_count": result.get("verified_count"),
        "bound": _fraction_value(bound_exact) if verified else None,
        "bound_exact": bound_exact,
        "flops": result.get("flops"),
        "unexplained_dims": None if dims is None else float(dims),
        "checker_seconds": result.get("seconds"),
        "failed_claim": result.get("failed_claim"),
    }


def paper_dims(v: int, k: int, strategy: str) -> int | None:
    """Fallback when the checker does not report it (brute, cubic; docs/strategies.md)."""
    return {"brute": v ** (k + 1), "cubic": 3 * v * v + 2 * k * v}.get(strategy)


def _fraction_value(text: str | None) -> float | None:
    """The largest float not above the exact bound: a stored lower bound never rounds up."""
    from certify.rounding import float_down

    return None if text is None else float_down(Fraction(text))


def _small_report(report: dict[str, Any]) -> str:
    """The prover's report as JSON, without its large entries (per-case arrays belong to the
    certificate, not to a results row; the store stays small enough to commit)."""
    small = {
        key: value for key, value in report.items() if len(json.dumps(value, default=_plain)) <= 256
    }
    return json.dumps(small, default=_plain)


def _plain(value: Any) -> Any:
    """JSON for what a prover report holds: numpy arrays and scalars as lists and numbers."""
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    return str(value)


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    where = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    at = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
    return f"{type(err).__name__}: {lines[0] if lines else ''}{at}"


# --- the database -----------------------------------------------------------------------------


def connect(db: str | Path) -> sqlite3.Connection:
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(db)
    keys = ", ".join(KEY)
    con.execute(f"CREATE TABLE IF NOT EXISTS models ({', '.join(MODEL_COLUMNS)}, "
                f"PRIMARY KEY ({keys}))")  # fmt: skip
    con.execute(f"CREATE TABLE IF NOT EXISTS results ({', '.join(RESULT_COLUMNS)}, "
                f"PRIMARY KEY ({keys}, strategy))")  # fmt: skip
    return con


def insert(con: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    columns = MODEL_COLUMNS if table == "models" else RESULT_COLUMNS
    marks = ", ".join("?" * len(columns))
    con.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                [row.get(c) for c in columns])  # fmt: skip
    con.commit()


def stored_models(con: sqlite3.Connection) -> dict[ModelSpec, str]:
    return {ModelSpec(*r[:5]): r[5] for r in con.execute(f"SELECT {', '.join(KEY)}, path "
                                                           "FROM models")}  # fmt: skip


def stored_results(con: sqlite3.Connection) -> set[tuple[ModelSpec, str]]:
    rows = con.execute(f"SELECT {', '.join(KEY)}, strategy FROM results")
    return {(ModelSpec(*r[:5]), r[5]) for r in rows}


# --- the driver -------------------------------------------------------------------------------


@dataclass
class SweepStats:
    ran: int = 0
    skipped: int = 0
    errors: int = 0
    seconds: float = 0.0


def run_sweep(
    plan: Iterable[tuple[ModelSpec, list[str]]],
    db: str | Path,
    models_dir: str | Path | None = None,
    certs_dir: str | Path | None = None,
    workers: int | None = None,
    dask: str | None = None,
    samples: int | None = None,
    retry_errors: bool = False,
    progress: bool = True,
) -> SweepStats:
    """Run every (model, strategy) of ``plan`` that has no row in ``db`` yet."""
    start = time.perf_counter()
    root = Path(db).resolve().parent
    models_dir = str(Path(models_dir or root / "models").resolve())
    certs_dir = str(Path(certs_dir or root / "certs").resolve())
    con = connect(db)
    if retry_errors:
        con.execute("DELETE FROM results WHERE verdict = 'error'")
        con.commit()
    have_rows, stored = stored_results(con), stored_models(con)
    # A model whose file is gone (a fresh checkout of a committed database) is retrained.
    have_models = {spec: path for spec, path in stored.items() if Path(path).exists()}
    todo: dict[ModelSpec, list[str]] = {}
    stats = SweepStats()
    for spec, strategies in plan:
        missing = [s for s in strategies if (spec, s) not in have_rows]
        stats.skipped += len(strategies) - len(missing)
        if missing or spec not in stored:
            todo.setdefault(spec, []).extend(s for s in missing if s not in todo.get(spec, []))
    n_tasks = sum(len(s) for s in todo.values()) + sum(s not in have_models for s in todo)
    if not n_tasks:
        con.close()
        stats.seconds = time.perf_counter() - start
        return stats
    bar = _bar(n_tasks, progress)
    try:
        _run(todo, have_models, con, bar, stats, models_dir, certs_dir, workers, dask, samples)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"finished rows are in {db}; the same command resumes") from None
    finally:
        if bar is not None:
            bar.close()
        con.close()
    stats.seconds = time.perf_counter() - start
    return stats


def _run(todo, have_models, con, bar, stats, models_dir, certs_dir, workers, dask, samples):
    """Submit every task of ``todo``; record each row as soon as it is done."""
    with _executor(workers, dask) as pool:
        pending: dict[cf.Future, tuple[str, ModelSpec, str | None]] = {}

        def submit_strategies(spec: ModelSpec, path: str) -> None:
            for family, task in FAMILIES.items():  # first: the longest tasks
                if names := [n for n in todo[spec] if _family(n) == family]:
                    future = pool.submit(task, spec, path, names, certs_dir)
                    pending[future] = (family, spec, f"{len(names)} {family}")
            singles = [n for n in todo[spec] if _family(n) is None]
            for name in sorted(singles, key=lambda n: n != "brute"):
                future = pool.submit(strategy_task, spec, path, name, certs_dir)
                pending[future] = ("result", spec, name)

        def submit_model() -> None:
            if unmodelled:
                spec = unmodelled.pop(0)
                pending[pool.submit(model_task, spec, models_dir, samples)] = ("model", spec, None)

        # Models are started a few at a time, so that proofs of finished models run early.
        # In plan order (seed-major across K), so a stopped sweep has every K at similar depth.
        unmodelled = [spec for spec in todo if spec not in have_models]
        for spec in todo:
            if spec in have_models:
                submit_strategies(spec, have_models[spec])
        for _ in range(max(2, workers or os.cpu_count() or 1)):
            submit_model()
        while pending:
            done, _ = cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)
            for future in done:
                kind, spec, name = pending.pop(future)
                if kind == "model":
                    stats.ran += 1
                    try:
                        row = future.result()
                    except Exception as err:
                        stats.errors += 1 + len(todo[spec])
                        _note(bar, f"{spec.stem}: model task failed: {_one_line(err)}")
                        if bar is not None:
                            bar.update(1 + len(todo[spec]))
                        submit_model()
                        continue
                    insert(con, "models", row)
                    submit_strategies(spec, row["path"])
                    submit_model()
                    if bar is not None:
                        bar.update(1)
                else:
                    names = (
                        [n for n in todo[spec] if _family(n) == kind]
                        if kind in FAMILIES
                        else [name]
                    )
                    for row in _rows_or_errors(future, spec, names):
                        stats.ran += 1
                        stats.errors += row["verdict"] == "error"
                        if row["verdict"] == "error":
                            _note(bar, f"{spec.stem} {row['strategy']}: {row['failed_claim']}")
                        insert(con, "results", row)
                    if bar is not None:
                        bar.update(len(names))
                if bar is not None:
                    bar.set_postfix_str(f"{spec.stem} {name or 'model'}"[-60:], refresh=False)
                    bar.refresh()


def _family(name: str) -> str | None:
    """The task family that proves ``name`` together with its siblings (``FAMILIES``)."""
    from certify.strategies import ALIASES

    if name.startswith("subcubic:") or name in ALIASES:
        return "subcubic"
    return "hybrid" if name.split(":")[0] == "hybrid" else None


def _rows_or_errors(future: cf.Future, spec: ModelSpec, names: list[str]) -> list[dict[str, Any]]:
    """The task's rows (a list from a family task), or an error row per name it stood for."""
    try:
        rows = future.result()
        return rows if isinstance(rows, list) else [rows]
    except Exception as err:  # e.g. a worker died
        row = {**asdict(spec), "total": str(spec.total), "verdict": "error"}
        return [row | {"strategy": n, "failed_claim": f"task: {_one_line(err)}"} for n in names]


@contextlib.contextmanager
def _executor(workers: int | None, dask: str | None):
    if dask is None:
        ctx = multiprocessing.get_context("spawn")  # no torch/BLAS state inherited by fork
        with worker_pool(workers or os.cpu_count() or 1, ctx) as pool:  # Ctrl-C: none left
            yield pool
        return
    from distributed import Client

    with Client(dask) as client:
        yield client.get_executor(pure=False)


def _bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="sweep", unit="task", file=sys.stderr, smoothing=0.05)


def _note(bar, message: str) -> None:
    (bar.write if bar is not None else print)(f"sweep: {message}", file=sys.stderr)


# --- command line -----------------------------------------------------------------------------


def add_parser(sub) -> None:
    """Register ``certify sweep`` on the CLI's subparsers."""
    s = sub.add_parser("sweep", help="prove and check many models × strategies into SQLite")
    s.add_argument("--k", action="append", default=None, help="K values, e.g. 4 or 4,5 (repeat)")
    s.add_argument("--d-vocab", type=int, default=64, help="vocabulary size v")
    s.add_argument("--d-model", type=int, default=32, help="residual width (= d_head)")
    s.add_argument("--steps", type=int, default=3000, help="training steps for new models")
    s.add_argument("--seeds", default="123", help='"paper", "paper:N", or e.g. 123,50,1-10')
    s.add_argument("--strategies", default="cubic", help='comma-separated names, or "all"')
    s.add_argument("--db", default="results.sqlite", help="SQLite results (resumable)")
    s.add_argument("--models-dir", help="default: models/ beside the database")
    s.add_argument("--certs-dir", help="default: certs/ beside the database")
    s.add_argument("--workers", type=int, default=None, help="local processes (default: cores)")
    s.add_argument("--dask", metavar="ADDRESS", help="run on this Dask distributed scheduler")
    s.add_argument("--samples", type=int, default=None, help="estimate samples per stratum")
    s.add_argument("--retry-errors", action="store_true", help="rerun rows with verdict error")
    s.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_sweep(args) -> int:
    ks = [int(x) for arg in (args.k or ["4"]) for x in arg.split(",") if x]
    specs = [
        ModelSpec(k, args.d_vocab, args.d_model, args.steps, seed)
        for seed in parse_seeds(args.seeds)
        for k in ks
    ]
    plan = [(spec, resolve_strategies(args.strategies, spec)) for spec in specs]
    stats = run_sweep(
        plan, args.db, args.models_dir, args.certs_dir, args.workers, args.dask,
        args.samples, args.retry_errors, progress=not args.quiet,
    )  # fmt: skip
    print(
        f"sweep: {stats.ran} tasks run, {stats.skipped} rows already present, "
        f"{stats.errors} errors, {stats.seconds:.1f} s -> {args.db}"
    )
    return 1 if stats.errors else 0


if __name__ == "__main__":  # one strategy task, for _detached: JSON args in, JSON row out
    _spec, _path, _strategy, _certs = json.loads(sys.argv[1])
    print(json.dumps(strategy_task(ModelSpec(**_spec), _path, _strategy, _certs)))
