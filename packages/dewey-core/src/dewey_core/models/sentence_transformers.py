"""Generic sentence-transformers directories (and plain transformers encoder directories).

Reads ``modules.json`` (Transformer, Pooling, Dense, Normalize), prompts from
``config_sentence_transformers.json`` and ``max_seq_length`` from ``sentence_bert_config.json``.
Weights are read with safetensors only; no pickle, no remote code.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file
from transformers import AutoConfig, AutoTokenizer

from dewey_core.attention import choose_kernel, inspect_backbone, supported_kernels
from dewey_core.models.base import EncoderModel, Prompts
from dewey_core.models.checkpoint import read_json, reads_add_eos_token
from dewey_core.tokenization import TextTokenizer

_ST_POOLING_KEYS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_lasttoken": "lasttoken",
}
_ACTIVATIONS = {
    "Identity": torch.nn.Identity, "Tanh": torch.nn.Tanh, "ReLU": torch.nn.ReLU,
    "GELU": torch.nn.GELU, "Sigmoid": torch.nn.Sigmoid, "SiLU": torch.nn.SiLU,
}
QUERY_PROMPT_NAMES = ("query", "s2p_query", "search_query", "retrieval.query", "retrieve_query")
DOCUMENT_PROMPT_NAMES = ("document", "passage", "search_document", "retrieval.passage",
                         "retrieve_passage")


def read_modules(path: Path) -> list[dict]:
    modules = read_json(path / "modules.json") if (path / "modules.json").is_file() else []
    return sorted(modules, key=lambda m: m.get("idx", 0))


def read_prompts(path: Path) -> Prompts:
    cfg_path = path / "config_sentence_transformers.json"
    named = dict(read_json(cfg_path).get("prompts") or {}) if cfg_path.is_file() else {}
    query = next((named[k] for k in QUERY_PROMPT_NAMES if named.get(k)), "")
    document = next((named[k] for k in DOCUMENT_PROMPT_NAMES if named.get(k)), "")
    return Prompts(query=query, document=document, named=named)


def read_max_seq_length(path: Path) -> int | None:
    """``max_seq_length`` from ``sentence_bert_config.json``, if the folder has one."""
    cfg_path = path / "sentence_bert_config.json"
    seq = read_json(cfg_path).get("max_seq_length") if cfg_path.is_file() else None
    return int(seq) if seq else None


def read_pooling(path: Path) -> tuple[str, bool]:
    """Pooling mode and ``include_prompt`` from a sentence-transformers Pooling folder."""
    cfg = read_json(path / "config.json")
    modes = [mode for key, mode in _ST_POOLING_KEYS.items() if cfg.get(key)]
    if len(modes) != 1:
        raise ValueError(f"{path}: unsupported pooling configuration {cfg}; exactly one of "
                         f"{list(_ST_POOLING_KEYS)} must be true")
    return modes[0], bool(cfg.get("include_prompt", True))


def load_dense(path: Path) -> torch.nn.Sequential:
    """A sentence-transformers Dense module (``linear.weight``/``linear.bias`` + activation)."""
    cfg = read_json(path / "config.json")
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{path}: Dense layer weights must be in model.safetensors "
                                "(pickled pytorch_model.bin is not loaded)")
    state = load_file(str(weights))
    expected = {"linear.weight"} | ({"linear.bias"} if cfg.get("bias", True) else set())
    if set(state) != expected:
        raise ValueError(f"{weights}: unexpected Dense keys {sorted(set(state) - expected)}, "
                         f"missing {sorted(expected - set(state))}")
    linear = torch.nn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg.get("bias", True))
    linear.load_state_dict({k.removeprefix("linear."): v for k, v in state.items()})
    act_name = str(cfg.get("activation_function", "Identity")).rsplit(".", 1)[-1]
    if act_name not in _ACTIVATIONS:
        raise ValueError(f"{path}: unsupported Dense activation {act_name!r}")
    return torch.nn.Sequential(linear, _ACTIVATIONS[act_name]())


def encoder_class(transformer_dir: Path) -> type:
    """The transformers class sentence-transformers would load for this folder: ``AutoModel``'s,
    or the encoder alone of an encoder-decoder (T5: ``T5EncoderModel``)."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    try:
        config = AutoConfig.from_pretrained(transformer_dir, trust_remote_code=False)
    except ValueError as exc:
        raise ValueError(f"{transformer_dir}: transformers does not know this architecture "
                         f"without the checkpoint's own code, which is not run for generic "
                         f"sentence-transformers folders ({exc})") from exc
    try:
        model_class = MODEL_MAPPING[type(config)]
    except KeyError:
        raise ValueError(f"{transformer_dir}: transformers has no model for model_type "
                         f"{config.model_type!r}") from None
    if getattr(config, "is_encoder_decoder", False):
        encoder = getattr(transformers, model_class.__name__.replace("Model", "EncoderModel"), None)
        if encoder is None:
            raise ValueError(f"{transformer_dir}: {model_class.__name__} is an encoder-decoder "
                             "model with no encoder-only class; it cannot embed text here")
        model_class = encoder
    return model_class


def default_attention(path: Path, device: torch.device, dtype: torch.dtype) -> str:
    return choose_kernel(device, supported_kernels(encoder_class(transformer_folder(path))),
                         dtype=dtype)


def transformer_folder(path: Path) -> Path:
    """The folder of the Transformer module (the model folder itself unless modules.json
    names a subfolder)."""
    for module in read_modules(path):
        if module["type"].rsplit(".", 1)[-1] == "Transformer":
            return path / module.get("path", "")
    return path


class SentenceTransformerModel(EncoderModel):
    """Any transformers encoder in sentence-transformers layout, or a bare transformers folder
    (then mean pooling over all tokens, as sentence-transformers does by default)."""

    family = "sentence-transformers"

    def __init__(self, path: Path, device: torch.device, dtype: torch.dtype, *,
                 attention: str | None = None) -> None:
        self.path, self.device, self.dtype = path, device, dtype
        modules = read_modules(path)
        transformer_dir = path
        self.pooling, self.include_prompt = "mean", True
        dense: list[torch.nn.Module] = []
        for module in modules:
            kind = module["type"].rsplit(".", 1)[-1]
            folder = path / module.get("path", "")
            if kind == "Transformer":
                transformer_dir = folder
            elif kind == "Pooling":
                self.pooling, self.include_prompt = read_pooling(folder)
            elif kind == "Dense":
                dense.append(load_dense(folder))
            elif kind != "Normalize":
                raise ValueError(f"{path}: unsupported sentence-transformers module {kind!r}")
        if self.pooling == "mean" and not self.include_prompt:
            self.pooling = "mean_no_prompt"
        model_class = encoder_class(transformer_dir)
        # MPNet, DeBERTa-v2 and others have no SDPA: eager attention (padded or mask-packed).
        kernel = choose_kernel(device, supported_kernels(model_class), attention, dtype)
        self.backbone = model_class.from_pretrained(
            transformer_dir, dtype=dtype, use_safetensors=True, attn_implementation=kernel)
        self.backbone.to(device).eval()
        if hasattr(self.backbone.config, "use_cache"):  # decoders: no key/value cache to build
            self.backbone.config.use_cache = False
        self.attention = inspect_backbone(self.backbone, kernel)
        hf_tokenizer = AutoTokenizer.from_pretrained(transformer_dir)
        tokenizer_limit = hf_tokenizer.model_max_length  # read before TextTokenizer lifts it
        self.tokenizer = TextTokenizer(hf_tokenizer,
                                       add_eos_token=reads_add_eos_token(transformer_dir))
        self.prompts = read_prompts(path)
        self.hidden_size = self.backbone.config.hidden_size
        self.dense = torch.nn.Sequential(*dense).to(device).eval() if dense else None
        self.dimension = dense[-1][0].out_features if dense else self.hidden_size
        self.max_length = self._max_length(transformer_dir, tokenizer_limit)

    def _max_length(self, transformer_dir: Path, tokenizer_limit: int) -> int:
        # RoBERTa-style configs count 2 padding positions in max_position_embeddings (514).
        limit = min(getattr(self.backbone.config, "max_position_embeddings", None) or 512,
                    tokenizer_limit if 0 < tokenizer_limit < 10**9 else 10**9)
        return min(read_max_seq_length(transformer_dir) or limit, limit)

    def project(self, pooled: torch.Tensor, dim: int | None) -> torch.Tensor:
        if self.dense is None:
            return pooled
        return self.dense(pooled.to(self.device)).float()

