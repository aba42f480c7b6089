"""Model resolution, sharing and loading of a tiny randomly initialised ModernBERT."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import ModernBertConfig, ModernBertModel

from dewey_core import DeweyEncoder, ModelNotFoundError
from dewey_core.loading import resolve_model_dir

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


@pytest.fixture(scope="module")
def tiny_modernbert(tmp_path_factory, minilm_path) -> Path:
    """A 2-layer ModernBERT with random weights, saved as safetensors with a real tokenizer."""
    path = tmp_path_factory.mktemp("tiny-modernbert")
    for name in TOKENIZER_FILES:
        shutil.copy(Path(minilm_path) / name, path / name)
    torch.manual_seed(0)
    config = ModernBertConfig(vocab_size=30522, hidden_size=64, intermediate_size=96,
                              num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=512,
                              pad_token_id=0, cls_token_id=101, sep_token_id=102,
                              bos_token_id=101, eos_token_id=102, global_attn_every_n_layers=2,
                              local_attention=16)
    ModernBertModel(config).save_pretrained(path, safe_serialization=True)
    return path


def test_tiny_modernbert_loads_and_encodes(tiny_modernbert, pydoc_topics):
    enc = DeweyEncoder.from_pretrained(tiny_modernbert, device="cpu")
    texts = [t[:n] for t, n in zip(pydoc_topics.values(), (10, 300, 2000), strict=False)]
    vectors = enc.encode_documents(texts)
    assert vectors.shape == (3, 64) and enc.dimension == 64
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # Batching must not change a document's vector (ModernBERT's local attention included).
    alone = np.stack([enc.encode_documents([t])[0] for t in texts])
    assert np.min(np.sum(alone * vectors, axis=1)) >= 0.9999
    docs = enc.late_chunk(texts, chunk_size=32)
    assert [len(d.chunks) > 0 for d in docs] == [True, True, True]


def test_models_are_shared_per_device_and_dtype(minilm_path):
    a = DeweyEncoder.from_pretrained(minilm_path, device="cpu")
    b = DeweyEncoder.from_pretrained(minilm_path, device="cpu", max_length=128)
    c = DeweyEncoder.from_pretrained(minilm_path, device="cpu", dtype="bfloat16")
    assert a.model is b.model and a.model is not c.model
    assert b.max_length == 128 and a.max_length == 256


def test_max_length_beyond_the_model_is_refused(minilm_path):
    with pytest.raises(ValueError, match="max_length"):
        DeweyEncoder.from_pretrained(minilm_path, device="cpu", max_length=100_000)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_length": 2}, r"max_length must be in \[3, 256\] for this model \(it adds 2 special tokens\)"),
    ({"token_budget": 0}, "token_budget must be a positive int"),
    ({"pooling": "cls"},
     "unknown model option.* pooling for sentence-transformers models.*supported: attention"),
    ({"bogus": [1]}, "unknown model option.* bogus"),
])
def test_bad_settings_are_named(minilm_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeweyEncoder.from_pretrained(minilm_path, device="cpu", **kwargs)


def test_uncached_id_offline_names_the_model_and_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match=r"infgrad/dewey_en_beta.*not in the local .*Fix"):
        DeweyEncoder.from_pretrained("infgrad/dewey_en_beta", device="cpu")


def test_missing_local_directory(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model_dir(tmp_path / "nowhere")


def test_directory_that_is_not_a_model(tmp_path):
    with pytest.raises(ValueError, match="not a model directory"):
        DeweyEncoder.from_pretrained(tmp_path, device="cpu")


def test_unknown_dtype_is_refused(minilm_path):
    with pytest.raises(ValueError, match="unknown dtype"):
        DeweyEncoder.from_pretrained(minilm_path, device="cpu", dtype="float13")


def _hub_cache_with(model_dir: str, cache: Path, repo: str) -> None:
    """A Hugging Face cache directory holding ``model_dir`` as ``repo`` at revision main."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / ("0" * 40)
    shutil.copytree(model_dir, snapshot)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("0" * 40)


def test_hub_options_locate_a_model_in_another_cache(minilm_path, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "default-cache"))
    _hub_cache_with(minilm_path, tmp_path / "mine", "acme/minilm")
    found = resolve_model_dir("acme/minilm", cache_dir=tmp_path / "mine", local_files_only=True)
    assert (found / "config.json").is_file()
    enc = DeweyEncoder.from_pretrained("acme/minilm", device="cpu", cache_dir=tmp_path / "mine",
                                       local_files_only=True, token=False)
    assert enc.dimension == 384
    with pytest.raises(ModelNotFoundError, match=r"acme/minilm.*downloads are off \(local_files_only=True\)"):
        resolve_model_dir("acme/minilm", local_files_only=True)
