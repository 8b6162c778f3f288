"""Coverage-guided fuzzing of the certificate parser with atheris (libFuzzer), if installed.

    python bench/fuzz_parser.py [--seconds 120]

Seeds: every certificate under certificates/small/ and certificates/invalid/. The target feeds
the bytes to ``checker.format.parse``: a Certificate or a one-line FormatError are the only
acceptable outcomes; any other exception, a multi-line message or a slow input (libFuzzer's
-timeout, 10 s) is a crash and stops the run. libFuzzer prints the number of inputs tried
("Done N runs") and exits non-zero on a crash.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

try:
    import atheris
except ImportError:
    sys.exit("atheris is not installed (pip install atheris)")

with atheris.instrument_imports():
    from checker.format import FormatError, parse


def target(data: bytes) -> None:
    try:
        parse(data)
    except FormatError as e:
        if "\n" in str(e) or not str(e):
            raise AssertionError(f"message not one line: {e!r}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=120)
    args = parser.parse_args()
    seeds = Path(tempfile.mkdtemp())
    for path in [
        *ROOT.glob("certificates/small/*.json"),
        *ROOT.glob("certificates/invalid/*.json"),
    ]:
        if path.stat().st_size < 100_000:
            shutil.copy(path, seeds / path.name)
    flags = [
        f"-max_total_time={args.seconds}",
        "-timeout=10",
        "-max_len=200000",
        "-rss_limit_mb=4096",
        "-print_final_stats=1",
    ]
    atheris.Setup([sys.argv[0], *flags, str(seeds)], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
