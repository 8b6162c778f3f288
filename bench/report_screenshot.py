"""Render ``certify report`` pages and photograph them in headless Chromium.

    python bench/report_screenshot.py [CERT ...] [-o DIR] [--height PX]

With no CERT it regenerates the committed example: the report of the shipped seed-123 cubic
certificate in docs/figures/report_max4_seed123_cubic/ (index.html, PNGs) and its screenshot
docs/figures/report_max4_seed123_cubic.screenshot.png. Each CERT's report goes to
DIR/report_<name>/, its screenshot beside it. Prints a Markdown table (verdict, cases that lose
inputs, report and screenshot seconds). Chromium (``apt-get install chromium``) runs with a fresh
profile, no network services and no sandbox; without it the screenshot column says so.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from certify.report import make_report, write_report

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "certificates" / "max4_seed123.cubic.cert.json"
FIGURES = ROOT / "docs" / "figures"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def browser() -> str | None:
    return next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
    )


def screenshot(page: Path, png: Path, width: int, height: int) -> str:
    """Photograph ``page`` into ``png``; returns "" or why not."""
    exe = browser()
    if exe is None:
        return "no chromium"
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            exe,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={width},{height}",
            page.resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not png.is_file():
        return f"chromium exit {proc.returncode}"
    trim(png)
    return ""


def trim(png: Path, margin: int = 24) -> None:
    """Cut the blank bottom of a page photographed in a window taller than the page; shrink."""
    import numpy as np
    from PIL import Image

    image = Image.open(png).convert("RGB")
    ink = np.flatnonzero((np.asarray(image) < 250).any(axis=(1, 2)))
    if len(ink):
        image = image.crop((0, 0, image.width, min(image.height, int(ink[-1]) + margin)))
    image.quantize(256).save(png, optimize=True)  # a page of text and plots: 256 colours do


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("certs", nargs="*", type=Path, default=[EXAMPLE])
    p.add_argument("-o", "--output", type=Path, default=FIGURES, help="folder for the reports")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=4400, help="window height: the whole page")
    args = p.parse_args()
    print("| certificate | verdict | cases losing inputs | report s | screenshot s | page |")
    print("|---|---|---:|---:|---:|---|")
    for cert in args.certs:
        stem = cert.name.removesuffix(".cert.json").replace(".", "_")
        out = args.output / f"report_{stem}"
        start = time.perf_counter()
        r = make_report(cert)
        page = write_report(r, out)
        report_s = time.perf_counter() - start
        start = time.perf_counter()
        png = args.output / f"report_{stem}.screenshot.png"
        why = screenshot(page, png, args.width, args.height)
        shot_s = time.perf_counter() - start
        cases = len(r.analysis.cases) if r.analysis else 0
        shown = why or f"{png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}"
        print(
            f"| {cert.name} | {r.verdict.get('verdict')} | {cases} | {report_s:.1f} | "
            f"{shot_s:.1f} | {shown} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
