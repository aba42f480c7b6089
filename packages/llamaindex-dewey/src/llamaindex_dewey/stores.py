"""What a LlamaIndex vector store's ``similarities`` mean, turned into the cosine similarity of
the (L2-normalised) query and node vectors.

``SimpleVectorStore`` and Qdrant (cosine or dot distance) report a similarity; FAISS the raw
index output (a squared L2 distance for ``IndexFlatL2``, an inner product for
``IndexFlatIP``); Chroma and LanceDB ``exp(-distance)`` of their collection's (Chroma) or vector
index's (LanceDB) distance, squared L2 by default. For unit vectors each converts exactly
(:func:`dewey_core.cosine_from_scores`). A store not listed here is refused unless the caller
says what its scores are. The meaning is read when a query runs (a collection or an index may
be created after the retriever); Qdrant stores with only an async client are read through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llama_index.core.vector_stores.types import BasePydanticVectorStore

from dewey_core import SCORE_KINDS, ScoreKind, cosine_from_scores


class UnsupportedStoreError(TypeError):
    """The store's scores cannot be turned into cosine similarities."""


@dataclass(frozen=True)
class Scores:
    """How one store's similarities become cosines."""

    kind: ScoreKind
    exp_negative: bool = False
    """The store reports ``exp(-distance)`` (Chroma, LanceDB)."""

    def cosines(self, similarities: list[float]) -> list[float]:
        values = [-math.log(s) if self.exp_negative else s for s in similarities]
        return cosine_from_scores(values, self.kind).tolist()


def _simple(store: Any, query_kwargs: dict[str, Any]) -> Scores:
    return Scores("similarity")


def _chroma(store: Any, query_kwargs: dict[str, Any]) -> Scores:
    collection = store._collection
    config = collection.configuration or {}
    space = next((c.get("space") for c in (config.get("hnsw"), config.get("spann")) if c), None)
    space = space or (collection.metadata or {}).get("hnsw:space", "l2")
    kinds = {"l2": "squared_l2", "cosine": "cosine_distance", "ip": "cosine_distance"}
    if space not in kinds:
        raise UnsupportedStoreError(f"Chroma collection space {space!r} is not one of l2, cosine, ip")
    return Scores(kinds[space], exp_negative=True)


def _qdrant_check(store: Any) -> None:
    if store.enable_hybrid:
        raise UnsupportedStoreError("a hybrid QdrantVectorStore reports fused scores; DeweyRetriever "
                                    "needs the dense similarity (enable_hybrid=False)")


def _qdrant_params(store: Any, collection: Any) -> Any:
    vectors = collection.config.params.vectors
    return vectors.get(store.dense_vector_name) if isinstance(vectors, dict) else vectors


def _qdrant(store: Any, query_kwargs: dict[str, Any]) -> Scores:
    _qdrant_check(store)
    if store.client is None:
        raise UnsupportedStoreError("this QdrantVectorStore has only an async client: retrieve with "
                                    "aretrieve / aquery, or give it a client= as well")
    return _qdrant_scores(_qdrant_params(store, store.client.get_collection(store.collection_name)))


async def _aqdrant(store: Any, query_kwargs: dict[str, Any]) -> Scores:
    _qdrant_check(store)
    if store.client is not None:
        return _qdrant(store, query_kwargs)
    return _qdrant_scores(_qdrant_params(store, await store._aclient.get_collection(store.collection_name)))


def _qdrant_scores(params: Any) -> Scores:
    distance = str(getattr(params.distance, "value", params.distance)).lower()
    kinds = {"cosine": "similarity", "dot": "similarity", "euclid": "l2"}
    if distance not in kinds:
        raise UnsupportedStoreError(f"Qdrant distance {distance!r} cannot be turned into a cosine")
    return Scores(kinds[distance])


def _faiss(store: Any, query_kwargs: dict[str, Any]) -> Scores:
    import faiss

    kinds = {faiss.METRIC_L2: "squared_l2", faiss.METRIC_INNER_PRODUCT: "similarity"}
    metric = store._faiss_index.metric_type
    if metric not in kinds:
        raise UnsupportedStoreError(f"FAISS metric {metric} is neither L2 nor inner product")
    return Scores(kinds[metric])


def _lancedb_check(store: Any, query_kwargs: dict[str, Any]) -> None:
    query_type = query_kwargs.get("query_type", store.query_type)
    if query_type != "vector":
        raise UnsupportedStoreError(f"LanceDB query_type={query_type!r} reports text or fused scores; "
                                    "DeweyRetriever needs query_type='vector'")


def _lancedb(store: Any, query_kwargs: dict[str, Any]) -> Scores:
    _lancedb_check(store, query_kwargs)
    # LlamaIndex's queries name no metric: LanceDB then uses its vector index's, else L2.
    kinds = {"l2": "squared_l2", "cosine": "cosine_distance", "dot": "cosine_distance"}
    metric = _lancedb_metric(store)
    if metric not in kinds:
        raise UnsupportedStoreError(f"LanceDB vector index metric {metric!r} is not one of l2, cosine, dot")
    return Scores(kinds[metric], exp_negative=True)


def _lancedb_metric(store: Any) -> str:
    """The distance of the vector index on the store's vector column (``"l2"`` without one)."""
    for index in store.table.list_indices():
        if store.vector_column_name not in index.columns:
            continue
        details = getattr(index, "index_details", None) or {}
        metric = details.get("metric_type") or getattr(store.table.index_stats(index.name), "distance_type",
                                                       None)
        if metric:
            return str(metric).lower()
    return "l2"


_STORES: dict[str, Callable[[Any, dict[str, Any]], Scores]] = {
    "llama_index.core.vector_stores.simple.SimpleVectorStore": _simple,
    "llama_index.vector_stores.chroma.base.ChromaVectorStore": _chroma,
    "llama_index.vector_stores.qdrant.base.QdrantVectorStore": _qdrant,
    "llama_index.vector_stores.faiss.base.FaissVectorStore": _faiss,
    "llama_index.vector_stores.lancedb.base.LanceDBVectorStore": _lancedb,
}
SUPPORTED_STORES = tuple(path.rsplit(".", 1)[1] for path in _STORES)


def _reader(store: BasePydanticVectorStore) -> Callable[[Any, dict[str, Any]], Scores] | None:
    for cls in type(store).__mro__:
        make = _STORES.get(f"{cls.__module__}.{cls.__qualname__}")
        if make is not None:
            return make
    return None


def check_store(store: BasePydanticVectorStore, score_kind: ScoreKind | None = None,
                query_kwargs: dict[str, Any] | None = None) -> ScoreKind | None:
    """Refuse a ``score_kind`` that is not one, a store whose scores are unknown without one,
    and settings whose scores are not similarities (hybrid Qdrant, LanceDB text queries);
    nothing is read from the store. Returns ``score_kind``."""
    if score_kind is not None:
        if score_kind not in SCORE_KINDS:
            raise ValueError(f"score_kind must be one of {', '.join(SCORE_KINDS)}, got {score_kind!r}")
        return score_kind
    reader = _reader(store)
    if reader is None:
        raise _unsupported(store)
    if reader is _qdrant:
        _qdrant_check(store)
    if reader is _lancedb:
        _lancedb_check(store, query_kwargs or {})
    return None


def scores_for(store: BasePydanticVectorStore, query_kwargs: dict[str, Any],
               score_kind: ScoreKind | None = None) -> Scores:
    """How ``store``'s similarities become cosines (``score_kind`` names them for other stores)."""
    if check_store(store, score_kind) is not None:
        return Scores(score_kind)
    return _reader(store)(store, query_kwargs)


async def ascores_for(store: BasePydanticVectorStore, query_kwargs: dict[str, Any],
                      score_kind: ScoreKind | None = None) -> Scores:
    """:func:`scores_for`, reading an async-only Qdrant store through its async client."""
    if check_store(store, score_kind) is None and _reader(store) is _qdrant:
        return await _aqdrant(store, query_kwargs)
    return scores_for(store, query_kwargs, score_kind)


def _unsupported(store: BasePydanticVectorStore) -> UnsupportedStoreError:
    return UnsupportedStoreError(
        f"DeweyRetriever cannot turn the similarities of {type(store).__module__}."
        f"{type(store).__qualname__} into cosine similarities (supported: {', '.join(SUPPORTED_STORES)}); "
        f"say what they are with score_kind= ({', '.join(SCORE_KINDS)})")


def _qdrant_size(store: Any, collection: Any) -> int | None:
    params = _qdrant_params(store, collection)
    return None if params is None else int(params.size)


def stored_dimension(store: BasePydanticVectorStore) -> int | None:
    """The size of the vectors in ``store`` where it can be read cheaply, else ``None``."""
    name = type(store).__name__
    if name == "SimpleVectorStore":
        embeddings = store.data.embedding_dict
        return len(next(iter(embeddings.values()))) if embeddings else None
    if name == "FaissVectorStore":
        index = store._faiss_index
        return int(index.d) if index.ntotal else None
    if name == "ChromaVectorStore":
        got = store._collection.get(limit=1, include=["embeddings"])["embeddings"]
        return None if got is None or len(got) == 0 else len(got[0])
    if name == "QdrantVectorStore" and store.client is not None \
            and store.client.collection_exists(store.collection_name):
        return _qdrant_size(store, store.client.get_collection(store.collection_name))
    return None


async def astored_dimension(store: BasePydanticVectorStore) -> int | None:
    """:func:`stored_dimension`, reading an async-only Qdrant store through its async client."""
    if type(store).__name__ == "QdrantVectorStore" and store.client is None:
        if not await store._aclient.collection_exists(store.collection_name):
            return None
        return _qdrant_size(store, await store._aclient.get_collection(store.collection_name))
    return stored_dimension(store)
