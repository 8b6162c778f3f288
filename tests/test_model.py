"""The model family: TransformerLens state_dicts, bad files rejected, the circuit tables."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from certify.circuits import circuits, logits
from certify.model import MaxOfKConfig, ModelError, init_weights, load, save, torch_module
from certify.strategies.brute import correct_count

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "certificates" / "models" / "max4_seed123.safetensors"


def transformer_lens_state_dict(config: MaxOfKConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict with HookedTransformer's exact key set, shapes and dtypes for this config
    (attn_only, n_layers=1, n_heads=1, normalization_type=None, positional_embedding 'standard')."""
    gen = torch.Generator().manual_seed(seed)
    v, k, d, h = config.d_vocab, config.n_ctx, config.d_model, config.d_head
    shapes = {
        "embed.W_E": (v, d),
        "pos_embed.W_pos": (k, d),
        "blocks.0.attn.W_Q": (1, d, h),
        "blocks.0.attn.W_O": (1, h, d),
        "blocks.0.attn.b_Q": (1, h),
        "blocks.0.attn.b_O": (d,),
        "blocks.0.attn.W_K": (1, d, h),
        "blocks.0.attn.b_K": (1, h),
        "blocks.0.attn.W_V": (1, d, h),
        "blocks.0.attn.b_V": (1, h),
        "unembed.W_U": (d, v),
        "unembed.b_U": (v,),
    }
    state = {key: torch.randn(shape, generator=gen) * 0.3 for key, shape in shapes.items()}
    state["blocks.0.attn.mask"] = torch.tril(torch.ones(k, k)).bool()
    state["blocks.0.attn.IGNORE"] = torch.tensor(-1e5)
    return state


def test_transformer_lens_state_dict_loads_unchanged(tmp_path: Path) -> None:
    config = MaxOfKConfig(n_ctx=3, d_vocab=7, d_model=6, d_head=5)
    state = transformer_lens_state_dict(config)
    torch.save(state, tmp_path / "tl.pt")
    loaded_config, weights = load(tmp_path / "tl.pt")
    assert loaded_config == config
    for key, tensor in state.items():
        if key in weights:
            assert np.array_equal(weights[key], tensor.numpy())
    assert "blocks.0.attn.mask" not in weights


def test_pt_and_safetensors_round_trip(tmp_path: Path) -> None:
    config = MaxOfKConfig(n_ctx=2, d_vocab=5, d_model=4, d_head=4)
    weights = init_weights(config, seed=3)
    for name in ("m.pt", "m.safetensors"):
        save(weights, tmp_path / name)
        loaded_config, loaded = load(tmp_path / name)
        assert loaded_config == config
        assert all(np.array_equal(loaded[k], weights[k]) for k in weights)


def _broken_files(tmp_path: Path) -> dict[str, Path]:
    config = MaxOfKConfig(n_ctx=2, d_vocab=5, d_model=4, d_head=4)
    good = {k: torch.from_numpy(v) for k, v in init_weights(config, seed=1).items()}
    files = {}

    def save_pt(name: str, obj: object) -> None:
        files[name] = tmp_path / f"{name}.pt"
        torch.save(obj, files[name])

    save_pt("missing key", {k: v for k, v in good.items() if k != "unembed.W_U"})
    save_pt("wrong shape", {**good, "embed.W_E": torch.zeros(5, 3)})
    nan = good["unembed.W_U"].clone()
    nan[0, 0] = math.nan
    save_pt("NaN weight", {**good, "unembed.W_U": nan})
    save_pt("integer dtype", {**good, "embed.W_E": torch.zeros(5, 4, dtype=torch.int64)})
    save_pt("not a state_dict", [1, 2, 3])
    save_pt("unknown key", {**good, "blocks.0.mlp.W_in": torch.zeros(4, 4)})
    save(init_weights(config, 1), tmp_path / "ok.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes((tmp_path / "ok.safetensors").read_bytes()[:100])
    files["truncated safetensors"] = truncated
    save_pt("ok", good)
    truncated_pt = tmp_path / "truncated.pt"
    truncated_pt.write_bytes(files.pop("ok").read_bytes()[:300])
    files["truncated pt"] = truncated_pt

    class Evil:
        def __reduce__(self):  # a pickle that would run code if unpickled unsafely
            return (print, ("pwned",))

    save_pt("arbitrary pickle", {"embed.W_E": Evil()})
    return files


def test_bad_model_files_raise_one_line_errors(tmp_path: Path) -> None:
    for label, path in _broken_files(tmp_path).items():
        with pytest.raises(ModelError) as err:
            load(path)
        message = str(err.value)
        assert "\n" not in message and str(path) in message, label


def test_bad_model_file_cli_exits_nonzero_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from certify.cli import main

    for label, path in _broken_files(tmp_path).items():
        assert main(["accuracy", str(path)]) == 2, label
        out, err = capsys.readouterr()
        assert "Traceback" not in err and "pwned" not in out, label
        assert len(err.strip().splitlines()) == 1, (label, err)


def test_cli_error_is_one_line_in_a_fresh_process(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "certify.cli", "accuracy", str(tmp_path / "missing.pt")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_circuit_logits_match_torch_forward_pass() -> None:
    config, weights = load(SHIPPED)
    tokens = np.random.default_rng(0).integers(0, config.d_vocab, (10_000, config.n_ctx))
    model = torch_module(config, weights).double()
    with torch.no_grad():
        expected = model(torch.from_numpy(tokens)).numpy()
    assert np.max(np.abs(logits(circuits(config, weights), tokens) - expected)) < 1e-9


def test_accuracy_counts_agree_with_torch_forward_pass() -> None:
    """The table count equals a float64 torch forward pass over every input of a small model."""
    config = MaxOfKConfig(n_ctx=3, d_vocab=12, d_model=8, d_head=8)
    weights = init_weights(config, seed=5)
    weights["embed.W_E"][:, 0] += np.arange(12, dtype=np.float32)  # make it partly accurate
    weights["unembed.W_U"][0] += np.arange(12, dtype=np.float32)
    tokens = np.stack(np.meshgrid(*[np.arange(12)] * 3, indexing="ij"), -1).reshape(-1, 3)
    with torch.no_grad():
        out = torch_module(config, weights).double()(torch.from_numpy(tokens)).numpy()
    right = out[np.arange(len(tokens)), tokens.max(1)]
    out[np.arange(len(tokens)), tokens.max(1)] = -np.inf
    expected = int(np.count_nonzero(right > out.max(1)))
    c = circuits(config, weights)
    assert 0 < expected < len(tokens)
    assert correct_count(c, workers=1) == expected
    assert correct_count(c, workers=2) == expected


@pytest.mark.parametrize("k", [1, 2, 4])
def test_accuracy_handles_any_k(k: int) -> None:
    config = MaxOfKConfig(n_ctx=k, d_vocab=5, d_model=4, d_head=3)
    weights = init_weights(config, seed=k)
    tokens = np.stack(np.meshgrid(*[np.arange(5)] * k, indexing="ij"), -1).reshape(-1, k)
    out = logits(circuits(config, weights), tokens)
    right = out[np.arange(len(tokens)), tokens.max(1)]
    out[np.arange(len(tokens)), tokens.max(1)] = -np.inf
    assert correct_count(circuits(config, weights), workers=1) == int(np.sum(right > out.max(1)))


def test_training_is_deterministic_and_learns() -> None:
    from certify.train import train

    config = MaxOfKConfig(n_ctx=2, d_vocab=8, d_model=16, d_head=16)
    a = train(config, seed=7, steps=300, progress=False)
    b = train(config, seed=7, steps=300, progress=False)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert all(np.all(a[k] == 0) for k in a if k.rsplit(".", 1)[-1].startswith("b_"))
    accuracy = correct_count(circuits(config, a), workers=1) / 8**2
    assert accuracy > 0.9


def test_accuracy_refuses_huge_input_spaces_and_offers_an_estimate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from certify.cli import main

    config = MaxOfKConfig(n_ctx=12, d_vocab=64, d_model=4, d_head=4)
    save(init_weights(config, 0), tmp_path / "m.pt")
    assert main(["accuracy", str(tmp_path / "m.pt")]) == 2
    assert "--estimate" in capsys.readouterr().err
