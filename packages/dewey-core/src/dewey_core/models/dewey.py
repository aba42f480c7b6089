"""dewey_en_beta: transformers' ModernBertModel plus the checkpoint's vector head, no remote code.

Layout read from the checkpoint: ``config.json`` (``model_type: modernbert``, ``vector_size``,
``single_vector_type``), ``model.safetensors``, ``tokenizer.json``. The backbone's keys are
taken under ``model.`` or at the top level; the vector head is the one Linear outside the
backbone whose weight is ``(vector_size, hidden_size)``. Its name and whether
``cls_add_mean`` adds the two vectors before the head are not published (the authors' code
was not available); every other key is refused by name.

Attention (``attention=`` at load): flash-attention 2 when installed on CUDA (packed,
padding-free batches), else SDPA; ``"flex_attention"`` keeps memory linear in length for very
long documents on GPUs without flash-attn (no packed batches).

Pooling (``pooling=``, default ``single_vector_type``): ``cls`` (first token), ``mean``
(content tokens: no CLS, SEP or prompt token), ``cls_add_mean`` (their sum). Chunk vectors of
late chunking are token means through the same head. Pooling is an encode-time option: models
with different poolings share one loaded copy of the weights.

Prompts: the checkpoint's ``config_sentence_transformers.json`` prompts when it has them
(``retrieve_query`` / ``retrieve_passage`` are the query and document prompts; every named
prompt is usable as ``prompt_name``), else the built-in instruction strings below.

Example:
    >>> from dewey_core import DeweyEncoder
    >>> from dewey_core.testing import tiny_dewey
    >>> import tempfile
    >>> enc = DeweyEncoder.from_pretrained(tiny_dewey(tempfile.mkdtemp()), device="cpu",
    ...                                    pooling="mean")
    >>> enc.encode_queries(["What is a spice?"]).shape
    (1, 64)
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from transformers import ModernBertConfig, ModernBertModel

from dewey_core.attention import choose_kernel, inspect_backbone, supported_kernels
from dewey_core.models.base import EncoderModel, Prompts
from dewey_core.models.checkpoint import (
    NOT_MODEL_CONFIG,
    CheckpointKeyError,
    build_module,
    linear_from,
    load_tokenizer,
    read_json,
    read_state,
    reads_add_eos_token,
    refuse_leftovers,
    take_prefix,
)
from dewey_core.models.sentence_transformers import read_prompts
from dewey_core.tokenization import TextTokenizer

QUERY_PROMPT = "<|START_INSTRUCTION|>Answer the question<|END_INSTRUCTION|>"
DOCUMENT_PROMPT = "<|START_INSTRUCTION|>Candidate document<|END_INSTRUCTION|>"
#: Checkpoint pooling names -> engine pooling modes (see :mod:`dewey_core.pooling`).
POOLINGS = {"cls": "cls", "mean": "content_mean", "cls_add_mean": "cls_add_mean"}
_NOT_MODEL_CONFIG = (*NOT_MODEL_CONFIG, "vector_size", "single_vector_type")
#: ModernBERT masked-LM head weights: known, unused for embeddings.
#: Longest window under SDPA/eager (32K tokens measured at 17.7 GiB on an H200).
DENSE_MASK_MAX_LENGTH = 32_768
_MLM_KEYS = ("head.dense.weight", "head.norm.weight", "head.norm.bias", "decoder.weight",
             "decoder.bias")


def pooling_name(config: dict[str, Any], pooling: str | None) -> str:
    """The asked pooling, else the checkpoint's ``single_vector_type``; validated."""
    name = pooling or config.get("single_vector_type", "cls_add_mean")
    if name not in POOLINGS:
        raise ValueError(f"pooling must be one of {sorted(POOLINGS)}, got {name!r}")
    return name


def default_attention(path: Path, device: torch.device, dtype: torch.dtype) -> str:
    """The attention kernel used when none is asked for (see :func:`choose_kernel`)."""
    return choose_kernel(device, supported_kernels(ModernBertModel), dtype=dtype)


def dewey_prompts(path: Path) -> Prompts:
    """The checkpoint's prompts (``config_sentence_transformers.json``), built-ins otherwise."""
    named = read_prompts(path).named
    query = named.get("retrieve_query") or named.get("query") or QUERY_PROMPT
    document = named.get("retrieve_passage") or named.get("document") or DOCUMENT_PROMPT
    return Prompts(query=query, document=document,
                   named={"query": query, "document": document, **named})


def is_dewey(path: Path, config: dict[str, Any]) -> bool:
    return config.get("model_type") == "modernbert" and (
        "DeweyV1" in (config.get("architectures") or []) or "vector_size" in config)


class DeweyModel(EncoderModel):
    """dewey_en_beta (or any ModernBERT checkpoint in its layout) loaded natively."""

    family = "dewey"

    def __init__(self, path: Path, device: torch.device, dtype: torch.dtype, *,
                 attention: str | None = None) -> None:
        self.path, self.device, self.dtype = path, device, dtype
        raw = read_json(path / "config.json")
        self.single_vector_type = raw.get("single_vector_type")
        self.apply_options(pooling=None)
        # flex_attention builds block-sparse masks (memory linear in length): the way to a
        # 128K-token document on a GPU without flash-attn. Packed batches need flash or a mask.
        attn = choose_kernel(device, supported_kernels(ModernBertModel), attention, dtype)
        config = ModernBertConfig(**{k: v for k, v in raw.items() if k not in _NOT_MODEL_CONFIG},
                                  attn_implementation=attn)
        self.hidden_size = config.hidden_size
        self.dimension = int(raw.get("vector_size") or config.hidden_size)
        self.sliding_window = config.sliding_window

        state = read_state(path)
        prefix = "model." if any(k.startswith("model.embeddings.") for k in state) else ""
        backbone_state = take_prefix(state, prefix) if prefix else {
            k: state.pop(k) for k in [k for k in state if k.split(".")[0] in _BACKBONE_ROOTS]}
        self.head_name = self._find_head(state) if "vector_size" in raw else None
        self.head = linear_from(state, self.head_name).to(device).eval() if self.head_name else None
        self.ignored_keys = sorted(k for k in state if k.removeprefix(prefix) in _MLM_KEYS)
        for k in self.ignored_keys:
            state.pop(k)
        refuse_leftovers(path, state)
        self.backbone = build_module(path, lambda: ModernBertModel(config), backbone_state,
                                     prefix, device, dtype)
        self.attention = inspect_backbone(self.backbone, attn)
        self.tokenizer = TextTokenizer(load_tokenizer(path), add_eos_token=reads_add_eos_token(path))
        self.prompts = dewey_prompts(path)
        # SDPA and eager build dense L x L masks (a 128K window needs ~128 GiB): cap the window
        # and let late chunking window longer documents; flash and flex are linear in length.
        self.max_length = int(config.max_position_embeddings)
        if attn in ("sdpa", "eager"):
            self.max_length = min(self.max_length, DENSE_MASK_MAX_LENGTH)
        if dtype == torch.float16:
            warnings.warn("dewey_en_beta gives NaNs in float16; use bfloat16 or float32",
                          stacklevel=3)

    def _find_head(self, state: dict[str, torch.Tensor]) -> str:
        shape = (self.dimension, self.hidden_size)
        names = [k.removesuffix(".weight") for k, v in state.items()
                 if k.endswith(".weight") and tuple(v.shape) == shape]
        if len(names) != 1:
            raise CheckpointKeyError(self.path, [f"<vector head>.weight {list(shape)}"]
                                     if not names else [], list(state) if names else [])
        return names[0]

    def apply_options(self, *, pooling: str | None = None) -> None:
        self.pooling_name = pooling_name({"single_vector_type": self.single_vector_type}, pooling)
        self.pooling = POOLINGS[self.pooling_name]

    def project(self, pooled: torch.Tensor, dim: int | None) -> torch.Tensor:
        if self.head is None:
            return pooled
        return self.head(pooled.to(self.device, torch.float32))


_BACKBONE_ROOTS = ("embeddings", "layers", "final_norm")


def load(path: Path, device: torch.device, dtype: torch.dtype, *, attention: str | None = None,
         trust_remote_code: bool = False) -> EncoderModel:
    if trust_remote_code:
        from dewey_core.models.remote import RemoteCodeModel

        raw = read_json(path / "config.json")
        return RemoteCodeModel(path, device, dtype, family="dewey",
                               pooling=POOLINGS[pooling_name(raw, None)], poolings=POOLINGS,
                               prompts=dewey_prompts(path),
                               max_length=int(raw.get("max_position_embeddings", 8192)))
    return DeweyModel(path, device, dtype, attention=attention)
