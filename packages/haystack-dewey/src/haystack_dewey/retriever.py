"""A retriever over chunk documents that ranks by chunk hits fused with the document's global score."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import numpy as np
from haystack import Document, component, default_from_dict, default_to_dict
from haystack.document_stores.types import FilterPolicy, apply_filter_policy

from dewey_core import DEFAULT_FUSION_WEIGHT, rank_chunks, rank_documents
from haystack_dewey._common import GLOBAL_EMBEDDING_FIELD

_MAX_WIDENING = 4
"""Grouped retrieval doubles the candidates at most this many times to find ``top_k`` sources."""


@component
class DeweyRetriever:
    """Retrieves chunk documents written by :class:`~haystack_dewey.DeweyLateChunker`.

    The document store's own embedding search fetches ``candidates`` chunks; they are then
    re-scored with dewey_core: ``(1 - fusion_weight) * chunk score + fusion_weight * score of the
    chunk's source document``, the source's global embedding read from
    ``meta[global_embedding_meta_field]`` (a chunk without one counts its own score). With
    ``group_by_source`` each source document appears once, through its best chunk (max-sim).
    ``Document.score`` is the fused score.

    The store must offer ``embedding_retrieval(query_embedding, filters, top_k, return_embedding)``
    like ``InMemoryDocumentStore``.

    Usage example:
    ```python
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack_dewey import DeweyRetriever

    store = InMemoryDocumentStore()  # filled by DeweyLateChunker -> DocumentWriter
    retriever = DeweyRetriever(store, top_k=3)
    # retriever.run(query_embedding=DeweyTextEmbedder(...).run("question")["embedding"])
    ```
    """

    def __init__(
        self,
        document_store: Any,
        *,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        candidates: int = 100,
        fusion_weight: float = DEFAULT_FUSION_WEIGHT,
        group_by_source: bool = True,
        global_embedding_meta_field: str | None = GLOBAL_EMBEDDING_FIELD,
        return_embedding: bool = False,
        filter_policy: FilterPolicy | str = FilterPolicy.REPLACE,
    ) -> None:
        """
        :param document_store: The store holding chunk documents (e.g. ``InMemoryDocumentStore``).
        :param filters: Filters applied by the store when fetching candidates.
        :param top_k: Documents to return.
        :param candidates: Chunks fetched from the store before re-scoring (at least ``top_k``).
            With ``group_by_source``, a full page of candidates from fewer than ``top_k`` sources
            is fetched again with twice as many, at most four times.
        :param fusion_weight: Share of the global document score in the fused score, in [0, 1].
        :param group_by_source: Return each source document once, through its best chunk;
            ``False`` returns the best chunks even when several share a source.
        :param global_embedding_meta_field: Metadata field holding the source's global embedding;
            ``None`` ranks by chunk scores alone. The global embedding (this field and the late
            chunker's ``dewey_global_embedding``) is left out of returned documents unless
            ``return_embedding``.
        :param return_embedding: Keep embeddings (chunk and global) on returned documents.
        :param filter_policy: How run-time filters combine with ``filters``: ``replace`` or ``merge``.
        """
        if not callable(getattr(document_store, "embedding_retrieval", None)):
            raise TypeError(f"document_store must offer embedding_retrieval() (e.g. InMemoryDocumentStore); "
                            f"got {type(document_store).__name__}")
        for name, value in (("top_k", top_k), ("candidates", candidates)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
        if top_k < 1 or candidates < 1:
            raise ValueError(f"top_k and candidates must be positive, got top_k={top_k}, "
                             f"candidates={candidates}")
        if not 0.0 <= fusion_weight <= 1.0:
            raise ValueError(f"fusion_weight must be in [0, 1], got {fusion_weight}")
        self.document_store = document_store
        self.filters = filters
        self.top_k = top_k
        self.candidates = candidates
        self.fusion_weight = fusion_weight
        self.group_by_source = group_by_source
        self.global_embedding_meta_field = global_embedding_meta_field
        self.return_embedding = return_embedding
        self.filter_policy = (FilterPolicy.from_str(filter_policy) if isinstance(filter_policy, str)
                              else filter_policy)

    def to_dict(self) -> dict[str, Any]:
        """Serializes the component (document store included) to a dictionary."""
        return default_to_dict(
            self, document_store=self.document_store, filters=self.filters, top_k=self.top_k,
            candidates=self.candidates, fusion_weight=self.fusion_weight,
            group_by_source=self.group_by_source,
            global_embedding_meta_field=self.global_embedding_meta_field,
            return_embedding=self.return_embedding, filter_policy=self.filter_policy.value)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeweyRetriever:
        """Deserializes the component (document store included) from a dictionary."""
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(self, query_embedding: list[float], filters: dict[str, Any] | None = None,
            top_k: int | None = None) -> dict[str, list[Document]]:
        """Retrieves the best chunks for a query embedding.

        :param query_embedding: The query vector (e.g. ``DeweyTextEmbedder``'s ``embedding``).
        :param filters: Run-time filters, combined with the init filters by ``filter_policy``.
        :param top_k: Overrides the init ``top_k``.
        :returns: ``{"documents": ...}``, best first, ``score`` set to the fused score.
        :raises TypeError: If ``query_embedding`` is not a list of numbers.
        """
        query, filters, top_k = self._prepare(query_embedding, filters, top_k)
        fetch, found = max(self.candidates, top_k), []
        for _ in range(_MAX_WIDENING + 1):
            found = self.document_store.embedding_retrieval(**self._search(query, filters, fetch))
            if not self._widen(found, fetch, top_k):
                break
            fetch *= 2
        return {"documents": self._rank(query, found, top_k)}

    @component.output_types(documents=list[Document])
    async def run_async(self, query_embedding: list[float], filters: dict[str, Any] | None = None,
                        top_k: int | None = None) -> dict[str, list[Document]]:
        """Like :meth:`run`, with the store's async search when it has one."""
        query, filters, top_k = self._prepare(query_embedding, filters, top_k)
        search = getattr(self.document_store, "embedding_retrieval_async", None)
        fetch, found = max(self.candidates, top_k), []
        for _ in range(_MAX_WIDENING + 1):
            kwargs = self._search(query, filters, fetch)
            found = await (search(**kwargs) if callable(search)
                           else asyncio.to_thread(self.document_store.embedding_retrieval, **kwargs))
            if not self._widen(found, fetch, top_k):
                break
            fetch *= 2
        return {"documents": self._rank(query, found, top_k)}

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _search(query: np.ndarray, filters: dict[str, Any] | None, fetch: int) -> dict[str, Any]:
        return {"query_embedding": query.tolist(), "filters": filters, "top_k": fetch,
                "return_embedding": True}

    def _widen(self, found: list[Document], fetch: int, top_k: int) -> bool:
        """Whether to fetch again with more candidates: grouped results need ``top_k`` distinct
        sources, and a full page of candidates may hide more."""
        if not self.group_by_source or len(found) < fetch:
            return False
        return len({_source(d) for d in found}) < top_k

    def _prepare(self, query_embedding: Any, filters: dict[str, Any] | None,
                 top_k: int | None) -> tuple[np.ndarray, dict[str, Any] | None, int]:
        if isinstance(query_embedding, (str, bytes)) or not hasattr(query_embedding, "__len__"):
            raise TypeError(f"DeweyRetriever expects query_embedding as a list of floats, got "
                            f"{type(query_embedding).__name__}. Connect DeweyTextEmbedder's 'embedding' "
                            "output to it, or embed the query first.")
        try:
            query = np.asarray(query_embedding, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise TypeError(f"query_embedding must be a list of floats: {error}") from error
        if query.ndim != 1 or not len(query):
            raise TypeError(f"query_embedding must be one non-empty vector, got shape {query.shape}")
        top_k = self.top_k if top_k is None else top_k
        if isinstance(top_k, bool) or not isinstance(top_k, int):
            raise TypeError(f"top_k must be an int, got {type(top_k).__name__} {top_k!r}")
        if top_k < 1:
            raise ValueError(f"top_k must be positive, got {top_k}")
        return query, apply_filter_policy(self.filter_policy, self.filters, filters), top_k

    def _rank(self, query: np.ndarray, found: list[Document], top_k: int) -> list[Document]:
        found = [d for d in found if d.embedding is not None]
        if not found:
            return []
        chunks = np.asarray([d.embedding for d in found], dtype=np.float32)
        sources = [_source(d) for d in found]
        field = self.global_embedding_meta_field
        globals_ = None if field is None else np.asarray(
            [d.meta.get(field) or d.embedding for d in found], dtype=np.float32)
        if self.group_by_source:
            hits = rank_documents(query, chunks, sources, globals_, top_k=top_k,
                                  fusion_weight=self.fusion_weight)
            ranked = [(h.best_chunk, h.score) for h in hits]
        else:
            hits = rank_chunks(query, chunks, sources, globals_, top_k=top_k,
                               fusion_weight=self.fusion_weight)
            ranked = [(h.index, h.score) for h in hits]
        return [self._result(found[i], score) for i, score in ranked]

    def _result(self, doc: Document, score: float) -> Document:
        if self.return_embedding:
            return replace(doc, score=score)
        dropped = {self.global_embedding_meta_field, GLOBAL_EMBEDDING_FIELD}
        meta = {k: v for k, v in doc.meta.items() if k not in dropped}
        return replace(doc, score=score, embedding=None, meta=meta)


def _source(doc: Document) -> str:
    """The chunk's source document: ``meta["source_id"]`` (set by the late chunker), else itself."""
    return doc.meta.get("source_id") or doc.id
