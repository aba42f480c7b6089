"""Alibaba's GTE v1.5 architecture (``"model_type": "new"``, ``"architectures": ["NewModel"]``)
on transformers' native ``GteModel``, from the released keys, no remote code.

stella_en_400M_v5 and gte-{base,large}-en-v1.5 ship this layout: a BERT WordPiece tokenizer,
``embeddings.{word_embeddings,token_type_embeddings,LayerNorm}``, and per layer a fused
``attention.qkv_proj`` (q, k, v stacked), ``attention.o_proj``, ``attn_ln``, a fused
``mlp.up_gate_proj`` (up, then gate; no bias), ``mlp.down_proj`` and ``mlp_ln``, optionally under
``new.``. Rotary positions use ``rope_theta`` with the checkpoint's fixed NTK scaling
(``rope_scaling: {"type": "ntk", "factor": f}``): base ``theta * f`` and every frequency divided
by ``f ** (2 / head_dim)``. Configurations the native model cannot reproduce (log-n attention
scaling, RMS norm, absolute positions) are refused by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import GteConfig, GteModel

from dewey_core.attention import AttentionSpec, choose_kernel, inspect_backbone, supported_kernels
from dewey_core.models.checkpoint import build_module

#: Released keys that are known and unused for embeddings.
_UNUSED_PREFIXES = ("pooler.", "embeddings.position_ids")


def is_gte(config: dict[str, Any]) -> bool:
    return config.get("model_type") == "new"


def gte_kernel(device: torch.device, dtype: torch.dtype, requested: str | None = None) -> str:
    return choose_kernel(device, supported_kernels(GteModel), requested, dtype)


def gte_config(path: Path, raw: dict[str, Any], kernel: str) -> tuple[GteConfig, float]:
    """The native config and the NTK factor (1.0 without scaling)."""
    refused = {
        "position_embedding_type": (raw.get("position_embedding_type", "rope"), ("rope",)),
        "layer_norm_type": (raw.get("layer_norm_type", "layer_norm"), ("layer_norm",)),
        "logn_attention_scale": (raw.get("logn_attention_scale", False), (False,)),
        "pack_qkv": (raw.get("pack_qkv", True), (True,)),
    }
    for name, (value, allowed) in refused.items():
        if value not in allowed:
            raise ValueError(f"{path}/config.json: {name}={value!r} is not supported natively "
                             f"(supported: {allowed}); pass trust_remote_code=True to run the "
                             "checkpoint's own code")
    scaling = raw.get("rope_scaling") or {}
    kind = scaling.get("type") or scaling.get("rope_type")
    if kind not in (None, "ntk"):
        raise ValueError(f"{path}/config.json: rope_scaling type {kind!r} is not supported "
                         "natively (only fixed 'ntk')")
    factor = float(scaling.get("factor", 1.0)) if kind else 1.0
    fields = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
              "intermediate_size", "hidden_act", "max_position_embeddings", "type_vocab_size",
              "layer_norm_eps", "pad_token_id")
    config = GteConfig(**{k: raw[k] for k in fields if k in raw},
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                       rope_parameters={"rope_type": "default",
                                        "rope_theta": float(raw.get("rope_theta", 10000.0))},
                       attn_implementation=kernel)
    return config, factor


def native_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Released key names -> ``GteModel`` key names; fused projections split. Keys it does not
    know pass through unchanged (and are then refused by name)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("new.")
        if key.startswith(_UNUSED_PREFIXES):
            continue
        if not key.startswith("encoder.layer."):
            out[key] = value
            continue
        index, name = key.removeprefix("encoder.layer.").split(".", 1)
        layer = f"layers.{index}."
        if name.startswith("attention.qkv_proj."):
            kind = name.rsplit(".", 1)[1]
            for part, chunk in zip("qkv", value.chunk(3, dim=0), strict=True):
                out[f"{layer}self_attn.{part}_proj.{kind}"] = chunk
        elif name.startswith("mlp.up_gate_proj."):
            up, gate = value.chunk(2, dim=0)
            kind = name.rsplit(".", 1)[1]
            out[f"{layer}mlp.up_proj.{kind}"], out[f"{layer}mlp.gate_proj.{kind}"] = up, gate
        else:
            renamed = {"attention.o_proj.": "self_attn.o_proj.", "attn_ln.": "post_attention_layernorm.",
                       "mlp.down_proj.": "mlp.down_proj.", "mlp_ln.": "post_mlp_layernorm."}
            prefix = next((p for p in renamed if name.startswith(p)), None)
            out[layer + (renamed[prefix] + name[len(prefix):] if prefix else name)] = value
    return out


def build_gte(path: Path, raw: dict[str, Any], state: dict[str, torch.Tensor],
              device: torch.device, dtype: torch.dtype,
              attention: str | None = None) -> tuple[GteModel, AttentionSpec]:
    """A ``GteModel`` with the checkpoint's weights and NTK-scaled rotary frequencies."""
    kernel = gte_kernel(device, dtype, attention)
    config, factor = gte_config(path, raw, kernel)
    prefix = "new." if any(k.startswith("new.") for k in state) else ""
    model = build_module(path, lambda: GteModel(config), native_state(state), prefix, device, dtype)
    if factor != 1.0:
        rotary = model.rotary_emb
        dim = config.hidden_size // config.num_attention_heads
        theta = config.rope_parameters["rope_theta"] * factor
        exponents = torch.arange(0, dim, 2, dtype=torch.float32, device=rotary.inv_freq.device) / dim
        inv_freq = 1.0 / theta ** exponents / factor ** (2 / dim)
        rotary.inv_freq = inv_freq
        rotary.original_inv_freq = inv_freq.clone()
    return model, inspect_backbone(model, kernel)
