"""Tiny randomly initialised checkpoints in the released layouts, for tests and examples.

Each builder writes a directory with the file names, config field names, weight key names,
tokenizer files and processor config of the released model, at a size that loads in about a
second, and returns its path. Tokenizers are built from real vocabularies (Qwen's byte-level
BPE ranks, bert-base-uncased's WordPiece; see :mod:`dewey_core.testing.tokenizers`), so word
tokens carry their leading spaces as in the released models. They load through the same path
as the real ones:

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
    GteConfig,
    GteModel,
    ModernBertConfig,
    ModernBertModel,
    MPNetConfig,
    MPNetModel,
    Qwen2Config,
    Qwen2Model,
    RobertaConfig,
    RobertaModel,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from dewey_core.models.jasper import S2P_QUERY, S2S_QUERY
from dewey_core.testing.tokenizers import (
    bert_tokenizer,
    modernbert_tokenizer,
    mpnet_tokenizer,
    qwen_tokenizer,
    roberta_tokenizer,
    write_json,
)

__all__ = ["save_state", "tiny_dewey", "tiny_encoder", "tiny_jasper", "tiny_stella",
           "tiny_stella_400m"]

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


def _qwen2_fields(tok) -> dict:
    eos = tok.token_to_id("<|endoftext|>")
    return {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "rope_theta": 1000000.0,
            "max_position_embeddings": 4096, "max_window_layers": 2, "rms_norm_eps": 1e-06,
            "use_sliding_window": False, "sliding_window": 4096, "tie_word_embeddings": False,
            "vocab_size": tok.get_vocab_size(), "bos_token_id": eos, "eos_token_id": eos}


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
               init_device: str = "cpu", dtype: torch.dtype = torch.float32,
               prompts: dict[str, str] | None = None) -> Path:
    """dewey_en_beta's layout (ModernBERT, 3 layers of width 32, local window 8, 64-d head).

    The released head's key name is not published: ``head_prefix`` and ``backbone_prefix``
    let tests cover the layouts the loader accepts. ``prompts`` writes a
    ``config_sentence_transformers.json`` with those named prompts. ``released_size=True``
    writes the real sizes (395M parameters, random weights) for benchmarks.
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
    if prompts is not None:
        write_json(path / "config_sentence_transformers.json",
                   {"prompts": prompts, "default_prompt_name": None, "similarity_fn_name": "cosine"})
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
    text = {**_qwen2_fields(tok), "model_type": "qwen2", "architectures": ["JasperVL"]}
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
    """stella_en_1.5B_v5's layout: Qwen2 weights under ``model.`` (the released file's size
    matches only that layout), ``add_eos_token: true`` in ``tokenizer_config.json``,
    ``1_Pooling`` (mean), ``2_Dense_{dim}`` sentence-transformers Dense heads, ``modules.json``
    naming the default.

    ``released_size=True`` writes Qwen2-1.5B sizes (Stella's and Jasper's text model) with
    random weights, for benchmarks."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tok = qwen_tokenizer(path, [], add_eos_token=True)
    config = {**_qwen2_fields(tok), "model_type": "qwen2",
              "architectures": ["Qwen2ForCausalLM"],
              "auto_map": {"AutoModel": "modeling_qwen.Qwen2Model",
                           "AutoModelForCausalLM": "modeling_qwen.Qwen2ForCausalLM"},
              "torch_dtype": "float32", "transformers_version": "4.42.3"}
    if released_size:
        config.update(QWEN2_1_5B)
    write_json(path / "config.json", config)
    rng = _seeded(seed)
    try:
        with _init_context(init_device):
            qwen = Qwen2Model(Qwen2Config(**{k: v for k, v in config.items() if k != "auto_map"}))
            qwen = qwen.to(dtype)
    finally:
        rng.__exit__(None, None, None)
    save_state(path / "model.safetensors", {f"model.{k}": v for k, v in qwen.state_dict().items()})
    _stella_heads(path, config["hidden_size"], head_dims, default_dim, seed, dtype, init_device)
    return path


def tiny_stella_400m(directory: str | os.PathLike, *, head_dims: tuple[int, ...] = (16, 32, 64),
                     default_dim: int = 64, seed: int = 0, ntk_factor: float = 2.0) -> Path:
    """stella_en_400M_v5's layout: Alibaba's GTE v1.5 (``"model_type": "new"``,
    ``NewModel``), bert-base-uncased WordPiece, fused ``qkv_proj`` and ``up_gate_proj`` keys,
    rotary positions with fixed NTK scaling, ``2_Dense_{dim}`` heads."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tok = bert_tokenizer(path)
    config = {
        "architectures": ["NewModel"], "model_type": "new",
        "auto_map": {"AutoConfig": "Alibaba-NLP/new-impl--configuration.NewConfig",
                     "AutoModel": "Alibaba-NLP/new-impl--modeling.NewModel"},
        "attention_probs_dropout_prob": 0.0, "classifier_dropout": None, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": 32, "initializer_range": 0.02,
        "intermediate_size": 64, "layer_norm_eps": 1e-12, "layer_norm_type": "layer_norm",
        "logn_attention_clip1": False, "logn_attention_scale": False,
        "max_position_embeddings": 8192, "num_attention_heads": 4, "num_hidden_layers": 2,
        "pack_qkv": True, "pad_token_id": 0, "position_embedding_type": "rope",
        "rope_scaling": {"factor": ntk_factor, "type": "ntk"}, "rope_theta": 160000,
        "torch_dtype": "float32", "transformers_version": "4.42.3", "type_vocab_size": 2,
        "unpad_inputs": True, "use_memory_efficient_attention": True,
        "vocab_size": tok.get_vocab_size() + 6,  # the release pads 30522 to 30528
    }
    write_json(path / "config.json", config)
    rng = _seeded(seed)
    try:
        native = GteModel(GteConfig(
            vocab_size=config["vocab_size"], hidden_size=32, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=64, type_vocab_size=2, pad_token_id=0))
    finally:
        rng.__exit__(None, None, None)
    save_state(path / "model.safetensors", _released_gte_keys(native.state_dict()))
    _stella_heads(path, config["hidden_size"], head_dims, default_dim, seed, torch.float32, "cpu")
    return path


def _released_gte_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers ``GteModel`` keys -> the released ``NewModel`` names (fused q/k/v, fused
    up/gate)."""
    out = {k: v for k, v in state.items() if k.startswith("embeddings.")}
    layers = sorted({int(k.split(".")[1]) for k in state if k.startswith("layers.")})
    for i in layers:
        src, dst = f"layers.{i}.", f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            out[f"{dst}attention.qkv_proj.{kind}"] = torch.cat(
                [state[f"{src}self_attn.{p}_proj.{kind}"] for p in "qkv"])
            out[f"{dst}attention.o_proj.{kind}"] = state[f"{src}self_attn.o_proj.{kind}"]
            out[f"{dst}attn_ln.{kind}"] = state[f"{src}post_attention_layernorm.{kind}"]
            out[f"{dst}mlp_ln.{kind}"] = state[f"{src}post_mlp_layernorm.{kind}"]
            out[f"{dst}mlp.down_proj.{kind}"] = state[f"{src}mlp.down_proj.{kind}"]
        out[f"{dst}mlp.up_gate_proj.weight"] = torch.cat(
            [state[f"{src}mlp.up_proj.weight"], state[f"{src}mlp.gate_proj.weight"]])
    return out


def _stella_heads(path: Path, hidden: int, head_dims: tuple[int, ...], default_dim: int,
                  seed: int, dtype: torch.dtype, init_device: str) -> None:
    """``1_Pooling`` (mean), ``2_Dense_{dim}`` heads, ``modules.json``, prompts, max length."""
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
    rng = _seeded(seed + 1)
    try:
        with _init_context(init_device):
            heads = {d: torch.nn.Linear(hidden, d).to(dtype) for d in head_dims}
    finally:
        rng.__exit__(None, None, None)
    for d, head in heads.items():
        folder = path / f"2_Dense_{d}"
        folder.mkdir(exist_ok=True)
        write_json(folder / "config.json", {"in_features": hidden, "out_features": d, "bias": True,
                                            "activation_function": "torch.nn.modules.linear.Identity"})
        save_state(folder / "model.safetensors", {f"linear.{k}": v for k, v in head.state_dict().items()})


#: Tiny sentence-transformers backbones: (transformers classes, tokenizer builder, config).
_ENCODERS = {
    "roberta": (RobertaConfig, RobertaModel, roberta_tokenizer,
                {"pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
                 "max_position_embeddings": 514, "type_vocab_size": 1}),
    "mpnet": (MPNetConfig, MPNetModel, mpnet_tokenizer,
              {"pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
               "max_position_embeddings": 514, "relative_attention_num_buckets": 32}),
    "qwen2": (Qwen2Config, Qwen2Model, lambda path: qwen_tokenizer(path, []),
              {"num_key_value_heads": 2, "max_position_embeddings": 4096, "rope_theta": 1e6,
               "tie_word_embeddings": False}),
}


def tiny_encoder(directory: str | os.PathLike, architecture: str, *, pooling: str | None = None,
                 seed: int = 0) -> Path:
    """A sentence-transformers folder around a tiny random ``architecture`` backbone:
    ``roberta`` (byte-level BPE, RobertaProcessing, positions from ``padding_idx + 1``),
    ``mpnet`` (WordPiece, no SDPA in transformers 5), ``qwen2`` (a causal decoder with
    last-token pooling, as decoder embedding models are). ``pooling`` overrides the pooling
    (``mean``, ``cls``, ``lasttoken``)."""
    config_class, model_class, tokenizer, extra = _ENCODERS[architecture]
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tok = tokenizer(path)
    config = config_class(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=4, intermediate_size=64, **extra)
    if architecture == "qwen2":  # Qwen2 configs name no pad token (its row would be zeros)
        config.bos_token_id = config.eos_token_id = tok.token_to_id("<|endoftext|>")
    rng = _seeded(seed)
    try:
        model_class(config).save_pretrained(path, safe_serialization=True)
    finally:
        rng.__exit__(None, None, None)
    pooling = pooling or ("lasttoken" if architecture == "qwen2" else "mean")
    write_json(path / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
    (path / "1_Pooling").mkdir(exist_ok=True)
    write_json(path / "1_Pooling" / "config.json", {
        "word_embedding_dimension": 32, "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_lasttoken": pooling == "lasttoken",
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False})
    write_json(path / "sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": False})
    return path


def _sentence_transformers_files(path: Path, max_seq_length: int) -> None:
    write_json(path / "config_sentence_transformers.json", {
        "prompts": QUERY_PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"})
    write_json(path / "sentence_bert_config.json",
               {"max_seq_length": max_seq_length, "do_lower_case": False})
