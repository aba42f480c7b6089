"""Resolve a model name to a local directory and share loaded models within a process."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import torch

from dewey_core.models import EncoderModel, check_options, detect_family
from dewey_core.openvino import BACKENDS, on_openvino, unsupported_reason

# Only what the engine reads: never pickled weights, never remote code unless asked for.
_DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.jinja"]

logger = logging.getLogger("dewey_core")
_lock = threading.Lock()
_loaded: dict[tuple, EncoderModel] = {}


class ModelNotFoundError(OSError):
    """The model is neither a local directory, nor cached, nor downloadable now."""


def resolve_model_dir(name_or_path: str | os.PathLike, *, allow_download: bool = True,
                      patterns: list[str] | None = None) -> Path:
    """A local directory for ``name_or_path``: the path itself, the Hugging Face cache, or a
    fresh download of the files the engine reads."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"model must be a str or path, got {type(name_or_path).__name__}")
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path.resolve()
    name = str(name_or_path)
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(f"model directory {name!r} does not exist")
    from huggingface_hub import snapshot_download

    patterns = patterns or _DOWNLOAD_PATTERNS
    try:
        return Path(snapshot_download(name, allow_patterns=patterns, local_files_only=True))
    except Exception as cached_error:
        reason = f"not in the local Hugging Face cache ({type(cached_error).__name__})"
    if allow_download and os.environ.get("HF_HUB_OFFLINE", "0") in ("0", "", "false"):
        try:
            return Path(snapshot_download(name, allow_patterns=patterns))
        except Exception as download_error:
            reason += f"; download failed: {download_error}"
    else:
        reason += "; downloads are off (HF_HUB_OFFLINE is set)"
    raise ModelNotFoundError(
        f"cannot load model {name!r}: {reason}. Fix: pass the path of a local copy, or download "
        f"it where there is network access (`hf download {name}`) and copy the Hugging Face "
        "cache (HF_HOME) to this machine."
    )


def shared_model(name_or_path: str | os.PathLike, device: torch.device, dtype: torch.dtype,
                 backend: str | None = None, **options: Any) -> EncoderModel:
    """One loaded model per (directory, device, dtype, load options, backend) in this process.

    Encode-time options (dewey's ``pooling``, Jasper's and Stella's ``vector_dim``) give a view
    of the shared model, so they never load the weights twice; a load option left at its
    default and the same value given explicitly share one model too. ``backend=None`` takes
    ``$DEWEY_BACKEND`` if set, else runs the forward step on OpenVINO where it can (a float32
    model on the CPU, a supported family, openvino installed) and on torch otherwise.
    """
    backend = backend or os.environ.get("DEWEY_BACKEND") or None
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    # Remote code is opt-in; only then are the checkpoint's Python files fetched.
    patterns = [*_DOWNLOAD_PATTERNS, "*.py"] if options.get("trust_remote_code") else None
    path = resolve_model_dir(name_or_path, patterns=patterns)
    family = detect_family(path)
    check_options(family, path, options)
    key = (str(path), str(device), dtype, family.load_key(path, device, dtype, options))
    with _lock:
        if key not in _loaded:
            _loaded[key] = family.load(path, device, dtype,
                                       **{k: v for k, v in options.items() if k in family.options})
            logger.info("loaded %s (%s) on %s in %s, %s attention", path, family.name, device,
                        str(dtype).removeprefix("torch."), _loaded[key].attention.kernel)
        model = _loaded[key]
        if backend == "openvino" or (backend is None and not options.get("trust_remote_code")
                                     and unsupported_reason(model) is None):
            if (*key, "openvino") not in _loaded:
                _loaded[(*key, "openvino")] = on_openvino(model)
                logger.info("forward step of %s on OpenVINO (CPU, float32)", path)
            model = _loaded[(*key, "openvino")]
    return model.with_options(**{k: v for k, v in options.items()
                                 if k in family.view_options and v is not None})


def clear_model_cache() -> None:
    """Forget every shared model (frees memory once no encoder refers to them)."""
    with _lock:
        _loaded.clear()
