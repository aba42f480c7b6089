"""The LangChain README flow on real stores: ``ingest`` splits the corpus once and stores the
chunks in every store; ``retrieve`` (another process) opens them again and runs DeweyRetriever."""

from __future__ import annotations

import warnings
from pathlib import Path
from pydoc_data.topics import topics
from typing import Any

from common import CHUNK_SIZE, FILTER_TOPIC, MODEL, QUESTIONS, TOPICS, main, vectors_in
from langchain_classic.storage import LocalFileStore, create_kv_docstore
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_dewey import DeweyEmbeddings, DeweyRetriever, DeweyTextSplitter, HandoffWarning

STORES = ("memory", "chroma", "qdrant", "faiss_l2", "faiss_ip", "lancedb")


def docstore(directory: Path):
    return create_kv_docstore(LocalFileStore(directory / "docstore"))


def ingest(directory: Path) -> None:
    import lancedb
    from langchain_chroma import Chroma
    from langchain_community.vectorstores import FAISS, LanceDB
    from langchain_community.vectorstores.utils import DistanceStrategy
    from langchain_qdrant import QdrantVectorStore

    warnings.simplefilter("error", HandoffWarning)  # every chunk must get its own vector
    emb = DeweyEmbeddings(model=MODEL, device="cpu")
    docs = [Document(page_content=topics[t], metadata={"source": t}) for t in TOPICS]
    chunks = DeweyTextSplitter(emb, chunk_size=CHUNK_SIZE, docstore=docstore(directory)).split_documents(docs)
    InMemoryVectorStore.from_documents(chunks, emb).dump(str(directory / "memory.json"))
    Chroma.from_documents(chunks, emb, collection_name="pydoc", persist_directory=str(directory / "chroma"))
    qdrant = QdrantVectorStore.from_documents(chunks, emb, path=str(directory / "qdrant"),
                                              collection_name="pydoc")
    qdrant.client.close()
    FAISS.from_documents(chunks, emb).save_local(str(directory / "faiss_l2"))
    FAISS.from_documents(chunks, emb, distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT
                         ).save_local(str(directory / "faiss_ip"))
    # LanceDB.from_documents fails on documents with ids (langchain-community 0.4); add_documents works.
    LanceDB(connection=lancedb.connect(str(directory / "lancedb")), embedding=emb, table_name="pydoc"
            ).add_documents(chunks)


def open_stores(directory: Path, emb: DeweyEmbeddings) -> dict[str, tuple[Any, Any, list[dict]]]:
    """Each store, its filter for FILTER_TOPIC, and the chunk metadata it holds."""
    import lancedb
    from langchain_chroma import Chroma
    from langchain_community.vectorstores import FAISS, LanceDB
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import models

    memory = InMemoryVectorStore.load(str(directory / "memory.json"), emb)
    chroma = Chroma(collection_name="pydoc", embedding_function=emb,
                    persist_directory=str(directory / "chroma"))
    qdrant = QdrantVectorStore.from_existing_collection(embedding=emb, path=str(directory / "qdrant"),
                                                        collection_name="pydoc")
    faiss = {name: FAISS.load_local(str(directory / name), emb, allow_dangerous_deserialization=True)
             for name in ("faiss_l2", "faiss_ip")}
    lance = LanceDB(connection=lancedb.connect(str(directory / "lancedb")), embedding=emb, table_name="pydoc")
    qdrant_filter = models.Filter(must=[models.FieldCondition(
        key="metadata.source", match=models.MatchValue(value=FILTER_TOPIC))])
    points, _ = qdrant.client.scroll("pydoc", limit=10_000, with_payload=True)
    return {
        "memory": (memory, lambda d: d.metadata["source"] == FILTER_TOPIC,
                   [r["metadata"] for r in memory.store.values()]),
        "chroma": (chroma, {"source": FILTER_TOPIC}, chroma.get(include=["metadatas"])["metadatas"]),
        "qdrant": (qdrant, qdrant_filter, [p.payload for p in points]),
        **{name: (store, {"source": FILTER_TOPIC}, [d.metadata for d in store.docstore._dict.values()])
           for name, store in faiss.items()},
        "lancedb": (lance, f"metadata.source = '{FILTER_TOPIC}'",
                    lance.get_table().to_arrow()["metadata"].to_pylist()),
    }


def retrieve(directory: Path) -> dict[str, Any]:
    emb = DeweyEmbeddings(model=MODEL, device="cpu")
    parents = docstore(directory)
    out = {}
    for name, (store, store_filter, stored_metadata) in open_stores(directory, emb).items():
        chunks = DeweyRetriever(vectorstore=store, docstore=parents, k=4)
        documents = DeweyRetriever(vectorstore=store, docstore=parents, k=3, mode="documents")
        filtered = DeweyRetriever(vectorstore=store, docstore=parents, k=3,
                                  search_kwargs={"filter": store_filter})
        out[name] = {
            "chunks": {q: [_hit(d) for d in chunks.invoke(q)] for q in QUESTIONS},
            "documents": {q: [_hit(d) for d in documents.invoke(q)] for q in QUESTIONS},
            "filtered": [_hit(d) for d in filtered.invoke(QUESTIONS[1])],
            "filtered_per_call": [_hit(d) for d in chunks.invoke(QUESTIONS[1], filter=store_filter)],
            "vectors_in_stored_metadata": vectors_in(stored_metadata),
            "stored_chunks": len(stored_metadata),
        }
    return out


def _hit(doc: Document) -> dict[str, Any]:
    meta = doc.metadata
    start = meta.get("start_index", meta.get("dewey_best_chunk_start"))
    return {"id": doc.id, "source": meta["source"], "start": start,
            "score": meta["dewey_score"], "chunk_score": meta["dewey_chunk_score"],
            "global_score": meta["dewey_global_score"], "vectors_in_result": vectors_in(meta)}


if __name__ == "__main__":
    main(ingest, retrieve)
