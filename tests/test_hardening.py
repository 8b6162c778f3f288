"""Hostile and careless inputs (issue 13): each is refused with exit 2 and exactly one line on
stderr, no traceback, within 2 s of CPU time and 300 MB; Ctrl-C, closed pipes, unwritable
outputs and missing extras end the same way.

Each refusal runs in its own process, so that its peak memory (VmHWM, which unlike ru_maxrss
does not include the forking parent's size) and CPU time are its own; CPU time, unlike wall time,
does not grow when the machine is busy.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from certify.certificate import Proof, build
from certify.model import load, validate
from tests.certgen import ROOT, SMALL, brute_doc, dumps, random_weights, tiny_weights

CPU_SECONDS, MEMORY_MB = 2.0, 300
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
PEAK = """import atexit, os, runpy, sys
def peak():
    with open("/proc/self/status") as f, open(os.environ["PEAK_FILE"], "w") as out:
        out.write(next(line.split()[1] for line in f if line.startswith("VmHWM")))
atexit.register(peak)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""  # runs ``python -m argv`` and records its peak resident memory (kB) at exit


class Run:
    def __init__(self, status: int, out: str, err: str, cpu: float, rss_mb: float):
        self.status, self.out, self.err, self.cpu, self.rss_mb = status, out, err, cpu, rss_mb

    def refused(self, match: str) -> str:
        """Exit 2, one line on stderr containing ``match``, in bounded time and memory."""
        lines = self.err.splitlines()
        assert self.status == 2 and len(lines) == 1, (self.status, self.out, self.err)
        assert match in lines[0] and "internal error" not in lines[0], lines[0]
        assert "Traceback" not in self.err and "\x1b" not in self.err
        assert self.cpu < CPU_SECONDS and self.rss_mb < MEMORY_MB, (self.cpu, self.rss_mb)
        return lines[0]


def run(tmp: Path, *argv: str, env: dict[str, str] | None = None) -> Run:
    """``python -m argv[0] argv[1:]`` in a child process: its status, output and own resources."""
    out, err, peak = tmp / "stdout", tmp / "stderr", tmp / "peak"
    env = {**(env or ENV), "PEAK_FILE": str(peak)}
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            [sys.executable, "-c", PEAK, *argv], stdout=o, stderr=e, env=env, cwd=tmp
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    text = (out.read_text(errors="replace"), err.read_text(errors="replace"))
    return Run(proc.returncode, *text, cpu, int(peak.read_text()) / 1024)


def verify(tmp: Path, data: bytes, *flags: str, **kw: Any) -> Run:
    (tmp / "cert.json").write_bytes(data)
    return run(tmp, "checker.cli", "verify", str(tmp / "cert.json"), *flags, **kw)


@pytest.fixture(scope="module")
def tiny() -> dict[str, Any]:
    return brute_doc(tiny_weights())


# --- 1. unprintable strings -------------------------------------------------------------------


@pytest.mark.parametrize("version", ["\ud800", "versión 1", "1\n2"])
def test_unprintable_version_is_refused_on_an_ascii_terminal(tiny, tmp_path, version) -> None:
    text = dumps(tiny).replace(
        b'"format_version": 1', b'"format_version": ' + json.dumps(version).encode()
    )
    ascii_env = {**ENV, "PYTHONIOENCODING": "ascii"}
    line = verify(tmp_path, text, env=ascii_env).refused("format_version: unsupported version")
    assert line.isascii()
    r = verify(tmp_path, text, "--json", env=ascii_env)
    assert json.loads(r.out)["verdict"] == "error" and len(r.err.splitlines()) == 1


def test_theorem_prints_on_an_ascii_terminal(tiny, tmp_path) -> None:
    r = verify(tmp_path, dumps(tiny), env={**ENV, "PYTHONIOENCODING": "ascii"})
    assert r.status == 0 and r.out.startswith("VERIFIED") and "\\u2248" in r.out and not r.err


# --- 2. declared shapes -----------------------------------------------------------------------


def test_huge_declared_peel_shape_is_refused_before_decoding(tmp_path) -> None:
    doc = json.loads((SMALL / "max2_v4.subcubic.cert.json").read_bytes())
    doc["witnesses"]["peels"][0]["x"] = {"dtype": "float64", "shape": [0] + [2**20] * 5, "data": ""}
    verify(tmp_path, dumps(doc)).refused("peels[0].x: shape must be")


# --- 3, 4. --model files ----------------------------------------------------------------------


def safetensors_bytes(tensors: dict[str, np.ndarray], tmp: Path) -> bytes:
    save_file(tensors, str(tmp / "m.safetensors"))
    return (tmp / "m.safetensors").read_bytes()


def edit_header(data: bytes, edit) -> bytes:
    """``data`` with its JSON header replaced by ``edit(header) -> new header text``."""
    n = int.from_bytes(data[:8], "little")
    new = edit(json.loads(data[8 : 8 + n])).encode()
    return len(new).to_bytes(8, "little") + new + data[8 + n :]


def set_entry(key: str, field: str, value: Any):
    def edit(h: dict[str, Any]) -> str:
        h[key][field] = value
        return json.dumps(h)

    return edit


W_E = "embed.W_E"
BAD_HEADERS = {
    "offsets string": (set_entry(W_E, "data_offsets", "0,64"), "data_offsets: must be an array"),
    "offsets null": (set_entry(W_E, "data_offsets", None), "data_offsets: must be an array"),
    "offsets 3 items": (set_entry(W_E, "data_offsets", [0, 64, 64]), "wrong number of items"),
    "offsets floats": (set_entry(W_E, "data_offsets", [0.0, 64.0]), "float literal"),
    "offsets negative": (set_entry(W_E, "data_offsets", [-64, 0]), "data_offsets[0]: must be in 0"),
    "offsets past the end": (set_entry(W_E, "data_offsets", [0, 10**9]), "bad data offsets"),
    "shape an integer": (set_entry(W_E, "shape", 4), "shape: must be an array"),
    "shape of bools": (set_entry(W_E, "shape", [True, True]), "must be an integer"),
    "dtype F64": (set_entry(W_E, "dtype", "F64"), "is not F32"),
    "unknown field": (set_entry(W_E, "extra", 1), "unexpected key"),
    "nested 100,000 deep": (
        lambda h: '{"deep": ' + "[" * 100_000 + "]" * 100_000 + ", " + json.dumps(h)[1:],
        "JSON values",
    ),
    "nested 40 deep": (
        lambda h: '{"deep": ' + "[" * 40 + "]" * 40 + ", " + json.dumps(h)[1:],
        "nests deeper",
    ),
    "duplicate key": (
        lambda h: json.dumps(h)[:-1] + f', "{W_E}": {json.dumps(h[W_E])}}}',
        "duplicate key",
    ),
    "header a list": (lambda h: json.dumps([h]), "header: must be an object"),
    "not JSON": (lambda h: json.dumps(h)[:-1], "not valid JSON"),
}


@pytest.mark.parametrize("case", list(BAD_HEADERS))
def test_malformed_model_header_is_refused(tiny, tmp_path, case) -> None:
    edit, match = BAD_HEADERS[case]
    data = edit_header(safetensors_bytes(tiny_weights(), tmp_path), edit)
    (tmp_path / "bad.safetensors").write_bytes(data)
    r = verify(tmp_path, dumps(tiny), "--model", str(tmp_path / "bad.safetensors"))
    assert r.refused(match).startswith("ERROR: --model ")


def test_truncated_and_oversized_model_files_are_refused(tiny, tmp_path) -> None:
    good = safetensors_bytes(tiny_weights(), tmp_path)
    for data, match in [
        (good[:5], "header longer than the file"),
        (b"\xff" * 8 + good[8:], "header longer than the file"),
        (good + bytes(2 * 2**20), "larger than any model"),
    ]:
        (tmp_path / "bad.safetensors").write_bytes(data)
        verify(tmp_path, dumps(tiny), "--model", str(tmp_path / "bad.safetensors")).refused(match)
    r = verify(tmp_path, dumps(tiny), "--model", str(tmp_path))
    r.refused("cannot read (Is a directory)")


def causal(k: int) -> np.ndarray:
    return np.tril(np.ones((k, k), dtype=bool))


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"ln_final.w": np.ones(4, np.float32), "ln_final.b": np.zeros(4, np.float32)}, "ln_final"),
        (
            {f"blocks.1.attn.{n}": np.zeros((1, 4, 4), np.float32) for n in ("W_Q", "W_K")},
            "blocks.1.attn",
        ),
        ({"blocks.0.attn.mask": np.ones((2, 2), bool)}, "not the causal mask"),
        ({"blocks.0.attn.mask": causal(3)}, "blocks.0.attn.mask' is not BOOL of shape (2, 2)"),
        ({"blocks.0.attn.IGNORE": np.float64(-np.inf)}, "IGNORE' is not F32"),
    ],
    ids=["layernorm", "second layer", "mask not causal", "mask shape", "IGNORE dtype"],
)
def test_model_with_another_tensor_is_refused(tiny, tmp_path, extra, match) -> None:
    """The theorem is about a one-layer attention-only model and must never name another."""
    data = safetensors_bytes(
        {**tiny_weights(), **{k: np.asarray(v) for k, v in extra.items()}}, tmp_path
    )
    (tmp_path / "m.safetensors").write_bytes(data)
    line = verify(tmp_path, dumps(tiny), "--model", str(tmp_path / "m.safetensors")).refused(match)
    assert "one-layer model" in line or "blocks.0.attn" in line


def test_transformerlens_buffers_are_accepted(tiny, tmp_path) -> None:
    """TransformerLens saves the causal mask and IGNORE (-inf) with the weights: harmless."""
    buffers = {
        "blocks.0.attn.mask": causal(2),
        "blocks.0.attn.IGNORE": np.array(-np.inf, np.float32),
    }
    safetensors_bytes({**tiny_weights(), **buffers}, tmp_path)
    r = verify(tmp_path, dumps(tiny), "--model", str(tmp_path / "m.safetensors"))
    assert r.status == 0 and r.out.startswith("VERIFIED") and not r.err, r.err


# --- 5, 6. tiny certificates declaring huge work; parsing bounded ------------------------------


def huge_brute(v: int, k: int) -> bytes:
    config, weights = validate(random_weights(v, k, 1, seed=0))
    return dumps(build(config, weights, Proof(strategy="brute", correct_count=0)))


def test_tiny_certificate_declaring_huge_sizes_is_refused_on_its_estimate(tmp_path) -> None:
    data = huge_brute(512, 8)
    assert len(data) < 20_000
    line = verify(tmp_path, data, "--time-limit", "1").refused("no verdict: needs at least")
    assert "over the 1.0 s time limit" in line
    verify(tmp_path, data, "--max-memory", str(10**9)).refused("GiB, over --max-memory")
    verify(tmp_path, huge_brute(4096, 64)).refused("GiB, over --max-memory")


def test_certificate_of_millions_of_values_is_refused_cheaply(tiny, tmp_path) -> None:
    doc = {**tiny, "witnesses": {"x": [[]] * 3_000_000}}
    data = json.dumps(doc, indent=1).encode()
    assert len(data) > 20 * 2**20
    verify(tmp_path, data, "--time-limit", "2").refused("more than 100000 JSON values")


# --- 8-10. the prover's command line ------------------------------------------------------------


def test_unwritable_outputs_are_refused_before_any_work(tmp_path) -> None:
    r = run(tmp_path, "certify.cli", "train", "--steps", "100000", "-o", "/nonexistent/x.pt")
    r.refused("directory '/nonexistent' does not exist")
    model = SMALL / "tiny_v4_k2.safetensors"
    r = run(tmp_path, "certify.cli", "emit", str(model), "-o", str(tmp_path / "no" / "c.json"))
    assert r.status == 2 and "does not exist" in r.err and len(r.err.splitlines()) == 1
    r = run(tmp_path, "certify.cli", "emit", str(model), "-o", str(tmp_path))
    assert r.status == 2 and "is a directory" in r.err


@pytest.mark.parametrize("argv", [["certify.cli", "strategies"], ["checker.cli", "schema"]])
def test_closed_pipe_ends_quietly(tmp_path, argv) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first write
    proc = subprocess.run([sys.executable, "-m", *argv], stdout=write, stderr=subprocess.PIPE,
                          env=ENV, timeout=120)  # fmt: skip
    os.close(write)
    assert proc.returncode == 141 and proc.stderr == b""


def test_bad_model_files_get_one_line(tmp_path) -> None:
    import torch

    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")
    (tmp_path / "picture.pt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    for name, match in [
        ("module.pt", "holds pickled objects"),
        ("picture.pt", "not a torch file"),
        (".", "is a directory"),
    ]:
        r = run(tmp_path, "certify.cli", "accuracy", str(tmp_path / name))
        assert r.status == 2 and len(r.err.splitlines()) == 1 and match in r.err, r.err
        assert "\x1b" not in r.err and "Traceback" not in r.err and "WeightsUnpickler" not in r.err


def test_missing_prover_extra_is_named(tmp_path) -> None:
    code = "import sys; sys.modules['torch'] = None; from certify.cli import main; sys.exit(main())"
    for argv in (["train", "--steps", "1", "-o", str(tmp_path / "m.pt")], ["accuracy", "m.pt"]):
        (tmp_path / "m.pt").write_bytes(b"")
        proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                              env=ENV, cwd=tmp_path, timeout=120)  # fmt: skip
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert "pip install 'compact-proofs[prover]'" in proc.stderr


# --- 7. Ctrl-C --------------------------------------------------------------------------------


def session(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``: a command and everything it started."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def _default_sigint() -> None:
    """A shell's background job inherits SIGINT ignored (and Python keeps it so): the command
    under test must see Ctrl-C as a user's terminal would deliver it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt(argv: list[str], ready, cwd: Path) -> tuple[int, str]:
    """Start ``argv`` in its own session, send SIGINT to it alone once ``ready(pid)``; it must
    exit within 5 s with 130 and one line, and leave no process of its session behind."""
    pipe = subprocess.PIPE
    proc = subprocess.Popen([sys.executable, "-m", *argv], stdout=pipe, stderr=pipe, env=ENV,
                            cwd=cwd, start_new_session=True,
                            preexec_fn=_default_sigint)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not ready(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGINT)
        start = time.monotonic()
        _, err = proc.communicate(timeout=30)
        # 130, or (rarely, when torch was inside a native call) our line and then death by SIGINT,
        # which a shell reports as the same status 130
        assert time.monotonic() - start < 5 and proc.returncode in (130, -signal.SIGINT), err
        lines = err.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{argv[0].split('.')[0]}: interrupted"), err
        for _ in range(50):  # killed workers are reaped by init within moments
            if not session(proc.pid):
                break
            time.sleep(0.1)
        assert session(proc.pid) == []
        return proc.returncode, lines[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_killed_pool_s_manager_thread_stays_quiet(capsys) -> None:
    """CPython < 3.12's pool manager can raise InvalidStateError after we kill the workers (seen
    in CI as a 12-line traceback before "interrupted"); only that thread's errors are hidden."""
    import threading

    from checker.guard import _quiet_manager_thread

    class _ExecutorManagerThread(threading.Thread):
        pass

    def report(thread: threading.Thread) -> None:
        try:
            raise RuntimeError("boom")
        except RuntimeError as e:
            args = threading.ExceptHookArgs([RuntimeError, e, e.__traceback__, thread])
            _quiet_manager_thread(args)

    report(_ExecutorManagerThread())
    assert capsys.readouterr().err == ""
    report(threading.Thread())
    assert "RuntimeError: boom" in capsys.readouterr().err


def test_ctrl_c_stops_a_multiprocess_brute_force_check(tmp_path) -> None:
    """The checker's brute force, and the prover's exact accuracy, on 64^5 inputs (minutes)."""
    model = ROOT / "certificates" / "models" / "max5_seed123.safetensors"
    (tmp_path / "c.json").write_bytes(dumps(brute_doc(load(model)[1], 0)))

    def workers_busy(pid: int) -> bool:
        return len(session(pid)) >= 2 and time.sleep(0.5) is None

    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: no worker processes")
    interrupt(["checker.cli", "verify", str(tmp_path / "c.json")], workers_busy, tmp_path)
    interrupt(["certify.cli", "accuracy", str(model)], workers_busy, tmp_path)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_ctrl_c_stops_training(tmp_path) -> None:
    argv = ["certify.cli", "train", "--k", "2", "--d-vocab", "4", "--d-model", "4"]
    argv += ["--steps", "10000000", "-o", str(tmp_path / "m.safetensors")]

    def training(pid: int) -> bool:  # torch is loaded: the command runs (its handler is set)
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text() and time.sleep(1) is None

    interrupt(argv, training, tmp_path)
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_ctrl_c_stops_a_sweep_which_then_resumes_with_no_row_lost(tmp_path) -> None:
    db = tmp_path / "r.sqlite"
    argv = ["certify.cli", "sweep", "--k", "2", "--d-vocab", "4", "--d-model", "4", "--steps"]
    argv += ["200", "--seeds", "1-3", "--strategies", "cubic,brute", "--db", str(db), "--quiet"]
    argv += ["--workers", "2"]

    def rows() -> list[tuple]:
        if not db.exists():
            return []
        with sqlite3.connect(db) as con:
            return sorted(con.execute("SELECT * FROM results").fetchall())

    _, line = interrupt(argv, lambda _: len(rows()) >= 1, tmp_path)
    assert "the same command resumes" in line
    before = rows()
    assert 1 <= len(before) < 6
    done = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, env=ENV,
                          cwd=tmp_path, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{len(before)} rows already present, 0 errors" in done.stdout
    after = rows()
    assert len(after) == 6 and set(before) <= set(after)
    assert {r[6] for r in after} == {"verified"}  # verdict: no row recorded as an error
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM models").fetchone()[0] == 3


def test_checker_api_is_unchanged_for_in_process_callers(tiny, tmp_path) -> None:
    """certify runs the checker in-process: a verdict still comes back as a JSON object."""
    from certify.sweep import run_checker

    (tmp_path / "c.json").write_bytes(dumps(tiny))
    assert run_checker(tmp_path / "c.json")["verdict"] == "verified"


def test_every_rule_estimates_its_cost() -> None:
    """A rule without an estimate would run unchecked: each adds one to ESTIMATES."""
    from checker.cost import ESTIMATES
    from checker.format import SCHEMA
    from checker.rules import rule_for

    for name in SCHEMA["properties"]["strategy"]["properties"]["name"]["enum"]:
        assert rule_for(name) is not None and name in ESTIMATES, name


def _slow_query(q: int) -> tuple[int, int]:
    time.sleep(0.5)
    return 0, q  # (FLOPs, result), as map_queries expects


def test_an_error_in_the_caller_s_loop_kills_the_query_workers_at_once() -> None:
    """The time limit (or Ctrl-C) raised between two results: the workers must be gone when the
    error leaves the loop, not after they have worked through the queue."""
    import multiprocessing
    from types import SimpleNamespace

    from checker.cost import Work
    from checker.rules.brute import map_queries

    start = time.monotonic()
    with pytest.raises(RuntimeError):
        for _ in map_queries(_slow_query, [0] * 40, SimpleNamespace(v=64), Work(), "test"):
            raise RuntimeError("over the time limit")
    assert time.monotonic() - start < 5  # the queue would keep 2 workers busy for 10 s
    assert not multiprocessing.active_children()
