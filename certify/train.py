"""The paper's training recipe for Max-of-K.

AdamW (lr 1e-3, betas (0.9, 0.999), weight decay 0.01), batch 128, 3000 steps, inputs uniform
over {0..v-1}^K, cross-entropy on the last position's logits against the max, biases frozen at
zero. Deterministic for a given seed, torch version and CPU kernel level (not thread count):
the init and the data stream have their own seeds; certificates/models/README.md says more.
"""

from __future__ import annotations

import sys

import numpy as np

from certify.model import MaxOfKConfig, _reseed, init_weights, torch_module


def train(
    config: MaxOfKConfig,
    seed: int = 123,
    steps: int = 3000,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Train one model and return its float32 weights (TransformerLens keys)."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)  # tiny matrices: threads cost more than they give
    torch.use_deterministic_algorithms(True)
    model = torch_module(config, init_weights(config, seed))
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=lr, betas=(0.9, 0.999), weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(_reseed(_reseed(seed, "dataset_seed"), "train"))
    data = torch.randint(0, config.d_vocab, (steps, batch_size, config.n_ctx), generator=gen)
    labels = data.max(dim=-1).values
    bar = _progress(steps, f"train K={config.n_ctx} v={config.d_vocab} seed={seed}", progress)
    for step in range(steps):
        loss = F.cross_entropy(model(data[step]), labels[step])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if bar is not None and (step % 50 == 49 or step == steps - 1):
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            bar.update(step + 1 - bar.n)
    if bar is not None:
        bar.close()
    return model.numpy_weights()


def recipe(
    config: MaxOfKConfig,
    seed: int = 123,
    steps: int = 3000,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
) -> dict[str, str]:
    """How ``train`` made a model, as strings for safetensors metadata (informational only).

    The torch version and CPU kernel level are recorded because they change the trained
    weights (certificates/models/README.md); the thread count does not.
    """
    import torch

    from certify import __version__

    return {
        "trainer": f"certify {__version__} (certify.train)",
        "recipe": f"AdamW lr {lr} betas (0.9, 0.999) weight_decay {weight_decay}, batch "
        f"{batch_size}, {steps} steps, uniform inputs, cross-entropy on the last position's "
        "logits against the max, biases frozen at zero",
        "seed": str(seed),
        "steps": str(steps),
        "n_ctx": str(config.n_ctx),
        "d_vocab": str(config.d_vocab),
        "d_model": str(config.d_model),
        "d_head": str(config.d_head),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, mininterval=0.5)
