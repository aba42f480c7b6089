"""The Haystack README flow on real stores: ``ingest`` runs one indexing pipeline whose late
chunker feeds a chunk writer and a source writer per store; ``retrieve`` (another process)
opens the stores again and runs, per store, text embedder -> the store's own embedding
retriever -> DeweyFusionRanker (and DeweyRetriever on the in-memory store)."""

from __future__ import annotations

from pathlib import Path
from pydoc_data.topics import topics
from typing import Any

from common import CHUNK_SIZE, FILTER_TOPIC, MODEL, QUESTIONS, TOPICS, main, vectors_in
from haystack import Document, Pipeline
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore

from haystack_dewey import DeweyFusionRanker, DeweyLateChunker, DeweyRetriever, DeweyTextEmbedder

STORES = ("memory", "chroma", "qdrant", "lancedb")


def open_stores(name: str, directory: Path, create: bool) -> tuple[Any, Any]:
    """(chunk store, source store) of ``name``."""
    if name == "memory":
        if create:
            return InMemoryDocumentStore(), InMemoryDocumentStore()
        return tuple(InMemoryDocumentStore.load_from_disk(str(directory / f"memory-{kind}.json"))
                     for kind in ("chunks", "sources"))
    if name == "chroma":
        from haystack_integrations.document_stores.chroma import ChromaDocumentStore

        return tuple(ChromaDocumentStore(collection_name=kind, persist_path=str(directory / "chroma"))
                     for kind in ("chunks", "sources"))
    if name == "qdrant":
        from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

        return tuple(QdrantDocumentStore(path=str(directory / f"qdrant-{kind}"), index=kind,
                                         embedding_dim=384) for kind in ("chunks", "sources"))
    import pyarrow as pa
    from lancedb_haystack import LanceDBDocumentStore

    fields = {"chunks": [("topic", pa.string()), ("source_id", pa.string()), ("split_id", pa.int64()),
                         ("split_idx_start", pa.int64()), ("page_number", pa.int64())],
              "sources": [("topic", pa.string()), ("dewey_source_id", pa.string())]}
    return tuple(LanceDBDocumentStore(database=str(directory / "lancedb"), table_name=kind,
                                      metadata_schema=pa.struct(fields[kind]), embedding_dims=384)
                 for kind in ("chunks", "sources"))


def store_retriever(name: str, store: Any, filters: dict[str, Any] | None) -> Any:
    """The store's own embedding retriever, returning chunk embeddings where that is an option."""
    if name == "memory":
        from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever

        return InMemoryEmbeddingRetriever(store, top_k=32, filters=filters, return_embedding=True)
    if name == "chroma":
        from haystack_integrations.components.retrievers.chroma import ChromaEmbeddingRetriever

        return ChromaEmbeddingRetriever(store, top_k=32, filters=filters)
    if name == "qdrant":
        from haystack_integrations.components.retrievers.qdrant import QdrantEmbeddingRetriever

        return QdrantEmbeddingRetriever(store, top_k=32, filters=filters, return_embedding=True)
    from lancedb_haystack import LanceDBEmbeddingRetriever

    return LanceDBEmbeddingRetriever(store, top_k=32, filters=filters)


def ingest(directory: Path) -> None:
    indexing = Pipeline()
    indexing.add_component("chunker", DeweyLateChunker(model=MODEL, device="cpu", chunk_size=CHUNK_SIZE,
                                                       progress_bar=False))
    stores = {name: open_stores(name, directory, create=True) for name in STORES}
    for name, (chunks, sources) in stores.items():
        indexing.add_component(f"{name}_chunks", DocumentWriter(document_store=chunks))
        indexing.add_component(f"{name}_sources", DocumentWriter(document_store=sources))
        indexing.connect("chunker.documents", f"{name}_chunks.documents")
        indexing.connect("chunker.sources", f"{name}_sources.documents")
    docs = [Document(content=topics[t], meta={"topic": t}) for t in TOPICS]
    indexing.run({"chunker": {"documents": docs}})
    for kind, store in zip(("chunks", "sources"), stores["memory"], strict=True):
        store.save_to_disk(str(directory / f"memory-{kind}.json"))
    for store in stores["qdrant"]:
        store.close()


def query_pipeline(name: str, chunks: Any, sources: Any, filters: dict[str, Any] | None) -> Pipeline:
    pipeline = Pipeline()
    pipeline.add_component("embedder", DeweyTextEmbedder(model=MODEL, device="cpu", progress_bar=False))
    pipeline.add_component("retriever", store_retriever(name, chunks, filters))
    pipeline.add_component("fusion", DeweyFusionRanker(sources, top_k=3))
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    pipeline.connect("embedder.embedding", "fusion.query_embedding")
    pipeline.connect("retriever.documents", "fusion.documents")
    return pipeline


def retrieve(directory: Path) -> dict[str, Any]:
    out = {}
    only = {"field": "meta.topic", "operator": "==", "value": FILTER_TOPIC}
    for name in STORES:
        chunks, sources = open_stores(name, directory, create=False)
        fused = query_pipeline(name, chunks, sources, None)
        filtered = query_pipeline(name, chunks, sources, only)
        stored = chunks.filter_documents()
        def ask(pipeline: Pipeline, question: str) -> list[dict[str, Any]]:
            return [_hit(d) for d in pipeline.run({"embedder": {"text": question}})["fusion"]["documents"]]

        out[name] = {
            "chunks": {q: ask(fused, q) for q in QUESTIONS},
            "filtered": ask(filtered, QUESTIONS[1]),
            "vectors_in_stored_metadata": vectors_in([d.meta for d in stored]),
            "stored_chunks": len(stored),
        }
        if name == "memory":  # DeweyRetriever searches the in-memory store itself
            retriever = DeweyRetriever(chunks, source_store=sources, top_k=3, candidates=32)
            embedder = DeweyTextEmbedder(model=MODEL, device="cpu", progress_bar=False)
            out["memory_dewey_retriever"] = {"chunks": {
                q: [_hit(d) for d in retriever.run(embedder.run(q)["embedding"])["documents"]]
                for q in QUESTIONS}}
        if name == "qdrant":
            for store in (chunks, sources):
                store.close()
    return out


def _hit(doc: Document) -> dict[str, Any]:
    return {"id": doc.id, "source": doc.meta["topic"], "start": doc.meta.get("split_idx_start"),
            "score": doc.score, "vectors_in_result": vectors_in(doc.meta)}


if __name__ == "__main__":
    main(ingest, retrieve)
