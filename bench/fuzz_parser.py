"""Coverage-guided fuzzing of the checker's input readers with atheris (libFuzzer), if installed.

    python bench/fuzz_parser.py [--target certificate|safetensors|cost] [--seconds 120]

Targets:
- ``certificate`` (default): the bytes go to ``checker.format.parse``; seeds are every
  certificate under certificates/small/ and certificates/invalid/.
- ``safetensors``: the bytes are a ``--model`` file for ``checker.safetensors.read_weights``,
  read with the dimensions of the small model it came from; seeds are certificates/small/'s
  .safetensors files.
- ``cost``: the bytes choose a strategy and model dimensions (within the schema's ranges), and
  the strategy's cost estimate and ``Work.admit`` must give a finite estimate and either admit or
  refuse with one line; an admitted estimate must fit the limits.

For the readers, a result or a one-line FormatError are the only acceptable outcomes; any other
exception, a multi-line message or a slow input (libFuzzer's -timeout, 10 s) is a crash and stops
the run. libFuzzer prints the number of inputs tried ("Done N runs") and exits non-zero on a crash.
"""

from __future__ import annotations

import argparse
import math
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
    import checker.rules.brute
    import checker.rules.cubic
    import checker.rules.subcubic  # noqa: F401 (each rule registers its cost estimate)
    from checker.cost import ESTIMATES, OverBudget, Work
    from checker.format import Config, FormatError, parse
    from checker.safetensors import read_weights

MODEL_FILE = Path(tempfile.mkdtemp()) / "model.safetensors"


def one_line(e: Exception) -> None:
    if "\n" in str(e) or not str(e):
        raise AssertionError(f"message not one line: {e!r}") from None


def certificate(data: bytes) -> None:
    try:
        parse(data)
    except FormatError as e:
        one_line(e)


def safetensors(data: bytes) -> None:
    # The seed files differ in size; the first byte picks the dimensions to read with.
    configs = SAFETENSORS_CONFIGS
    config = configs[data[0] % len(configs)] if data else configs[0]
    MODEL_FILE.write_bytes(data[1:])
    try:
        read_weights(MODEL_FILE, config)
    except FormatError as e:
        one_line(e)


def cost(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    strategy = sorted(ESTIMATES)[fdp.ConsumeIntInRange(0, len(ESTIMATES) - 1)]
    k, v, d, h = (fdp.ConsumeIntInRange(1, top) for top in (64, 4096, 4096, 4096))
    limit = fdp.ConsumeIntInRange(1, 10**6) / 1000
    memory = fdp.ConsumeIntInRange(1, 2**40)
    need = ESTIMATES[strategy](Config(k, v, d, h))
    assert 0 < need.bytes < math.inf and 0 < need.seconds < math.inf, need
    try:
        Work(limit, False, memory).admit(strategy, Config(k, v, d, h))
    except OverBudget as e:
        one_line(e)
        return
    assert need.bytes <= memory and need.seconds <= limit, (need, limit, memory)


def small_configs() -> list[Config]:
    configs = []
    for cert in sorted(ROOT.glob("certificates/small/*.brute.cert.json")):
        configs.append(parse(cert.read_bytes()).config)
    return configs


SAFETENSORS_CONFIGS = small_configs()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=["certificate", "safetensors", "cost"],
                        default="certificate")  # fmt: skip
    parser.add_argument("--seconds", type=int, default=120)
    args = parser.parse_args()
    seeds = Path(tempfile.mkdtemp())
    if args.target == "certificate":
        paths = [*ROOT.glob("certificates/small/*.json"), *ROOT.glob("certificates/invalid/*.json")]
    elif args.target == "safetensors":
        paths = []
        for i, config in enumerate(SAFETENSORS_CONFIGS):
            cert = sorted(ROOT.glob("certificates/small/*.brute.cert.json"))[i]
            model = cert.with_name(cert.name.split(".")[0] + ".safetensors")
            (seeds / model.name).write_bytes(bytes([i]) + model.read_bytes())
            assert parse(cert.read_bytes()).config == config
    else:
        paths = []
    for path in paths:
        if path.stat().st_size < 100_000:
            shutil.copy(path, seeds / path.name)
    flags = [
        f"-max_total_time={args.seconds}",
        "-timeout=10",
        "-max_len=200000",
        "-rss_limit_mb=4096",
        "-print_final_stats=1",
    ]
    target = {"certificate": certificate, "safetensors": safetensors, "cost": cost}[args.target]
    atheris.Setup([sys.argv[0], *flags, str(seeds)], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
