"""Mutation campaign: the checker accepts a mutated certificate only if its claim is still true.

``campaign(sources, n, seed)`` mutates valid certificates (every numeric field, every weight,
every witness and lemma array element, structural and byte-level edits), runs ``checker verify``
in-process on each, and classifies the outcome. The oracle is the exact accuracy of the weights
the checker actually read (``tests/oracle.py``): an accepted certificate whose claim exceeds it
is a soundness failure; a traceback, a multi-line message or an internal error is a crash.
Used by tests/test_mutation.py (a sample) and bench/mutation_campaign.py (thousands).
"""

from __future__ import annotations

import base64
import copy
import io
import json
import random
from collections import Counter
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np

from checker.cli import main as checker_main
from checker.format import parse
from tests.certgen import dumps
from tests.oracle import exact_correct_count

_ORACLE: dict[tuple, int] = {}
_DTYPES = {"float32": "<f4", "float64": "<f8", "int64": "<i8"}


def exact_count(weights: dict[str, np.ndarray], sha: str, allowance=None) -> int:
    """The oracle's count; for a float32 claim, of the inputs whose exact margin exceeds
    D[q, m] + D[q, x] with the smallest allowance D any certificate may use (the checker's)."""
    key = (sha, None if allowance is None else allowance.tobytes())
    if key not in _ORACLE:
        _ORACLE[key] = exact_correct_count(weights, allowance)
    return _ORACLE[key]


def float32_floor(cert: Any) -> np.ndarray | None:
    from checker.circuits import Weights
    from checker.cost import Work
    from checker.float32 import derived

    return None if cert.allowance is None else derived(Weights(cert, Work()), cert)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value in a JSON tree (arrays objects included, their insides too)."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


def get(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def put(doc: Any, path: tuple, value: Any) -> None:
    get(doc, path[:-1])[path[-1]] = value


def arrays(doc: dict[str, Any]) -> list[tuple]:
    return [p for p in paths(doc) if isinstance(get(doc, p), dict) and "data" in get(doc, p)]


def nudge_number(text: str, rng: random.Random) -> str:
    """A nearby or a wild value for a number/integer string (one ulp, ±1, ×2, negation, 0)."""
    if text.startswith(("0x", "-0x")):
        x = float.fromhex(text)
        choice = rng.choice(["up", "down", "double", "neg", "zero"])
        y = {"up": np.nextafter(x, np.inf), "down": np.nextafter(x, -np.inf), "double": 2 * x,
             "neg": -x, "zero": 0.0}[choice]  # fmt: skip
        return float(y).hex() if np.isfinite(y) else text
    if text.lstrip("-").isdigit():
        return str(max(0, int(text) + rng.choice([-2, -1, 1, 2, 10, int(text)])))
    return text + rng.choice(["0", "1"])


def mutate_array(obj: dict[str, Any], rng: random.Random, rehash_ok: bool = True) -> str:
    """Flip a bit of, or overwrite, one element of an encoded array (in place); returns a label."""
    dtype = _DTYPES[obj["dtype"]]
    a = np.frombuffer(base64.b64decode(obj["data"]), dtype=dtype).copy()
    if a.size == 0:
        return "noop"
    i = rng.randrange(a.size)
    kind = rng.choice(["bit", "bit", "value"])
    if kind == "bit":
        bits = a.view(f"<u{a.itemsize}")
        bits[i] ^= np.array(1, bits.dtype) << np.array(rng.randrange(8 * a.itemsize), bits.dtype)
    elif a.dtype.kind == "f":
        a[i] = rng.choice([0.0, -a[i], 2 * a[i] + 1, 1e30, 1e-40, a[i] + 1, a[i] - 1])
    else:
        a[i] = rng.choice([0, a[i] + 1, a[i] - 1, a[i] * 2, -1])
    obj["data"] = base64.b64encode(a.tobytes()).decode()
    return kind


def random_json(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if depth > 2 or r < 0.5:
        return rng.choice([None, True, False, 0, -1, 2**40, "", "0", "1/2", "0x1.0p+0", "x"])
    if r < 0.75:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice(["a", "data", "shape"]): random_json(rng, depth + 1)}


def mutate(doc: dict[str, Any], rng: random.Random) -> tuple[str, bytes]:
    """One random mutation of a certificate: (kind, bytes to check)."""
    d = copy.deepcopy(doc)
    op = rng.choice(["claim", "number", "weight", "weight_rehash", "lemma_array", "lemma_array",
                     "dims", "structure", "structure", "bytes"])  # fmt: skip
    if op == "claim":
        d["claim"]["correct_count"] = nudge_number(d["claim"]["correct_count"], rng)
    elif op == "number":
        strings = [p for p in paths(d) if isinstance(get(d, p), str) and p[:1] != ("model",)]
        strings = [p for p in strings if p[-1] not in ("dtype", "data", "name", "format")]
        if strings:
            p = rng.choice(strings)
            put(d, p, nudge_number(get(d, p), rng))
    elif op in ("weight", "weight_rehash"):
        key = rng.choice(sorted(d["model"]["weights"]))
        mutate_array(d["model"]["weights"][key], rng)
        if op == "weight_rehash":  # a consistent certificate of a different model
            from checker.format import decode_array, weights_sha256

            w = {k: decode_array(a, k) for k, a in d["model"]["weights"].items()}
            if all(np.isfinite(a).all() for a in w.values()):
                d["model"]["sha256"] = weights_sha256(w)
    elif op == "lemma_array":
        found = [p for p in arrays(d) if p[0] in ("witnesses", "lemmas", "claim")]  # + allowance
        if not found:
            return mutate(doc, rng)
        mutate_array(get(d, rng.choice(found)), rng)
    elif op == "dims":
        key = rng.choice(["n_ctx", "d_vocab", "d_model", "d_head"])
        d["model"][key] = max(0, d["model"][key] + rng.choice([-1, 1]))
    elif op == "structure":
        p = rng.choice(paths(d)[1:])
        parent = get(d, p[:-1])
        action = rng.choice(["delete", "replace", "add"])
        if action == "delete" and isinstance(parent, dict):
            del parent[p[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent["extra"] = random_json(rng)
        else:
            put(d, p, random_json(rng))
    else:
        data = bytearray(dumps(d))
        i = rng.randrange(len(data))
        action = rng.choice(["truncate", "flip", "insert"])
        if action == "truncate":
            return "bytes_truncate", bytes(data[:i])
        if action == "flip":
            data[i] ^= 1 << rng.randrange(8)
        else:
            data.insert(i, rng.choice(b'{}[]",:0123456789aeEnN-+.\\ \n\xff'))
        return f"bytes_{action}", bytes(data)
    return op, dumps(d)


def check_bytes(data: bytes, path: Path) -> tuple[int, str]:
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = checker_main(["verify", str(path), "--time-limit", "60"])
    return status, out.getvalue() + err.getvalue()  # a verdict on stdout or an error on stderr


def campaign(sources: list[Path], n: int, seed: int, tmp: Path,
             progress: Callable[[int], None] | None = None) -> Counter:  # fmt: skip
    """Run n mutations; return counts by outcome (and by mutation kind)."""
    rng = random.Random(seed)
    docs = [json.loads(p.read_bytes()) for p in sources]
    totals: Counter = Counter()
    for i in range(n):
        kind, data = mutate(rng.choice(docs), rng)
        status, out = check_bytes(data, tmp / "mutant.json")
        totals["tried"] += 1
        totals[f"kind:{kind}"] += 1
        if len(out.splitlines()) != 1 or "internal error" in out or status not in (0, 1, 2):
            totals["crash"] += 1
            totals[f"crash:{kind}:{out.strip()[:200]}"] += 1
        elif status == 0:
            cert = parse(data)
            truth = exact_count(cert.weights, cert.model_sha256, float32_floor(cert))
            outcome = "accepted_true" if cert.claimed_count <= truth else "accepted_false"
            totals[outcome] += 1
            if outcome == "accepted_false":
                totals[f"false:{kind}:{seed}:{i}"] += 1
        else:
            totals[f"rejected_exit{status}"] += 1
            totals["no_verdict"] += "no verdict" in out  # time limit, float range: not a crash
        if progress:
            progress(i)
    return totals
