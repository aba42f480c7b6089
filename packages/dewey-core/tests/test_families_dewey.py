"""dewey_en_beta loaded natively from a tiny checkpoint in the released layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dewey_core import DeweyEncoder
from dewey_core.cli import main
from dewey_core.models.checkpoint import CheckpointKeyError
from dewey_core.models.dewey import DOCUMENT_PROMPT, QUERY_PROMPT
from dewey_core.testing import save_state, tiny_dewey

TEXTS = ["What is saffron?", "Saffron is a spice made from the dried stigmas of a crocus.", ""]


@pytest.fixture(scope="module")
def dewey_path(tmp_path_factory):
    return tiny_dewey(tmp_path_factory.mktemp("dewey"))


@pytest.fixture(scope="module")
def dewey(dewey_path):
    return DeweyEncoder.from_pretrained(dewey_path, device="cpu")


def test_loads_natively_with_released_config(dewey):
    model = dewey.model
    assert model.family == "dewey"
    assert type(model.backbone).__name__ == "ModernBertModel"
    assert model.pooling_name == "cls_add_mean"  # config's single_vector_type
    assert dewey.dimension == 64 and model.max_length == 4096
    assert model.prompts.query == QUERY_PROMPT and model.prompts.document == DOCUMENT_PROMPT
    assert QUERY_PROMPT == "<|START_INSTRUCTION|>Answer the question<|END_INSTRUCTION|>"


def test_shapes_and_norms(dewey):
    for vectors in (dewey.encode_queries(TEXTS), dewey.encode_documents(TEXTS)):
        assert vectors.shape == (3, 64) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(dewey.encode_queries(TEXTS[:1]), dewey.encode_documents(TEXTS[:1]))


def _head(enc, pooled):
    with torch.inference_mode():
        return torch.nn.functional.normalize(enc.model.head(pooled), dim=-1).numpy()


def _states(enc, text, prompt):
    tok = enc.model.tokenizer
    t = tok.tokenize([text], prompt)[0]
    ids = [*tok.prefix_ids, *t.prompt_ids, *t.ids, *tok.suffix_ids]
    with torch.inference_mode():
        states = enc.model.backbone(input_ids=torch.tensor([ids])).last_hidden_state[0]
    return states, len(tok.prefix_ids) + len(t.prompt_ids), len(t)


@pytest.mark.parametrize("pooling", ["cls", "mean", "cls_add_mean"])
def test_pooling_modes_follow_their_definition(dewey_path, pooling):
    enc = DeweyEncoder.from_pretrained(dewey_path, device="cpu", pooling=pooling)
    states, first, n = _states(enc, TEXTS[1], DOCUMENT_PROMPT)
    cls, mean = states[0], states[first:first + n].mean(0)  # no CLS, SEP or prompt token
    pooled = {"cls": cls, "mean": mean, "cls_add_mean": cls + mean}[pooling]
    expected = _head(enc, pooled)
    np.testing.assert_allclose(enc.encode_documents(TEXTS[1:2])[0], expected, atol=1e-5)


def test_unknown_pooling_refused(dewey_path):
    with pytest.raises(ValueError, match="pooling must be one of"):
        DeweyEncoder.from_pretrained(dewey_path, device="cpu", pooling="max")


def test_late_chunk_vectors_are_token_means_through_the_head(dewey):
    text = "Saffron is a spice. It is expensive. Rust is a language for systems."
    doc = dewey.late_chunk([text], spans=[[(0, 20), (20, 37), (37, len(text))]])[0]
    assert doc.chunk_embeddings.shape == (3, 64)
    states, first, _ = _states(dewey, text, DOCUMENT_PROMPT)
    tok = dewey.model.tokenizer.tokenize([text], DOCUMENT_PROMPT)[0]
    a, b = tok.token_range(20, 37)
    expected = _head(dewey, states[first + a:first + b].mean(0))
    np.testing.assert_allclose(doc.chunks[1].embedding, expected, atol=1e-5)


def test_other_key_layout_loads_the_same_model(tmp_path, dewey):
    # Backbone keys at the top level and another head name: the head is found by its shape.
    path = tiny_dewey(tmp_path, backbone_prefix="", head_prefix="linear")
    enc = DeweyEncoder.from_pretrained(path, device="cpu")
    np.testing.assert_allclose(enc.encode_queries(TEXTS), dewey.encode_queries(TEXTS), atol=1e-6)


def test_unknown_key_is_refused_by_name(tmp_path):
    path = tiny_dewey(tmp_path)
    state = load_file(str(path / "model.safetensors"))
    state["model.layers.0.attn.adapter.weight"] = torch.zeros(2, 2)
    save_state(path / "model.safetensors", state)
    with pytest.raises(CheckpointKeyError,
                       match=r"unrecognised keys \['model.layers.0.attn.adapter.weight'\]"):
        DeweyEncoder.from_pretrained(path, device="cpu")


def test_missing_key_is_refused_by_name(tmp_path):
    path = tiny_dewey(tmp_path)
    state = load_file(str(path / "model.safetensors"))
    del state["model.layers.1.mlp.Wi.weight"]
    save_state(path / "model.safetensors", state)
    with pytest.raises(CheckpointKeyError, match=r"missing keys \['model.layers.1.mlp.Wi.weight'\]"):
        DeweyEncoder.from_pretrained(path, device="cpu")


def test_missing_head_is_refused(tmp_path):
    path = tiny_dewey(tmp_path)
    state = {k: v for k, v in load_file(str(path / "model.safetensors")).items()
             if not k.startswith("vector_linear")}
    save_state(path / "model.safetensors", state)
    with pytest.raises(CheckpointKeyError, match=r"<vector head>.weight \[64, 32\]"):
        DeweyEncoder.from_pretrained(path, device="cpu")


def test_never_runs_remote_code_by_default(dewey_path, dewey):
    # The checkpoint names custom code in auto_map, yet no such file exists: native loading
    # never looks for it.
    assert not (dewey_path / "modeling_dewey_v1.py").exists()
    assert "DeweyV1" not in type(dewey.model.backbone).__name__


def test_encode_images_refused_for_text_models(dewey):
    assert dewey.supports_images is False
    with pytest.raises(TypeError, match="embeds text only"):
        dewey.encode_images(["x.png"])


def test_verify_checkpoint_command(dewey_path, capsys):
    status = main(["verify-checkpoint", str(dewey_path), "--device", "cpu", "--pooling", "mean"])
    out = capsys.readouterr().out
    assert "family       dewey" in out and "keys         " in out
    assert "pooling      mean" in out and "64:" in out
    assert status in (0, 1)  # random weights: sanity checks may fail, loading must not


def test_verify_checkpoint_reports_refused_checkpoint(tmp_path, capsys):
    path = tiny_dewey(tmp_path)
    state = load_file(str(path / "model.safetensors"))
    state["extra.weight"] = torch.zeros(1)
    save_state(path / "model.safetensors", state)
    assert main(["verify-checkpoint", str(path), "--device", "cpu"]) == 2
    assert "extra.weight" in capsys.readouterr().err
