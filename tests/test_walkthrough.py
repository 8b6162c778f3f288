"""The README's auditor's walkthrough runs as written, and says what it promises.

The block is copied verbatim from README.md and run by bash (every command, ``set -e``) in a
scratch folder that sees the repository's ``certificates/``; ``certify`` and ``checker`` resolve
to this checkout's code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def walkthrough_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Auditor's walkthrough", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the walkthrough section holds exactly one sh block"
    return blocks[0]


def test_readme_walkthrough_runs(tmp_path):
    block = walkthrough_block()
    for step in ("checker hash", "certify emit", "checker verify", "--model", "certify report"):
        assert step in block, f"the walkthrough lost its {step!r} step"
    (tmp_path / "certificates").symlink_to(ROOT / "certificates")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("certify", "checker"):  # this checkout's code, whatever is installed
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {tool}.cli "$@"\n')
        script.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    hashes = re.findall(r"\b[0-9a-f]{64}\b", proc.stdout)
    verified = [line for line in proc.stdout.splitlines() if line.startswith("VERIFIED")]
    assert len(verified) == 1
    assert hashes and hashes[0] in verified[0]  # `checker hash` names the file's weights
    page = (tmp_path / "audit" / "report" / "index.html").read_text()
    assert "VERIFIED by the checker" in page
    for name in re.findall(r"<img src='([^']+)'", page):
        assert (tmp_path / "audit" / "report" / name).is_file()
