"""Fusion and grouping by source after other stores' own embedding retrievers (in-process;
across a restart see tests/test_store_roundtrips.py at the repository root)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from haystack import Document, Pipeline
from haystack.document_stores.in_memory import InMemoryDocumentStore

from haystack_dewey import DeweyFusionRanker, DeweyLateChunker, DeweyRetriever

pytestmark = pytest.mark.stores

TOPICS = ["assert", "for", "lambda", "try", "with", "yield"]
QUESTION = "How do I catch an exception and clean up afterwards?"


@pytest.fixture(scope="module")
def chunked(minilm_path, pydoc_topics) -> dict[str, list[Document]]:
    chunker = DeweyLateChunker(model=minilm_path, device="cpu", chunk_size=96, progress_bar=False)
    return chunker.run([Document(content=pydoc_topics[n][:4000], meta={"topic": n}) for n in TOPICS])


@pytest.fixture(scope="module")
def query(minilm) -> list[float]:
    return minilm.encode_queries([QUESTION])[0].tolist()


def _stores(name: str):
    if name == "chroma":
        from haystack_integrations.components.retrievers.chroma import ChromaEmbeddingRetriever
        from haystack_integrations.document_stores.chroma import ChromaDocumentStore

        chunks, sources = (ChromaDocumentStore(collection_name=f"{kind}-{uuid.uuid4().hex[:8]}")
                           for kind in ("chunks", "sources"))
        return chunks, sources, ChromaEmbeddingRetriever(chunks, top_k=40)
    from haystack_integrations.components.retrievers.qdrant import QdrantEmbeddingRetriever
    from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

    chunks, sources = (QdrantDocumentStore(location=":memory:", index=kind, embedding_dim=384)
                       for kind in ("chunks", "sources"))
    return chunks, sources, QdrantEmbeddingRetriever(chunks, top_k=40, return_embedding=True)


@pytest.mark.parametrize("name", ["chroma", "qdrant"])
def test_fusion_after_another_store_s_retriever_equals_the_in_memory_ranking(chunked, query, name,
                                                                              model_calls):
    reference_chunks, reference_sources = InMemoryDocumentStore(), InMemoryDocumentStore()
    reference_chunks.write_documents(chunked["documents"])
    reference_sources.write_documents(chunked["sources"])
    expected = DeweyRetriever(reference_chunks, source_store=reference_sources, top_k=4, candidates=40).run(
        query_embedding=query)["documents"]

    chunks, sources, retriever = _stores(name)
    chunks.write_documents(chunked["documents"])
    sources.write_documents(chunked["sources"])
    pipeline = Pipeline()
    pipeline.add_component("retriever", retriever)
    pipeline.add_component("fusion", DeweyFusionRanker(sources, top_k=4))
    pipeline.connect("retriever.documents", "fusion.documents")
    got = pipeline.run({"retriever": {"query_embedding": query},
                        "fusion": {"query_embedding": query}})["fusion"]["documents"]
    assert [d.id for d in got] == [d.id for d in expected]
    assert np.allclose([d.score for d in got], [d.score for d in expected], atol=1e-5)
    assert len({d.meta["source_id"] for d in got}) == 4 and got[0].meta["topic"] == "try"
    assert sum(model_calls.values()) == 0
