"""The LlamaIndex README flow on real stores: ``ingest`` parses the corpus once and indexes the
nodes in every store, persisting each storage context; ``retrieve`` (another process) loads
them again and runs DeweyRetriever."""

from __future__ import annotations

from pathlib import Path
from pydoc_data.topics import topics
from typing import Any

from common import CHUNK_SIZE, FILTER_TOPIC, MODEL, QUESTIONS, TOPICS, main, vectors_in
from llama_index.core import Document, StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.schema import MetadataMode
from llama_index.core.vector_stores import MetadataFilter, MetadataFilters

from llamaindex_dewey import DeweyEmbedding, DeweyNodeParser, DeweyRetriever

STORES = ("memory", "chroma", "qdrant", "faiss_l2", "faiss_ip", "lancedb")


def vector_store(name: str, directory: Path, create: bool) -> Any:
    """The store ``name`` (``None`` for LlamaIndex's default SimpleVectorStore)."""
    if name == "memory":
        return None
    if name == "chroma":
        import chromadb
        from llama_index.vector_stores.chroma import ChromaVectorStore

        client = chromadb.PersistentClient(path=str(directory / "chroma-db"))
        return ChromaVectorStore(chroma_collection=client.get_or_create_collection("pydoc"))
    if name == "qdrant":
        from llama_index.vector_stores.qdrant import QdrantVectorStore
        from qdrant_client import QdrantClient

        client = QdrantClient(path=str(directory / "qdrant-db"))
        return QdrantVectorStore(client=client, collection_name="pydoc")
    if name.startswith("faiss"):
        import faiss
        from llama_index.vector_stores.faiss import FaissVectorStore

        if not create:
            return FaissVectorStore.from_persist_dir(str(directory / name))
        index = faiss.IndexFlatL2(384) if name == "faiss_l2" else faiss.IndexFlatIP(384)
        return FaissVectorStore(faiss_index=index)
    from llama_index.vector_stores.lancedb import LanceDBVectorStore

    return LanceDBVectorStore(uri=str(directory / "lancedb"), table_name="pydoc")


def ingest(directory: Path) -> None:
    parser = DeweyNodeParser(model_name=MODEL, device="cpu", chunk_size=CHUNK_SIZE)
    docs = [Document(text=topics[t], id_=f"pydoc-{t}", metadata={"topic": t}) for t in TOPICS]
    nodes = IngestionPipeline(transformations=[parser]).run(documents=docs)
    embed = DeweyEmbedding(model_name=MODEL, device="cpu")
    for name in STORES:
        store = vector_store(name, directory, create=True)
        storage = StorageContext.from_defaults(vector_store=store, docstore=parser.docstore)
        VectorStoreIndex(nodes, storage_context=storage, embed_model=embed)
        storage.persist(persist_dir=str(directory / name))
        if name == "qdrant":
            store.client.close()


def stored_metadata(name: str, index: VectorStoreIndex) -> list[Any]:
    store = index.vector_store
    if name == "chroma":
        return store._collection.get(include=["metadatas"])["metadatas"]
    if name == "qdrant":
        return [p.payload for p in store.client.scroll("pydoc", limit=10_000, with_payload=True)[0]]
    if name == "lancedb":
        return store.table.to_arrow().drop_columns(["vector"]).to_pylist()
    return [n.metadata for n in index.docstore.docs.values()]


def retrieve(directory: Path) -> dict[str, Any]:
    embed = DeweyEmbedding(model_name=MODEL, device="cpu")
    only = MetadataFilters(filters=[MetadataFilter(key="topic", value=FILTER_TOPIC)])
    out = {}
    for name in STORES:
        storage = StorageContext.from_defaults(vector_store=vector_store(name, directory, create=False),
                                               persist_dir=str(directory / name))
        index = load_index_from_storage(storage, embed_model=embed)
        retriever = DeweyRetriever(index=index, similarity_top_k=4, candidate_top_k=32)
        metadata = stored_metadata(name, index)
        result = {
            "chunks": {q: [_hit(h) for h in retriever.retrieve(q)] for q in QUESTIONS},
            "vectors_in_stored_metadata": vectors_in(metadata),
            "stored_chunks": len(metadata),
        }
        filtered = DeweyRetriever(index=index, similarity_top_k=3, candidate_top_k=32, filters=only)
        try:
            result["filtered"] = [_hit(h) for h in filtered.retrieve(QUESTIONS[1])]
        except ValueError as exc:  # LlamaIndex's FAISS store has no metadata filters
            result["filter_error"] = str(exc)
        out[name] = result
        if name == "qdrant":
            index.vector_store.client.close()
    return out


def _hit(hit: Any) -> dict[str, Any]:
    node = hit.node
    return {"id": node.node_id, "source": node.metadata["topic"], "start": node.start_char_idx,
            "score": hit.score, "vectors_in_result": vectors_in(node.metadata),
            "llm_metadata_chars": len(node.get_content(MetadataMode.LLM)) - len(node.text)}


if __name__ == "__main__":
    main(ingest, retrieve)
