"""Stella en 1.5B v5: bidirectional Qwen2, mean pooling, one ``2_Dense_{dim}`` head per size.

Layout read from the checkpoint: ``config.json`` (``model_type: qwen2``), ``model.safetensors``
(Qwen2Model keys at the top level or under ``model.``), tokenizer files, ``1_Pooling``,
``2_Dense_{dim}/`` folders (sentence-transformers Dense: ``linear.weight``/``linear.bias``),
``modules.json`` (which head is the default) and the ``s2p_query``/``s2s_query`` prompts.
Documents get no prompt. ``vector_dim=`` at load picks the default head; ``dim=`` per call
picks a head of that size (other sizes truncate the next larger head).

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

from dewey_core.devices import attention_implementation
from dewey_core.models.base import EncoderModel
from dewey_core.models.bidirectional import (
    QwenTextTokenizer,
    bidirectional_forward,
    build_qwen2,
    qwen2_config,
)
from dewey_core.models.checkpoint import load_tokenizer, read_json, read_state, refuse_leftovers, take_prefix
from dewey_core.models.sentence_transformers import (
    load_dense,
    read_max_seq_length,
    read_modules,
    read_pooling,
    read_prompts,
)
from dewey_core.runtime import Batch

_DENSE_DIR = re.compile(r"^2_Dense(_\d+)?$")
DEFAULT_MAX_LENGTH = 512


def dense_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and _DENSE_DIR.match(p.name))


def is_stella(path: Path, config: dict[str, Any]) -> bool:
    return config.get("model_type") == "qwen2" and any(
        p.name.startswith("2_Dense_") for p in dense_dirs(path))


def select_head(heads: dict[int, torch.nn.Module], default: int, dim: int | None) -> torch.nn.Module:
    """The head of size ``dim``; else the smallest larger one (the engine truncates it)."""
    if dim is None:
        return heads[default]
    if dim in heads:
        return heads[dim]
    return heads[min(size for size in heads if size >= dim)]


class StellaModel(EncoderModel):
    family = "stella"

    def __init__(self, path: Path, device: torch.device, dtype: torch.dtype, *,
                 vector_dim: int | None = None) -> None:
        self.path, self.device, self.dtype = path, device, dtype
        attn = attention_implementation(device)
        self.packing = "flash" if attn == "flash_attention_2" else "mask"
        config = qwen2_config(read_json(path / "config.json"), attn)
        self.hidden_size = config.hidden_size
        state = read_state(path)
        prefix = "model." if any(k.startswith("model.embed_tokens.") for k in state) else ""
        backbone_state = take_prefix(state, prefix) if prefix else state
        if prefix:
            refuse_leftovers(path, state)
        self.backbone = build_qwen2(path, config, backbone_state, prefix, device, dtype)
        self.heads: dict[int, torch.nn.Module] = {}
        for folder in dense_dirs(path):
            dense = load_dense(folder).to(device).eval()
            self.heads.setdefault(dense[0].out_features, dense)
        self.head_dims = tuple(sorted(self.heads))
        self.dimension = self._default_dim(path, vector_dim)
        self.pooling, include_prompt = "mean", True
        if (path / "1_Pooling" / "config.json").is_file():
            self.pooling, include_prompt = read_pooling(path / "1_Pooling")
        if self.pooling == "mean" and not include_prompt:
            self.pooling = "mean_no_prompt"
        self.tokenizer = QwenTextTokenizer(load_tokenizer(path))
        self.prompts = read_prompts(path)
        self.max_length = min(read_max_seq_length(path) or DEFAULT_MAX_LENGTH,
                              config.max_position_embeddings)

    def _default_dim(self, path: Path, vector_dim: int | None) -> int:
        if vector_dim is not None:
            if vector_dim not in self.heads:
                raise ValueError(f"{path}: no 2_Dense_{vector_dim} head; heads: {list(self.head_dims)}")
            return vector_dim
        for module in read_modules(path):
            if module["type"].endswith("Dense"):
                size = int(read_json(path / module["path"] / "config.json")["out_features"])
                if size in self.heads:
                    return size
        return 1024 if 1024 in self.heads else max(self.heads)

    def forward(self, batch: Batch) -> torch.Tensor:
        return bidirectional_forward(self.backbone, batch)

    def project(self, pooled: torch.Tensor, dim: int | None) -> torch.Tensor:
        return select_head(self.heads, self.dimension, dim)(pooled.to(self.device, torch.float32))


def load(path: Path, device: torch.device, dtype: torch.dtype, *, vector_dim: int | None = None,
         trust_remote_code: bool = False) -> EncoderModel:
    if trust_remote_code:
        from dewey_core.models.remote import RemoteCodeModel

        heads = {d[0].out_features: d for d in (load_dense(f) for f in dense_dirs(path))}
        return RemoteCodeModel(path, device, dtype, family="stella", pooling="mean",
                               prompts=read_prompts(path),
                               max_length=read_max_seq_length(path) or DEFAULT_MAX_LENGTH,
                               heads={k: v.to(device) for k, v in heads.items()},
                               dimension=vector_dim or (1024 if 1024 in heads else max(heads)))
    return StellaModel(path, device, dtype, vector_dim=vector_dim)
