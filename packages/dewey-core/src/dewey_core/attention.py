"""Attention inputs for padded and packed batches, from what each backbone supports.

This is the one place that turns a :class:`~dewey_core.runtime.Batch` into the keyword
arguments a transformers backbone takes (``attention_mask``, ``position_ids``, varlen
``cu_seq_lens``). What differs between backbones is described by an :class:`AttentionSpec`,
read from the loaded module by :func:`inspect_backbone`:

- the attention kernel (``flash_attention_2``, ``sdpa``, ``eager``, ``flex_attention``), chosen
  by :func:`choose_kernel` from what the model class supports (MPNet, DeBERTa-v2 have no SDPA);
- causal or bidirectional: a decoder (last-token pooled Qwen2, Mistral) sees only earlier tokens
  of its own sequence in a packed row, never the next sequence's;
- the position offset: RoBERTa-style embeddings (RoBERTa, XLM-R, MPNet) number positions from
  ``padding_idx + 1``, so packed rows, which pass ``position_ids`` explicitly, must too;
- masks per layer type: ModernBERT's local layers need their sliding window inside a packed
  row's block-diagonal mask, and a Qwen2 made bidirectional needs its full-attention mask given,
  or it would build a causal one.

Packing several sequences into one row with restarting ``position_ids`` does not isolate them
by itself (BERT and ModernBERT both attend across sequences): packed rows get a block-diagonal
mask (boolean for SDPA, additive for eager), or flash-attention's ``cu_seq_lens``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import torch

from dewey_core.runtime import Batch

FLASH = "flash_attention_2"
KERNELS = (FLASH, "flex_attention", "sdpa", "eager")


@dataclass(frozen=True)
class AttentionSpec:
    """How one backbone takes attention inputs."""

    kernel: str = "sdpa"
    causal: bool = False
    position_offset: int = 0
    """Added to packed rows' restarting positions (``padding_idx + 1`` for RoBERTa-style)."""
    layer_masks: tuple[str, ...] = ()
    """Mask keys of a backbone that takes one mask per layer type (empty: one mask)."""
    sliding_window: int | None = None
    """Positions either side that a ``sliding_attention`` layer sees (ModernBERT)."""
    forced_bidirectional: bool = False
    """A decoder whose layers were made bidirectional: it must be handed its mask, padded
    batches included, or it builds a causal one."""

    @property
    def packing(self) -> str:
        """``flash`` (varlen, no mask), ``mask`` (block-diagonal 4-D mask) or ``none``."""
        if self.kernel == FLASH:
            return "flash"
        if self.kernel in ("sdpa", "eager") and not (self.causal and self.sliding_window):
            return "mask"
        return "none"

    def inputs(self, batch: Batch, dtype: torch.dtype) -> dict[str, Any]:
        """``attention_mask`` / ``position_ids`` / varlen keyword arguments for ``batch``."""
        if batch.packed_lengths is None:
            mask: Any = batch.attention_mask
            if self.forced_bidirectional:
                # No padding: no mask at all (SDPA's fast path; the layers are not causal).
                padded = self.kernel != FLASH and not bool(batch.attention_mask.all())
                mask = self._wrap(self._format(_key_padding(batch.attention_mask), dtype)
                                  if padded else None)
            return {"attention_mask": mask}
        positions = batch.position_ids + self.position_offset if self.position_offset \
            else batch.position_ids
        if batch.flash_kwargs:
            return {"position_ids": positions, **batch.flash_kwargs}
        if self.packing != "mask":
            raise ValueError(f"this backbone ({self.kernel} attention) cannot run packed batches")
        full = self._format(self._block_mask(batch, None), dtype)
        if "sliding_attention" in self.layer_masks:
            mask = {"full_attention": full,
                    "sliding_attention": self._format(self._block_mask(batch, self.sliding_window),
                                                      dtype)}
        else:
            mask = self._wrap(full)
        return {"attention_mask": mask, "position_ids": positions}

    def _wrap(self, mask: Any) -> Any:
        return {key: mask for key in self.layer_masks} if self.layer_masks else mask

    def _block_mask(self, batch: Batch, window: int | None) -> torch.Tensor:
        """Boolean ``(1, 1, L, L)``: each sequence of the row sees only itself (and, causal,
        only its earlier tokens; with ``window``, only tokens that many positions away)."""
        device = batch.input_ids.device
        lengths = torch.tensor(batch.packed_lengths, device=device)
        segment = torch.repeat_interleave(torch.arange(len(lengths), device=device), lengths)
        allowed = segment[:, None] == segment[None, :]
        pos = torch.arange(len(segment), device=device)
        if self.causal:
            allowed &= pos[:, None] >= pos[None, :]
        if window is not None:
            allowed &= (pos[:, None] - pos[None, :]).abs() <= window
        return allowed[None, None]

    def _format(self, allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        # SDPA and flex take boolean masks; eager attention adds the mask to its scores.
        if self.kernel != "eager":
            return allowed
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
            ~allowed, torch.finfo(dtype).min)


def _key_padding(attention_mask: torch.Tensor) -> torch.Tensor:
    """Boolean ``(B, 1, L, L)`` bidirectional mask from a 2-D padding mask."""
    keep = attention_mask.bool()
    return keep[:, None, None, :].expand(-1, 1, keep.shape[1], keep.shape[1])


def flash_attention_available(device: torch.device) -> bool:
    """True when the flash-attn package is installed and the device is CUDA."""
    return device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None


def supported_kernels(model_class: type) -> tuple[str, ...]:
    """The kernels a transformers model class declares, best first (eager always works)."""
    flags = {FLASH: "_supports_flash_attn", "flex_attention": "_supports_flex_attn",
             "sdpa": "_supports_sdpa"}
    return (*[k for k, flag in flags.items() if getattr(model_class, flag, False)], "eager")


def choose_kernel(device: torch.device, supported: tuple[str, ...] = KERNELS,
                  requested: str | None = None) -> str:
    """``requested`` if given (checked), else flash-attention where installed, else SDPA,
    else eager. Flex attention is only used when asked for (it pays off for very long
    documents on GPUs)."""
    if requested is not None:
        if requested not in KERNELS:
            raise ValueError(f"attention must be one of {KERNELS}, got {requested!r}")
        if requested not in supported:
            raise ValueError(f"this model supports attention {supported}, not {requested!r}")
        return requested
    if FLASH in supported and flash_attention_available(device):
        return FLASH
    return "sdpa" if "sdpa" in supported else "eager"


def inspect_backbone(backbone: torch.nn.Module, kernel: str, *,
                     forced_bidirectional: bool = False) -> AttentionSpec:
    """Read causality, position offset and per-layer-type masks off a loaded backbone."""
    causal = any(getattr(m, "is_causal", False) for m in backbone.modules()
                 if m is not backbone)
    positions = getattr(getattr(backbone, "embeddings", None), "position_embeddings", None)
    offset = 0
    if isinstance(positions, torch.nn.Embedding) and positions.padding_idx is not None:
        offset = positions.padding_idx + 1
    config = getattr(backbone, "config", None)
    layer_types = tuple(sorted(set(getattr(config, "layer_types", None) or ())))
    sliding = "sliding_attention" in layer_types
    window = getattr(config, "sliding_window", None) if sliding else None
    # Per-layer-type masks only where they are needed: distinct sliding layers, or a decoder
    # made bidirectional. Other backbones take one 4-D mask.
    layer_masks = layer_types if (sliding or forced_bidirectional) else ()
    return AttentionSpec(kernel=kernel, causal=causal, position_offset=offset,
                         layer_masks=layer_masks, sliding_window=window,
                         forced_bidirectional=forced_bidirectional)
