"""transformers' Qwen2Model run bidirectionally (Stella, Jasper), loaded from explicit keys.

Two switches make a causal Qwen2 bidirectional in transformers 5: ``is_causal = False`` on every
attention module (flash-attention and SDPA without a mask read it) and a bidirectional mask
handed to the model as a per-layer-type dict, so it never builds its causal one (see
``forced_bidirectional`` in :mod:`dewey_core.attention`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import Qwen2Config, Qwen2Model

from dewey_core.attention import AttentionSpec, choose_kernel, inspect_backbone, supported_kernels
from dewey_core.models.checkpoint import NOT_MODEL_CONFIG, build_module
from dewey_core.runtime import Batch


def qwen2_kernel(device: torch.device, dtype: torch.dtype, requested: str | None = None) -> str:
    return choose_kernel(device, supported_kernels(Qwen2Model), requested, dtype)


def qwen2_config(raw: dict[str, Any], attn: str) -> Qwen2Config:
    config = Qwen2Config(**{k: v for k, v in raw.items() if k not in NOT_MODEL_CONFIG},
                         attn_implementation=attn)
    config.use_cache = False
    if "sliding_attention" in config.layer_types:
        raise ValueError("Qwen2 checkpoints with sliding-window layers (use_sliding_window=true) "
                         "are not supported bidirectionally")
    return config


def build_qwen2(path: Path, config: Qwen2Config, state: dict[str, torch.Tensor], prefix: str,
                device: torch.device, dtype: torch.dtype) -> tuple[Qwen2Model, AttentionSpec]:
    """A bidirectional Qwen2Model and how to feed it attention inputs."""
    model = build_module(path, lambda: Qwen2Model(config), state, prefix, device, dtype)
    for layer in model.layers:
        layer.self_attn.is_causal = False
    return model, inspect_backbone(model, config._attn_implementation, forced_bidirectional=True)


def bidirectional_forward(model: Qwen2Model, attention: AttentionSpec, batch: Batch,
                          inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """Token states ``(rows, length, hidden)``; padded, mask-packed or flash-packed batches."""
    if inputs_embeds is None:
        inputs_embeds = model.embed_tokens(batch.input_ids)
    out = model(inputs_embeds=inputs_embeds, use_cache=False,
                **attention.inputs(batch, inputs_embeds.dtype))
    return out.last_hidden_state
