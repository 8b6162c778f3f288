"""Sharded checking on a local Dask cluster: time per shard and the projection to 100 workers.

    python bench/bench_sharded.py [MODEL] [--shards N] [--workers W] [--only I,J,...] [--claim C]
                                  [--cert CERT]

Builds MODEL's brute-force certificate (default: the shipped Max-of-4, seed 123) claiming the
prover's float64 count, or C with ``--claim`` (so that a model too large to count here can still
be timed: a shard's work does not depend on the claim), checks its shards (``--only`` these) with
``certify.sharded.verify_sharded`` on W local one-thread workers and prints one row per shard,
the combined verdict (if every shard ran) and the projected time on 100 one-core workers.
With ``--cert`` it checks that certificate of MODEL instead (a hybrid one is sharded by query
token, so N <= d_vocab). The
CPU time of a shard is its time on a dedicated core, whatever else the machine is running.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from certify.certificate import Proof, build, write
from certify.circuits import circuits
from certify.model import load
from certify.sharded import summary, verify_sharded
from certify.strategies.brute import correct_count

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "model", nargs="?", default=ROOT / "certificates/models/max4_seed123.safetensors"
    )
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", help="comma-separated shard indices (default: all)")
    parser.add_argument("--claim", type=int, help="claimed count (default: the prover's)")
    parser.add_argument("--out", help="where to keep the certificate and shard results")
    parser.add_argument("--cert", help="check this certificate of MODEL (brute or hybrid) instead")
    args = parser.parse_args()
    config, weights = load(args.model)
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_sharded_"))
    out.mkdir(parents=True, exist_ok=True)
    if args.cert:  # e.g. an exact-accuracy hybrid certificate
        cert = Path(args.cert)
        claim = int(json.loads(cert.read_bytes())["claim"]["correct_count"])
    else:
        claim = correct_count(circuits(config, weights)) if args.claim is None else args.claim
        cert = out / f"{Path(args.model).stem}.brute.cert.json"
        write(build(config, weights, Proof("brute", claim)), cert)
    only = [int(i) for i in args.only.split(",")] if args.only else None
    runs, _, verdict = verify_sharded(cert, args.shards, out / "shards", workers=args.workers,
                                      only=only, progress=False)  # fmt: skip
    v, k = config.d_vocab, config.n_ctx
    print(f"Max-of-{k} (d_vocab {v}, {v**k:,} inputs), claim {claim:,}, {args.shards} shards, "
          f"{args.workers} local Dask workers\n")  # fmt: skip
    print("| shard | inputs | proved correct | wall s | CPU s |\n|---:|---:|---:|---:|---:|")
    for r in runs:
        result = json.loads(r.output)
        a, b = map(int, result["shard_inputs"])
        print(f"| {r.index} | {b - a:,} | {int(result['verified_count']):,} | {r.seconds:.1f} | "
              f"{r.cpu_seconds:.1f} |")  # fmt: skip
    print()
    print("\n".join(summary(runs, args.shards)))
    print(f"\ncombine: {verdict}")


if __name__ == "__main__":
    main()
