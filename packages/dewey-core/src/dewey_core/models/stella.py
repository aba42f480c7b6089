"""Stella en v5: 1.5B (bidirectional Qwen2) and 400M (Alibaba's GTE v1.5, ``model_type: new``),
mean pooling, one ``2_Dense_{dim}`` head per size.

Layout read from the checkpoint: ``config.json``, ``model.safetensors`` (1.5B: Qwen2Model keys
under ``model.``, as released, or at the top level; 400M: see :mod:`dewey_core.models.gte`),
tokenizer files (1.5B's ``tokenizer_config.json`` sets ``add_eos_token``: every sequence ends in
``<|endoftext|>``, which is mean-pooled like the authors' stack does), ``1_Pooling``,
``2_Dense_{dim}/`` folders (sentence-transformers Dense: ``linear.weight``/``linear.bias``),
``modules.json`` (which head is the default) and the ``s2p_query``/``s2s_query`` prompts.
Documents get no prompt. ``vector_dim=`` picks the default head; ``dim=`` per call picks a head
of that size (other sizes truncate the next larger head). A GTE v1.5 folder without Dense heads
(gte-base/large-en-v1.5) loads the same way, with its hidden states as output.

Example:
    >>> from dewey_core import DeweyEncoder
    >>> from dewey_core.testing import tiny_stella
    >>> import tempfile
    >>> enc = DeweyEncoder.from_pretrained(tiny_stella(tempfile.mkdtemp()), device="cpu")
    >>> enc.encode_documents(["Saffron is a spice."], dim=32).shape
    (1, 32)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from dewey_core.models.base import EncoderModel
from dewey_core.models.bidirectional import (
    bidirectional_forward,
    build_qwen2,
    qwen2_config,
    qwen2_kernel,
)
from dewey_core.models.checkpoint import (
    load_tokenizer,
    read_json,
    read_state,
    reads_add_eos_token,
    refuse_leftovers,
    take_prefix,
)
from dewey_core.models.gte import build_gte, gte_kernel, is_gte
from dewey_core.models.sentence_transformers import (
    load_dense,
    read_max_seq_length,
    read_modules,
    read_pooling,
    read_prompts,
)
from dewey_core.runtime import Batch
from dewey_core.tokenization import TextTokenizer

_DENSE_DIR = re.compile(r"^2_Dense(_\d+)?$")
DEFAULT_MAX_LENGTH = 512


def dense_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and _DENSE_DIR.match(p.name))


def is_stella(path: Path, config: dict[str, Any]) -> bool:
    return is_gte(config) or (config.get("model_type") == "qwen2" and any(
        p.name.startswith("2_Dense_") for p in dense_dirs(path)))


def select_head(heads: dict[int, torch.nn.Module], default: int, dim: int | None) -> torch.nn.Module:
    """The head of size ``dim``; else the smallest larger one (the engine truncates it)."""
    if not heads:
        return torch.nn.Identity()
    if dim is None:
        return heads[default]
    if dim in heads:
        return heads[dim]
    return heads[min(size for size in heads if size >= dim)]


class StellaModel(EncoderModel):
    family = "stella"

    def __init__(self, path: Path, device: torch.device, dtype: torch.dtype, *,
                 attention: str | None = None) -> None:
        self.path, self.device, self.dtype = path, device, dtype
        raw = read_json(path / "config.json")
        state = read_state(path)
        self.is_qwen2 = not is_gte(raw)
        if self.is_qwen2:
            config = qwen2_config(raw, qwen2_kernel(device, dtype, attention))
            prefix = "model." if any(k.startswith("model.embed_tokens.") for k in state) else ""
            backbone_state = take_prefix(state, prefix) if prefix else state
            if prefix:
                refuse_leftovers(path, state)
            self.backbone, self.attention = build_qwen2(path, config, backbone_state, prefix,
                                                        device, dtype)
            self.tokenizer = TextTokenizer(load_tokenizer(path),
                                               add_eos_token=reads_add_eos_token(path))
            limit = config.max_position_embeddings
        else:
            self.backbone, self.attention = build_gte(path, raw, state, device, dtype, attention)
            self.tokenizer = TextTokenizer(load_tokenizer(path),
                                           add_eos_token=reads_add_eos_token(path))
            limit = self.backbone.config.max_position_embeddings
        self.hidden_size = self.backbone.config.hidden_size
        self.heads: dict[int, torch.nn.Module] = {}
        for folder in dense_dirs(path):
            dense = load_dense(folder).to(device).eval()
            self.heads.setdefault(dense[0].out_features, dense)
        self.head_dims = tuple(sorted(self.heads))
        self.dimension = self._default_dim(path)
        self.pooling, include_prompt = "mean", True
        if (path / "1_Pooling" / "config.json").is_file():
            self.pooling, include_prompt = read_pooling(path / "1_Pooling")
        if self.pooling == "mean" and not include_prompt:
            self.pooling = "mean_no_prompt"
        self.prompts = read_prompts(path)
        self.max_length = min(read_max_seq_length(path) or DEFAULT_MAX_LENGTH, limit)

    def _default_dim(self, path: Path) -> int:
        if not self.heads:
            return self.hidden_size
        for module in read_modules(path):
            if module["type"].endswith("Dense"):
                size = int(read_json(path / module["path"] / "config.json")["out_features"])
                if size in self.heads:
                    return size
        return 1024 if 1024 in self.heads else max(self.heads)

    def apply_options(self, *, vector_dim: int | None = None) -> None:
        if vector_dim is not None:
            if vector_dim not in self.heads:
                raise ValueError(f"{self.path}: no 2_Dense_{vector_dim} head; heads: "
                                 f"{list(self.head_dims)}")
            self.dimension = vector_dim

    def forward(self, batch: Batch) -> torch.Tensor:
        if self.is_qwen2:
            return bidirectional_forward(self.backbone, self.attention, batch)
        return super().forward(batch)

    def project(self, pooled: torch.Tensor, dim: int | None) -> torch.Tensor:
        return select_head(self.heads, self.dimension, dim)(pooled.to(self.device, torch.float32))


def default_attention(path: Path, device: torch.device, dtype: torch.dtype) -> str:
    raw = read_json(path / "config.json")
    return gte_kernel(device, dtype) if is_gte(raw) else qwen2_kernel(device, dtype)


def load(path: Path, device: torch.device, dtype: torch.dtype, *, attention: str | None = None,
         trust_remote_code: bool = False) -> EncoderModel:
    if trust_remote_code:
        from dewey_core.models.remote import RemoteCodeModel

        heads = {d[0].out_features: d for d in (load_dense(f) for f in dense_dirs(path))}
        return RemoteCodeModel(path, device, dtype, family="stella", pooling="mean",
                               prompts=read_prompts(path),
                               max_length=read_max_seq_length(path) or DEFAULT_MAX_LENGTH,
                               heads={k: v.to(device) for k, v in heads.items()},
                               dimension=1024 if 1024 in heads else max(heads, default=None))
    return StellaModel(path, device, dtype, attention=attention)
