"""Settings written for ``HuggingFaceEmbeddings`` work unchanged on ``DeweyEmbeddings``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydantic
import pytest

from langchain_dewey import DeweyEmbeddings


def test_model_and_encode_kwargs_as_huggingface_embeddings_takes_them(minilm_path, minilm):
    emb = DeweyEmbeddings(model_name=minilm_path,
                          model_kwargs={"device": "cpu", "model_kwargs": {"torch_dtype": "float32"}},
                          encode_kwargs={"normalize_embeddings": True, "batch_size": 3},
                          query_encode_kwargs={"prompt": "query: "})
    assert emb.model_name == minilm_path
    texts = ["Saffron is a spice.", "Rust is a language.", "Tea is a drink.", "Lists are mutable."]
    np.testing.assert_allclose(emb.embed_documents(texts), minilm.encode_documents(texts), atol=1e-5)
    expected = minilm.encode_queries(["spice"], prompt="query: ")[0]
    np.testing.assert_allclose(emb.embed_query("spice"), expected, atol=1e-5)
    assert emb.encoder.batch_size == 3 and str(emb.encoder.model.device) == "cpu"
    truncated = DeweyEmbeddings(model_name=minilm_path, model_kwargs={"device": "cpu", "truncate_dim": 64})
    assert len(truncated.embed_query("spice")) == 64


def test_cache_folder_finds_the_model_in_another_hugging_face_cache(minilm_path, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "default"))
    snapshot = tmp_path / "mine" / "models--acme--minilm" / "snapshots" / ("0" * 40)
    shutil.copytree(minilm_path, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    emb = DeweyEmbeddings(model_name="acme/minilm", cache_folder=Path(tmp_path / "mine"),
                          model_kwargs={"device": "cpu", "local_files_only": True})
    assert len(emb.embed_query("hello")) == 384


def test_show_progress_draws_a_bar(minilm_path, capsys):
    DeweyEmbeddings(model=minilm_path, device="cpu", show_progress=True).embed_documents(["a", "b"])
    assert "Encoding documents" in capsys.readouterr().err
    DeweyEmbeddings(model=minilm_path, device="cpu", encode_kwargs={"show_progress_bar": True}
                    ).embed_documents(["a"])
    assert "Encoding documents" in capsys.readouterr().err


def test_what_cannot_be_honoured_is_named():
    with pytest.raises(pydantic.ValidationError, match=r"encode_kwargs: unsupported key.* convert_to_tensor"):
        DeweyEmbeddings(encode_kwargs={"convert_to_tensor": True})
    with pytest.raises(pydantic.ValidationError, match="precision='int8' is not supported"):
        DeweyEmbeddings(query_encode_kwargs={"precision": "int8"})
    with pytest.raises(pydantic.ValidationError, match=r"model_kwargs\['model_kwargs'\]: unsupported.* attn"):
        DeweyEmbeddings(model_kwargs={"model_kwargs": {"attn_implementation": "sdpa"}})
    with pytest.raises(pydantic.ValidationError, match="device='cpu' conflicts with model_kwargs' 'cuda'"):
        DeweyEmbeddings(device="cpu", model_kwargs={"device": "cuda"})
    with pytest.warns(UserWarning, match="normalize_embeddings=False has no effect"):
        DeweyEmbeddings(encode_kwargs={"normalize_embeddings": False})
