"""transformers' Qwen2Model run bidirectionally (Stella, Jasper), loaded from explicit keys.

Two switches make a causal Qwen2 bidirectional in transformers 5: ``is_causal = False`` on every
attention module (flash-attention reads it) and a bidirectional mask handed to the model as a
per-layer-type dict, so it never builds its causal one (SDPA and eager read that).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import Qwen2Config, Qwen2Model
from transformers.masking_utils import create_bidirectional_mask

from dewey_core.models.checkpoint import NOT_MODEL_CONFIG, build_module
from dewey_core.runtime import Batch, packed_block_mask
from dewey_core.tokenization import TextTokenizer, TokenizedText


def qwen2_config(raw: dict[str, Any], attn: str) -> Qwen2Config:
    config = Qwen2Config(**{k: v for k, v in raw.items() if k not in NOT_MODEL_CONFIG},
                         attn_implementation=attn)
    config.use_cache = False
    if "sliding_attention" in config.layer_types:
        raise ValueError("Qwen2 checkpoints with sliding-window layers (use_sliding_window=true) "
                         "are not supported bidirectionally")
    return config


def build_qwen2(path: Path, config: Qwen2Config, state: dict[str, torch.Tensor], prefix: str,
                device: torch.device, dtype: torch.dtype) -> Qwen2Model:
    model = build_module(path, lambda: Qwen2Model(config), state, prefix, device, dtype)
    for layer in model.layers:
        layer.self_attn.is_causal = False
    return model


def bidirectional_forward(model: Qwen2Model, batch: Batch,
                          inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """Token states ``(rows, length, hidden)``; padded, mask-packed or flash-packed batches."""
    if inputs_embeds is None:
        inputs_embeds = model.embed_tokens(batch.input_ids)
    if batch.packed_lengths is not None:
        mask = None if batch.flash_kwargs else packed_block_mask(batch)
    else:
        mask = create_bidirectional_mask(config=model.config, inputs_embeds=inputs_embeds,
                                         attention_mask=batch.attention_mask)
    out = model(inputs_embeds=inputs_embeds, attention_mask={"full_attention": mask},
                position_ids=batch.position_ids, use_cache=False, **batch.flash_kwargs)
    return out.last_hidden_state


class QwenTextTokenizer(TextTokenizer):
    """Qwen2 tokenizers add no special tokens, so an empty text with no prompt would be an
    empty sequence: it is encoded as the end-of-text token alone (a prompt-like token that
    belongs to no chunk), which keeps "every text gets a vector" true."""

    def tokenize(self, texts: Sequence[str], prompt: str = "") -> list[TokenizedText]:
        out = super().tokenize(texts, prompt)
        if self.num_special:
            return out
        filler = self.hf.eos_token_id if self.hf.eos_token_id is not None else self.pad_id
        return [TokenizedText((filler,), (), (), ()) if not t.prompt_ids and not len(t) else t
                for t in out]
