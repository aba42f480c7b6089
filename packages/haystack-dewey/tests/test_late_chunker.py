"""DeweyLateChunker: Haystack's component matrix, split metadata, and pre-split documents."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random

import numpy as np
import pytest
from haystack import Document
from haystack.components.preprocessors import DocumentSplitter
from haystack.utils import ComponentDevice

from haystack_dewey import GLOBAL_EMBEDDING_FIELD, DeweyLateChunker
from haystack_dewey import _common as common_module
from haystack_dewey.presplit import group_splits

CPU = ComponentDevice.from_str("cpu")


@pytest.fixture(scope="module")
def chunker(minilm_path) -> DeweyLateChunker:
    component = DeweyLateChunker(model=minilm_path, device="cpu", chunk_size=64, progress_bar=False)
    component.warm_up()
    return component


@pytest.fixture(scope="module")
def topic(pydoc_topics) -> str:
    return pydoc_topics["yield"] + "\n\n" + pydoc_topics["try"][:3000]


@pytest.fixture(scope="module")
def parent(topic) -> Document:
    return Document(content=topic, meta={"topic": "yield", "lang": "en"})


@pytest.fixture(scope="module")
def topic_chunks(chunker, parent) -> list[Document]:
    return chunker.run([parent])["documents"]


def test_init_defaults():
    chunker = DeweyLateChunker()
    assert chunker.model == "infgrad/dewey_en_beta"
    assert chunker.device == ComponentDevice.resolve_device(None)
    assert (chunker.dtype, chunker.max_length, chunker.token_budget, chunker.model_options) == \
        (None, None, None, None)
    assert (chunker.chunk_size, chunker.chunk_overlap, chunker.chunking) == (256, 0, "boundaries")
    assert (chunker.dim, chunker.context_tokens, chunker.window_overlap) == (None, None, None)
    assert chunker.global_embedding_meta_field == GLOBAL_EMBEDDING_FIELD == "dewey_global_embedding"
    assert chunker.progress_bar is True
    assert chunker._encoder is None


def test_init_with_parameters():
    chunker = DeweyLateChunker(model="m", device="cpu", dtype="float32", max_length=512, token_budget=1024,
                               model_options={"pooling": "mean"}, chunk_size=128, chunk_overlap=16,
                               chunking="fixed", dim=64, context_tokens=32, window_overlap=8,
                               global_embedding_meta_field=None, progress_bar=False)
    assert (chunker.model, chunker.device, chunker.dtype, chunker.max_length, chunker.token_budget) == \
        ("m", CPU, "float32", 512, 1024)
    assert chunker.model_options == {"pooling": "mean"}
    assert (chunker.chunk_size, chunker.chunk_overlap, chunker.chunking, chunker.dim) == \
        (128, 16, "fixed", 64)
    assert (chunker.context_tokens, chunker.window_overlap) == (32, 8)
    assert chunker.global_embedding_meta_field is None and chunker.progress_bar is False


def test_to_dict():
    assert DeweyLateChunker(device="cpu", chunk_size=128).to_dict() == {
        "type": "haystack_dewey.late_chunker.DeweyLateChunker",
        "init_parameters": {
            "model": "infgrad/dewey_en_beta",
            "device": {"type": "single", "device": "cpu"},
            "dtype": None,
            "max_length": None,
            "token_budget": None,
            "batch_size": None,
            "model_options": None,
            "api_base_url": None,
            "api_key": None,
            "chunk_size": 128,
            "chunk_overlap": 0,
            "chunking": "boundaries",
            "dim": None,
            "context_tokens": None,
            "window_overlap": None,
            "global_embedding_meta_field": "dewey_global_embedding",
            "progress_bar": True,
        },
    }


def test_from_dict():
    data = DeweyLateChunker(model="m", device="cpu", chunk_size=100, chunk_overlap=10, chunking="fixed",
                            dim=32, context_tokens=16, window_overlap=4, global_embedding_meta_field="g",
                            progress_bar=False).to_dict()
    chunker = DeweyLateChunker.from_dict(data)
    assert (chunker.model, chunker.device, chunker.chunk_size, chunker.chunk_overlap) == ("m", CPU, 100, 10)
    assert (chunker.chunking, chunker.dim, chunker.context_tokens, chunker.window_overlap) == \
        ("fixed", 32, 16, 4)
    assert chunker.global_embedding_meta_field == "g" and chunker.progress_bar is False
    assert chunker.to_dict() == data


def test_warm_up_loads_once(minilm_path, monkeypatch):
    calls = []
    real = common_module.load_encoder
    monkeypatch.setattr(common_module, "load_encoder",
                        lambda model, *args: calls.append(model) or real(model, *args))
    chunker = DeweyLateChunker(model=minilm_path, device="cpu", progress_bar=False)
    chunker.warm_up()
    encoder = chunker._encoder
    chunker.warm_up()
    chunker.run([Document(content="One sentence.")])
    assert calls == [minilm_path] and chunker._encoder is encoder


def test_run_whole_document(topic_chunks, parent, minilm, topic):
    chunks = topic_chunks
    expected = minilm.late_chunk([topic], chunk_size=64)[0]
    assert len(chunks) == len(expected.chunks) > 5
    # The chunks tile the text, and carry Haystack's split metadata plus the parent's metadata.
    assert "".join(c.content for c in chunks) == topic
    for j, (chunk, ref) in enumerate(zip(chunks, expected.chunks, strict=True)):
        assert chunk.content == ref.text == topic[chunk.meta["split_idx_start"]:][:len(chunk.content)]
        assert chunk.meta["source_id"] == parent.id
        assert chunk.meta["split_id"] == j
        assert chunk.meta["split_idx_start"] == ref.start
        assert chunk.meta["page_number"] == 1
        assert (chunk.meta["topic"], chunk.meta["lang"]) == ("yield", "en")
        np.testing.assert_allclose(chunk.embedding, ref.embedding, atol=1e-6)
        np.testing.assert_allclose(chunk.meta[GLOBAL_EMBEDDING_FIELD], expected.global_embedding, atol=1e-6)
    assert len({c.id for c in chunks}) == len(chunks)
    assert parent.meta == {"topic": "yield", "lang": "en"} and parent.embedding is None


def test_chunk_embeddings_carry_context(topic_chunks, minilm):
    """A late chunk is not the chunk embedded alone: the rest of the document shapes it."""
    chunks = topic_chunks
    alone = minilm.encode_documents([c.content for c in chunks])
    cosines = np.sum(np.array([c.embedding for c in chunks]) * alone, axis=1)
    assert cosines.min() < 0.99


def test_page_numbers_follow_form_feeds(minilm_path):
    chunker = DeweyLateChunker(model=minilm_path, device="cpu", chunk_size=6, progress_bar=False)
    text = "First page has words.\fSecond page has words.\f\fFourth page here."
    chunks = chunker.run([Document(content=text)])["documents"]
    pages = {c.content.strip("\f"): c.meta["page_number"] for c in chunks}
    assert pages == {"First page has words.": 1, "Second page has words.": 2, "Fourth page here.": 4}


def test_overlap_records_split_overlap(minilm_path, topic):
    chunker = DeweyLateChunker(model=minilm_path, device="cpu", chunk_size=48, chunk_overlap=8,
                               progress_bar=False)
    chunks = chunker.run([Document(content=topic[:2000])])["documents"]
    assert len(chunks) > 3
    for prev, cur in itertools.pairwise(chunks):
        (record,) = [r for r in cur.meta["_split_overlap"] if r["doc_id"] == prev.id]
        start, end = record["range"]
        shared = prev.content[start:end]
        assert shared and cur.content.startswith(shared)
        assert cur.meta["split_idx_start"] - prev.meta["split_idx_start"] == start


def test_dim_and_no_global_field(minilm_path, minilm):
    chunker = DeweyLateChunker(model=minilm_path, device="cpu", chunk_size=8, dim=32,
                               global_embedding_meta_field=None, progress_bar=False)
    text = "Ardenvale is a town. Its economy depends on saffron."
    chunks = chunker.run([Document(content=text)])["documents"]
    expected = minilm.late_chunk([text], chunk_size=8, dim=32)[0]
    np.testing.assert_allclose([c.embedding for c in chunks], expected.chunk_embeddings, atol=1e-6)
    assert all(GLOBAL_EMBEDDING_FIELD not in c.meta for c in chunks)


def _split(text: str, **params) -> tuple[Document, list[Document]]:
    source = Document(content=text, meta={"topic": "t"})
    splitter = DocumentSplitter(**params)
    return source, splitter.run([source])["documents"]


def test_run_presplit_documents_with_overlap(chunker, minilm, topic):
    _, splits = _split(topic, split_by="word", split_length=40, split_overlap=10)
    assert len(splits) > 5
    shuffled = splits[:]
    random.Random(0).shuffle(shuffled)
    before = [(d.id, dict(d.meta)) for d in shuffled]
    out = chunker.run(shuffled)["documents"]

    # Same documents, same order, same ids and metadata; only embedding and the global field added.
    assert [d.id for d in out] == [d.id for d in shuffled]
    assert [d.content for d in out] == [d.content for d in shuffled]
    for d, o in zip(shuffled, out, strict=True):
        assert {k: v for k, v in o.meta.items() if k != GLOBAL_EMBEDDING_FIELD} == d.meta
    assert [(d.id, d.meta) for d in shuffled] == before and all(d.embedding is None for d in shuffled)

    # Embedded in the context of the rebuilt source: exactly the engine's result on the original
    # text with the splitter's spans.
    spans = [(d.meta["split_idx_start"], d.meta["split_idx_start"] + len(d.content)) for d in splits]
    expected = minilm.late_chunk([topic], [spans], allow_overlap=True)[0]
    by_id = {d.id: d for d in out}
    for split, ref in zip(splits, expected.chunks, strict=True):
        np.testing.assert_allclose(by_id[split.id].embedding, ref.embedding, atol=1e-6)
        np.testing.assert_allclose(by_id[split.id].meta[GLOBAL_EMBEDDING_FIELD], expected.global_embedding,
                                   atol=1e-6)


def test_rebuilds_the_source_text(topic):
    for params in ({"split_by": "word", "split_length": 30, "split_overlap": 7},
                   {"split_by": "line", "split_length": 2, "split_overlap": 1},
                   {"split_by": "passage", "split_length": 1, "split_overlap": 0},
                   {"split_by": "period", "split_length": 4, "split_overlap": 1}):
        _, splits = _split(topic, **params)
        (group,) = group_splits(splits[::-1])
        assert group.text == topic, params


def test_mixed_whole_and_split_documents(chunker, minilm, pydoc_topics):
    whole = Document(content=pydoc_topics["assert"], meta={"topic": "assert"})
    _, splits = _split(pydoc_topics["pass"], split_by="word", split_length=20, split_overlap=5)
    out = chunker.run([splits[1], whole, splits[0], *splits[2:]])["documents"]
    n_whole = len(minilm.late_chunk([whole.content], chunk_size=64)[0].chunks)
    assert out[0].id == splits[1].id and out[1 + n_whole].id == splits[0].id
    assert [c.meta["source_id"] for c in out[1:1 + n_whole]] == [whole.id] * n_whole
    assert len(out) == n_whole + len(splits)


def test_splits_with_a_gap_keep_their_offsets(chunker, minilm):
    text = "Alpha beta gamma.   Delta epsilon zeta."
    splits = [Document(content="Alpha beta gamma.", meta={"source_id": "s", "split_idx_start": 0}),
              Document(content="Delta epsilon zeta.", meta={"source_id": "s", "split_idx_start": 20})]
    (group,) = group_splits(splits)
    assert group.text == text and group.spans == [(0, 17), (20, 39)]
    out = chunker.run(splits)["documents"]
    expected = minilm.late_chunk([text], [[(0, 17), (20, 39)]])[0]
    np.testing.assert_allclose([d.embedding for d in out], expected.chunk_embeddings, atol=1e-6)


def test_empty_split_takes_the_source_embedding(chunker):
    splits = [Document(content="Some words here.", meta={"source_id": "s", "split_idx_start": 0}),
              Document(content="", meta={"source_id": "s", "split_idx_start": 16})]
    out = chunker.run(splits)["documents"]
    assert out[1].embedding == out[1].meta[GLOBAL_EMBEDDING_FIELD]
    assert out[0].embedding != out[1].embedding


def test_split_without_offset_is_refused(chunker):
    with pytest.raises(ValueError, match=r"split_idx_start is None.*Remove source_id"):
        chunker.run([Document(content="x", meta={"source_id": "s"})])


def test_disagreeing_splits_are_refused(chunker):
    splits = [Document(content="Hello world", meta={"source_id": "s", "split_idx_start": 0, "split_id": 0}),
              Document(content="planet too", meta={"source_id": "s", "split_idx_start": 6, "split_id": 1})]
    with pytest.raises(ValueError, match=r"Split 1 .* of source 's' does not match"):
        chunker.run(splits)


def test_documents_without_text(chunker, caplog):
    with pytest.raises(ValueError, match="has no content"):
        chunker.run([Document(content=None, meta={"kind": "image"})])
    empty = Document(content="   ")
    with caplog.at_level(logging.WARNING):
        out = chunker.run([empty, Document(content="Real text.")])["documents"]
    assert [d.content for d in out] == ["Real text."]
    assert empty.id in caplog.text
    assert chunker.run([])["documents"] == []


def test_run_async(chunker):
    docs = [Document(content="Ardenvale is a town. Its economy depends on saffron.")]
    sync = chunker.run(docs)["documents"]
    result = asyncio.run(chunker.run_async(docs))["documents"]
    assert [d.id for d in result] == [d.id for d in sync]
    np.testing.assert_allclose([d.embedding for d in result], [d.embedding for d in sync], atol=1e-6)


@pytest.mark.parametrize("wrong", ["text", Document(content="x"), ["text"], None])
def test_run_wrong_input_type(wrong):
    chunker = DeweyLateChunker(device="cpu")
    with pytest.raises(TypeError, match=r"DeweyLateChunker expects a list of Documents.*DeweyTextEmbedder"):
        chunker.run(wrong)
    assert chunker._encoder is None
