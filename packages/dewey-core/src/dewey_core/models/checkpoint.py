"""Reading released checkpoints natively: safetensors state, explicit key mapping, masks.

Every native family reads its weights with :func:`read_state`, takes the keys it knows with
:func:`take_prefix`, and builds transformers modules with :func:`build_module`, which refuses a
checkpoint whose keys do not match exactly (:class:`CheckpointKeyError` lists them). Nothing
here runs code shipped with a checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformers.initialization import no_init_weights

#: Keys listed in an error message before it says "... and N more".
_SHOWN_KEYS = 20


class CheckpointKeyError(ValueError):
    """The checkpoint's weight names do not match the architecture its config describes."""

    def __init__(self, path: Path, missing: list[str], unexpected: list[str]) -> None:
        self.path, self.missing, self.unexpected = path, sorted(missing), sorted(unexpected)
        parts = []
        if self.unexpected:
            parts.append(f"unrecognised keys {_listing(self.unexpected)}")
        if self.missing:
            parts.append(f"missing keys {_listing(self.missing)}")
        super().__init__(f"{path}: refusing to load a checkpoint with " + "; ".join(parts)
                         + ". It is not in a released layout this engine knows; pass "
                         "trust_remote_code=True to run the checkpoint's own code instead.")


def _listing(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_SHOWN_KEYS])
    more = len(keys) - _SHOWN_KEYS
    return f"[{shown}{f', ... and {more} more' if more > 0 else ''}]"


#: config.json fields that describe the checkpoint, not the transformers model config.
NOT_MODEL_CONFIG = ("architectures", "auto_map", "transformers_version", "torch_dtype", "dtype")


def read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def weight_files(path: Path) -> list[Path]:
    """``model.safetensors`` or the shards named by ``model.safetensors.index.json``."""
    single = path / "model.safetensors"
    if single.is_file():
        return [single]
    index = path / "model.safetensors.index.json"
    if index.is_file():
        return [path / name for name in sorted(set(read_json(index)["weight_map"].values()))]
    raise FileNotFoundError(f"{path}: no model.safetensors (or model.safetensors.index.json); "
                            "pickled pytorch_model.bin weights are not loaded")


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint in ``path``, by key, on the CPU."""
    state: dict[str, torch.Tensor] = {}
    for file in weight_files(path):
        state.update(load_file(str(file)))
    return state


def read_keys(path: Path) -> list[str]:
    """The checkpoint's tensor names, read from the safetensors headers only (cheap)."""
    from safetensors import safe_open

    keys: list[str] = []
    for file in weight_files(path):
        with safe_open(str(file), "pt") as f:
            keys.extend(f.keys())
    return keys


def take_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Remove and return the tensors whose key starts with ``prefix`` (prefix stripped)."""
    picked = {k[len(prefix):]: state.pop(k) for k in [k for k in state if k.startswith(prefix)]}
    return picked


def build_module(path: Path, make: Any, state: dict[str, torch.Tensor], prefix: str,
                 device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """``make()`` a module without random initialisation and load ``state`` into it exactly.

    ``prefix`` is how the keys were named in the checkpoint, for error messages.
    """
    with no_init_weights():
        module = make()
    expected = set(module.state_dict())
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise CheckpointKeyError(path, [prefix + k for k in missing],
                                 [prefix + k for k in unexpected])
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # shape mismatches
        raise ValueError(f"{path}: weights under {prefix!r} do not fit the config: {exc}") from exc
    return to_device(module, device, dtype).eval()


def to_device(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Parameters to ``dtype``; float buffers (rotary frequencies) stay float32, as transformers
    keeps them: a bfloat16 ``inv_freq`` puts position 100,000 hundreds of radians off."""
    float_buffers = [name for name, b in module.named_buffers() if b.dtype == torch.float32]
    module = module.to(device=device, dtype=dtype)
    for name in float_buffers:
        owner, _, leaf = name.rpartition(".")
        target = module.get_submodule(owner) if owner else module
        target._buffers[leaf] = target._buffers[leaf].float()
    return module


def refuse_leftovers(path: Path, state: dict[str, torch.Tensor]) -> None:
    """Every key must have been taken by a mapping step."""
    if state:
        raise CheckpointKeyError(path, [], list(state))


def linear_from(state: dict[str, torch.Tensor], name: str) -> torch.nn.Linear:
    """An ``nn.Linear`` from ``{name}.weight`` (+ optional ``{name}.bias``), keys removed."""
    weight = state.pop(f"{name}.weight")
    bias = state.pop(f"{name}.bias", None)
    linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if bias is not None:
            linear.bias.copy_(bias)
    return linear


def reads_add_eos_token(path: Path) -> bool:
    """``add_eos_token`` from ``tokenizer_config.json`` (transformers 5 does not apply it)."""
    config = path / "tokenizer_config.json"
    return bool(read_json(config).get("add_eos_token")) if config.is_file() else False


def load_tokenizer(path: Path):
    """The fast tokenizer from ``tokenizer.json`` + ``tokenizer_config.json``.

    Loaded directly (not through ``AutoTokenizer``) so a checkpoint's ``auto_map`` is never
    consulted: no code of the checkpoint's runs, and no prompt asks to run it.
    """
    from transformers import PreTrainedTokenizerFast

    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{path}: no tokenizer.json (a fast tokenizer is needed for "
                                "character offsets)")
    return PreTrainedTokenizerFast.from_pretrained(path)
