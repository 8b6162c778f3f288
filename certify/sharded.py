"""Sharded checking on a Dask cluster: ``checker verify CERT --shard I/N --json`` for every I on
the workers, then ``checker combine`` on the results, here.

Each shard runs the trusted checker as a subprocess of a worker (the checker never imports Dask),
on a private copy of the certificate bytes sent with the task, so workers need the checker
installed but no shared file system. The shard results are written to ``out`` (one JSON file per
shard), so a combine can be rerun or audited later; ``checker combine`` checks that they are one
whole partition of this certificate, and trusts each count (docs/format.md, "Sharded checking").
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ShardRun:
    """One shard's checker run, as a worker saw it."""

    index: int
    status: int  # the checker's exit status: 0 for a shard result
    output: str  # its stdout: the shard result (JSON)
    message: str  # its one stderr line
    seconds: float  # wall time of the checker subprocess
    cpu_seconds: float  # its CPU time (and its worker processes'): the time on a dedicated core
    host: str


def check_shard(data: bytes, index: int, shards: int, time_limit: float | None) -> ShardRun:
    """Run ``checker verify --shard index/shards --json`` on a private copy of the certificate."""
    with tempfile.TemporaryDirectory() as tmp:
        cert = Path(tmp) / "cert.json"
        cert.write_bytes(data)
        argv = [sys.executable, "-m", "checker.cli", "verify", str(cert), "--json"]
        argv += ["--shard", f"{index}/{shards}"]
        argv += ["--time-limit", str(time_limit)] if time_limit else []
        start, cpu = time.perf_counter(), _children_cpu()
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        seconds, cpu = time.perf_counter() - start, _children_cpu() - cpu
    lines = proc.stderr.strip().splitlines() or [""]
    host = socket.gethostname()
    return ShardRun(index, proc.returncode, proc.stdout, lines[-1], seconds, cpu, host)


def _children_cpu() -> float:
    """CPU seconds of this process's finished children (one task at a time per worker)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def executor(dask: str | None, workers: int):
    """A Dask executor on the scheduler at ``dask``, or on a local cluster of ``workers``."""
    from distributed import Client, LocalCluster

    if dask is not None:
        with Client(dask) as client:
            yield client.get_executor(pure=False)
        return
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None)
    with cluster, Client(cluster) as client:
        yield client.get_executor(pure=False)


def verify_sharded(
    cert: str | Path,
    shards: int,
    out: str | Path,
    dask: str | None = None,
    workers: int = 2,
    time_limit: float | None = None,
    only: list[int] | None = None,
    progress: bool = True,
) -> tuple[list[ShardRun], int, str]:
    """Check the shards (``only`` these, if given) on the cluster, write their results to
    ``out``, then combine every result of this certificate found there (so a run can be finished
    in parts). Returns this run's shards (by index), combine's exit status and its verdict line.
    """
    data = Path(cert).read_bytes()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = hashlib.sha256(data).hexdigest()[:12]
    runs: dict[int, ShardRun] = {}
    with executor(dask, workers) as pool:
        todo = range(shards) if only is None else sorted(set(only))
        futures = [pool.submit(check_shard, data, i, shards, time_limit) for i in todo]
        for future in cf.as_completed(futures):
            run = future.result()
            runs[run.index] = run
            (out / f"{stem}.shard-{run.index}-of-{shards}.json").write_text(run.output)
            if progress:
                print(f"[{len(runs)}/{len(todo)}] {run.seconds:.1f} s on {run.host}: {run.message}",
                      file=sys.stderr, flush=True)  # fmt: skip
    paths = [out / f"{stem}.shard-{i}-of-{shards}.json" for i in range(shards)]
    paths = [str(p) for p in paths if p.exists()]
    proc = subprocess.run([sys.executable, "-m", "checker.cli", "combine", *paths],
                          capture_output=True, text=True, check=False)  # fmt: skip
    verdict = (proc.stdout.strip() or proc.stderr.strip()).splitlines()[-1:] or [""]
    return [runs[i] for i in sorted(runs)], proc.returncode, verdict[0]


def summary(runs: list[ShardRun], shards: int, cluster: int = 100) -> list[str]:
    """Markdown lines: this run's shard times and the projected time of all ``shards`` shards.

    The projection takes each shard to need the mean CPU time measured here (the time on a
    dedicated core) and ``cluster`` one-core workers: ceil(shards / cluster) rounds.
    """
    wall, cpu = [r.seconds for r in runs], [r.cpu_seconds for r in runs]
    n, mean = len(runs), sum(cpu) / len(cpu)
    rounds = -(-shards // cluster)
    return [
        "| shards run | of N | wall s (mean, max) | CPU s (mean, min, max) | CPU s, all N |",
        "|---:|---:|---:|---:|---:|",
        f"| {n} | {shards} | {sum(wall) / n:.1f}, {max(wall):.1f} | {mean:.1f}, {min(cpu):.1f}, "
        f"{max(cpu):.1f} | {mean * shards:,.0f} |",
        "",
        f"Projected on {cluster} one-core workers: {rounds} round(s) of ~{mean:.0f} s = "
        f"{rounds * mean:,.0f} s for all {shards} shards.",
    ]


def add_parser(sub) -> None:
    """Register ``certify verify-sharded`` on the CLI's subparsers."""
    s = sub.add_parser("verify-sharded", help="check a certificate in shards on Dask")
    s.add_argument("cert", help="a brute-force or hybrid certificate")
    s.add_argument("--shards", type=int, default=None,
                   help="N (default: 4 per worker; for hybrid at most d_vocab)")  # fmt: skip
    s.add_argument("--dask", metavar="ADDRESS", help="a Dask scheduler (default: local cluster)")
    s.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="local workers")
    s.add_argument("--out", help="shard results directory (default: CERT.shards/)")
    s.add_argument("--time-limit", type=float, default=None, metavar="S", help="per shard")
    s.add_argument("--only", help="check only these shards, e.g. 0,5,9 (finish the rest later)")


def default_shards(cert: str, n: int) -> int:
    """n, or d_vocab if fewer for a hybrid certificate (its shards hold whole query tokens)."""
    try:
        doc = json.loads(Path(cert).read_bytes())
        if doc["strategy"]["name"] == "hybrid":
            return min(n, int(doc["model"]["d_vocab"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass  # unreadable: the checker says why, shard by shard
    return n


def cmd_verify_sharded(args: Any) -> int:
    shards = args.shards or default_shards(args.cert, 4 * args.workers)
    if shards < 1 or args.workers < 1:
        raise ValueError("--shards and --workers must be positive")
    out = args.out or f"{args.cert}.shards"
    only = [int(i) for i in args.only.split(",")] if args.only else None
    if only and not all(0 <= i < shards for i in only):
        raise ValueError(f"--only: shard indices must be in 0..{shards - 1}")
    runs, status, verdict = verify_sharded(args.cert, shards, out, args.dask, args.workers,
                                           args.time_limit, only)  # fmt: skip
    for run in runs:
        if run.status != 0:
            print(f"shard {run.index}/{shards}: {run.message}", file=sys.stderr)
    print("\n".join(summary(runs, shards)))
    print(verdict)
    return status
