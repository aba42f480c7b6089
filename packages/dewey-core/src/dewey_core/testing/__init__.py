"""Tiny randomly initialised checkpoints in the released layouts, for tests and examples.

Each builder writes a directory with the file names, config field names, weight key names,
tokenizer files and processor config of the released model, at a size that loads in well
under a second, and returns its path. They load through the same path as the real ones:

    >>> from dewey_core import DeweyEncoder
    >>> from dewey_core.testing import tiny_dewey
    >>> import tempfile
    >>> enc = DeweyEncoder.from_pretrained(tiny_dewey(tempfile.mkdtemp()), device="cpu")
    >>> enc.dimension
    64
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (
    ModernBertConfig,
    ModernBertModel,
    Qwen2Config,
    Qwen2Model,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from dewey_core.models.jasper import S2P_QUERY, S2S_QUERY
from dewey_core.testing.tokenizers import modernbert_tokenizer, qwen_tokenizer, write_json

__all__ = ["save_state", "tiny_dewey", "tiny_jasper", "tiny_stella"]

DEWEY_PROMPT_TOKENS = ["<|START_INSTRUCTION|>", "<|END_INSTRUCTION|>"]
JASPER_IMAGE_TOKENS = ["<|jasper_img_start|>", "<|jasper_img_token|>", "<|jasper_img_end|>"]
QUERY_PROMPTS = {"s2p_query": S2P_QUERY, "s2s_query": S2S_QUERY}


def save_state(path: Path, state: dict[str, torch.Tensor]) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(path))


def _seeded(seed: int):
    rng = torch.random.fork_rng(devices=[])
    rng.__enter__()
    torch.manual_seed(seed)
    return rng


def _qwen2_fields(vocab_size: int) -> dict:
    return {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "rope_theta": 1000000.0,
            "max_position_embeddings": 4096, "max_window_layers": 2, "rms_norm_eps": 1e-06,
            "use_sliding_window": False, "sliding_window": 4096, "tie_word_embeddings": False,
            "vocab_size": vocab_size, "bos_token_id": 0, "eos_token_id": 0}


#: dewey_en_beta's released sizes (for ``released_size=True``: benchmarks on random weights).
DEWEY_RELEASED = {"hidden_size": 1024, "intermediate_size": 2624, "num_hidden_layers": 28,
                  "num_attention_heads": 16, "local_attention": 128, "max_position_embeddings": 131072,
                  "vocab_size": 50370, "vector_size": 2048}
#: Qwen2-1.5B sizes shared by Jasper's text model and Stella 1.5B.
QWEN2_1_5B = {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
              "num_attention_heads": 12, "num_key_value_heads": 2, "max_position_embeddings": 131072,
              "max_window_layers": 21, "vocab_size": 151649}


def _init_context(init_device: str):
    return torch.device(init_device)


def tiny_dewey(directory: str | os.PathLike, *, head_prefix: str = "vector_linear",
               backbone_prefix: str = "model.", seed: int = 0, released_size: bool = False,
               init_device: str = "cpu", dtype: torch.dtype = torch.float32) -> Path:
    """dewey_en_beta's layout (ModernBERT, 3 layers of width 32, local window 8, 64-d head).

    The released head's key name is not published: ``head_prefix`` and ``backbone_prefix``
    let tests cover the layouts the loader accepts. ``released_size=True`` writes the real
    sizes (395M parameters, random weights; tokenizer still tiny) for benchmarks.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tok = modernbert_tokenizer(path, DEWEY_PROMPT_TOKENS)
    ids = {t: tok.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]")}
    config = {
        "architectures": ["DeweyV1"], "auto_map": {"AutoModel": "modeling_dewey_v1.DeweyV1"},
        "model_type": "modernbert", "hidden_size": 32, "intermediate_size": 48,
        "num_hidden_layers": 3, "num_attention_heads": 2, "global_attn_every_n_layers": 3,
        "local_attention": 8, "global_rope_theta": 73780400, "local_rope_theta": 10000.0,
        "max_position_embeddings": 4096, "vocab_size": tok.get_vocab_size(),
        "pad_token_id": ids["[PAD]"], "bos_token_id": ids["[CLS]"], "cls_token_id": ids["[CLS]"],
        "eos_token_id": ids["[SEP]"], "sep_token_id": ids["[SEP]"], "classifier_pooling": "mean",
        "norm_eps": 1e-05, "norm_bias": False, "mlp_bias": False, "attention_bias": False,
        "torch_dtype": "float32", "transformers_version": "4.49.0", "tie_word_embeddings": False,
        "vector_size": 64, "single_vector_type": "cls_add_mean",
    }
    if released_size:
        config.update(DEWEY_RELEASED)
    write_json(path / "config.json", config)
    rng = _seeded(seed)
    try:
        fields = {k: v for k, v in config.items()
                  if k not in ("architectures", "auto_map", "vector_size", "single_vector_type")}
        with _init_context(init_device):
            backbone = ModernBertModel(ModernBertConfig(**fields)).to(dtype)
            head = torch.nn.Linear(config["hidden_size"], config["vector_size"]).to(dtype)
    finally:
        rng.__exit__(None, None, None)
    state = {backbone_prefix + k: v for k, v in backbone.state_dict().items()}
    state.update({f"{head_prefix}.{k}": v for k, v in head.state_dict().items()})
    save_state(path / "model.safetensors", state)
    return path


def tiny_jasper(directory: str | os.PathLike, *, vision_prefix: str = "vision_model.vision_model.",
                head_dims: tuple[int, ...] = (128, 64, 32, 16), vector_dim: int = 64,
                seed: int = 0) -> Path:
    """jasper_en_vision_language_v1's layout: Qwen2 text model, SigLIP vision tower (28px
    images, 14px patches), 300 image tokens, ``vector_linear_{dim}`` heads."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tok = qwen_tokenizer(path, JASPER_IMAGE_TOKENS)
    text = {**_qwen2_fields(tok.get_vocab_size()), "model_type": "qwen2",
            "architectures": ["JasperVL"]}
    vision = {"model_type": "siglip_vision_model", "hidden_size": 24, "image_size": 28,
              "intermediate_size": 48, "num_attention_heads": 2, "num_hidden_layers": 2,
              "patch_size": 14}
    image_ids = {f"{name}_id": tok.token_to_id(token) for name, token in
                 zip(("img_start_token", "img_token", "img_end_token"), JASPER_IMAGE_TOKENS, strict=True)}
    config = {
        "architectures": ["JasperVL"],
        "auto_map": {"AutoModel": "modeling_jasper_vl.JasperVL",
                     "AutoConfig": "configuration_jasper_vl.JasperVLConfig"},
        "img_start_token": JASPER_IMAGE_TOKENS[0], "img_token": JASPER_IMAGE_TOKENS[1],
        "img_end_token": JASPER_IMAGE_TOKENS[2], **image_ids, "is_text_encoder": True,
        "model_type": "jasper_vl", "num_img_tokens": 300, "text_config": text,
        "torch_dtype": "float32", "transformers_version": "4.46.1", "vector_dim": vector_dim,
        "vector_dropout_p": 0.2, "vision_config": vision,
    }
    write_json(path / "config.json", config)
    write_json(path / "preprocessor_config.json", {
        "do_convert_rgb": None, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "SiglipImageProcessor",
        "image_std": [0.5, 0.5, 0.5], "processor_class": "SiglipProcessor", "resample": 3,
        "rescale_factor": 0.00392156862745098, "size": {"height": 28, "width": 28}})
    _sentence_transformers_files(path, max_seq_length=1024)
    rng = _seeded(seed)
    try:
        qwen = Qwen2Model(Qwen2Config(**text))
        siglip = SiglipVisionModel(SiglipVisionConfig(**vision))
        heads = {d: torch.nn.Linear(32, d) for d in head_dims}
    finally:
        rng.__exit__(None, None, None)
    state = {f"model.{k}": v for k, v in qwen.state_dict().items()}
    state.update({vision_prefix + k: v for k, v in siglip.state_dict().items()})
    for d, head in heads.items():
        state.update({f"vector_linear_{d}.{k}": v for k, v in head.state_dict().items()})
    save_state(path / "model.safetensors", state)
    return path


def tiny_stella(directory: str | os.PathLike, *, head_dims: tuple[int, ...] = (16, 32, 64, 128),
                default_dim: int = 64, seed: int = 0, released_size: bool = False,
                init_device: str = "cpu", dtype: torch.dtype = torch.float32) -> Path:
    """stella_en_1.5B_v5's layout: Qwen2 weights at the top level, ``1_Pooling`` (mean),
    ``2_Dense_{dim}`` sentence-transformers Dense heads, ``modules.json`` naming the default.

    ``released_size=True`` writes Qwen2-1.5B sizes (Stella's and Jasper's text model) with
    random weights, for benchmarks."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tok = qwen_tokenizer(path, [])
    config = {**_qwen2_fields(tok.get_vocab_size()), "model_type": "qwen2",
              "architectures": ["Qwen2ForCausalLM"],
              "auto_map": {"AutoModel": "modeling_qwen.Qwen2Model",
                           "AutoModelForCausalLM": "modeling_qwen.Qwen2ForCausalLM"},
              "torch_dtype": "float32", "transformers_version": "4.42.3"}
    if released_size:
        config.update(QWEN2_1_5B)
    hidden = config["hidden_size"]
    write_json(path / "config.json", config)
    _sentence_transformers_files(path, max_seq_length=512)
    write_json(path / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": f"2_Dense_{default_dim}",
         "type": "sentence_transformers.models.Dense"}])
    (path / "1_Pooling").mkdir(exist_ok=True)
    write_json(path / "1_Pooling" / "config.json", {
        "word_embedding_dimension": hidden, "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False})
    rng = _seeded(seed)
    try:
        with _init_context(init_device):
            qwen = Qwen2Model(Qwen2Config(**{k: v for k, v in config.items() if k != "auto_map"}))
            qwen = qwen.to(dtype)
            heads = {d: torch.nn.Linear(hidden, d).to(dtype) for d in head_dims}
    finally:
        rng.__exit__(None, None, None)
    save_state(path / "model.safetensors", qwen.state_dict())
    for d, head in heads.items():
        folder = path / f"2_Dense_{d}"
        folder.mkdir(exist_ok=True)
        write_json(folder / "config.json", {"in_features": hidden, "out_features": d, "bias": True,
                                            "activation_function": "torch.nn.modules.linear.Identity"})
        save_state(folder / "model.safetensors", {f"linear.{k}": v for k, v in head.state_dict().items()})
    return path


def _sentence_transformers_files(path: Path, max_seq_length: int) -> None:
    write_json(path / "config_sentence_transformers.json", {
        "prompts": QUERY_PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"})
    write_json(path / "sentence_bert_config.json",
               {"max_seq_length": max_seq_length, "do_lower_case": False})
