"""Attention inputs for padded and packed batches, from what each backbone supports.

This is the one place that turns a :class:`~dewey_core.runtime.Batch` into the keyword
arguments a transformers backbone takes (``attention_mask``, ``position_ids``, varlen
``cu_seq_lens``). What differs between backbones is described by an :class:`AttentionSpec`,
read from the loaded module by :func:`inspect_backbone`:

- the attention kernel (``flash_attention_2``, ``varlen``, ``sdpa``, ``eager``,
  ``flex_attention``), chosen by :func:`choose_kernel` from what the model class supports
  (MPNet, DeBERTa-v2 have no SDPA) and the device;
- causal or bidirectional: a decoder (last-token pooled Qwen2, Mistral) sees only earlier tokens
  of its own sequence in a packed row, never the next sequence's;
- the position offset: RoBERTa-style embeddings (RoBERTa, XLM-R, MPNet) number positions from
  ``padding_idx + 1``, so packed rows, which pass ``position_ids`` explicitly, must too;
- masks per layer type: ModernBERT's local layers need their sliding window inside a packed
  row's block-diagonal mask, and a Qwen2 made bidirectional needs its full-attention mask given,
  or it would build a causal one.

Packing several sequences into one row with restarting ``position_ids`` does not isolate them
by itself (BERT and ModernBERT both attend across sequences): packed rows get a block-diagonal
mask (boolean for SDPA, additive for eager), or ``cu_seq_lens`` for the varlen kernels.

``varlen`` is registered here as a transformers attention implementation: torch's own
FlashAttention varlen kernels (``torch.nn.attention.varlen.varlen_attn``, torch >= 2.10), so
packed, padding-free batches run on any CUDA machine without the flash-attn package. Off CUDA it
computes the same thing per sequence with SDPA (slow; it keeps the path testable on a CPU).
"""

from __future__ import annotations

import importlib.util
import inspect
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

from dewey_core.runtime import Batch

FLASH = "flash_attention_2"
VARLEN = "varlen"
KERNELS = (FLASH, VARLEN, "flex_attention", "sdpa", "eager")
#: Kernels that take packed rows as ``cu_seq_lens`` and padded batches as 2-D padding masks.
VARLEN_KERNELS = (FLASH, VARLEN)


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
    takes_positions: bool = True
    """The backbone's forward accepts ``position_ids`` (T5's encoder does not: no packing)."""

    @property
    def packing(self) -> str:
        """``flash`` (varlen, no mask), ``mask`` (block-diagonal 4-D mask) or ``none``."""
        if not self.takes_positions:
            return "none"
        if self.kernel in VARLEN_KERNELS:
            return "flash"
        if self.kernel in ("sdpa", "eager") and not (self.causal and self.sliding_window):
            return "mask"
        return "none"

    def inputs(self, batch: Batch, dtype: torch.dtype) -> dict[str, Any]:
        """``attention_mask`` / ``position_ids`` / varlen keyword arguments for ``batch``."""
        if batch.packed_lengths is None:
            mask: Any = batch.attention_mask
            if self.forced_bidirectional:
                if self.kernel in VARLEN_KERNELS:  # a 2-D padding mask: the kernel unpads
                    mask = self._wrap(batch.attention_mask)
                elif not torch.jit.is_tracing() and bool(batch.attention_mask.all()):
                    # No padding: no mask (SDPA's fast path). A traced graph (OpenVINO) keeps
                    # the mask, which is right for every batch.
                    mask = self._wrap(None)
                else:
                    mask = self._wrap(self._format(_key_padding(batch.attention_mask), dtype))
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


def varlen_available(device: torch.device, dtype: torch.dtype) -> bool:
    """torch's varlen kernels run here: CUDA, half precision, torch >= 2.10."""
    return (device.type == "cuda" and dtype in (torch.float16, torch.bfloat16)
            and importlib.util.find_spec("torch.nn.attention.varlen") is not None)


def supported_kernels(model_class: type) -> tuple[str, ...]:
    """The kernels a transformers model class declares, best first (eager always works).
    ``varlen`` needs the model to call attention through transformers' interface."""
    flags = {FLASH: "_supports_flash_attn", VARLEN: "_supports_attention_backend",
             "flex_attention": "_supports_flex_attn", "sdpa": "_supports_sdpa"}
    return (*[k for k, flag in flags.items() if getattr(model_class, flag, False)], "eager")


def choose_kernel(device: torch.device, supported: tuple[str, ...] = KERNELS,
                  requested: str | None = None, dtype: torch.dtype | None = None) -> str:
    """``requested`` if given (checked), else on CUDA the flash-attn package where installed,
    else torch's varlen kernels (half precision), else SDPA, else eager. Flex attention is
    only used when asked for (it pays off for very long documents on GPUs)."""
    if requested is not None:
        if requested not in KERNELS:
            raise ValueError(f"attention must be one of {KERNELS}, got {requested!r}")
        if requested not in supported:
            raise ValueError(f"this model supports attention {supported}, not {requested!r}")
        return requested
    if FLASH in supported and flash_attention_available(device):
        return FLASH
    if VARLEN in supported and dtype is not None and varlen_available(device, dtype):
        return VARLEN
    return "sdpa" if "sdpa" in supported else "eager"


def _window(sliding_window: int | None, causal: bool) -> tuple[int, int]:
    """(left, right) keys each query sees; -1 is unbounded. transformers' ``sliding_window`` is
    the window's size on each side counting the query itself (flash-attention's convention)."""
    side = sliding_window - 1 if sliding_window is not None else -1
    return side, 0 if causal else side


def _per_sequence_attention(q, k, v, cu_q, cu_k, scale, window) -> torch.Tensor:
    """What the varlen kernel computes, one sequence at a time with SDPA (``(T, H, D)`` in/out)."""
    out = []
    left, right = window
    for i in range(len(cu_q) - 1):
        qs, ks, vs = (x[int(c[i]):int(c[i + 1])].transpose(0, 1)
                      for x, c in ((q, cu_q), (k, cu_k), (v, cu_k)))
        if ks.shape[0] != qs.shape[0]:  # grouped-query attention
            ks = ks.repeat_interleave(qs.shape[0] // ks.shape[0], 0)
            vs = vs.repeat_interleave(qs.shape[0] // vs.shape[0], 0)
        rel = torch.arange(ks.shape[1], device=q.device)[None] - torch.arange(qs.shape[1],
                                                                             device=q.device)[:, None]
        allowed = torch.ones_like(rel, dtype=torch.bool)
        if left >= 0:
            allowed &= rel >= -left
        if right >= 0:
            allowed &= rel <= right
        out.append(F.scaled_dot_product_attention(qs, ks, vs, attn_mask=allowed,
                                                  scale=scale).transpose(0, 1))
    return torch.cat(out)


def _varlen(q, k, v, cu_q, cu_k, max_q, max_k, scale, window) -> torch.Tensor:
    if not q.is_cuda:
        return _per_sequence_attention(q, k, v, cu_q, cu_k, scale, window)
    from torch.nn.attention.varlen import varlen_attn

    return call_varlen_attn(varlen_attn, q, k, v, cu_q, cu_k, max_q, max_k, scale, window)


def call_varlen_attn(varlen_attn, q, k, v, cu_q, cu_k, max_q, max_k, scale, window) -> torch.Tensor:
    """``varlen_attn`` called through the arguments its torch release takes. torch 2.10's takes
    only ``is_causal`` (no scale, window or grouped-query heads); later ones take ``scale``,
    ``window_size`` and ``enable_gqa``. What a release lacks is done here, or, for a sliding
    window it cannot express, per sequence with SDPA."""
    params = inspect.signature(varlen_attn).parameters
    kwargs: dict[str, Any] = {}
    if k.shape[1] != q.shape[1]:
        if "enable_gqa" in params:
            kwargs["enable_gqa"] = True
        else:
            k, v = (x.repeat_interleave(q.shape[1] // x.shape[1], 1) for x in (k, v))
    if "window_size" in params:
        kwargs["window_size"] = window
    elif window in ((-1, -1), (-1, 0)):
        kwargs["is_causal"] = window == (-1, 0)
    else:
        return _per_sequence_attention(q, k, v, cu_q, cu_k, scale, window)
    if "scale" in params:
        kwargs["scale"] = scale
    elif scale is not None:  # the kernel scales by 1/sqrt(head size): fold the rest into q
        q = q * (scale * q.shape[-1] ** 0.5)
    return varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, **kwargs)


def varlen_attention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor,
                             value: torch.Tensor, attention_mask: torch.Tensor | None,
                             dropout: float = 0.0, scaling: float | None = None,
                             sliding_window: int | None = None, is_causal: bool | None = None,
                             **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers attention function (``(B, H, L, D)`` in, ``(B, L, H, D)`` out): packed rows
    through ``cu_seq_lens``; padded batches unpadded with their 2-D mask first."""
    causal = bool(module.is_causal if is_causal is None else is_causal)
    window = _window(sliding_window, causal)
    q, k, v = (x.transpose(1, 2) for x in (query, key, value))  # (B, L, H, D)
    if kwargs.get("cu_seq_lens_q") is not None:
        out = _varlen(q[0], k[0], v[0], kwargs["cu_seq_lens_q"], kwargs["cu_seq_lens_k"],
                      kwargs["max_length_q"], kwargs["max_length_k"], scaling, window)
        return out.unsqueeze(0), None
    rows, length = q.shape[:2]
    if attention_mask is None:
        keep = torch.ones(rows, length, dtype=torch.bool, device=q.device)
    elif attention_mask.dim() == 2:
        keep = attention_mask.bool()
    else:  # a 4-D mask means someone built one for another kernel: use it as is
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    lengths = keep.sum(1)
    cu = F.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)
    index = keep.reshape(-1).nonzero().squeeze(1)
    flat = [x.reshape(rows * length, *x.shape[2:])[index] for x in (q, k, v)]
    longest = int(lengths.max())
    out = _varlen(*flat, cu, cu, longest, longest, scaling, window)
    full = out.new_zeros(rows * length, *out.shape[1:])
    full[index] = out
    return full.view(rows, length, *out.shape[1:]), None


# The kernel and its masks (a 2-D padding mask or none, as flash-attention's) are known to
# every transformers model that calls attention through the interface.
AttentionInterface.register(VARLEN, varlen_attention_forward)
AttentionMaskInterface.register(VARLEN, flash_attention_mask)


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
    takes_positions = "position_ids" in inspect.signature(backbone.forward).parameters
    return AttentionSpec(kernel=kernel, causal=causal, position_offset=offset,
                         layer_masks=layer_masks, sliding_window=window,
                         forced_bidirectional=forced_bidirectional, takes_positions=takes_positions)
