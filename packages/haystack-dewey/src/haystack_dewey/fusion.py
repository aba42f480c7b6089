"""Fusion of chunk hits with their source document's global score, after any retriever."""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
from haystack import Document, component, default_from_dict, default_to_dict

from dewey_core import (
    DEFAULT_FUSION_WEIGHT,
    SCORE_KINDS,
    ScoreKind,
    cosine_from_scores,
    rank_chunk_scores,
    rank_document_scores,
)
from haystack_dewey._common import SOURCE_HASH_FIELD, SOURCE_ID_FIELD


def check_query_embedding(query_embedding: Any, component_name: str) -> np.ndarray:
    if isinstance(query_embedding, (str, bytes)) or not hasattr(query_embedding, "__len__"):
        raise TypeError(f"{component_name} expects query_embedding as a list of floats, got "
                        f"{type(query_embedding).__name__}. Connect DeweyTextEmbedder's 'embedding' "
                        "output to it, or embed the query first.")
    try:
        query = np.asarray(query_embedding, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise TypeError(f"query_embedding must be a list of floats: {error}") from error
    if query.ndim != 1 or not len(query):
        raise TypeError(f"query_embedding must be one non-empty vector, got shape {query.shape}")
    return query


def check_top_k(top_k: Any) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise TypeError(f"top_k must be an int, got {type(top_k).__name__} {top_k!r}")
    if top_k < 1:
        raise ValueError(f"top_k must be positive, got {top_k}")
    return top_k


def source_of(doc: Document) -> str:
    """The chunk's source document: ``meta["source_id"]`` (set by splitters), else itself."""
    return doc.meta.get("source_id") or doc.id


def _source_score(chunk: Document, source: str, scores: dict[str, tuple[float, str | None]]) -> float | None:
    """The chunk's source's score; ``None`` when the source is missing or was embedded from
    another text than the chunk (both carry a digest of it)."""
    if source not in scores:
        return None
    score, digest = scores[source]
    chunk_digest = chunk.meta.get(SOURCE_HASH_FIELD)
    return None if digest and chunk_digest and digest != chunk_digest else score


@component
class DeweyFusionRanker:
    """Ranks chunk documents by their own score fused with their source document's score, after
    any document store's embedding retriever (Chroma, Qdrant, pgvector, in-memory, ...).

    ``score = (1 - fusion_weight) * chunk score + fusion_weight * source score``, both cosine
    similarities with the query: the chunk's from its embedding (the store returns it: Chroma
    always, Qdrant and the in-memory store with ``return_embedding=True``), else from the
    store's ``score`` as ``score_type`` says; the source's from its global embedding, read
    from ``source_store`` (where ``DeweyLateChunker``'s ``sources`` output was written).
    With ``group_by_source`` each source appears once, through its best chunk (max-sim).
    ``Document.score`` becomes the fused score. Nothing is embedded here.

    Usage example:
    ```python
    from haystack import Pipeline
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
    from haystack_dewey import DeweyFusionRanker, DeweyTextEmbedder

    chunks, sources = InMemoryDocumentStore(), InMemoryDocumentStore()  # filled by DeweyLateChunker
    query = Pipeline()
    query.add_component("embedder", DeweyTextEmbedder(model="infgrad/dewey_en_beta"))
    query.add_component("retriever", InMemoryEmbeddingRetriever(chunks, top_k=50, return_embedding=True))
    query.add_component("fusion", DeweyFusionRanker(sources, top_k=5))
    query.connect("embedder.embedding", "retriever.query_embedding")
    query.connect("embedder.embedding", "fusion.query_embedding")
    query.connect("retriever.documents", "fusion.documents")
    ```
    """

    def __init__(self, source_store: Any | None = None, *, top_k: int = 10,
                 fusion_weight: float = DEFAULT_FUSION_WEIGHT, group_by_source: bool = True,
                 score_type: ScoreKind | None = None) -> None:
        """
        :param source_store: The store holding ``DeweyLateChunker``'s ``sources`` (their global
            embeddings). ``None`` ranks chunks by their own scores (with a warning).
        :param top_k: Documents to return.
        :param fusion_weight: Share of the source's score in the fused score, in [0, 1].
        :param group_by_source: Return each source once, through its best chunk; ``False`` returns
            the best chunks even when several share a source.
        :param score_type: What a retriever's ``score`` is, for chunks that come without an
            embedding: ``"similarity"`` (cosine or dot product of unit vectors: Qdrant, the
            in-memory store without ``scale_score``), ``"cosine_distance"``, ``"l2"`` or
            ``"squared_l2"`` (Chroma's ``l2``). ``None`` requires embeddings.
        """
        check_top_k(top_k)
        if isinstance(fusion_weight, bool) or not isinstance(fusion_weight, (int, float)) \
                or not 0.0 <= fusion_weight <= 1.0:
            raise ValueError(f"fusion_weight must be a number in [0, 1], got {fusion_weight!r}")
        if score_type is not None and score_type not in SCORE_KINDS:
            raise ValueError(f"score_type must be one of {', '.join(SCORE_KINDS)} or None, "
                             f"got {score_type!r}")
        if source_store is not None and not callable(getattr(source_store, "filter_documents", None)):
            raise TypeError(f"source_store must be a document store, got {type(source_store).__name__}")
        if source_store is None and fusion_weight > 0:
            warnings.warn("no source_store: chunks are ranked by their own scores (fusion_weight has no "
                          "effect). Write DeweyLateChunker's 'sources' output to a store and pass it.",
                          UserWarning, stacklevel=2)
        self.source_store = source_store
        self.top_k = top_k
        self.fusion_weight = fusion_weight
        self.group_by_source = group_by_source
        self.score_type = score_type

    def to_dict(self) -> dict[str, Any]:
        """Serializes the component (source store included) to a dictionary."""
        return default_to_dict(self, source_store=self.source_store, top_k=self.top_k,
                               fusion_weight=self.fusion_weight, group_by_source=self.group_by_source,
                               score_type=self.score_type)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeweyFusionRanker:
        """Deserializes the component (source store included) from a dictionary."""
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(self, query_embedding: list[float], documents: list[Document],
            top_k: int | None = None) -> dict[str, list[Document]]:
        """Fuses and ranks retrieved chunk documents.

        :param query_embedding: The query vector the chunks were retrieved with.
        :param documents: Retrieved chunks (each with an embedding, or a score of ``score_type``).
        :param top_k: Overrides the init ``top_k``.
        :returns: ``{"documents": ...}``, best first, ``score`` set to the fused score.
        """
        query = check_query_embedding(query_embedding, "DeweyFusionRanker")
        if not isinstance(documents, list) or not all(isinstance(d, Document) for d in documents):
            raise TypeError("DeweyFusionRanker expects documents as a list of Documents (a retriever's "
                            "'documents' output)")
        return {"documents": self.rank(query, documents, check_top_k(self.top_k if top_k is None else top_k))}

    @component.output_types(documents=list[Document])
    async def run_async(self, query_embedding: list[float], documents: list[Document],
                        top_k: int | None = None) -> dict[str, list[Document]]:
        """Like :meth:`run`, in a worker thread (the source store is read synchronously)."""
        return await asyncio.to_thread(self.run, query_embedding, documents, top_k)

    # ------------------------------------------------------------------ ranking
    def rank(self, query: np.ndarray, documents: list[Document], top_k: int) -> list[Document]:
        """``documents`` ranked by fused score (the same documents, ``score`` replaced)."""
        if not documents:
            return []
        chunk_scores = self._chunk_scores(query, documents)
        sources = [source_of(d) for d in documents]
        source_scores = self._source_scores(query, sources)
        global_scores = [_source_score(d, s, source_scores) for d, s in zip(documents, sources, strict=True)]
        stale = sorted({s for d, s, g in zip(documents, sources, global_scores, strict=True)
                        if g is None and s in source_scores})
        if stale:
            warnings.warn(f"{len(stale)} source(s) in the source store (e.g. {stale[0]!r}) were embedded "
                          "from another version of their text than their retrieved chunks (their "
                          f"meta['{SOURCE_HASH_FIELD}'] differ), so those chunks are ranked by their own "
                          "scores. Write DeweyLateChunker's 'sources' with DuplicatePolicy.OVERWRITE "
                          "when documents change.", UserWarning, stacklevel=3)
        if self.group_by_source:
            hits = rank_document_scores(chunk_scores, sources, global_scores, top_k=top_k,
                                        fusion_weight=self.fusion_weight)
            ranked = [(h.best_chunk, h.score) for h in hits]
        else:
            hits = rank_chunk_scores(chunk_scores, sources, global_scores, top_k=top_k,
                                     fusion_weight=self.fusion_weight)
            ranked = [(h.index, h.score) for h in hits]
        return [replace(documents[i], score=score) for i, score in ranked]

    def _chunk_scores(self, query: np.ndarray, documents: list[Document]) -> np.ndarray:
        scores = np.empty(len(documents), dtype=np.float32)
        by_score = []
        for i, doc in enumerate(documents):
            if doc.embedding is not None:
                if len(doc.embedding) != len(query):
                    raise ValueError(f"dimension mismatch: the query has {len(query)} dimensions, "
                                     f"document {doc.id}'s embedding {len(doc.embedding)}")
                scores[i] = float(np.asarray(doc.embedding, dtype=np.float32) @ query)
            elif self.score_type is not None and doc.score is not None:
                by_score.append(i)
            else:
                raise ValueError(
                    f"document {doc.id} came without an embedding, so its cosine with the query is "
                    "unknown: let the retriever return embeddings (return_embedding=True) or say what "
                    f"its scores are with score_type= ({', '.join(SCORE_KINDS)})")
        if by_score:
            scores[by_score] = cosine_from_scores([documents[i].score for i in by_score], self.score_type)
        return scores

    def _source_scores(self, query: np.ndarray, sources: list[str]) -> dict[str, tuple[float, str | None]]:
        """Per source id: its score and its text digest."""
        if self.source_store is None:
            return {}
        wanted = sorted(set(sources))
        found = self.source_store.filter_documents(
            filters={"field": f"meta.{SOURCE_ID_FIELD}", "operator": "in", "value": wanted})
        out = {}
        for doc in found:
            if doc.embedding is None:
                raise ValueError(f"source document {doc.id} in the source store has no embedding; write "
                                 "DeweyLateChunker's 'sources' output there unchanged")
            if len(doc.embedding) != len(query):
                raise ValueError(f"dimension mismatch: the query has {len(query)} dimensions, source "
                                 f"document {doc.id}'s embedding {len(doc.embedding)} (embedded with "
                                 "another dim or model? re-write the sources)")
            out[doc.meta[SOURCE_ID_FIELD]] = (float(np.asarray(doc.embedding, dtype=np.float32) @ query),
                                              doc.meta.get(SOURCE_HASH_FIELD))
        if not out:
            warnings.warn(f"none of the {len(wanted)} sources of the retrieved chunks is in the source "
                          "store: chunks are ranked by their own scores. Write DeweyLateChunker's "
                          "'sources' output to that store.", UserWarning, stacklevel=3)
        return out
