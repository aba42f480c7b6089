"""Resolve a model name to a local directory and share loaded models within a process."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import torch

from dewey_core.cpu_matmul import resolve_matmul_dtype, use_cpu_products
from dewey_core.models import EncoderModel, check_options, detect_family
from dewey_core.openvino import BACKENDS, on_openvino, unsupported_reason

# Only what the engine reads: never pickled weights, never remote code unless asked for.
_DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.jinja"]

logger = logging.getLogger("dewey_core")
_lock = threading.Lock()
_loaded: dict[tuple, EncoderModel] = {}


class ModelNotFoundError(OSError):
    """The model is neither a local directory, nor cached, nor downloadable now."""


HUB_OPTIONS = ("cache_dir", "token", "revision", "local_files_only")
"""Options that only say where a Hugging Face id is found (never part of a loaded model's
identity): the cache directory, an access token, a revision, and whether to stay offline."""


def resolve_model_dir(name_or_path: str | os.PathLike, *, allow_download: bool = True,
                      patterns: list[str] | None = None, cache_dir: str | os.PathLike | None = None,
                      token: str | bool | None = None, revision: str | None = None,
                      local_files_only: bool = False) -> Path:
    """A local directory for ``name_or_path``: the path itself, the Hugging Face cache
    (``cache_dir``, default ``HF_HOME``'s), or a fresh download of the files the engine reads
    (not with ``local_files_only``)."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"model must be a str or path, got {type(name_or_path).__name__}")
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path.resolve()
    name = str(name_or_path)
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(f"model directory {name!r} does not exist")
    from huggingface_hub import snapshot_download

    hub = {"allow_patterns": patterns or _DOWNLOAD_PATTERNS, "revision": revision,
           "cache_dir": None if cache_dir is None else os.fspath(cache_dir), "token": token}
    where = "the local Hugging Face cache" + ("" if cache_dir is None else f" ({cache_dir})")
    try:
        return Path(snapshot_download(name, local_files_only=True, **hub))
    except Exception as cached_error:
        reason = f"not in {where} ({type(cached_error).__name__})"
    if local_files_only:
        reason += "; downloads are off (local_files_only=True)"
    elif allow_download and os.environ.get("HF_HUB_OFFLINE", "0") in ("0", "", "false"):
        try:
            return Path(snapshot_download(name, **hub))
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
                 backend: str | None = None, matmul_dtype: str | None = None,
                 **options: Any) -> EncoderModel:
    """One loaded model per (directory, device, dtype, load options, backend) in this process.
    The :data:`HUB_OPTIONS` among ``options`` only locate the directory.

    Encode-time options (dewey's ``pooling``, Jasper's and Stella's ``vector_dim``) give a view
    of the shared model, so they never load the weights twice; a load option left at its
    default and the same value given explicitly share one model too. The forward step runs on
    torch unless ``backend="openvino"`` (refused, naming why, where it cannot apply) or
    ``$DEWEY_BACKEND=openvino`` (a preference: models OpenVINO cannot run stay on torch).
    """
    hub = {key: options.pop(key) for key in HUB_OPTIONS if key in options}
    preferred = os.environ.get("DEWEY_BACKEND") or None
    for name, value in (("backend", backend), ("DEWEY_BACKEND", preferred)):
        if value is not None and value not in BACKENDS:
            raise ValueError(f"{name} must be one of {BACKENDS} or unset, got {value!r}")
    # Remote code is opt-in; only then are the checkpoint's Python files fetched.
    patterns = [*_DOWNLOAD_PATTERNS, "*.py"] if options.get("trust_remote_code") else None
    path = resolve_model_dir(name_or_path, patterns=patterns, **hub)
    family = detect_family(path)
    check_options(family, path, options)
    # A float32 CPU model's products run on oneDNN (cpu_matmul): in bfloat16 where the CPU computes
    # it natively, unless OpenVINO runs it; float32 otherwise. A model running its own code keeps
    # torch's layers (its code may read a linear layer's weight) unless matmul_dtype asks.
    openvino = backend == "openvino" or (backend is None and preferred == "openvino")
    own_code = options.get("trust_remote_code") and matmul_dtype is None
    matmul = None if own_code else resolve_matmul_dtype("float32" if openvino else matmul_dtype,
                                                        device, dtype)
    key = (str(path), str(device), dtype, family.load_key(path, device, dtype, options))
    if matmul == "bfloat16":
        key = (*key, "bf16-matmul")
    with _lock:
        if key not in _loaded:
            loaded = family.load(path, device, dtype,
                                 **{k: v for k, v in options.items() if k in family.options})
            if matmul is not None and use_cpu_products(loaded, matmul):
                loaded.matmul_dtype = matmul
            _loaded[key] = loaded
            logger.info("loaded %s (%s) on %s in %s%s, %s attention", path, family.name, device,
                        str(dtype).removeprefix("torch."),
                        f" with {loaded.matmul_dtype} matrix products on oneDNN"
                        if loaded.matmul_dtype else "", loaded.attention.kernel)
        model = _loaded[key]
        if backend == "openvino" or (backend is None and preferred == "openvino"
                                     and not options.get("trust_remote_code")
                                     and unsupported_reason(model) is None):
            if (*key, "openvino") not in _loaded:
                _loaded[(*key, "openvino")] = on_openvino(model)
                logger.info("forward step of %s on OpenVINO (CPU, float32)", path)
            model = _loaded[(*key, "openvino")]
    return model.with_options(**{k: v for k, v in options.items()
                                 if k in family.view_options and v is not None})


#: A model folder's own dewey settings (written by ``dewey train``).
DEWEY_CONFIG = "dewey.json"


def plain_model_dir(path: Path) -> Path | None:
    """The folder of the weights that embed queries and whole texts, when the model folder
    ``path`` names one in ``dewey.json`` (``{"plain_model": "plain"}``; ``dewey train`` writes
    it); ``None`` otherwise. Its weights late-chunk; the plain model's embed everything else.
    """
    file = path / DEWEY_CONFIG
    if not file.is_file():
        return None
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{file} is not readable JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise ValueError(f"{file} must hold a JSON object, got {type(config).__name__}")
    unknown = sorted(set(config) - {"plain_model"})
    if unknown:
        raise ValueError(f"{file} has unknown keys {unknown}; it takes 'plain_model'")
    name = config.get("plain_model")
    if name is None:
        return None
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise ValueError(f"{file}: plain_model must name a folder inside {path}, got {name!r}")
    folder = path / name
    if not folder.is_dir():
        raise ValueError(f"{file} names the plain model folder {name!r}, which {path} does not hold")
    return folder


def clear_model_cache() -> None:
    """Forget every shared model (frees memory once no encoder refers to them)."""
    with _lock:
        _loaded.clear()
