"""OpenVINO backend for CPUs: the backbone's forward compiled by OpenVINO, in float32.

Opt-in (``backend="openvino"`` or ``DEWEY_BACKEND=openvino``): on an idle 2-core AMD EPYC it
runs MiniLM at 1.17-1.19x PyTorch float32's speed (``DEWEY_BACKEND=openvino dewey bench``) but
behind PyTorch's default there, bfloat16 products (0.93-0.97x); vectors are the same (float32
throughout, weights saved uncompressed). The engine's own forward (the family's attention
inputs included) is traced once with a padded example batch by ``openvino.convert_model`` and
cached on disk (``$DEWEY_CACHE`` or ``~/.cache/dewey-core``); later loads only compile the
cached model. Batches are padded (OpenVINO takes no packed rows); everything before and after
the forward step (tokenisation, windows, pooling, heads) is the engine's usual path.

Families: sentence-transformers folders and Stella (Qwen2 and GTE backbones). dewey_en_beta
(ModernBERT's local-attention masks do not convert) and Jasper (images) run on torch.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from dewey_core.models.base import EncoderModel
from dewey_core.runtime import Batch, _padded_batch

logger = logging.getLogger("dewey_core")

BACKENDS = ("torch", "openvino")
#: Families whose forward converts exactly (tests compare it with torch's).
OPENVINO_FAMILIES = ("sentence-transformers", "stella")


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def unsupported_reason(model: EncoderModel) -> str | None:
    """Why ``model`` cannot run on OpenVINO, or None when it can."""
    if model.device.type != "cpu":
        return f"OpenVINO runs on the CPU; this model is on {model.device}"
    if model.dtype != torch.float32:
        return f"the OpenVINO backend runs float32 models; this one is {model.dtype}"
    if model.family not in OPENVINO_FAMILIES:
        return f"{model.family} models run on torch (supported: {', '.join(OPENVINO_FAMILIES)})"
    if not openvino_installed():
        return "openvino is not installed (pip install 'dewey-core[openvino]')"
    return None


def cache_root() -> Path:
    root = os.environ.get("DEWEY_CACHE") or Path(os.environ.get("XDG_CACHE_HOME",
                                                                Path.home() / ".cache")) / "dewey-core"
    return Path(root)


def _cache_key(model: EncoderModel) -> str:
    """Changes whenever the traced graph could: weights, config, versions, attention inputs."""
    digest = hashlib.sha256()
    for package in ("dewey-core", "openvino", "torch", "transformers"):
        digest.update(f"{package}={importlib.metadata.version(package)};".encode())
    digest.update(f"{model.path}|{model.family}|{model.attention!r}|".encode())
    for file in sorted(model.path.rglob("*")):
        if file.is_file() and file.suffix in (".json", ".safetensors"):
            stat = file.stat()
            digest.update(f"{file.relative_to(model.path)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:32]


class _Traced(torch.nn.Module):
    """The model's own forward on a padded batch, as a module OpenVINO can trace."""

    def __init__(self, model: EncoderModel) -> None:
        super().__init__()
        self.model = model
        self.backbone = model.backbone  # registered, so its weights are part of the graph

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.forward(Batch(input_ids, attention_mask, None, None, [], {}))


def _convert(model: EncoderModel, target: Path) -> None:
    import openvino as ov
    import transformers

    tok = model.tokenizer
    # Rows of different lengths, so the traced graph is the one for padded batches.
    rows = [[*tok.prefix_ids, *[tok.filler_id] * n, *tok.suffix_ids] for n in (3, 7)]
    example = _padded_batch(rows, tok.pad_id, torch.device("cpu"))
    verbosity = transformers.logging.get_verbosity()
    try:  # tracing warnings are about shapes, which stay dynamic here; users need not see them
        transformers.logging.set_verbosity_error()
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            converted = ov.convert_model(_Traced(model).eval(), example_input={
                "input_ids": example.input_ids, "attention_mask": example.attention_mask})
    finally:
        transformers.logging.set_verbosity(verbosity)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-"))
    ov.save_model(converted, staging / "model.xml", compress_to_fp16=False)
    try:
        staging.rename(target)  # atomic: a concurrent process never sees half a model
    except OSError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)


class OpenVINOForward:
    """``forward(batch)`` on a compiled OpenVINO model; one inference request per call, so
    encoders sharing the model may run in several threads."""

    def __init__(self, compiled) -> None:
        self.compiled = compiled

    def __call__(self, batch: Batch) -> torch.Tensor:
        if batch.packed_lengths is not None:
            raise ValueError("the OpenVINO backend runs padded batches only")
        request = self.compiled.create_infer_request()
        outputs = request.infer({"input_ids": batch.input_ids.numpy(),
                                 "attention_mask": batch.attention_mask.numpy()})
        return torch.from_numpy(next(iter(outputs.values())))


def on_openvino(model: EncoderModel) -> EncoderModel:
    """A view of ``model`` whose forward step runs on OpenVINO (converted once, cached)."""
    reason = unsupported_reason(model)
    if reason is not None:
        raise ValueError(f"cannot run {model.path} on OpenVINO: {reason}")
    import openvino as ov

    target = cache_root() / "openvino" / _cache_key(model)
    if not (target / "model.xml").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        logger.info("converting %s to OpenVINO (once; cached in %s)", model.path, target)
        _convert(model, target)
    compiled = ov.Core().compile_model(str(target / "model.xml"), "CPU", {
        "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": torch.get_num_threads()})
    view = copy.copy(model)
    view.backend = "openvino"
    view.matmul_dtype = None  # OpenVINO runs its own products, not torch's oneDNN layers
    view.attention = dataclasses.replace(model.attention, kernel="openvino", takes_positions=False)
    view.forward = OpenVINOForward(compiled)  # the instance's forward step; the rest is shared
    return view
