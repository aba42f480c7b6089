"""DeweyEmbedding and JasperEmbedding: vectors equal dewey_core's, batching, async, progress,
prompts, dim, lazy shared model, serialisation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
from llama_index.core.embeddings import MultiModalEmbedding

from dewey_core import DeweyEncoder
from llamaindex_dewey import DeweyEmbedding, JasperEmbedding

TEXTS = ["Saffron is the most expensive spice.", "Rust is a systems language.", "", "Tea.",
         "A much longer passage about the harvest of crocus flowers in autumn, done by hand."]


@pytest.fixture(scope="module")
def embed(minilm_path) -> DeweyEmbedding:
    return DeweyEmbedding(model_name=minilm_path, device="cpu")


def test_vectors_equal_dewey_core(embed, minilm):
    query = embed.get_query_embedding("Which spice is expensive?")
    assert np.allclose(query, minilm.encode_queries(["Which spice is expensive?"])[0], atol=1e-6)
    texts = embed.get_text_embedding_batch(TEXTS)
    assert np.allclose(texts, minilm.encode_documents(TEXTS), atol=1e-6)
    assert np.allclose(embed.get_text_embedding(TEXTS[0]), texts[0], atol=1e-6)
    assert embed.dimension == len(query) == 384


def test_batch_size_does_not_change_results(minilm_path, model_calls, minilm):
    small = DeweyEmbedding(model_name=minilm_path, device="cpu", embed_batch_size=2)
    vectors = small.get_text_embedding_batch(TEXTS)
    assert model_calls["encode_documents"] == 3  # batches of 2, 2, 1
    assert np.allclose(vectors, minilm.encode_documents(TEXTS), atol=1e-5)


def test_dim_and_prompts(minilm_path, minilm):
    embed = DeweyEmbedding(model_name=minilm_path, device="cpu", dim=64, query_prompt="query: ",
                           text_prompt="passage: ")
    assert embed.dimension == 64
    query = embed.get_query_embedding("spice")
    text = embed.get_text_embedding("Saffron.")
    assert np.allclose(query, minilm.encode_queries(["spice"], 64, prompt="query: ")[0], atol=1e-6)
    assert np.allclose(text, minilm.encode_documents(["Saffron."], 64, prompt="passage: ")[0], atol=1e-6)
    assert not np.allclose(text, minilm.encode_documents(["Saffron."], 64)[0], atol=1e-3)
    with pytest.raises(ValueError, match="dim=4096 is out of range"):
        DeweyEmbedding(model_name=minilm_path, device="cpu", dim=4096).get_query_embedding("x")


def test_async_matches_sync_and_does_not_block_the_loop(embed, monkeypatch):
    original = DeweyEncoder.encode_queries

    def slow(self, *args, **kwargs):
        time.sleep(0.3)  # a model call long enough for the loop to tick meanwhile
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DeweyEncoder, "encode_queries", slow)

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        vector = await embed.aget_query_embedding("spice")
        texts = await embed.aget_text_embedding_batch(TEXTS[:3])
        one = await embed.aget_text_embedding(TEXTS[0])
        task.cancel()
        return vector, texts, one, ticks

    vector, texts, one, ticks = asyncio.run(main())
    assert ticks >= 10
    assert np.allclose(vector, embed.get_query_embedding("spice"), atol=1e-6)
    assert np.allclose(texts, embed.get_text_embedding_batch(TEXTS[:3]), atol=1e-6)
    assert np.allclose(one, texts[0], atol=1e-6)


def test_progress_is_llamaindex_own_bar(embed, capsys):
    embed.get_text_embedding_batch(TEXTS, show_progress=True)
    assert "Generating embeddings" in capsys.readouterr().err
    embed.get_text_embedding_batch(TEXTS)
    assert capsys.readouterr().err == ""


def test_model_is_loaded_lazily_and_shared(minilm_path, minilm):
    first = DeweyEmbedding(model_name=minilm_path, device="cpu")
    second = DeweyEmbedding(model_name=minilm_path, device="cpu", dim=32)
    assert first._encoder is None  # nothing loaded at construction
    assert first.encoder.model is second.encoder.model is minilm.model


def test_missing_model_error_names_the_model():
    embed = DeweyEmbedding(model_name="/nonexistent/model-dir", device="cpu")
    with pytest.raises(OSError, match="/nonexistent/model-dir"):
        embed.get_query_embedding("x")


def test_serialises_like_llamaindex_embeddings(minilm_path):
    embed = DeweyEmbedding(model_name=minilm_path, device="cpu", dim=128, embed_batch_size=8,
                           query_prompt="q: ", model_options={})
    data = embed.to_dict()
    assert data["class_name"] == "DeweyEmbedding"
    assert DeweyEmbedding.from_dict(data).to_dict() == data
    assert DeweyEmbedding.from_json(embed.to_json()).to_dict() == data
    if hasattr(embed, "to_payload"):  # what instrumentation records (llama-index-core 0.14.2x on)
        assert embed.to_payload()["model_name"] == minilm_path


def test_jasper_is_a_multimodal_embedding(minilm_path):
    jasper = JasperEmbedding(model_name=minilm_path, device="cpu")
    assert isinstance(jasper, MultiModalEmbedding)
    assert JasperEmbedding().model_name == "NovaSearch/jasper_en_vision_language_v1"
    assert DeweyEmbedding().model_name == "infgrad/dewey_en_beta"
    with pytest.raises(ValueError, match="does not embed images; use a Jasper checkpoint"):
        jasper.get_image_embedding("photo.png")


@pytest.fixture(scope="module")
def tiny_jasper(tmp_path_factory) -> Path:
    from dewey_core.testing import tiny_jasper

    return tiny_jasper(tmp_path_factory.mktemp("jasper"))


def test_jasper_text_and_images_in_one_space(tiny_jasper, tmp_path):
    from io import BytesIO

    from PIL import Image

    jasper = JasperEmbedding(model_name=str(tiny_jasper), device="cpu")
    encoder = DeweyEncoder.from_pretrained(str(tiny_jasper), device="cpu")
    red, blue = Image.new("RGB", (64, 64), "red"), Image.new("RGB", (64, 64), "blue")
    path = tmp_path / "red.png"
    red.save(path)
    buffer = BytesIO()
    blue.save(buffer, format="PNG")
    vectors = jasper.get_image_embedding_batch([str(path), buffer])
    expected = encoder.encode_images([str(path), buffer.getvalue()])
    assert np.allclose(vectors, expected, atol=1e-5)
    assert np.allclose(jasper.get_image_embedding(str(path)), expected[0], atol=1e-5)
    assert np.allclose(asyncio.run(jasper.aget_image_embedding(str(path))), expected[0], atol=1e-5)
    text = jasper.get_query_embedding("a red square")
    assert len(text) == len(vectors[0]) == jasper.dimension
    assert np.allclose(text, encoder.encode_queries(["a red square"])[0], atol=1e-5)


def test_pipeline_embedding_keeps_the_parsers_contextual_vectors(minilm_path, topic_texts, model_calls):
    from llama_index.core import Document
    from llama_index.core.ingestion import IngestionPipeline

    from llamaindex_dewey import DeweyNodeParser

    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", chunk_size=64)
    docs = [Document(text=topic_texts["lambda"], id_="lambda")]
    parsed = [n.embedding for n in parser.get_nodes_from_documents(docs)]
    model_calls.clear()
    nodes = IngestionPipeline(transformations=[parser, DeweyEmbedding(model_name=minilm_path, device="cpu")]
                              ).run(documents=docs)
    assert [n.embedding for n in nodes] == parsed
    assert model_calls["encode_documents"] == 0  # nothing embedded twice
    nodes[0].embedding = None
    DeweyEmbedding(model_name=minilm_path, device="cpu")(nodes)  # only the node without one
    assert model_calls["encode_documents"] == 1 and nodes[0].embedding is not None


def test_inputs_and_settings_are_checked(minilm_path, embed):
    import copy

    from pydantic import ValidationError

    assert DeweyEmbedding(model_name=Path(minilm_path)).model_name == minilm_path
    with pytest.raises(ValidationError, match="model"):
        DeweyEmbedding(model=minilm_path)  # LangChain's spelling is not silently ignored
    with pytest.raises(TypeError, match=r"texts must be a list of str, got str \(wrap"):
        embed.get_text_embedding_batch("abc")
    with pytest.raises(TypeError, match=r"texts\[1\] must be str, got NoneType"):
        asyncio.run(embed.aget_text_embedding_batch(["a", None]))
    embed.get_query_embedding("load")
    changed = embed.model_copy(update={"max_length": 8})
    assert changed._encoder is None and changed.encoder.max_length == 8 and embed.encoder.max_length != 8
    clone = copy.deepcopy(embed)
    assert clone._encoder is None and clone.get_query_embedding("x") == embed.get_query_embedding("x")
