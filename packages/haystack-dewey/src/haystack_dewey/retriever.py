"""A retriever over chunk documents that ranks by chunk hits fused with the document's global score."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import numpy as np
from haystack import Document, component, default_from_dict, default_to_dict
from haystack.document_stores.types import FilterPolicy, apply_filter_policy

from dewey_core import DEFAULT_FUSION_WEIGHT
from haystack_dewey.fusion import DeweyFusionRanker, check_query_embedding, check_top_k, source_of

_MAX_WIDENING = 4
"""Grouped retrieval doubles the candidates at most this many times to find ``top_k`` sources."""


@component
class DeweyRetriever:
    """Retrieves chunk documents written by :class:`~haystack_dewey.DeweyLateChunker` from a store
    with an ``embedding_retrieval`` method (``InMemoryDocumentStore``), fused with their sources.

    The store's own embedding search fetches ``candidates`` chunks (with their embeddings);
    :class:`~haystack_dewey.DeweyFusionRanker` then ranks them: ``(1 - fusion_weight) * chunk score
    + fusion_weight * score of the chunk's source``, the source's global embedding read from
    ``source_store``. With ``group_by_source`` each source document appears once, through its best
    chunk (max-sim). ``Document.score`` is the fused score. For other stores (Chroma, Qdrant,
    ...) put a ``DeweyFusionRanker`` after the store's own embedding retriever.

    Usage example:
    ```python
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack_dewey import DeweyRetriever

    chunks, sources = InMemoryDocumentStore(), InMemoryDocumentStore()  # DeweyLateChunker's outputs
    retriever = DeweyRetriever(chunks, source_store=sources, top_k=3)
    # retriever.run(query_embedding=DeweyTextEmbedder(...).run("question")["embedding"])
    ```
    """

    def __init__(
        self,
        document_store: Any,
        *,
        source_store: Any | None = None,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        candidates: int = 100,
        fusion_weight: float = DEFAULT_FUSION_WEIGHT,
        group_by_source: bool = True,
        return_embedding: bool = False,
        filter_policy: FilterPolicy | str = FilterPolicy.REPLACE,
    ) -> None:
        """
        :param document_store: The store holding chunk documents (e.g. ``InMemoryDocumentStore``).
        :param source_store: The store holding ``DeweyLateChunker``'s ``sources`` (the global
            embeddings); ``None`` ranks chunks by their own scores (with a warning).
        :param filters: Filters applied by the store when fetching candidates.
        :param top_k: Documents to return.
        :param candidates: Chunks fetched from the store before re-scoring (at least ``top_k``).
            With ``group_by_source``, a full page of candidates from fewer than ``top_k`` sources
            is fetched again with twice as many, at most four times.
        :param fusion_weight: Share of the source's score in the fused score, in [0, 1].
        :param group_by_source: Return each source document once, through its best chunk;
            ``False`` returns the best chunks even when several share a source.
        :param return_embedding: Keep the chunk embeddings on returned documents.
        :param filter_policy: How run-time filters combine with ``filters``: ``replace`` or ``merge``.
        """
        if not callable(getattr(document_store, "embedding_retrieval", None)):
            raise TypeError(f"document_store must offer embedding_retrieval() (e.g. InMemoryDocumentStore); "
                            f"got {type(document_store).__name__}. For other stores put a DeweyFusionRanker "
                            "after the store's own embedding retriever")
        for name, value in (("top_k", top_k), ("candidates", candidates)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
        if top_k < 1 or candidates < 1:
            raise ValueError(f"top_k and candidates must be positive, got top_k={top_k}, "
                             f"candidates={candidates}")
        self._fusion = DeweyFusionRanker(source_store, top_k=top_k, fusion_weight=fusion_weight,
                                         group_by_source=group_by_source)
        self.document_store = document_store
        self.source_store = source_store
        self.filters = filters
        self.top_k = top_k
        self.candidates = candidates
        self.fusion_weight = fusion_weight
        self.group_by_source = group_by_source
        self.return_embedding = return_embedding
        self.filter_policy = (FilterPolicy.from_str(filter_policy) if isinstance(filter_policy, str)
                              else filter_policy)

    def to_dict(self) -> dict[str, Any]:
        """Serializes the component (document store included) to a dictionary."""
        return default_to_dict(
            self, document_store=self.document_store, source_store=self.source_store,
            filters=self.filters, top_k=self.top_k, candidates=self.candidates,
            fusion_weight=self.fusion_weight, group_by_source=self.group_by_source,
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
        return len({source_of(d) for d in found}) < top_k

    def _prepare(self, query_embedding: Any, filters: dict[str, Any] | None,
                 top_k: int | None) -> tuple[np.ndarray, dict[str, Any] | None, int]:
        query = check_query_embedding(query_embedding, "DeweyRetriever")
        top_k = check_top_k(self.top_k if top_k is None else top_k)
        return query, apply_filter_policy(self.filter_policy, self.filters, filters), top_k

    def _rank(self, query: np.ndarray, found: list[Document], top_k: int) -> list[Document]:
        ranked = self._fusion.rank(query, [d for d in found if d.embedding is not None], top_k)
        return ranked if self.return_embedding else [replace(d, embedding=None) for d in ranked]
