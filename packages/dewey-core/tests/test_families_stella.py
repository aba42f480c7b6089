"""Stella en 1.5B v5 loaded natively from a tiny checkpoint in the released layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dewey_core import DeweyEncoder
from dewey_core.models.checkpoint import CheckpointKeyError
from dewey_core.models.jasper import S2P_QUERY
from dewey_core.testing import save_state, tiny_stella

TEXTS = ["Which spice is expensive?", "Saffron is a spice made from crocus flowers.", ""]


@pytest.fixture(scope="module")
def stella_path(tmp_path_factory):
    return tiny_stella(tmp_path_factory.mktemp("stella"))


@pytest.fixture(scope="module")
def stella(stella_path):
    return DeweyEncoder.from_pretrained(stella_path, device="cpu")


def test_loads_natively(stella):
    model = stella.model
    assert model.family == "stella" and type(model.backbone).__name__ == "Qwen2Model"
    assert all(not layer.self_attn.is_causal for layer in model.backbone.layers)
    assert model.head_dims == (16, 32, 64, 128)
    assert stella.dimension == 64  # the Dense folder modules.json names
    assert model.pooling == "mean" and model.max_length == 512
    assert model.prompts.query == S2P_QUERY and model.prompts.document == ""


def test_mean_pooling_then_dense_head(stella):
    tok = stella.model.tokenizer.tokenize(TEXTS[1:2])[0]
    ids = [*stella.model.tokenizer.prefix_ids, *tok.ids, *stella.model.tokenizer.suffix_ids]
    with torch.inference_mode():
        states = stella.model.backbone(input_ids=torch.tensor([ids]),
                                       attention_mask={"full_attention": None}).last_hidden_state
        expected = stella.model.heads[32](states[0].mean(0))
        expected = torch.nn.functional.normalize(expected, dim=-1).numpy()
    np.testing.assert_allclose(stella.encode_documents(TEXTS[1:2], 32)[0], expected, atol=1e-5)


@pytest.mark.parametrize("dim", [16, 32, 64, 128])
def test_each_head_size(stella, dim):
    vectors = stella.encode_queries(TEXTS, dim)
    assert vectors.shape == (3, dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_default_head_chosen_at_load(stella_path):
    assert DeweyEncoder.from_pretrained(stella_path, device="cpu", vector_dim=16).dimension == 16
    with pytest.raises(ValueError, match="no 2_Dense_100 head"):
        DeweyEncoder.from_pretrained(stella_path, device="cpu", vector_dim=100)


def test_late_chunk(stella):
    text = "Saffron is a spice. " * 8 + "Rust is a language. " * 8
    doc = stella.late_chunk([text], chunk_size=12)[0]
    assert len(doc.chunks) >= 3 and doc.chunk_embeddings.shape == (len(doc.chunks), 64)
    assert doc.global_embedding.shape == (64,)


def test_unknown_key_is_refused_by_name(tmp_path):
    path = tiny_stella(tmp_path)
    state = load_file(str(path / "model.safetensors"))
    state["lm_head.weight"] = torch.zeros(4, 32)
    save_state(path / "model.safetensors", state)
    with pytest.raises(CheckpointKeyError, match=r"unrecognised keys \['lm_head.weight'\]"):
        DeweyEncoder.from_pretrained(path, device="cpu")


def test_pickled_dense_head_refused(tmp_path):
    path = tiny_stella(tmp_path)
    (path / "2_Dense_16" / "model.safetensors").rename(path / "2_Dense_16" / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match=r"pickled pytorch_model\.bin is not loaded"):
        DeweyEncoder.from_pretrained(path, device="cpu")
