"""End to end across packages: the three adapters store exactly dewey-core's late-chunked vectors
for the same documents, and embed queries identically."""

from __future__ import annotations

import numpy as np
import pytest

from dewey_core import DeweyEncoder

TOPICS = ("try", "yield", "with", "lambda")
CHUNK_SIZE = 64


@pytest.fixture(scope="module")
def corpus(pydoc_topics) -> list[tuple[str, str]]:
    return [(name, pydoc_topics[name]) for name in TOPICS]


@pytest.fixture(scope="module")
def reference(minilm, corpus) -> dict[tuple[str, int, int], np.ndarray]:
    """(topic, start, end) -> contextual chunk vector, straight from dewey-core."""
    docs = minilm.late_chunk([text for _, text in corpus], chunk_size=CHUNK_SIZE)
    return {(name, c.start, c.end): c.embedding
            for (name, _), doc in zip(corpus, docs, strict=True) for c in doc.chunks}


def assert_same(found: dict, reference: dict) -> None:
    assert found.keys() == reference.keys()
    for key, vector in found.items():
        np.testing.assert_allclose(np.asarray(vector, dtype=np.float32), reference[key], atol=1e-5)


def test_langchain_split_then_store(minilm_path, corpus, reference):
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore

    from langchain_dewey import DeweyEmbeddings, DeweyTextSplitter

    embeddings = DeweyEmbeddings(model=minilm_path, device="cpu")
    chunks = DeweyTextSplitter(embeddings, chunk_size=CHUNK_SIZE).split_documents(
        [Document(page_content=text, metadata={"topic": name}) for name, text in corpus])
    store = InMemoryVectorStore.from_documents(chunks, embeddings)
    found = {}
    for record in store.store.values():
        meta = record["metadata"]
        start = meta["start_index"]
        found[(meta["topic"], start, start + len(record["text"]))] = record["vector"]
    assert_same(found, reference)


def test_llamaindex_ingestion_pipeline(minilm_path, corpus, reference):
    from llama_index.core import Document
    from llama_index.core.ingestion import IngestionPipeline

    from llamaindex_dewey import DeweyNodeParser

    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", chunk_size=CHUNK_SIZE)
    nodes = IngestionPipeline(transformations=[parser]).run(
        documents=[Document(text=text, metadata={"topic": name}) for name, text in corpus])
    found = {(n.metadata["topic"], n.start_char_idx, n.end_char_idx): n.embedding for n in nodes}
    assert_same(found, reference)


def test_haystack_late_chunker(minilm_path, corpus, reference):
    from haystack import Document

    from haystack_dewey import DeweyLateChunker

    chunker = DeweyLateChunker(model=minilm_path, device="cpu", chunk_size=CHUNK_SIZE,
                               progress_bar=False)
    chunker.warm_up()
    out = chunker.run([Document(content=text, meta={"topic": name}) for name, text in corpus])
    found = {(d.meta["topic"], d.meta["split_idx_start"], d.meta["split_idx_start"] + len(d.content)):
             d.embedding for d in out["documents"]}
    assert_same(found, reference)


def test_queries_embed_identically_everywhere(minilm_path):
    from haystack_dewey import DeweyTextEmbedder
    from langchain_dewey import DeweyEmbeddings
    from llamaindex_dewey import DeweyEmbedding

    query = "How do I close a file automatically?"
    expected = DeweyEncoder.from_pretrained(minilm_path, device="cpu").encode_queries([query])[0]
    haystack = DeweyTextEmbedder(model=minilm_path, device="cpu")
    haystack.warm_up()
    for vector in (DeweyEmbeddings(model=minilm_path, device="cpu").embed_query(query),
                   DeweyEmbedding(model_name=minilm_path, device="cpu").get_query_embedding(query),
                   haystack.run(text=query)["embedding"]):
        np.testing.assert_allclose(np.asarray(vector, dtype=np.float32), expected, atol=1e-5)


def test_one_jasper_default_id_across_the_project():
    from haystack_dewey import DeweyImageDocumentEmbedder
    from langchain_dewey import DEFAULT_JASPER_MODEL, JasperEmbeddings
    from llamaindex_dewey import JasperEmbedding

    assert DEFAULT_JASPER_MODEL == "NovaSearch/jasper_en_vision_language_v1"
    assert JasperEmbeddings().model == JasperEmbedding().model_name == \
        DeweyImageDocumentEmbedder().model == DEFAULT_JASPER_MODEL
