"""DeweyNodeParser and DeweyRetriever on real vector stores (in-process; across a restart see
tests/test_store_roundtrips.py at the repository root)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.schema import MetadataMode

from llamaindex_dewey import DeweyEmbedding, DeweyRetriever

pytestmark = pytest.mark.stores


@pytest.fixture(scope="module")
def embed(minilm_path) -> DeweyEmbedding:
    return DeweyEmbedding(model_name=minilm_path, device="cpu")


def test_an_ingestion_pipeline_writes_into_chroma(pipeline_parser, topic_texts, embed):
    import chromadb
    from llama_index.core import Document
    from llama_index.vector_stores.chroma import ChromaVectorStore

    collection = chromadb.EphemeralClient().create_collection(f"pydoc-{uuid.uuid4().hex[:8]}")
    store = ChromaVectorStore(chroma_collection=collection)
    docs = [Document(text=t, id_=f"pydoc-{n}", metadata={"topic": n}) for n, t in topic_texts.items()]
    nodes = IngestionPipeline(transformations=[pipeline_parser], vector_store=store).run(documents=docs)
    assert collection.count() == len(nodes)
    stored = collection.get(include=["metadatas"])["metadatas"]
    assert all(len(str(meta)) < 2000 for meta in stored)  # no 384 floats per node
    # What an LLM (or a metadata extractor) reads is the node's metadata and text, not a vector.
    assert all(len(n.get_content(MetadataMode.ALL)) < len(n.text) + 100 for n in nodes)
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed)
    hits = DeweyRetriever(index=index, docstore=pipeline_parser.docstore, similarity_top_k=2).retrieve(
        "How do I exit a loop early?")
    assert hits[0].node.metadata["topic"] == "break"


@pytest.mark.parametrize("metric", ["L2", "IP"])
def test_faiss_distances_become_cosines(pipeline_nodes, pipeline_parser, embed, questions, metric):
    import faiss
    from llama_index.vector_stores.faiss import FaissVectorStore

    index_class = faiss.IndexFlatL2 if metric == "L2" else faiss.IndexFlatIP
    storage = StorageContext.from_defaults(vector_store=FaissVectorStore(faiss_index=index_class(384)),
                                           docstore=pipeline_parser.docstore)
    index = VectorStoreIndex(pipeline_nodes, storage_context=storage, embed_model=embed)
    exact = DeweyRetriever(embed, nodes=pipeline_nodes, docstore=pipeline_parser.docstore, similarity_top_k=3)
    faiss_backed = DeweyRetriever(index=index, similarity_top_k=3, candidate_top_k=len(pipeline_nodes))
    for question, topic in questions.items():
        want, got = exact.retrieve(question), faiss_backed.retrieve(question)
        assert [h.node.node_id for h in got] == [h.node.node_id for h in want], question
        assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-5)
        assert got[0].node.ref_doc_id == f"pydoc-{topic}"


@pytest.mark.parametrize("metric", ["L2", "cosine", "dot"])
def test_lancedb_scores_follow_the_vector_index_metric(pipeline_nodes, pipeline_parser, embed, questions,
                                                       metric, tmp_path):
    """LlamaIndex's LanceDB queries use the table's vector index metric (its own
    ``create_index(metric=...)``), which may be created after the retriever."""
    from llama_index.vector_stores.lancedb import LanceDBVectorStore

    store = LanceDBVectorStore(uri=str(tmp_path / "lance"), table_name="pydoc")
    storage = StorageContext.from_defaults(vector_store=store, docstore=pipeline_parser.docstore)
    index = VectorStoreIndex(pipeline_nodes, storage_context=storage, embed_model=embed)
    lance = DeweyRetriever(index=index, similarity_top_k=3, candidate_top_k=len(pipeline_nodes))
    store.create_index(metric=metric, num_partitions=2, index_type="IVF_FLAT")  # exact distances
    exact = DeweyRetriever(embed, nodes=pipeline_nodes, docstore=pipeline_parser.docstore, similarity_top_k=3)
    for question in questions:
        want, got = exact.retrieve(question), lance.retrieve(question)
        assert [h.node.node_id for h in got] == [h.node.node_id for h in want], question
        assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-4), question


def test_qdrant_with_an_async_client_only_and_a_retriever_made_before_its_collection(
        pipeline_nodes, pipeline_parser, embed, questions, tmp_path):
    """Both work as LlamaIndex's own retriever does: the collection's distance is read when a
    query runs, through the async client when the store has only that."""
    import asyncio

    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import AsyncQdrantClient, QdrantClient

    # Qdrant takes UUID point ids only.
    nodes = [n.model_copy(update={"id_": str(uuid.uuid5(uuid.NAMESPACE_URL, n.node_id))})
             for n in pipeline_nodes]
    exact = DeweyRetriever(embed, nodes=nodes, docstore=pipeline_parser.docstore, similarity_top_k=3)
    question = next(iter(questions))
    want = exact.retrieve(question)

    # A retriever made at start-up, before any node is in the (not yet created) collection.
    store = QdrantVectorStore(client=QdrantClient(path=str(tmp_path / "sync")), collection_name="later")
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed)
    early = DeweyRetriever(index=index, docstore=pipeline_parser.docstore, similarity_top_k=3)
    index.insert_nodes(nodes)
    got = early.retrieve(question)
    assert [h.node.node_id for h in got] == [h.node.node_id for h in want]
    assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-5)

    async def async_only():
        store = QdrantVectorStore(aclient=AsyncQdrantClient(path=str(tmp_path / "async")),
                                  collection_name="pydoc")
        storage = StorageContext.from_defaults(vector_store=store, docstore=pipeline_parser.docstore)
        index = VectorStoreIndex(nodes, storage_context=storage, embed_model=embed, use_async=True)
        return await DeweyRetriever(index=index, similarity_top_k=3).aretrieve(question)

    got = asyncio.run(async_only())
    assert [h.node.node_id for h in got] == [h.node.node_id for h in want]
    assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-5)
