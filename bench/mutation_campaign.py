"""The full mutation campaign: mutate the small valid certificates thousands of times.

    python bench/mutation_campaign.py [--n 5000] [--seed 1] [--glob '*.float32.cert.json']

Sources: certificates/small/*.cert.json (every strategy present). Prints a table of outcomes
(by mutation kind) and the totals recorded in docs/reliability.md. Exit status 1 if any mutant
was accepted with a false claim or crashed the checker.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.certgen import SMALL
from tests.mutate import campaign

OUTCOMES = ("tried", "rejected_exit1", "rejected_exit2", "no_verdict", "accepted_true",
            "accepted_false", "crash")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--glob", default="*.cert.json", help="which small certificates")
    args = parser.parse_args()
    sources = sorted(SMALL.glob(args.glob))
    start = time.perf_counter()
    totals: Counter = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i, src in enumerate(sources):  # an equal share per source certificate
            share = args.n // len(sources) + (i < args.n % len(sources))
            got = campaign([src], share, args.seed * 1000 + i, Path(tmp))
            totals += got
            print(f"{src.name:32} {got['tried']:6} tried {got['accepted_true']:5} accepted "
                  f"(true) {got['accepted_false']} accepted (false) {got['crash']} crashes",
                  flush=True)  # fmt: skip
    print(f"\n{'outcome':24} {'count':>8}")
    for key in OUTCOMES:
        print(f"{key:24} {totals[key]:8}")
    print(f"\n{'mutation kind':24} {'count':>8}")
    for key in sorted(k for k in totals if k.startswith("kind:")):
        print(f"{key[5:]:24} {totals[key]:8}")
    for key in sorted(k for k in totals if k.startswith(("false:", "crash:"))):
        print("!!", key)
    print(f"\n{len(sources)} source certificates, {time.perf_counter() - start:.0f} s")
    return 1 if totals["accepted_false"] or totals["crash"] else 0


if __name__ == "__main__":
    sys.exit(main())
