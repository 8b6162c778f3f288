"""Build certificates/small/ (valid certificates of small models) and certificates/invalid/.

    python bench/make_invalid_corpus.py [--retrain]

certificates/small/ holds small models (d_vocab 4-8, K 2-3) and their certificates; they are the
sources of the invalid corpus and of the mutation campaign. certificates/invalid/ holds planted-bad
certificates; README.md there lists each file with the exit status the checker must give, a
substring of its one-line message, and the reason (tests/test_invalid.py reads that table).
Claims in the rejected (exit 1) entries are checked false against the exact oracle here.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from certify.certificate import Proof, build, encode_array
from certify.circuits import circuits
from certify.model import load, save, validate
from certify.strategies import prove
from tests.certgen import (
    INVALID,
    SMALL,
    brute_doc,
    dumps,
    random_weights,
    run_checker,
    tiny_weights,
)
from tests.oracle import exact_correct_count

# name -> (K, d_vocab, d_model, seed, steps): trained with the paper's recipe, fewer steps
TRAINED = {"max2_v4": (2, 4, 8, 1, 300), "max3_v6": (3, 6, 8, 1, 500), "max3_v8": (3, 8, 8, 2, 600)}
_DTYPE = {"float32": "<f4", "float64": "<f8", "int64": "<i8"}
Entry = tuple[str, int, str, str, bytes]  # name, exit status, message substring, reason, bytes


def small_models(retrain: bool) -> dict[str, dict[str, np.ndarray]]:
    SMALL.mkdir(parents=True, exist_ok=True)
    models = {"tiny_v4_k2": tiny_weights()}
    for name, (k, v, d, seed, steps) in TRAINED.items():
        path = SMALL / f"{name}.safetensors"
        if retrain or not path.exists():
            from certify.model import MaxOfKConfig
            from certify.train import train

            config = MaxOfKConfig(n_ctx=k, d_vocab=v, d_model=d, d_head=d)
            save(train(config, seed=seed, steps=steps), path)
        models[name] = load(path)[1]
    save(models["tiny_v4_k2"], SMALL / "tiny_v4_k2.safetensors")
    return models


def set_at(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of doc with the '/'-separated field set (``...`` deletes it)."""
    out = copy.deepcopy(doc)
    *parents, last = path.split("/")
    node = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, "<f4").tobytes()).decode()


def rehashed(weights: dict[str, np.ndarray], edit: Callable[[dict], None], claim: int) -> bytes:
    """A certificate of the edited weights (hash recomputed) that keeps the old claim."""
    w = {k: a.copy() for k, a in weights.items()}
    edit(w)
    count = exact_correct_count(w)
    assert count < claim, f"edit did not lower the exact count ({count} >= {claim})"
    return dumps(brute_doc(w, claim))


def cubic_doc(weights: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The prover's cubic certificate and its report (which holds the unshaded margins)."""
    config, weights = validate(weights)
    proof = prove("cubic", config, weights, circuits(config, weights))
    return build(config, weights, proof), proof.report


def first_rejected(candidates: list[bytes]) -> bytes | None:
    """The first candidate the checker rejects (exit 1): a lemma it cannot establish."""
    path = INVALID / "_candidate.json"
    try:
        for data in candidates:
            path.write_bytes(data)
            if run_checker("verify", str(path))[0] == 1:
                return data
    finally:
        path.unlink(missing_ok=True)
    return None


def case_limits(v: int, k: int) -> np.ndarray:
    """[q, m, c]: how many tokens lemma (q, m, c) of the cubic proof can cover (docs/format.md)."""
    q, m, c = np.ogrid[:v, :v, :k]
    exists = (q == m) | ((q < m) & (c <= k - 2))
    return np.where(exists, np.where(c == 0, 1, m), 0)


def with_lemma(doc: dict[str, Any], name: str, a: np.ndarray) -> bytes:
    """doc with lemmas[name] replaced by array a, encoded as is (NaN included)."""
    dtype = {"f": "float64", "i": "int64"}[a.dtype.kind]  # a is float64 or int64
    data = base64.b64encode(np.ascontiguousarray(a, a.dtype.newbyteorder("<")).tobytes())
    data = data.decode()
    return dumps(
        set_at(doc, f"lemmas/{name}", {"dtype": dtype, "shape": list(a.shape), "data": data})
    )


def cubic_corpus(weights: dict[str, np.ndarray]) -> list[Entry]:
    """Planted-bad cubic certificates of max3_v6: lemmas nudged, raised, malformed."""
    doc, report = cubic_doc(weights)
    proved = np.frombuffer(base64.b64decode(doc["lemmas"]["proved"]["data"]), "<i8")
    proved = proved.reshape(doc["lemmas"]["proved"]["shape"])
    margin = np.frombuffer(base64.b64decode(doc["lemmas"]["margin"]["data"]), "<f8")
    margin = margin.reshape(proved.shape)
    cases = [tuple(i) for i in np.argwhere(proved > 0)]
    nudged = []
    for case in cases:  # one ulp above the prover's unshaded (float64) margin
        m = margin.copy()
        m[case] = np.nextafter(report["tight_margin"][case], np.inf)
        nudged.append(with_lemma(doc, "margin", m))
    raised = []  # a case with tokens left unproved claims one more (with a tiny margin if 0)
    limits = case_limits(*proved.shape[1:])
    for case in [tuple(i) for i in np.argwhere(proved < limits)]:
        p, m = proved.copy(), margin.copy()
        p[case] += 1
        m[case] = max(m[case], 2.0**-40)
        raised.append(
            dumps(
                set_at(
                    set_at(doc, "lemmas/proved", encode_array(p)), "lemmas/margin", encode_array(m)
                )
            )
        )
    nan, neg = margin.copy(), proved.copy()
    nan[cases[0]], neg[cases[0]] = np.nan, -1
    count = int(doc["claim"]["correct_count"])
    return [
        (
            "cubic_lemma_margin_one_ulp",
            1,
            "lemmas (q=",
            "cubic: one margin set one ulp above the prover's unshaded float64 bound",
            first_rejected(nudged),
        ),
        (
            "cubic_lemma_proved_plus_one",
            1,
            "lemmas (q=",
            "cubic: one lemma claims one more proved token than holds",
            first_rejected(raised),
        ),
        (
            "cubic_claim_plus_one",
            1,
            "claim.correct_count",
            f"cubic: claim {count + 1}, one more than the lemmas cover",
            dumps(set_at(doc, "claim/correct_count", str(count + 1))),
        ),
        (
            "cubic_lemma_margin_nan",
            2,
            "lemmas.margin: contains NaN",
            "cubic: a NaN margin",
            with_lemma(doc, "margin", nan),
        ),
        (
            "cubic_lemma_proved_negative",
            2,
            "lemmas.proved",
            "cubic: a negative proved count",
            with_lemma(doc, "proved", neg),
        ),
        (
            "cubic_lemma_missing",
            2,
            "margin: missing",
            "cubic: no margin lemmas",
            dumps(set_at(doc, "lemmas/margin", ...)),
        ),
        (
            "cubic_lemma_wrong_shape",
            2,
            "lemmas.proved.shape",
            "cubic: proved lemmas for K = 2",
            with_lemma(doc, "proved", proved[:, :, :2].copy()),
        ),
        (
            "cubic_lemma_wrong_dtype",
            2,
            "lemmas: proved must be int64",
            "cubic: proved stored as float64",
            with_lemma(doc, "proved", proved.astype(np.float64)),
        ),
    ]


def subcubic_doc(weights: dict[str, np.ndarray], alias: str = "best-subcubic") -> dict[str, Any]:
    config, weights = validate(weights)
    return build(config, weights, prove(alias, config, weights, circuits(config, weights)))


def nudged_elements(doc: dict[str, Any], where: str, limit: int = 200) -> list[bytes]:
    """doc with one element of the array at ``where`` moved by one ulp (floats) or one (ints)."""
    obj = doc
    for key in where.split("/"):
        obj = obj[key]
    a = np.frombuffer(base64.b64decode(obj["data"]), _DTYPE[obj["dtype"]]).reshape(obj["shape"])
    out = []
    for i in list(np.ndindex(a.shape))[:limit]:
        for step in (1, -1):
            b = a.copy()
            b[i] = np.nextafter(b[i], step * np.inf) if b.dtype.kind == "f" else b[i] + step
            data = base64.b64encode(b.tobytes()).decode()
            out.append(dumps(set_at(doc, where, {**obj, "data": data})))
    return out


def subcubic_corpus(weights: dict[str, np.ndarray]) -> list[Entry]:
    """Planted-bad sub-cubic certificates: a witness or a lemma moved by the smallest step."""
    doc = subcubic_doc(weights)
    entries = []
    for part in ("witnesses", "lemmas"):
        for name in sorted(doc[part]):
            if not isinstance(doc[part][name], dict) or "data" not in doc[part][name]:
                continue
            bad = first_rejected(nudged_elements(doc, f"{part}/{name}"))
            if bad is not None:
                reason = f"subcubic: one element of {part}.{name} moved by one ulp (or by one)"
                entries.append((f"subcubic_{part}_{name}_nudged", 1, "REJECTED", reason, bad))
    return entries


def float32_doc(weights: dict[str, np.ndarray], strategy: str) -> dict[str, Any]:
    """A float32-execution certificate (``certify emit --float32-execution``)."""
    import dataclasses

    from certify.float32 import allowance

    config, weights = validate(weights)
    c = dataclasses.replace(circuits(config, weights), allowance=allowance(config, weights))
    return build(config, weights, prove(strategy, config, weights, c))


def hybrid_doc(weights: dict[str, np.ndarray]) -> dict[str, Any]:
    config, weights = validate(weights)
    return build(config, weights, prove("hybrid", config, weights, circuits(config, weights)))


def hybrid_corpus(weights: dict[str, np.ndarray]) -> list[Entry]:
    """Planted-bad hybrid certificates of max3_v6: a case claim raised, a remainder or a lemma
    dropped, malformed lemma arrays."""
    doc = hybrid_doc(weights)
    arrays = {
        name: np.frombuffer(base64.b64decode(a["data"]), "<i8").reshape(a["shape"]).copy()
        for name, a in doc["lemmas"].items()
    }
    enum, correct, lemma = arrays["enumerate"], arrays["correct"], arrays["lemma"]

    def edited(name: str, index: tuple, value: int) -> bytes:
        a = arrays[name].copy()
        a[index] = value
        return with_lemma(doc, name, a)

    raised = [edited("correct", tuple(i), correct[tuple(i)] + 1) for i in np.argwhere(enum > 0)]
    dropped = [edited("enumerate", tuple(i), 0) for i in np.argwhere(enum > 0)]
    no_lemma = [edited("lemma", (m,), 0) for m in np.flatnonzero(lemma)[::-1]]
    claim = int(doc["claim"]["correct_count"])
    return [
        ("hybrid_case_claim_plus_one", 1, "lemmas.correct[", "hybrid: one enumerated case "
         "claims one more correct input than it has", first_rejected(raised)),
        ("hybrid_enumerated_case_dropped", 1, "lemmas.correct[", "hybrid: a case's remainder "
         "no longer enumerated, its claim kept", first_rejected(dropped)),
        ("hybrid_lemma_dropped", 1, "lemmas.correct[", "hybrid: the lemmas of one max token "
         "switched off, their claims kept", first_rejected(no_lemma)),
        ("hybrid_claim_plus_one", 1, "claim.correct_count", f"hybrid: claim {claim + 1}, one "
         "more than the cases hold", dumps(set_at(doc, "claim/correct_count", str(claim + 1)))),
        ("hybrid_enumerate_three", 2, "lemmas.enumerate", "hybrid: an enumerate flag of 3",
         edited("enumerate", (0, 0, 0), 3)),
        ("hybrid_correct_float64", 2, "lemmas.correct", "hybrid: correct stored as float64",
         with_lemma(doc, "correct", correct.astype(np.float64))),
        ("hybrid_lemma_missing", 2, "lemmas.lemma", "hybrid: no lemma flags",
         dumps(set_at(doc, "lemmas/lemma", ...))),
    ]  # fmt: skip


def corpus(models: dict[str, dict[str, np.ndarray]]) -> list[Entry]:
    tiny = brute_doc(models["tiny_v4_k2"])
    good = dumps(tiny)
    k3 = brute_doc(models["max3_v6"])
    exact_k3 = exact_correct_count(models["max3_v6"])
    W = "model/weights/"
    E = []

    def add(name: str, status: int, match: str, reason: str, data: Any) -> None:
        E.append((name, status, match, reason, data if isinstance(data, bytes) else dumps(data)))

    def replace(old: bytes, new: bytes, count: int = 1) -> bytes:
        assert old in good, old
        return good.replace(old, new, count)

    # --- false claims about real weights: exit 1 (rejected) ---
    add(
        "claim_plus_one",
        1,
        "claim.correct_count",
        "tiny model: claim raised by one input (11 of 16; exactly 10 are correct)",
        set_at(tiny, "claim/correct_count", "11"),
    )
    add(
        "claim_plus_one_k3",
        1,
        "claim.correct_count",
        f"max3_v6: claim {exact_k3 + 1}, one more than the exact count",
        set_at(k3, "claim/correct_count", str(exact_k3 + 1)),
    )
    add(
        "claim_all_inputs",
        1,
        "claim.correct_count",
        "tiny model: claims all 16 inputs correct",
        set_at(tiny, "claim/correct_count", "16"),
    )

    def flip_sign_bit(w: dict) -> None:
        w["unembed.W_U"].view(np.uint32)[3, 3] ^= np.uint32(1 << 31)

    add(
        "weight_bit_flipped_rehashed",
        1,
        "claim.correct_count",
        "tiny model: sign bit of W_U[3,3] flipped, sha256 recomputed; the claim of 10 is now false",
        rehashed(models["tiny_v4_k2"], flip_sign_bit, 10),
    )

    def zero_row(w: dict) -> None:
        w["embed.W_E"][2] = 0

    add(
        "weight_changed_rehashed",
        1,
        "claim.correct_count",
        "tiny model: W_E[2] zeroed and sha256 recomputed; the old claim of 10 is now false",
        rehashed(models["tiny_v4_k2"], zero_row, 10),
    )

    # --- the model's identity and dimensions: exit 2 ---
    flipped = base64.b64decode(tiny["model"]["weights"]["unembed.W_U"]["data"])
    flipped = bytes([flipped[0] ^ 1, *flipped[1:]])
    add(
        "weight_bit_flipped",
        2,
        "model.sha256: does not match",
        "one bit of W_U flipped, sha256 left as it was",
        set_at(tiny, W + "unembed.W_U/data", base64.b64encode(flipped).decode()),
    )
    add(
        "wrong_sha256",
        2,
        "model.sha256: does not match",
        "sha256 of another model",
        set_at(tiny, "model/sha256", "ab" * 32),
    )
    add(
        "sha256_uppercase",
        2,
        "model.sha256",
        "sha256 in upper case (must be lower-case hex)",
        set_at(tiny, "model/sha256", tiny["model"]["sha256"].upper()),
    )
    add(
        "wrong_k",
        2,
        "pos_embed.W_pos.shape",
        "n_ctx 3 but weights for K = 2",
        set_at(tiny, "model/n_ctx", 3),
    )
    add(
        "wrong_d_vocab",
        2,
        "embed.W_E.shape",
        "d_vocab 5 but weights for d_vocab 4",
        set_at(tiny, "model/d_vocab", 5),
    )
    add("zero_k", 2, "model.n_ctx: must be in 1..64", "n_ctx 0", set_at(tiny, "model/n_ctx", 0))
    add(
        "wrong_shape_transposed",
        2,
        "W_O.shape",
        "W_O declared [1, 2, 8] (same size, wrong shape)",
        set_at(tiny, W + "blocks.0.attn.W_O/shape", [1, 2, 8]),
    )
    add(
        "wrong_shape_rank",
        2,
        "embed.W_E.shape",
        "W_E declared as a flat [16] array",
        set_at(tiny, W + "embed.W_E/shape", [16]),
    )
    add(
        "declared_2gb_array",
        2,
        "embed.W_E.shape",
        "W_E declares shape [524288, 1024] (2 GiB of float32) with 64 bytes of data",
        set_at(tiny, W + "embed.W_E/shape", [524288, 1024]),
    )
    add(
        "data_too_short",
        2,
        "embed.W_E.data: length",
        "W_E data is 12 bytes short",
        set_at(tiny, W + "embed.W_E/data", b64(np.zeros(13, np.float32))),
    )
    add(
        "bad_base64",
        2,
        "embed.W_E.data",
        "W_E data contains characters outside base64",
        set_at(tiny, W + "embed.W_E/data", "!" * 88),
    )
    add(
        "base64_padding_trick",
        2,
        "b_U.data: decodes to 18 bytes",
        "b_U data has the length of 16 bytes of base64 but no padding, so decodes to 18",
        set_at(tiny, W + "unembed.b_U/data", "A" * 24),
    )
    add(
        "weights_float64",
        2,
        "embed.W_E.dtype",
        "W_E stored as float64 (weights must be float32)",
        set_at(tiny, W + "embed.W_E/dtype", "float64"),
    )
    add(
        "missing_weight",
        2,
        "unembed.b_U: missing",
        "b_U left out",
        set_at(tiny, W + "unembed.b_U", ...),
    )
    add(
        "extra_weight",
        2,
        "unexpected key 'blocks.0.mlp.W_in'",
        "a weight the model does not have",
        set_at(tiny, W + "blocks.0.mlp.W_in", tiny["model"]["weights"]["unembed.b_U"]),
    )
    nan = np.eye(4, dtype=np.float32)
    nan[1, 2] = np.nan
    add(
        "nan_weight",
        2,
        "embed.W_E: contains NaN",
        "a NaN inside W_E's float32 data",
        set_at(tiny, W + "embed.W_E/data", b64(nan)),
    )
    add(
        "inf_weight",
        2,
        "unembed.b_U: contains NaN or infinity",
        "+inf inside b_U's float32 data",
        set_at(tiny, W + "unembed.b_U/data", b64(np.array([0, np.inf, 0, 0], np.float32))),
    )
    # --- the claim's encoding: exit 2 ---
    add(
        "claim_exceeds_total",
        2,
        "exceeds the 16 inputs",
        "claim 17 of 16",
        set_at(tiny, "claim/correct_count", "17"),
    )
    add(
        "claim_total_wrong",
        2,
        "claim.total: must be d_vocab^n_ctx",
        "total 15 instead of 4^2",
        set_at(tiny, "claim/total", "15"),
    )
    add(
        "claim_negative",
        2,
        "claim.correct_count",
        "claim -1",
        set_at(tiny, "claim/correct_count", "-1"),
    )
    add(
        "claim_leading_zero",
        2,
        "claim.correct_count",
        "claim '010' (no leading zeros)",
        set_at(tiny, "claim/correct_count", "010"),
    )
    add(
        "claim_rational",
        2,
        "claim.correct_count",
        "claim '21/2' (a count is an integer)",
        set_at(tiny, "claim/correct_count", "21/2"),
    )
    add(
        "million_digit_integer",
        2,
        "claim.correct_count: longer than 4096",
        "claim is a 1,000,000-digit integer string",
        set_at(tiny, "claim/correct_count", "9" * 1_000_000),
    )
    add(
        "million_digit_literal",
        2,
        "integer literal",
        "n_ctx is a bare 1,000,000-digit JSON integer",
        replace(b'"n_ctx": 2', b'"n_ctx": ' + b"7" * 1_000_000),
    )
    # --- JSON-level attacks: exit 2 ---
    add(
        "nan_literal",
        2,
        "NaN",
        "n_ctx is the non-JSON literal NaN",
        replace(b'"n_ctx": 2', b'"n_ctx": NaN'),
    )
    add(
        "infinity_literal",
        2,
        "Infinity",
        "d_model is the non-JSON literal Infinity",
        replace(b'"d_model": 4', b'"d_model": Infinity'),
    )
    add(
        "float_literal",
        2,
        "float literal",
        "n_ctx written as 2.0",
        replace(b'"n_ctx": 2', b'"n_ctx": 2.0'),
    )
    add(
        "duplicate_key_top",
        2,
        "duplicate key 'claim'",
        "two 'claim' objects (a parser could keep either)",
        replace(b'"claim": {', b'"claim": {"correct_count": "16", "total": "16"}, "claim": {'),
    )
    add(
        "duplicate_key_nested",
        2,
        "duplicate key 'correct_count'",
        "correct_count given twice",
        replace(b'"correct_count": "10"', b'"correct_count": "16", "correct_count": "10"'),
    )
    add(
        "unknown_version",
        2,
        "format_version: unsupported version 2",
        "format_version 2",
        set_at(tiny, "format_version", 2),
    )
    add(
        "version_string",
        2,
        "format_version: unsupported",
        "format_version '1' (a string)",
        set_at(tiny, "format_version", "1"),
    )
    add(
        "version_true",
        2,
        "format_version: unsupported",
        "format_version true (JSON true is not 1)",
        set_at(tiny, "format_version", True),
    )
    add(
        "wrong_format",
        2,
        "format: must be",
        "format names another file type",
        set_at(tiny, "format", "compact-proofs/model"),
    )
    add(
        "truncated_half",
        2,
        "not valid JSON",
        "the first half of a valid certificate",
        good[: len(good) // 2],
    )
    add(
        "truncated_last_byte",
        2,
        "not valid JSON",
        "a valid certificate without its final brace",
        good.rstrip()[:-1],
    )
    add("empty_file", 2, "not valid JSON", "an empty file", b"")
    add(
        "not_utf8",
        2,
        "not UTF-8",
        "a Latin-1 byte inside a string",
        replace(b'"certify"', b'"certif\xff"'),
    )
    add(
        "deep_nesting",
        2,
        "more than 100000 JSON values",
        "witnesses nested 100,000 lists deep",
        replace(
            b'"witnesses": {}', b'"witnesses": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        ),
    )
    add(
        "moderate_nesting",
        2,
        "nests deeper",
        "lemmas nested 40 objects deep",
        replace(b'"lemmas": {}', b'"lemmas": ' + b'{"a": ' * 40 + b"{}" + b"}" * 40),
    )
    # --- wrong types everywhere: exit 2 ---
    types = [
        (
            "type_top_level_array",
            "certificate: must be an object",
            "the whole file is a JSON array",
            [tiny],
        ),
        (
            "type_top_level_string",
            "certificate: must be an object",
            "the whole file is a JSON string",
            "certificate",
        ),
        (
            "type_model_list",
            "model: must be an object",
            "model is a list",
            set_at(tiny, "model", []),
        ),
        (
            "type_weights_string",
            "model.weights: must be an object",
            "weights is a string",
            set_at(tiny, W[:-1], "W_E"),
        ),
        (
            "type_weight_null",
            "embed.W_E: must be an object",
            "a weight is null",
            set_at(tiny, W + "embed.W_E", None),
        ),
        (
            "type_shape_string",
            "embed.W_E.shape: must be an array",
            "a shape is a string",
            set_at(tiny, W + "embed.W_E/shape", "4,4"),
        ),
        (
            "type_shape_bool",
            "embed.W_E.shape[0]: must be an integer",
            "a shape entry is true",
            set_at(tiny, W + "embed.W_E/shape", [True, 4]),
        ),
        (
            "type_data_number",
            "embed.W_E.data: must be a string",
            "weight data is a number",
            set_at(tiny, W + "embed.W_E/data", 0),
        ),
        (
            "type_n_ctx_string",
            "model.n_ctx: must be an integer",
            "n_ctx is the string '2'",
            set_at(tiny, "model/n_ctx", "2"),
        ),
        (
            "type_n_ctx_bool",
            "model.n_ctx: must be an integer",
            "n_ctx is true",
            set_at(tiny, "model/n_ctx", True),
        ),
        (
            "type_strategy_string",
            "strategy: must be an object",
            "strategy is the string 'brute'",
            set_at(tiny, "strategy", "brute"),
        ),
        (
            "type_strategy_name_int",
            "strategy.name: must be one of",
            "strategy name is 0",
            set_at(tiny, "strategy/name", 0),
        ),
        (
            "type_options_list",
            "strategy.options: must be an object",
            "options is a list",
            set_at(tiny, "strategy/options", []),
        ),
        (
            "type_witnesses_null",
            "witnesses: must be an object",
            "witnesses is null",
            set_at(tiny, "witnesses", None),
        ),
        (
            "type_lemmas_list",
            "lemmas: must be an object",
            "lemmas is a list",
            set_at(tiny, "lemmas", [1]),
        ),
        (
            "type_claim_list",
            "claim: must be an object",
            "claim is a list",
            set_at(tiny, "claim", ["10", "16"]),
        ),
        (
            "type_claim_int",
            "claim.correct_count: must be a string",
            "correct_count is a bare integer",
            set_at(tiny, "claim/correct_count", 10),
        ),
        (
            "type_sha256_int",
            "model.sha256: must be a string",
            "sha256 is a number",
            set_at(tiny, "model/sha256", 1),
        ),
    ]
    for name, match, reason, doc in types:
        add(name, 2, match, reason, doc)
    add(
        "unknown_strategy",
        2,
        "strategy.name: must be one of",
        "strategy 'magic'",
        set_at(tiny, "strategy/name", "magic"),
    )
    add("missing_claim", 2, "claim: missing", "no claim", set_at(tiny, "claim", ...))
    add(
        "extra_top_level_key",
        2,
        "unexpected key 'trust_me'",
        "an unknown top-level field",
        {**tiny, "trust_me": True},
    )
    # --- hostile strings and sizes: refused before any large allocation (exit 2) ---
    for name, version, why in [
        ("version_lone_surrogate", "\ud800", "a lone UTF-16 surrogate (unprintable)"),
        ("version_non_ascii", "versión", "non-ASCII (unprintable on an ASCII terminal)"),
    ]:
        add(name, 2, "format_version: unsupported version", f"format_version is {why}",
            set_at(tiny, "format_version", version))  # fmt: skip
    peeled = json.loads((SMALL / "max2_v4.subcubic.cert.json").read_bytes())
    huge = {"dtype": "float64", "shape": [0] + [2**20] * 5, "data": ""}
    add("subcubic_peel_huge_shape", 2, "peels[0].x: shape must be",
        "a sub-cubic peel declaring shape [0, 2^20, 2^20, 2^20, 2^20, 2^20] and no data",
        set_at(peeled, "witnesses/peels/0/x", huge))  # fmt: skip
    config, weights = validate(random_weights(4096, 64, 1, seed=0))
    add("declared_v4096_k64", 2, "over --max-memory",
        "67 KB brute-force certificate of a d_model-1 model with d_vocab 4096, K 64 (claim 0)",
        build(config, weights, Proof(strategy="brute", correct_count=0)))  # fmt: skip
    add("many_empty_lists", 2, "more than 100000 JSON values", "witnesses: 120,000 empty lists",
        {**tiny, "witnesses": {"x": [[]] * 120_000}})  # fmt: skip
    k3 = models["max3_v6"]
    return E + cubic_corpus(k3) + subcubic_corpus(k3) + hybrid_corpus(k3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retrain", action="store_true", help="retrain the small models")
    args = parser.parse_args()
    models = small_models(args.retrain)
    for name, weights in models.items():
        doc = brute_doc(weights)
        assert int(doc["claim"]["correct_count"]) == exact_correct_count(weights), name
        (SMALL / f"{name}.brute.cert.json").write_bytes(dumps(doc))
        (SMALL / f"{name}.cubic.cert.json").write_bytes(dumps(cubic_doc(weights)[0]))
        (SMALL / f"{name}.subcubic.cert.json").write_bytes(dumps(subcubic_doc(weights)))
        (SMALL / f"{name}.hybrid.cert.json").write_bytes(dumps(hybrid_doc(weights)))
        for alias in ("best-lowrank", "best-quadratic"):  # the options beyond the paper
            (SMALL / f"{name}.{alias}.cert.json").write_bytes(dumps(subcubic_doc(weights, alias)))
        for strategy in ("brute", "cubic", "hybrid", "best-subcubic"):  # docs/float32.md
            doc32 = float32_doc(weights, strategy)
            (SMALL / f"{name}.{strategy}.float32.cert.json").write_bytes(dumps(doc32))
        claim = doc["claim"]
        print(f"small/{name}.brute.cert.json: {claim['correct_count']} of {claim['total']}")
    INVALID.mkdir(parents=True, exist_ok=True)
    for old in INVALID.glob("*.json"):
        old.unlink()
    entries = corpus(models)
    rows = ["| file | exit | message contains | reason |", "|---|---:|---|---|"]
    for name, status, match, reason, data in entries:
        (INVALID / f"{name}.json").write_bytes(data)
        rows.append(f"| {name}.json | {status} | `{match}` | {reason} |")
    readme = (
        "# Invalid certificates\n\nPlanted-bad certificates, built by "
        "`python bench/make_invalid_corpus.py` from the small\n"
        "models in `certificates/small/`. `checker verify` must refuse each one with the exit\n"
        "status below (1: a false claim about real weights; 2: an unusable file) and a one-line\n"
        "message containing the given text. `tests/test_invalid.py` runs them all.\n\n"
        + "\n".join(rows)
        + "\n"
    )
    (INVALID / "README.md").write_text(readme)
    size = sum(p.stat().st_size for p in INVALID.iterdir())
    print(f"{len(entries)} invalid certificates, {size / 2**20:.1f} MiB -> {INVALID}")


if __name__ == "__main__":
    main()
