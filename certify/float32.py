"""The prover's float32 allowance D[q, x] (docs/float32.md), and torch's own float32 count.

``allowance`` evaluates the bound of docs/float32.md in float64 and inflates it by 2^-20
relative: the checker re-derives it exactly and accepts the certificate's D only if it is not
below its own, so the inflation only has to cover float64 rounding here (about 1e-13).
"""

from __future__ import annotations

import numpy as np

from certify.model import MaxOfKConfig

U32 = 2.0**-24
EXP_ULPS = 32  # as the checker's execution model (docs/float32.md)
PAD = 2.0**-100  # added to every magnitude: covers underflow (docs/float32.md)
OMEGA = 2.0**126  # the checker refuses a model any of whose magnitude bounds reaches it


def gamma(n: int) -> float:
    return n * U32 / (1 - n * U32)


def allowance(config: MaxOfKConfig, weights: dict[str, np.ndarray]) -> np.ndarray:
    """D[q, x] >= |float32 logit[x] - exact logit[x]| for every input with query token q."""
    w = {key: np.abs(a.astype(np.float64)) for key, a in weights.items()}
    signed = {key: a.astype(np.float64) for key, a in weights.items()}
    v, k, d, dh = config.d_vocab, config.n_ctx, config.d_model, config.d_head
    x = (signed["embed.W_E"][:, None, :] + signed["pos_embed.W_pos"][None]).reshape(v * k, d)
    query = x.reshape(v, k, d)[:, -1]
    c1 = U32 + (1 + U32) * gamma(d + 1)

    def magnitude(a: np.ndarray, name: str) -> np.ndarray:
        m, b = w[f"blocks.0.attn.W_{name}"][0], w[f"blocks.0.attn.b_{name}"][0]
        return np.abs(a) @ m + b + PAD

    aq, ak, av = magnitude(query, "Q"), magnitude(x, "K"), magnitude(x, "V")
    rmax = (aq @ ak.T).max(axis=1) + 2 * PAD  # [q]
    c3 = ((1 + gamma(dh)) * (1 + c1) ** 2 - 1) * (1 + gamma(3)) + gamma(3)
    eps = (c3 + 2 * U32 * (1 + c3)) * rmax / np.sqrt(dh)
    e_exp = 2 * EXP_ULPS * U32
    bv = signed["blocks.0.attn.b_V"][0]
    o, u = signed["blocks.0.attn.W_O"][0], signed["unembed.W_U"]
    values = (x @ signed["blocks.0.attn.W_V"][0] + bv) @ o @ u  # [(t, i), x]
    half = (values.max(axis=0) - values.min(axis=0)) / 2
    vmax = np.abs(values).max(axis=0)
    phi = (1 + gamma(2)) / (1 - gamma(k - 1)) - 1 + U32
    az = av.max(axis=0)
    ez = (1 + phi) * (c1 + gamma(k) * (1 + c1)) * az
    z = (1 + phi) * az + ez
    wo, bo = w["blocks.0.attn.W_O"][0], w["blocks.0.attn.b_O"]
    eo = ez @ wo + gamma(dh + 1) * (z @ wo + bo) + PAD
    out = (1 + phi) * az @ wo + bo + eo
    xq = np.abs(query).max(axis=0)
    eres = U32 * xq + eo + U32 * ((1 + U32) * xq + out)
    res = (1 + U32) * ((1 + U32) * xq + out)
    wu, bu = w["unembed.W_U"], w["unembed.b_U"]
    el = eres @ wu + gamma(d + 1) * (res @ wu + bu) + PAD
    magnitudes = (np.abs(x), aq, ak, av, 2 * rmax, z, z @ wo + bo, res, res @ wu + bu)
    if max(float(np.max(m)) for m in magnitudes) >= OMEGA:
        raise ValueError("float32 execution of this model may overflow: no float32 claim")
    rho = np.expm1(2 * eps) * (1 + e_exp) / (1 - e_exp) + 2 * e_exp / (1 - e_exp)
    bound = rho[:, None] * half[None] + (phi * vmax + el)[None]
    return bound * (1 + 2.0**-20) + 2.0**-200


def torch_float32_logits(config: MaxOfKConfig, weights: dict[str, np.ndarray], tokens):
    """Torch's float32 forward pass (this machine's kernels) at the last position, with
    TransformerLens's ops in its association: attn_out = z W_O + b_O, then resid + attn_out."""
    import torch

    w = {key: torch.tensor(np.asarray(a, dtype=np.float32)) for key, a in weights.items()}
    with torch.no_grad():
        x = w["embed.W_E"][torch.as_tensor(tokens)] + w["pos_embed.W_pos"]
        q = x[:, -1] @ w["blocks.0.attn.W_Q"][0] + w["blocks.0.attn.b_Q"][0]
        k = x @ w["blocks.0.attn.W_K"][0] + w["blocks.0.attn.b_K"][0]
        v = x @ w["blocks.0.attn.W_V"][0] + w["blocks.0.attn.b_V"][0]
        scores = torch.einsum("bh,bph->bp", q, k) / config.attn_scale
        z = torch.einsum("bp,bph->bh", torch.softmax(scores, dim=-1), v)
        attn_out = z @ w["blocks.0.attn.W_O"][0] + w["blocks.0.attn.b_O"]
        return ((x[:, -1] + attn_out) @ w["unembed.W_U"] + w["unembed.b_U"]).numpy()


def torch_float32_count(config: MaxOfKConfig, weights: dict[str, np.ndarray]) -> int:
    """How many of the v^K inputs ``torch_float32_logits`` classifies correctly: the argmax is
    the max token, with no tie."""
    import itertools

    v, k = config.d_vocab, config.n_ctx
    rest = np.array(list(itertools.product(range(v), repeat=k - 1)), dtype=np.int64)
    rest = rest.reshape(len(rest), k - 1)
    correct = 0
    for q in range(v):
        tokens = np.concatenate([rest, np.full((len(rest), 1), q)], axis=1)
        logits = torch_float32_logits(config, weights, tokens)
        top = tokens.max(axis=1)
        right = logits[np.arange(len(top)), top].copy()
        logits[np.arange(len(top)), top] = -np.inf
        correct += int((right > logits.max(axis=1)).sum())
    return correct
