"""The model's circuits in float64 (defined in docs/format.md). Untrusted: the prover's fast path.

For a sequence t_0..t_{k-1} with query q = t_{k-1}, exactly (up to float rounding):

    logits[x] = EU[q, x] + sum_i a_i (EVOU[t_i, x] + PVOU[i, x])
    a         = softmax_i((EQKE[q, t_i] + EQKP[q, i]) / sqrt(d_head))

The query side always adds the last position's embedding (E_q = W_E + W_pos[k-1]); biases enter
once each (b_V, b_O and b_U are folded into EVOU, b_K into EQKE, EQKP excludes b_K).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from certify.model import MaxOfKConfig


@dataclass(frozen=True)
class Circuits:
    config: MaxOfKConfig
    eqke: np.ndarray  # [v, v]   (E_q Q + b_Q)(E K + b_K)^T, no 1/sqrt(d_head)
    eqkp: np.ndarray  # [v, k]   (E_q Q + b_Q)(P K)^T
    evou: np.ndarray  # [v, v]   ((E V + b_V) O + b_O) U + b_U
    pvou: np.ndarray  # [k, v]   P V O U
    eu: np.ndarray  # [v, v]     E_q U
    allowance: np.ndarray | None = None  # [q, x] float32 allowance D (certify.float32); None: exact

    @property
    def scale(self) -> float:
        return self.config.attn_scale


def circuits(config: MaxOfKConfig, weights: dict[str, np.ndarray]) -> Circuits:
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    E, P = w["embed.W_E"], w["pos_embed.W_pos"]
    Q, K, V, O = (w[f"blocks.0.attn.W_{n}"][0] for n in "QKVO")
    bQ, bK, bV = (w[f"blocks.0.attn.b_{n}"][0] for n in "QKV")
    bO, U, bU = w["blocks.0.attn.b_O"], w["unembed.W_U"], w["unembed.b_U"]
    Eq = E + P[-1]
    query = Eq @ Q + bQ
    return Circuits(
        config=config,
        eqke=query @ (E @ K + bK).T,
        eqkp=query @ (P @ K).T,
        evou=((E @ V + bV) @ O + bO) @ U + bU,
        pvou=P @ V @ O @ U,
        eu=Eq @ U,
    )


def logits(c: Circuits, tokens: np.ndarray) -> np.ndarray:
    """Last-position logits for a batch of sequences [n, k] -> [n, v], from the circuits."""
    q = tokens[:, -1]
    k = c.config.n_ctx
    scores = (c.eqke[q[:, None], tokens] + c.eqkp[q]) / c.scale
    scores -= scores.max(-1, keepdims=True)
    a = np.exp(scores)
    a /= a.sum(-1, keepdims=True)
    ov = c.evou[tokens] + c.pvou[np.arange(k)]  # [n, k, v]
    return c.eu[q] + np.einsum("nk,nkv->nv", a, ov)
