"""Save a trained student as a sentence-transformers folder.

Layout (what sentence-transformers itself writes): the transformer at the top level
(``config.json``, ``model.safetensors``, tokenizer files), ``1_Pooling/config.json``, one
``N_Dense/`` folder per Dense module (``linear.weight``/``linear.bias`` in safetensors, as
``sentence_transformers.models.Dense`` stores them), ``N_Normalize``, ``modules.json``,
``sentence_bert_config.json`` (``max_seq_length``) and ``config_sentence_transformers.json``
(the student's prompts). ``DeweyEncoder.from_pretrained``, the adapters and
``SentenceTransformer`` all load it.

A chunk-aligned student may also keep its starting weights in ``plain/`` (the same layout),
named by ``dewey.json``: ``DeweyEncoder`` embeds queries and whole texts with them and
late-chunks with the trained weights at the top level, which ``SentenceTransformer`` loads.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from dewey_core.loading import DEWEY_CONFIG
from dewey_core.models.sentence_transformers import SentenceTransformerModel

#: Where a trained folder keeps its starting weights (``save_plain_model``).
PLAIN_DIR = "plain"

_POOLING_FLAGS = {"mean": "pooling_mode_mean_tokens", "mean_no_prompt": "pooling_mode_mean_tokens",
                  "cls": "pooling_mode_cls_token", "lasttoken": "pooling_mode_lasttoken"}
_ALL_FLAGS = ("pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
              "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
              "pooling_mode_lasttoken")


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def save_sentence_transformer(model: SentenceTransformerModel, dense: list[torch.nn.Sequential],
                              out: Path, *, max_length: int) -> None:
    """Write ``model``'s transformer, pooling, the ``dense`` modules (each ``Sequential(Linear,
    activation)``) and a Normalize module into ``out`` (created; files there are replaced)."""
    out.mkdir(parents=True, exist_ok=True)
    model.backbone.save_pretrained(out, safe_serialization=True)
    model.tokenizer.hf.save_pretrained(out)
    # The engine lifts the tokenizer's limit to window long texts itself; store the real one.
    tok_config = out / "tokenizer_config.json"
    config = json.loads(tok_config.read_text(encoding="utf-8"))
    config["model_max_length"] = max_length
    _write_json(tok_config, config)

    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
    pooling = out / "1_Pooling"
    pooling.mkdir(exist_ok=True)
    flags = dict.fromkeys(_ALL_FLAGS, False)
    flags[_POOLING_FLAGS[model.pooling]] = True
    _write_json(pooling / "config.json", {"word_embedding_dimension": model.hidden_size, **flags,
                                          "include_prompt": model.pooling != "mean_no_prompt"})
    modules.append({"idx": 1, "name": "1", "path": "1_Pooling",
                    "type": "sentence_transformers.models.Pooling"})
    for module in dense:
        linear, activation = module[0], module[1]
        idx = len(modules)
        folder = out / f"{idx}_Dense"
        folder.mkdir(exist_ok=True)
        _write_json(folder / "config.json", {
            "in_features": linear.in_features, "out_features": linear.out_features,
            "bias": linear.bias is not None,
            # The class path sentence-transformers writes, e.g. torch.nn.modules.activation.Tanh.
            "activation_function": f"{type(activation).__module__}.{type(activation).__name__}"})
        state = {f"linear.{k}": v.detach().float().cpu().contiguous() for k, v in linear.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"))
        modules.append({"idx": idx, "name": str(idx), "path": folder.name,
                        "type": "sentence_transformers.models.Dense"})
    idx = len(modules)
    (out / f"{idx}_Normalize").mkdir(exist_ok=True)
    modules.append({"idx": idx, "name": str(idx), "path": f"{idx}_Normalize",
                    "type": "sentence_transformers.models.Normalize"})
    _write_json(out / "modules.json", modules)
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": max_length, "do_lower_case": False})
    source = model.path / "config_sentence_transformers.json"
    st_config = json.loads(source.read_text(encoding="utf-8")) if source.is_file() else {}
    st_config.pop("__version__", None)
    st_config.setdefault("prompts", dict(model.prompts.named))
    st_config.setdefault("similarity_fn_name", "cosine")
    _write_json(out / "config_sentence_transformers.json", st_config)



def save_plain_model(model: SentenceTransformerModel | None, out: Path, *, max_length: int) -> None:
    """Save ``model`` (the starting weights) into ``out/plain`` and name it in ``dewey.json``;
    ``None`` removes both (the folder then holds the trained weights alone)."""
    if model is None:
        (out / DEWEY_CONFIG).unlink(missing_ok=True)
        shutil.rmtree(out / PLAIN_DIR, ignore_errors=True)
        return
    dense = list(model.dense) if model.dense is not None else []
    save_sentence_transformer(model, dense, out / PLAIN_DIR, max_length=max_length)
    _write_json(out / DEWEY_CONFIG, {"plain_model": PLAIN_DIR})
