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
