"""The Max-of-K model family: a one-layer, one-head, attention-only transformer.

Matches TransformerLens's ``HookedTransformer`` with ``n_layers=1, n_heads=1, attn_only=True,
normalization_type=None``, learned absolute positions, causal attention scaled by 1/sqrt(d_head)
and the prediction read at the last position. Weights are kept as a dict of float32 numpy arrays
under TransformerLens's state_dict keys and shapes, so a ``HookedTransformer`` state_dict loads
unchanged and everything downstream (circuits, certificates) sees the same names.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

WEIGHT_KEYS = (
    "embed.W_E",
    "pos_embed.W_pos",
    "blocks.0.attn.W_Q",
    "blocks.0.attn.W_K",
    "blocks.0.attn.W_V",
    "blocks.0.attn.W_O",
    "blocks.0.attn.b_Q",
    "blocks.0.attn.b_K",
    "blocks.0.attn.b_V",
    "blocks.0.attn.b_O",
    "unembed.W_U",
    "unembed.b_U",
)
IGNORED_KEYS = ("blocks.0.attn.mask", "blocks.0.attn.IGNORE")


class ModelError(ValueError):
    """A model file or weight dict that is not a valid Max-of-K model (one-line message)."""


@dataclass(frozen=True)
class MaxOfKConfig:
    """Shape of a Max-of-K model. ``n_ctx`` is K; the output vocabulary equals the input one."""

    n_ctx: int = 4
    d_vocab: int = 64
    d_model: int = 32
    d_head: int = 32

    def shapes(self) -> dict[str, tuple[int, ...]]:
        v, k, d, h = self.d_vocab, self.n_ctx, self.d_model, self.d_head
        return {
            "embed.W_E": (v, d),
            "pos_embed.W_pos": (k, d),
            "blocks.0.attn.W_Q": (1, d, h),
            "blocks.0.attn.W_K": (1, d, h),
            "blocks.0.attn.W_V": (1, d, h),
            "blocks.0.attn.W_O": (1, h, d),
            "blocks.0.attn.b_Q": (1, h),
            "blocks.0.attn.b_K": (1, h),
            "blocks.0.attn.b_V": (1, h),
            "blocks.0.attn.b_O": (d,),
            "unembed.W_U": (d, v),
            "unembed.b_U": (v,),
        }

    @property
    def attn_scale(self) -> float:
        return math.sqrt(self.d_head)

    @classmethod
    def from_weights(cls, weights: dict[str, np.ndarray]) -> MaxOfKConfig:
        """Infer the config from the weight shapes (validated afterwards by ``validate``)."""
        try:
            v, d = weights["embed.W_E"].shape
            k = weights["pos_embed.W_pos"].shape[0]
            h = weights["blocks.0.attn.W_Q"].shape[-1]
        except KeyError as e:
            raise ModelError(f"missing weight {e.args[0]!r}") from None
        except ValueError:
            raise ModelError("weight 'embed.W_E' must be 2-dimensional") from None
        return cls(n_ctx=int(k), d_vocab=int(v), d_model=int(d), d_head=int(h))


def validate(weights: dict[str, np.ndarray]) -> tuple[MaxOfKConfig, dict[str, np.ndarray]]:
    """Check keys, shapes, dtypes and finiteness; return the config and float32 weights."""
    unknown = sorted(set(weights) - set(WEIGHT_KEYS) - set(IGNORED_KEYS))
    if unknown:
        raise ModelError(f"unexpected key {unknown[0]!r} (not a one-layer attention-only model)")
    config = MaxOfKConfig.from_weights(weights)
    if min(config.n_ctx, config.d_vocab, config.d_model, config.d_head) < 1:
        raise ModelError(f"degenerate model dimensions {asdict(config)}")
    out = {}
    for key, shape in config.shapes().items():
        if key not in weights:
            raise ModelError(f"missing weight {key!r}")
        w = np.asarray(weights[key])
        if w.shape != shape:
            raise ModelError(f"weight {key!r} has shape {list(w.shape)}, expected {list(shape)}")
        if w.dtype.kind != "f":
            raise ModelError(f"weight {key!r} has dtype {w.dtype}, expected a float type")
        w32 = w.astype(np.float32)
        if w.dtype.itemsize > 4 and not np.array_equal(w32.astype(w.dtype), w, equal_nan=True):
            raise ModelError(f"weight {key!r} is not exactly representable in float32")
        if not np.all(np.isfinite(w32)):
            raise ModelError(f"weight {key!r} contains NaN or infinity")
        out[key] = np.ascontiguousarray(w32)
    return config, out


def weights_sha256(weights: dict[str, np.ndarray]) -> str:
    """The model's identity: sha256 over the float32 little-endian bytes of WEIGHT_KEYS in order.

    Independent of the file format, so a .pt, a .safetensors and a certificate agree.
    """
    import hashlib

    h = hashlib.sha256()
    for key in WEIGHT_KEYS:
        h.update(np.ascontiguousarray(weights[key], dtype="<f4").tobytes())
    return h.hexdigest()


def init_weights(config: MaxOfKConfig, seed: int) -> dict[str, np.ndarray]:
    """TransformerLens's default (GPT-2 style) init: N(0, 0.8/sqrt(d_model)); biases zero."""
    import torch

    gen = torch.Generator().manual_seed(_reseed(seed, "model"))
    std = 0.8 / math.sqrt(config.d_model)
    weights = {}
    for key, shape in config.shapes().items():
        if key.rsplit(".", 1)[-1].startswith("b_"):
            weights[key] = np.zeros(shape, np.float32)
        else:
            weights[key] = (torch.randn(shape, generator=gen, dtype=torch.float32) * std).numpy()
    return weights


def _reseed(seed: int, label: str) -> int:
    """A deterministic child seed for (seed, label), as the paper's ``reseed`` (int32-sized)."""
    import hashlib

    digest = hashlib.sha256(f"{seed}:{label}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


# --- file I/O -------------------------------------------------------------------------------


def load(path: str | Path) -> tuple[MaxOfKConfig, dict[str, np.ndarray]]:
    """Load a .pt state_dict (``weights_only=True``) or a .safetensors file and validate it."""
    path = Path(path)
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, not a model file")
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        raw = _load_safetensors(path)
    elif path.suffix in (".pt", ".pth"):
        raw = _load_torch(path)
    else:
        raise ModelError(f"{path}: unknown model file type (expected .pt or .safetensors)")
    try:
        return validate(raw)
    except ModelError as e:
        raise ModelError(f"{path}: {e}") from None


def _load_torch(path: Path) -> dict[str, np.ndarray]:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types, with long advice, for corrupt or unsafe files
        why = "not a torch file, or a damaged one"
        if "Unsupported global" in str(e):
            why = "it holds pickled objects, not only tensors: save model.state_dict()"
        raise ModelError(f"{path}: cannot be loaded with weights_only=True ({why})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ModelError(f"{path}: not a state_dict (a dict of named tensors)")
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ModelError(f"{path}: entry {key!r} is not a tensor")
        if key in IGNORED_KEYS:
            continue
        out[key] = value.detach().cpu().numpy() if value.is_floating_point() else value.numpy()
    return out


def _load_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises several types for corrupt files
        raise ModelError(f"{path}: not a valid safetensors file ({type(e).__name__})") from None


def read_metadata(path: str | Path) -> dict[str, str]:
    """A .safetensors file's header metadata (untrusted text); {} for other files or none."""
    if Path(path).suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), "np") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # safetensors raises several types for corrupt files
        raise ModelError(f"{path}: not a valid safetensors file ({type(e).__name__})") from None


def save(
    weights: dict[str, np.ndarray], path: str | Path, metadata: dict[str, str] | None = None
) -> None:
    """Save as .safetensors (with ``metadata`` in its header), or as a .pt state_dict with
    TransformerLens keys (incl. buffers; a state_dict has no place for metadata)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        arrays = {k: np.ascontiguousarray(weights[k]) for k in WEIGHT_KEYS}
        save_file(arrays, str(path), metadata=metadata)
    elif path.suffix in (".pt", ".pth"):
        import torch

        config = MaxOfKConfig.from_weights(weights)
        state = {k: torch.from_numpy(np.array(weights[k])) for k in WEIGHT_KEYS}
        k = config.n_ctx
        state["blocks.0.attn.mask"] = torch.tril(torch.ones(k, k, dtype=torch.bool))
        state["blocks.0.attn.IGNORE"] = torch.tensor(-torch.inf)
        torch.save(state, path)
    else:
        raise ModelError(f"{path}: unknown model file type (expected .pt or .safetensors)")


# --- torch module ---------------------------------------------------------------------------


def torch_module(config: MaxOfKConfig, weights: dict[str, np.ndarray]):  # -> MaxOfKTransformer
    """A torch module holding the weights (biases frozen), for training and as a test oracle."""
    return _module_class()(config, weights)


def _module_class():
    import torch
    from torch import nn

    class MaxOfKTransformer(nn.Module):
        """logits = (x_last + attn(x)) W_U + b_U at the last position, x = W_E[t] + W_pos."""

        def __init__(self, config: MaxOfKConfig, weights: dict[str, np.ndarray]):
            super().__init__()
            self.config = config
            self.params = nn.ParameterDict()
            for key in WEIGHT_KEYS:
                frozen = key.rsplit(".", 1)[-1].startswith("b_")
                p = nn.Parameter(torch.tensor(np.array(weights[key])), requires_grad=not frozen)
                self.params[key.replace(".", "__")] = p

        def w(self, key: str):
            return self.params[key.replace(".", "__")]

        def forward(self, tokens):  # tokens: [batch, n_ctx] -> logits [batch, d_vocab]
            w = self.w
            x = w("embed.W_E")[tokens] + w("pos_embed.W_pos")  # [batch, pos, d_model]
            q = x[:, -1] @ w("blocks.0.attn.W_Q")[0] + w("blocks.0.attn.b_Q")[0]
            k = x @ w("blocks.0.attn.W_K")[0] + w("blocks.0.attn.b_K")[0]
            v = x @ w("blocks.0.attn.W_V")[0] + w("blocks.0.attn.b_V")[0]
            scores = torch.einsum("bh,bph->bp", q, k) / math.sqrt(self.config.d_head)
            attn = torch.softmax(scores, dim=-1)  # the last position sees every position
            z = torch.einsum("bp,bph->bh", attn, v)
            resid = x[:, -1] + z @ w("blocks.0.attn.W_O")[0] + w("blocks.0.attn.b_O")
            return resid @ w("unembed.W_U") + w("unembed.b_U")

        def numpy_weights(self) -> dict[str, np.ndarray]:
            return {k: self.w(k).detach().cpu().numpy().copy() for k in WEIGHT_KEYS}

    return MaxOfKTransformer
