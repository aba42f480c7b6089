"""Chunk candidates from a vector store's own similarity search, with each store's score turned
into the cosine similarity of the (L2-normalised) query and chunk vectors.

Stores report different things: ``InMemoryVectorStore`` and Qdrant (cosine or dot distance)
a similarity, Chroma a distance of its collection's space (``l2`` is squared), FAISS a squared
L2 distance (``IndexFlatL2``) or an inner product (``IndexFlatIP``), LanceDB the distance of the
query's metric. For unit vectors each of these converts exactly
(:func:`dewey_core.cosine_from_scores`). A store not listed here is refused unless the caller
says what its scores are (``score_kind``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore

from dewey_core import SCORE_KINDS, ScoreKind, cosine_from_scores


class UnsupportedStoreError(TypeError):
    """The store's scores cannot be turned into cosine similarities."""


@dataclass(frozen=True)
class Search:
    """How to ask one store for chunks by vector, and what its scores mean."""

    run: Callable[[list[float], int, dict[str, Any]], list[tuple[Document, float]]]
    kind: ScoreKind


def _class_path(store: Any) -> str:
    cls = type(store)
    return f"{cls.__module__}.{cls.__qualname__}"


def _in_memory(store: Any) -> Search:
    return Search(lambda v, k, kw: store.similarity_search_with_score_by_vector(v, k, **kw), "similarity")


def _chroma(store: Any) -> Search:
    config = store._collection.configuration or {}
    space = next((c.get("space") for c in (config.get("hnsw"), config.get("spann")) if c), None)
    space = space or (store._collection.metadata or {}).get("hnsw:space", "l2")
    kinds = {"l2": "squared_l2", "cosine": "cosine_distance", "ip": "cosine_distance"}
    if space not in kinds:
        raise UnsupportedStoreError(f"Chroma collection space {space!r} is not one of l2, cosine, ip")
    return Search(lambda v, k, kw: store.similarity_search_by_vector_with_relevance_scores(v, k, **kw),
                  kinds[space])


def _qdrant(store: Any) -> Search:
    if str(getattr(store.retrieval_mode, "value", store.retrieval_mode)).lower() != "dense":
        raise UnsupportedStoreError("QdrantVectorStore in sparse or hybrid mode reports fused scores; "
                                    "use retrieval_mode=RetrievalMode.DENSE")
    distance = str(getattr(store.distance, "value", store.distance)).lower()
    kinds = {"cosine": "similarity", "dot": "similarity", "euclid": "l2"}
    if distance not in kinds:
        raise UnsupportedStoreError(f"Qdrant distance {distance!r} cannot be turned into a cosine")
    return Search(lambda v, k, kw: store.similarity_search_with_score_by_vector(v, k, **kw), kinds[distance])


def _faiss(store: Any) -> Search:
    import faiss

    kinds = {faiss.METRIC_L2: "squared_l2", faiss.METRIC_INNER_PRODUCT: "similarity"}
    if store.index.metric_type not in kinds:
        raise UnsupportedStoreError(f"FAISS metric {store.index.metric_type} is neither L2 nor inner product")

    def run(vector: list[float], k: int, kwargs: dict[str, Any]) -> list[tuple[Document, float]]:
        if kwargs.get("filter") is not None:  # FAISS filters after fetching fetch_k hits
            kwargs = {"fetch_k": max(20, 4 * k), **kwargs}
        return store.similarity_search_with_score_by_vector(vector, k, **kwargs)

    return Search(run, kinds[store.index.metric_type])


def _lancedb(store: Any) -> Search:
    metric = {"l2": "l2", "cosine": "cosine", "ip": "dot", "dot": "dot"}.get(str(store.distance).lower())
    if metric is None:
        raise UnsupportedStoreError(f"LanceDB distance {store.distance!r} is not l2, cosine or dot")
    kinds = {"l2": "squared_l2", "cosine": "cosine_distance", "dot": "cosine_distance"}

    def run(vector: list[float], k: int, kwargs: dict[str, Any]) -> list[tuple[Document, float]]:
        # The query's metric is set here, so that the scores are the ones converted.
        kwargs = {"metrics": metric, **kwargs, "score": True}
        if kwargs["metrics"] != metric:
            raise UnsupportedStoreError(f"metrics={kwargs['metrics']!r} differs from the store's "
                                        f"distance {store.distance!r}")
        return store.similarity_search_by_vector(vector, k, **kwargs)

    return Search(run, kinds[metric])


_STORES: dict[str, Callable[[Any], Search]] = {
    "langchain_core.vectorstores.in_memory.InMemoryVectorStore": _in_memory,
    "langchain_chroma.vectorstores.Chroma": _chroma,
    "langchain_qdrant.qdrant.QdrantVectorStore": _qdrant,
    "langchain_community.vectorstores.faiss.FAISS": _faiss,
    "langchain_community.vectorstores.lancedb.LanceDB": _lancedb,
}
SUPPORTED_STORES = tuple(path.rsplit(".", 1)[1] for path in _STORES)


def search_for(store: VectorStore, score_kind: ScoreKind | None = None) -> Search:
    """The search of ``store`` (or of the closest supported class it derives from)."""
    if score_kind is not None:
        if score_kind not in SCORE_KINDS:
            raise ValueError(f"score_kind must be one of {', '.join(SCORE_KINDS)}, got {score_kind!r}")
        method = getattr(store, "similarity_search_with_score_by_vector", None)
        if method is None:
            raise UnsupportedStoreError(f"{type(store).__name__} has no "
                                        "similarity_search_with_score_by_vector()")
        return Search(lambda v, k, kw: method(v, k, **kw), score_kind)
    for cls in type(store).__mro__:
        make = _STORES.get(f"{cls.__module__}.{cls.__qualname__}")
        if make is not None:
            return make(store)
    raise UnsupportedStoreError(
        f"DeweyRetriever cannot turn the scores of {_class_path(store)} into cosine similarities "
        f"(supported: {', '.join(SUPPORTED_STORES)}); if the store has "
        "similarity_search_with_score_by_vector(), say what its scores are with score_kind= "
        f"({', '.join(SCORE_KINDS)})")


def cosine_hits(search: Search, vector: list[float], k: int,
                search_kwargs: dict[str, Any]) -> list[tuple[Document, float]]:
    """Up to ``k`` chunks, best first, each with its cosine similarity to ``vector``."""
    hits = search.run(vector, k, dict(search_kwargs))
    cosines = cosine_from_scores([float(score) for _, score in hits], search.kind)
    return [(doc, float(c)) for (doc, _), c in zip(hits, cosines, strict=True)]


def stored_dimension(store: VectorStore) -> int | None:
    """The size of the vectors in ``store`` where it can be read cheaply, else ``None``."""
    path = _class_path(store)
    if path.endswith("InMemoryVectorStore") and store.store:
        return len(next(iter(store.store.values()))["vector"])
    if path.endswith("faiss.FAISS"):
        return int(store.index.d) if store.index.ntotal else None
    if path.endswith("langchain_chroma.vectorstores.Chroma"):
        got = store._collection.get(limit=1, include=["embeddings"])["embeddings"]
        return None if got is None or len(got) == 0 else len(got[0])
    if path.endswith("QdrantVectorStore"):
        vectors = store.client.get_collection(store.collection_name).config.params.vectors
        params = vectors.get(store.vector_name) if isinstance(vectors, dict) else vectors
        return None if params is None else int(params.size)
    return None
