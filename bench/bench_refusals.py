"""CPU time and peak memory of `checker verify` refusing hostile inputs (tests/test_hardening.py).

    python bench/bench_refusals.py

Each case runs in its own process; the table gives its exit status, CPU seconds (user + system,
the interpreter's start and imports included), peak resident memory (VmHWM) and its one line.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.certgen import SMALL, brute_doc, dumps, tiny_weights
from tests.test_hardening import BAD_HEADERS, edit_header, huge_brute, safetensors_bytes, verify


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    tiny = brute_doc(tiny_weights())
    good = dumps(tiny)
    peeled = json.loads((SMALL / "max2_v4.subcubic.cert.json").read_bytes())
    peeled["witnesses"]["peels"][0]["x"] = {"dtype": "float64", "shape": [0] + [2**20] * 5,
                                            "data": ""}  # fmt: skip
    cases = [
        ("valid tiny certificate (baseline)", good, ()),
        ("format_version a lone surrogate", good.replace(b'": 1,', b'": "\\ud800",', 1), ()),
        ("peels[0].x shape [0, 2^20 x5]", dumps(peeled), ()),
        ("brute v 512, K 8, --time-limit 1", huge_brute(512, 8), ("--time-limit", "1")),
        ("brute v 4096, K 64", huge_brute(4096, 64), ()),
        ("3,000,000 empty lists, --time-limit 2",
         json.dumps({**tiny, "witnesses": {"x": [[]] * 3_000_000}}, indent=1).encode(),
         ("--time-limit", "2")),
    ]  # fmt: skip
    model = safetensors_bytes(tiny_weights(), tmp)
    for name, (edit, _) in BAD_HEADERS.items():
        path = tmp / f"{len(cases)}.safetensors"
        path.write_bytes(edit_header(model, edit))
        cases.append((f"--model header: {name}", good, ("--model", str(path))))
    print("| input | size | exit | CPU s | peak MiB | stderr |\n|---|---:|---:|---:|---:|---|")
    for name, data, flags in cases:
        r = verify(tmp, data, *flags)
        line = (r.err or r.out).strip().replace(str(tmp) + "/", "")[:70].replace("|", "\\|")
        print(f"| {name} | {len(data):,} | {r.status} | {r.cpu:.2f} | {r.rss_mb:.0f} | {line} |")


if __name__ == "__main__":
    main()
