"""Tiny randomly initialized wav2vec 2.0 / HuBERT / WavLM models saved to a folder.

Import with ``sys.path.insert(0, str(<test/features>))`` then
``from ssl_factory import save_tiny_ssl``. The models have the real
convolutional feature encoder geometry (kernels 10,3,3,3,3,2,2, strides
5,2,2,2,2,2,2: 400-sample receptive field, 320-sample stride, 20 ms frames)
with 8 channels, and a 2-layer, 32-dim transformer, so they run in
milliseconds on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

MODEL_TYPES = ("wav2vec2", "hubert", "wavlm")
HIDDEN = 32
LAYERS = 2


def tiny_config(model_type: str, norm: str = "group", **overrides: Any):
    """A transformers config of a tiny model (``norm``: ``group`` like base models, ``layer`` like large)."""
    import transformers

    cls = {"wav2vec2": transformers.Wav2Vec2Config, "hubert": transformers.HubertConfig,
           "wavlm": transformers.WavLMConfig}[model_type]
    conf = dict(
        hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=64,
        conv_dim=(8,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        feat_extract_norm=norm, do_stable_layer_norm=(norm == "layer"),
        layerdrop=0.0, mask_time_prob=0.0, hidden_dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0, feat_proj_dropout=0.0,
    )
    conf.update(overrides)
    return cls(**conf)


def save_tiny_ssl(root: Path, model_type: str = "wav2vec2", norm: str = "group", seed: int = 0,
                  do_normalize: Any = None, **overrides: Any) -> Path:
    """Build, save (``save_pretrained``) and return the folder ``root/<type>_<norm>``.

    Args:
        do_normalize: If not None, also write a ``preprocessor_config.json`` with it.
    """
    import transformers

    cls = {"wav2vec2": transformers.Wav2Vec2Model, "hubert": transformers.HubertModel,
           "wavlm": transformers.WavLMModel}[model_type]
    torch.manual_seed(seed)
    model = cls(tiny_config(model_type, norm, **overrides))
    # Random but not degenerate weights everywhere (some are zero-initialized).
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1 and float(p.abs().sum()) == 0.0:
                p.normal_(0.0, 0.02)
    out = Path(root) / f"{model_type}_{norm}"
    model.save_pretrained(out)
    if do_normalize is not None:
        (out / "preprocessor_config.json").write_text(json.dumps({"do_normalize": bool(do_normalize)}))
    return out


def waves(lengths=(8000, 5600, 4000), seed: int = 1) -> "tuple[torch.Tensor, torch.Tensor]":
    """A zero-padded batch of noisy tones: (B, N) and lengths (B,)."""
    g = torch.Generator().manual_seed(seed)
    speech = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        t = torch.arange(n) / 16000.0
        speech[i, :n] = 0.3 * torch.sin(2 * torch.pi * (200 + 150 * i) * t) + 0.05 * torch.randn(n, generator=g)
    return speech, torch.tensor(lengths)
