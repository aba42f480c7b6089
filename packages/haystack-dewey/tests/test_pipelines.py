"""Indexing (late chunker -> writer) and query (text embedder -> retriever) pipelines on real text,
before and after a Pipeline.dumps() / Pipeline.loads() round trip."""

from __future__ import annotations

import uuid

import pytest
from haystack import Document, Pipeline
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore

from haystack_dewey import SOURCE_ID_FIELD, DeweyLateChunker, DeweyRetriever, DeweyTextEmbedder

# Haystack loads only allow-listed modules from YAML; third-party components are opted in per call.
TRUSTED = ["haystack_dewey"]

TOPICS = ["assert", "class", "del", "exceptions", "for", "function", "global", "import", "lambda",
          "raise", "return", "try", "while", "with", "yield"]

# question -> (expected best source topic, a phrase its best passage contains)
QUESTIONS = {
    "How do I catch an exception and clean up afterwards?": ("try", "except"),
    "What does the yield keyword do inside a function?": ("yield", "yield"),
    "How are keyword-only arguments declared?": ("function", "parameter"),
    "How do I stop a loop early?": ("for", "break"),
    "How do I make sure a file is closed with a context manager?": ("with", "context manager"),
}


def indexing_pipeline(model: str, store: InMemoryDocumentStore, sources: InMemoryDocumentStore) -> Pipeline:
    pipeline = Pipeline()
    pipeline.add_component("chunker", DeweyLateChunker(model=model, device="cpu", chunk_size=128,
                                                       progress_bar=False))
    pipeline.add_component("writer", DocumentWriter(document_store=store))
    pipeline.add_component("source_writer", DocumentWriter(document_store=sources))
    pipeline.connect("chunker.documents", "writer.documents")
    pipeline.connect("chunker.sources", "source_writer.documents")
    return pipeline


def query_pipeline(model: str, store: InMemoryDocumentStore, sources: InMemoryDocumentStore) -> Pipeline:
    pipeline = Pipeline()
    pipeline.add_component("embedder", DeweyTextEmbedder(model=model, device="cpu", progress_bar=False))
    pipeline.add_component("retriever", DeweyRetriever(store, source_store=sources, top_k=3))
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    return pipeline


@pytest.fixture(scope="module")
def indexed(minilm_path, pydoc_topics) -> tuple[InMemoryDocumentStore, InMemoryDocumentStore, dict]:
    """Index through the *reloaded* indexing pipeline: it must still run after dumps/loads."""
    store = InMemoryDocumentStore(index=f"dewey-pipeline-{uuid.uuid4()}")
    sources = InMemoryDocumentStore(index=f"dewey-pipeline-sources-{uuid.uuid4()}")
    original = indexing_pipeline(minilm_path, store, sources)
    loaded = Pipeline.loads(original.dumps(), allowed_modules=TRUSTED)
    assert loaded.dumps() == original.dumps()
    docs = [Document(content=pydoc_topics[name], meta={"topic": name}) for name in TOPICS]
    result = loaded.run({"chunker": {"documents": docs}})
    return store, sources, result


def test_loading_needs_the_package_on_the_allowlist(minilm_path):
    from haystack.core.errors import DeserializationError

    yaml = query_pipeline(minilm_path, InMemoryDocumentStore(), InMemoryDocumentStore()).dumps()
    with pytest.raises(DeserializationError, match="allowed_modules"):
        Pipeline.loads(yaml)


def test_indexing_pipeline_writes_late_chunks(indexed):
    store, sources, result = indexed
    chunks = store.filter_documents()
    assert result == {"writer": {"documents_written": len(chunks)},
                      "source_writer": {"documents_written": len(TOPICS)}}
    assert len(chunks) > 3 * len(TOPICS)
    assert {c.meta["topic"] for c in chunks} == set(TOPICS)
    for chunk in chunks:
        assert {"source_id", "split_id", "split_idx_start", "page_number"} <= chunk.meta.keys()
        assert len(chunk.embedding) == 384
        assert not any(isinstance(v, list) and len(v) > 8 for v in chunk.meta.values())
    by_source = {s.meta[SOURCE_ID_FIELD]: s for s in sources.filter_documents()}
    assert set(by_source) == {c.meta["source_id"] for c in chunks}
    assert all(len(s.embedding) == 384 for s in by_source.values())


@pytest.mark.parametrize("question", QUESTIONS)
def test_query_pipeline_returns_the_expected_passages(indexed, minilm_path, question):
    store, sources, _ = indexed
    topic, phrase = QUESTIONS[question]
    original = query_pipeline(minilm_path, store, sources)
    loaded = Pipeline.loads(original.dumps(), allowed_modules=TRUSTED)
    assert loaded.dumps() == original.dumps()
    results = [p.run({"embedder": {"text": question}})["retriever"]["documents"] for p in (original, loaded)]
    assert [d.id for d in results[0]] == [d.id for d in results[1]]
    best = results[1][0]
    assert best.meta["topic"] == topic
    assert phrase in best.content
    assert len(results[1]) == 3 and len({d.meta["source_id"] for d in results[1]}) == 3
    assert results[1][0].score >= results[1][1].score >= results[1][2].score
