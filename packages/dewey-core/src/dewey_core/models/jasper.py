"""Jasper VL (jasper_en_vision_language_v1): bidirectional Qwen2 + SigLIP, text and images.

Layout read from the checkpoint: ``config.json`` (``model_type: jasper_vl``, ``text_config``,
``vision_config``, ``num_img_tokens``, ``img_*_token(_id)``, ``vector_dim``),
``model.safetensors`` with keys ``model.*`` (Qwen2Model), ``vision_model.*`` (SigLIP vision,
with or without an inner ``vision_model.``) and ``vector_linear_{dim}.*`` (one head per size),
tokenizer files and ``preprocessor_config.json``. Anything else is refused by name.

An image becomes ``<img_start> <img_token> x 300 <img_end>``; SigLIP's ``last_hidden_state``
``(729, 1152)`` goes through the parameter-free ``AdaptiveAvgPool2d((300, hidden))`` and
replaces the 300 image-token embeddings. Text, images and mixed inputs are mean-pooled and go
through the same head, so they share one space. Queries get the ``s2p_query`` prompt
(``prompt=model.prompts.named["s2s_query"]`` for symmetric tasks); documents none.

Example:
    >>> from dewey_core import DeweyEncoder
    >>> from dewey_core.testing import tiny_jasper
    >>> from PIL import Image
    >>> import tempfile
    >>> enc = DeweyEncoder.from_pretrained(tiny_jasper(tempfile.mkdtemp()), device="cpu")
    >>> red, small = Image.new("RGB", (50, 40), "red"), Image.new("RGB", (8, 8))
    >>> enc.encode_images([red, ["A red square:", small]]).shape
    (2, 64)
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import SiglipVisionConfig, SiglipVisionModel

from dewey_core.models.base import EncoderModel, Prompts
from dewey_core.models.bidirectional import (
    bidirectional_forward,
    build_qwen2,
    qwen2_config,
    qwen2_kernel,
)
from dewey_core.models.checkpoint import (
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
from dewey_core.models.images import ImagePreprocessor, open_image
from dewey_core.models.sentence_transformers import read_max_seq_length, read_prompts
from dewey_core.models.stella import select_head
from dewey_core.pooling import Layout
from dewey_core.runtime import Batch
from dewey_core.tokenization import TextTokenizer

S2P_QUERY = "Instruct: Given a web search query, retrieve relevant passages that answer the query.\nQuery: "
S2S_QUERY = "Instruct: Retrieve semantically similar text.\nQuery: "
DEFAULT_MAX_LENGTH = 1024
_HEAD_KEY = re.compile(r"^vector_linear_(\d+)\.weight$")


def is_jasper(path: Path, config: dict[str, Any]) -> bool:
    return config.get("model_type") == "jasper_vl"


@dataclass(frozen=True)
class ImageSequence:
    """One image or mixed input as model tokens, with its preprocessed images."""

    ids: list[int]
    layout: Layout
    pixels: torch.Tensor | None
    """``(n_images, 3, H, W)`` in input order, or None for text-only parts."""


class JasperModel(EncoderModel):
    family = "jasper"
    supports_images = True

    def __init__(self, path: Path, device: torch.device, dtype: torch.dtype, *,
                 attention: str | None = None) -> None:
        self.path, self.device, self.dtype = path, device, dtype
        raw = read_json(path / "config.json")
        for field in ("text_config", "vision_config"):
            if not isinstance(raw.get(field), dict):
                raise ValueError(f"{path}/config.json: a jasper_vl config needs a {field} object")
        text_config = qwen2_config(raw["text_config"], qwen2_kernel(device, dtype, attention))
        self.hidden_size = text_config.hidden_size
        self.num_img_tokens = int(raw.get("num_img_tokens", 300))

        state = read_state(path)
        heads = {int(m.group(1)) for k in state if (m := _HEAD_KEY.match(k))}
        if not heads:
            raise CheckpointKeyError(path, ["vector_linear_{dim}.weight"], [])
        self.heads = {d: linear_from(state, f"vector_linear_{d}").to(device).eval()
                      for d in sorted(heads)}
        text_state = take_prefix(state, "model.")
        vision_state = take_prefix(state, "vision_model.")
        vision_prefix = "vision_model."
        if vision_state and all(k.startswith("vision_model.") for k in vision_state):
            vision_state = take_prefix(vision_state, "vision_model.")
            vision_prefix += "vision_model."
        refuse_leftovers(path, state)
        vision_fields = {k: v for k, v in raw["vision_config"].items() if k != "model_type"}
        vision_fields["vision_use_head"] = any(k.startswith("head.") for k in vision_state)
        vision_config = SiglipVisionConfig(**vision_fields, attn_implementation="sdpa")
        self.backbone, self.attention = build_qwen2(path, text_config, text_state, "model.",
                                                    device, dtype)
        self.vision = build_module(path, lambda: SiglipVisionModel(vision_config), vision_state,
                                   vision_prefix, device, dtype)
        self.image_pool = torch.nn.AdaptiveAvgPool2d((self.num_img_tokens, self.hidden_size))

        self.head_dims = tuple(sorted(self.heads))
        default = int(raw.get("vector_dim") or max(self.heads))
        if default not in self.heads:
            raise ValueError(f"{path}: no vector_linear_{default} head; heads: {list(self.head_dims)}")
        self.dimension = default
        self.pooling = "mean"
        self.tokenizer = TextTokenizer(load_tokenizer(path),
                                           add_eos_token=reads_add_eos_token(path))
        self.image_ids = self._image_token_ids(raw)
        self.preprocess = ImagePreprocessor.from_config(read_json(path / "preprocessor_config.json"))
        prompts = read_prompts(path)
        named = {"s2p_query": S2P_QUERY, "s2s_query": S2S_QUERY, **prompts.named}
        self.prompts = Prompts(query=named["s2p_query"], document="", named=named)
        self.max_length = min(read_max_seq_length(path) or DEFAULT_MAX_LENGTH,
                              text_config.max_position_embeddings)

    def _image_token_ids(self, raw: dict[str, Any]) -> tuple[int, int, int]:
        ids = []
        for part in ("img_start", "img", "img_end"):
            token, token_id = raw.get(f"{part}_token"), raw.get(f"{part}_token_id")
            if token is None or token_id is None:
                raise ValueError(f"{self.path}/config.json: missing {part}_token / {part}_token_id")
            if self.tokenizer.hf.convert_tokens_to_ids(token) != token_id:
                raise ValueError(f"{self.path}: the tokenizer does not map {token!r} to "
                                 f"{token_id} as config.json says")
            ids.append(int(token_id))
        return ids[0], ids[1], ids[2]

    # ------------------------------------------------------------------ images
    def image_sequences(self, items: Sequence[Any], prompt: str = "") -> list[ImageSequence]:
        """Token ids, layout and pixels for each image or mixed (text + images) input.

        An item is an image (PIL image, path, bytes) or a list/tuple of parts, where a ``str``
        part is text and any other part an image.
        """
        if isinstance(items, (str, bytes, os.PathLike)) or not isinstance(items, (list, tuple)):
            raise TypeError(f"images must be a list, got {type(items).__name__} (wrap a single "
                            "image in a list)")
        prefix, suffix = self.tokenizer.prefix_ids, self.tokenizer.suffix_ids
        prompt_ids = list(self.tokenizer.tokenize([""], prompt)[0].prompt_ids) if prompt else []
        start, token, end = self.image_ids
        placeholder = [start, *[token] * self.num_img_tokens, end]
        out = []
        for i, item in enumerate(items):
            parts = list(item) if isinstance(item, (list, tuple)) else [item]
            if not parts:
                raise ValueError(f"images[{i}] is an empty list of parts")
            content: list[int] = []
            pixels = []
            for j, part in enumerate(parts):
                where = f"images[{i}]" if part is item else f"images[{i}][{j}]"
                if isinstance(part, str) and part is not item:
                    content.extend(self.tokenizer.tokenize([part], offsets=False)[0].ids)
                else:
                    pixels.append(self.preprocess(open_image(part, where)))
                    content.extend(placeholder)
            ids = [*prefix, *prompt_ids, *content, *suffix]
            if len(ids) > self.max_length:
                raise ValueError(f"images[{i}] takes {len(ids)} tokens, more than this model's "
                                 f"{self.max_length}; image inputs are never truncated")
            layout = Layout(len(prefix), len(prompt_ids), 0, len(content), len(suffix))
            out.append(ImageSequence(ids, layout, torch.stack(pixels) if pixels else None))
        return out

    # ------------------------------------------------------------------ model steps
    def forward(self, batch: Batch) -> torch.Tensor:
        embeds = self.backbone.embed_tokens(batch.input_ids)
        pixels = [p for p in batch.extras if p is not None]
        if pixels:
            where = batch.input_ids == self.image_ids[1]
            vit = self.vision(pixel_values=torch.cat(pixels).to(self.device, self.dtype))
            tokens = self.image_pool(vit.last_hidden_state.float()).to(embeds.dtype)
            if int(where.sum()) != tokens.shape[0] * tokens.shape[1]:
                raise ValueError(f"{int(where.sum())} image-token positions for "
                                 f"{tokens.shape[0]} images of {tokens.shape[1]} tokens: text "
                                 "must not contain the image placeholder tokens")
            embeds = embeds.clone()
            embeds[where] = tokens.reshape(-1, self.hidden_size)
        return bidirectional_forward(self.backbone, self.attention, batch, embeds)

    def apply_options(self, *, vector_dim: int | None = None) -> None:
        if vector_dim is not None:
            if vector_dim not in self.heads:
                raise ValueError(f"{self.path}: no vector_linear_{vector_dim} head; heads: "
                                 f"{list(self.head_dims)}")
            self.dimension = vector_dim

    def project(self, pooled: torch.Tensor, dim: int | None) -> torch.Tensor:
        return select_head(self.heads, self.dimension, dim)(pooled.to(self.device, torch.float32))


def default_attention(path: Path, device: torch.device, dtype: torch.dtype) -> str:
    return qwen2_kernel(device, dtype)


def load(path: Path, device: torch.device, dtype: torch.dtype, *, attention: str | None = None,
         trust_remote_code: bool = False) -> EncoderModel:
    if trust_remote_code:
        from dewey_core.models.remote import RemoteCodeModel

        model = RemoteCodeModel(path, device, dtype, family="jasper", pooling="mean",
                                prompts=Prompts(S2P_QUERY, "", {"s2p_query": S2P_QUERY,
                                                                "s2s_query": S2S_QUERY}),
                                max_length=read_max_seq_length(path) or DEFAULT_MAX_LENGTH, heads={})
        model.heads = {d: getattr(model.backbone, f"vector_linear_{d}")
                       for d in (12288, 1024, 512, 256)
                       if hasattr(model.backbone, f"vector_linear_{d}")}
        model.head_dims = tuple(sorted(model.heads))
        model.dimension = int(getattr(model.backbone.config, "vector_dim", 1024))
        return model
    return JasperModel(path, device, dtype, attention=attention)
