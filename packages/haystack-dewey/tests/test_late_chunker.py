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

from haystack_dewey import DeweyLateChunker
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
def topic_result(chunker, parent) -> dict[str, list[Document]]:
    return chunker.run([parent])


@pytest.fixture(scope="module")
def topic_chunks(topic_result) -> list[Document]:
    return topic_result["documents"]


def test_init_defaults():
    chunker = DeweyLateChunker()
    assert chunker.model == "infgrad/dewey_en_beta"
    assert chunker.device == ComponentDevice.resolve_device(None)
    assert (chunker.dtype, chunker.max_length, chunker.token_budget, chunker.model_options) == \
        (None, None, None, None)
    assert (chunker.chunk_size, chunker.chunk_overlap, chunker.chunking) == (256, 0, "boundaries")
    assert (chunker.dim, chunker.context_tokens, chunker.window_overlap) == (None, None, None)
    assert chunker.progress_bar is True
    assert (chunker.model_kwargs, chunker.local_files_only, chunker.trust_remote_code) == (None, False, False)
    assert chunker._encoder is None


def test_init_with_parameters():
    chunker = DeweyLateChunker(model="m", device="cpu", dtype="float32", max_length=512, token_budget=1024,
                               model_options={"pooling": "mean"}, chunk_size=128, chunk_overlap=16,
                               chunking="fixed", truncate_dim=64, context_tokens=32, window_overlap=8,
                               progress_bar=False, model_kwargs={"torch_dtype": "float32"},
                               local_files_only=True)
    assert (chunker.model, chunker.device, chunker.dtype, chunker.max_length, chunker.token_budget) == \
        ("m", CPU, "float32", 512, 1024)
    assert chunker.model_options == {"pooling": "mean"}
    assert (chunker.chunk_size, chunker.chunk_overlap, chunker.chunking, chunker.dim) == \
        (128, 16, "fixed", 64)
    assert (chunker.context_tokens, chunker.window_overlap) == (32, 8)
    assert chunker.progress_bar is False and chunker.local_files_only is True


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
            "progress_bar": True,
            "model_kwargs": None,
            "token": {"type": "env_var", "env_vars": ["HF_API_TOKEN", "HF_TOKEN"], "strict": False},
            "local_files_only": False,
            "trust_remote_code": False,
        },
    }


def test_from_dict():
    data = DeweyLateChunker(model="m", device="cpu", chunk_size=100, chunk_overlap=10, chunking="fixed",
                            dim=32, context_tokens=16, window_overlap=4, progress_bar=False,
                            trust_remote_code=True).to_dict()
    chunker = DeweyLateChunker.from_dict(data)
    assert (chunker.model, chunker.device, chunker.chunk_size, chunker.chunk_overlap) == ("m", CPU, 100, 10)
    assert (chunker.chunking, chunker.dim, chunker.context_tokens, chunker.window_overlap) == \
        ("fixed", 32, 16, 4)
    assert chunker.progress_bar is False and chunker.trust_remote_code is True
    assert chunker.to_dict() == data


def test_warm_up_loads_once(minilm_path, monkeypatch):
    calls = []
    real = common_module.load_encoder
    monkeypatch.setattr(common_module, "load_encoder",
                        lambda model, *a, **kw: calls.append(model) or real(model, *a, **kw))
    chunker = DeweyLateChunker(model=minilm_path, device="cpu", progress_bar=False)
    chunker.warm_up()
    encoder = chunker._encoder
    chunker.warm_up()
    chunker.run([Document(content="One sentence.")])
    assert calls == [minilm_path] and chunker._encoder is encoder


def test_run_whole_document(topic_result, parent, minilm, topic):
    from haystack_dewey import SOURCE_HASH_FIELD, SOURCE_ID_FIELD
    from haystack_dewey._common import text_digest
    chunks = topic_result["documents"]
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
        assert chunk.meta[SOURCE_HASH_FIELD] == text_digest(topic)
        np.testing.assert_allclose(chunk.embedding, ref.embedding, atol=1e-6)
        assert not any(isinstance(v, list) and len(v) > 8 for v in chunk.meta.values())  # no vector
    assert len({c.id for c in chunks}) == len(chunks)
    # The source: its text, metadata and global embedding, found by dewey_source_id.
    (source,) = topic_result["sources"]
    assert (source.id, source.content) == (parent.id, topic)
    assert source.meta == {"topic": "yield", "lang": "en", SOURCE_ID_FIELD: parent.id,
                           SOURCE_HASH_FIELD: text_digest(topic)}
    np.testing.assert_allclose(source.embedding, expected.global_embedding, atol=1e-6)
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


def test_dim(minilm_path, minilm):
    chunker = DeweyLateChunker(model=minilm_path, device="cpu", chunk_size=8, dim=32, progress_bar=False)
    text = "Ardenvale is a town. Its economy depends on saffron."
    result = chunker.run([Document(content=text)])
    expected = minilm.late_chunk([text], chunk_size=8, dim=32)[0]
    chunks = result["documents"]
    np.testing.assert_allclose([c.embedding for c in chunks], expected.chunk_embeddings, atol=1e-6)
    np.testing.assert_allclose(result["sources"][0].embedding, expected.global_embedding, atol=1e-6)


def _split(text: str, **params) -> tuple[Document, list[Document]]:
    source = Document(content=text, meta={"topic": "t"})
    splitter = DocumentSplitter(**params)
    return source, splitter.run([source])["documents"]


def test_run_presplit_documents_with_overlap(chunker, minilm, topic):
    from haystack_dewey import SOURCE_HASH_FIELD, SOURCE_ID_FIELD
    from haystack_dewey._common import text_digest
    _, splits = _split(topic, split_by="word", split_length=40, split_overlap=10)
    assert len(splits) > 5
    shuffled = splits[:]
    random.Random(0).shuffle(shuffled)
    before = [(d.id, dict(d.meta)) for d in shuffled]
    result = chunker.run(shuffled)
    out = result["documents"]

    # Same documents, same order, same ids and metadata; only the embedding and digest added.
    assert [d.id for d in out] == [d.id for d in shuffled]
    assert [d.content for d in out] == [d.content for d in shuffled]
    for d, o in zip(shuffled, out, strict=True):
        assert o.meta == {**d.meta, SOURCE_HASH_FIELD: text_digest(topic)}
    assert [(d.id, d.meta) for d in shuffled] == before and all(d.embedding is None for d in shuffled)

    # Embedded in the context of the rebuilt source: exactly the engine's result on the original
    # text with the splitter's spans.
    spans = [(d.meta["split_idx_start"], d.meta["split_idx_start"] + len(d.content)) for d in splits]
    expected = minilm.late_chunk([topic], [spans], allow_overlap=True)[0]
    by_id = {d.id: d for d in out}
    for split, ref in zip(splits, expected.chunks, strict=True):
        np.testing.assert_allclose(by_id[split.id].embedding, ref.embedding, atol=1e-6)
    (source,) = result["sources"]
    assert source.id == splits[0].meta["source_id"] and source.content == topic
    assert source.meta == {"topic": "t", SOURCE_ID_FIELD: source.id, SOURCE_HASH_FIELD: text_digest(topic)}
    np.testing.assert_allclose(source.embedding, expected.global_embedding, atol=1e-6)


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
    result = chunker.run(splits)
    out = result["documents"]
    assert out[1].embedding == result["sources"][0].embedding
    assert out[0].embedding != out[1].embedding


def test_split_without_order_is_refused(chunker):
    with pytest.raises(ValueError, match=r"carry neither split_id nor split_idx_start.*remove source_id"):
        chunker.run([Document(content="x", meta={"source_id": "s"})])


def test_disagreeing_splits_without_split_ids_are_refused(chunker):
    splits = [Document(content="Hello world", meta={"source_id": "s", "split_idx_start": 0}),
              Document(content="planet too", meta={"source_id": "s", "split_idx_start": 6})]
    with pytest.raises(ValueError, match=r"split \? .* of source 's' does not match the text"):
        chunker.run(splits)


def test_splits_of_one_source_in_separate_runs_are_refused(chunker, topic):
    _, splits = _split(topic, split_by="word", split_length=60, split_overlap=0)
    chunker.run(splits[:3])  # the beginning of a source is fine on its own...
    with pytest.raises(ValueError, match=r"got splits 3-\d+ of source .* but not 0-2: .* in one run\(\)"):
        chunker.run(splits[3:])  # ... the rest without it is not
    with pytest.raises(ValueError, match=r"got splits 0, 2-\d+ of source .* but not 1"):
        chunker.run(splits[:1] + splits[2:])


def test_document_preprocessor_splits_with_overlap(chunker, minilm, topic):
    from haystack.components.preprocessors import DocumentPreprocessor

    source = Document(content=topic)
    splits = DocumentPreprocessor(split_by="word", split_length=60, split_overlap=10).run(
        documents=[source])["documents"]
    assert len(splits) > 3
    (group,) = group_splits(splits)
    assert group.rebuilt == "sequence"  # the cleaner changed the text after the offsets were taken
    out = chunker.run(splits)["documents"]
    assert [d.content for d in out] == [d.content for d in splits]
    spans = [s for s in group.spans if s is not None]
    assert [group.text[a:b] for a, b in spans] == [d.content for d in splits]
    [expected] = minilm.late_chunk([group.text], [spans], allow_overlap=True)
    np.testing.assert_allclose([d.embedding for d in out], expected.chunk_embeddings, atol=1e-6)
    assert len(group.text) < sum(len(d.content) for d in splits)  # the overlaps were shared


def test_markdown_header_splits(chunker, minilm):
    from haystack.components.preprocessors import MarkdownHeaderSplitter

    text = ("# Saffron\n\nA spice from a crocus flower.\n\n## Growing\n\nIt is picked by hand in autumn."
            "\n\n## Price\n\nIt costs more than gold by weight.\n")
    splits = MarkdownHeaderSplitter().run(documents=[Document(content=text)])["documents"]
    assert len(splits) == 3 and all("split_idx_start" not in d.meta for d in splits)
    out = chunker.run(splits[::-1])["documents"]
    (group,) = group_splits(splits)
    assert group.text == text
    [expected] = minilm.late_chunk([text], [[s for s in group.spans]])
    by_id = {d.id: d.embedding for d in out}
    np.testing.assert_allclose([by_id[d.id] for d in splits], expected.chunk_embeddings, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"chunk_size": 0}, "chunk_size must be an int >= 1, got 0"),
    ({"chunk_overlap": -1}, "chunk_overlap must be an int >= 0"),
    ({"chunk_size": 8, "chunk_overlap": 8}, r"chunk_overlap \(8\) must be smaller than chunk_size \(8\)"),
    ({"chunking": "sentences"}, "chunking must be one of boundaries, fixed, got 'sentences'"),
    ({"context_tokens": -2}, "context_tokens must be an int >= 0 or None"),
    ({"dim": 0}, "dim must be a positive int"),
    ({"dim": 32, "truncate_dim": 64}, "dim=32 and truncate_dim=64 disagree"),
    ({"max_length": 0}, "max_length must be a positive int"),
    ({"model_kwargs": {"device_map": "auto"}}, "model_kwargs: unsupported key.*device_map"),
    ({"dtype": "float32", "model_kwargs": {"torch_dtype": "bfloat16"}}, "disagree"),
])
def test_invalid_settings_are_refused_at_init(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeweyLateChunker(**kwargs)


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
