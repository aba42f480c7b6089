"""The explicit opt-in ``trust_remote_code=True``: run the checkpoint's own Python code.

Never the default: it executes code downloaded with the model. The authors' model is asked
for token states (``last_hidden_state``); prompts and pooling are the family's, and output
heads are the authors' Linear modules found by their output size. Padded batches only, text
only. Use it to cross-check the native loaders, or for checkpoints they refuse.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from dewey_core.attention import AttentionSpec
from dewey_core.models.base import EncoderModel, Prompts
from dewey_core.models.checkpoint import reads_add_eos_token
from dewey_core.models.stella import select_head
from dewey_core.runtime import Batch
from dewey_core.tokenization import TextTokenizer


class RemoteCodeModel(EncoderModel):
    """A checkpoint run through its own ``auto_map`` code, pooled by the engine."""

    #: The checkpoint's code takes padded batches only.
    attention = AttentionSpec(kernel="checkpoint code")

    def __init__(self, path: Path, device: torch.device, dtype: torch.dtype, *, family: str,
                 pooling: str, prompts: Prompts, max_length: int,
                 heads: dict[int, torch.nn.Module] | None = None, dimension: int | None = None,
                 poolings: dict[str, str] | None = None) -> None:
        self.path, self.device, self.dtype = path, device, dtype
        self.family, self.pooling, self.prompts = f"{family} (remote code)", pooling, prompts
        self.poolings = poolings or {}
        self.backbone = AutoModel.from_pretrained(path, trust_remote_code=True, dtype=dtype,
                                                  use_safetensors=True).to(device).eval()
        self.tokenizer = TextTokenizer(AutoTokenizer.from_pretrained(path, trust_remote_code=True),
                                       add_eos_token=reads_add_eos_token(path))
        config = self.backbone.config
        text_config = getattr(config, "text_config", None) or config
        self.hidden_size = int(text_config.hidden_size)
        self.max_length = max_length
        if heads is None:
            wanted = getattr(config, "vector_size", None)
            heads = {m.out_features: m for m in self.backbone.modules()
                     if isinstance(m, torch.nn.Linear) and m.in_features == self.hidden_size
                     and (wanted is None or m.out_features == wanted)
                     and m.out_features != self.hidden_size} if wanted else {}
        self.heads = heads
        self.head_dims = tuple(sorted(heads))
        self.dimension = dimension or (max(heads) if heads else self.hidden_size)

    def apply_options(self, *, pooling: str | None = None, vector_dim: int | None = None) -> None:
        if pooling is not None:
            if pooling not in self.poolings:
                raise ValueError(f"pooling must be one of {sorted(self.poolings)}, got {pooling!r}")
            self.pooling = self.poolings[pooling]
        if vector_dim is not None:
            if vector_dim not in self.heads:
                raise ValueError(f"{self.path}: no head of size {vector_dim}; heads: "
                                 f"{list(self.head_dims)}")
            self.dimension = vector_dim

    def forward(self, batch: Batch) -> torch.Tensor:
        out = self.backbone(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        states = getattr(out, "last_hidden_state", None)
        if states is None or states.dim() != 3:
            raise TypeError(f"{self.path}: the checkpoint's own code does not return token states "
                            "(last_hidden_state); the engine cannot pool or late-chunk it. Load "
                            "it natively (trust_remote_code=False).")
        return states

    def project(self, pooled: torch.Tensor, dim: int | None) -> torch.Tensor:
        if not self.heads:
            return pooled
        head = select_head(self.heads, self.dimension, dim)  # the same choice as native loading
        weight = next(head.parameters())
        return head(pooled.to(weight.device, weight.dtype)).float()
