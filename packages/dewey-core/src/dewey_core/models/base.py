"""What every model family provides to the engine.

A family differs only in how it is loaded, prompted, run and pooled; tokenisation, batching,
late chunking, truncation and normalisation are shared (see :mod:`dewey_core.encoder`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dewey_core.attention import AttentionSpec
from dewey_core.runtime import Batch
from dewey_core.tokenization import TextTokenizer


@dataclass(frozen=True)
class Prompts:
    """Text prepended to queries and documents (no separator is added)."""

    query: str = ""
    document: str = ""
    named: dict[str, str] = field(default_factory=dict)
    """Every prompt the checkpoint defines, by name (e.g. ``s2p_query``, ``s2s_query``)."""


class EncoderModel:
    """A loaded backbone plus its tokenizer, prompts, pooling and output heads.

    Subclasses set the attributes in ``__init__`` and may override :meth:`forward` and
    :meth:`project`. Instances are shared between encoders (see :mod:`dewey_core.loading`),
    so they hold no per-call state.
    """

    family: str = "transformers"
    path: Path
    tokenizer: TextTokenizer
    device: torch.device
    dtype: torch.dtype
    max_length: int
    """Longest sequence the model takes, special and prompt tokens included."""
    hidden_size: int
    dimension: int
    """Size of the default output vector."""
    head_dims: tuple[int, ...] = ()
    """Output sizes with a trained head of their own; other sizes truncate (Matryoshka)."""
    prompts: Prompts = Prompts()
    pooling: str = "mean"
    """Pooling of the global (whole-sequence) vector; chunks are always token means."""
    attention: AttentionSpec = AttentionSpec(kernel="none")
    """How the backbone takes attention inputs (kernel, causality, positions, masks)."""
    backbone: torch.nn.Module
    backend: str = "torch"
    """What runs the forward step: ``torch`` or ``openvino`` (see :mod:`dewey_core.openvino`)."""
    matmul_dtype: str | None = None
    """``"bfloat16"`` or ``"float32"`` when the linear layers of this float32 CPU model run on
    oneDNN in that dtype (:mod:`dewey_core.cpu_matmul`), else ``None`` (torch's own layers)."""
    supports_images: bool = False
    """True for families that embed images (see ``image_sequences`` on those families)."""

    @property
    def packing(self) -> str:
        """How this backbone takes padding-free batches: ``flash``, ``mask`` or ``none``."""
        return self.attention.packing

    def forward(self, batch: Batch) -> torch.Tensor:
        """Token states ``(rows, length, hidden)`` for a batch."""
        out = self.backbone(input_ids=batch.input_ids, **self.attention.inputs(batch, self.dtype))
        return out.last_hidden_state

    def with_options(self, **options: Any) -> EncoderModel:
        """This model with encode-time options applied (e.g. ``pooling``, ``vector_dim``),
        sharing its weights: a shallow copy, so no second copy of the backbone is loaded."""
        if not options:
            return self
        view = copy.copy(self)
        view.apply_options(**options)
        return view

    def apply_options(self, **options: Any) -> None:
        """Set encode-time options on this (copied) model; families override."""
        raise ValueError(f"unknown model option(s) {', '.join(sorted(options))} for "
                         f"{self.family} models")

    def project(self, pooled: torch.Tensor, dim: int | None) -> torch.Tensor:
        """Apply output heads to pooled vectors ``(n, hidden)``; returns ``(n, >= dim)``.

        ``dim`` lets families with one head per size pick it; truncation to ``dim`` and
        normalisation happen afterwards in the engine.
        """
        return pooled

    def default_token_budget(self) -> int:
        """Tokens per batch: small on CPU (cache-friendly), large on accelerators."""
        return 2048 if self.device.type == "cpu" else 16384
