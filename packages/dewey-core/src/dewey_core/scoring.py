"""Multi-vector scoring: chunk scores, document scores from chunk hits (max-sim), fusion with
the document's global score. Every adapter's retriever ranks with these functions.

All vectors are L2-normalised, so a dot product is the cosine similarity.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dewey_core.inputs import check_int

DEFAULT_FUSION_WEIGHT = 0.25
"""Share of the global document score in a fused score: ``(1 - w) * chunk + w * global``."""


@dataclass(frozen=True)
class ScoredChunk:
    index: int
    """Position of the chunk in the arrays given to :func:`rank_chunks`."""
    doc_id: Hashable
    score: float
    chunk_score: float
    global_score: float | None


@dataclass(frozen=True)
class ScoredDocument:
    doc_id: Hashable
    score: float
    best_chunk: int
    """Index of the chunk that gave the document its score."""
    chunk_score: float
    global_score: float | None


def _as_matrix(x: np.ndarray | Sequence, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(0, 0) if arr.size == 0 else arr[None, :]  # [] is no vectors
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a vector or a 2-D array, got shape {arr.shape}")
    return arr


def _as_query(query: np.ndarray | Sequence) -> np.ndarray:
    """One query vector: shape ``(d,)`` or ``(1, d)``."""
    arr = np.asarray(query, dtype=np.float32)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"query must be one vector, got shape {arr.shape}; rank once per query")
    return arr


def _check_top_k(top_k: int) -> None:
    if check_int(top_k, "top_k") < 1:
        raise ValueError(f"top_k must be a positive int, got {top_k}")


def similarity(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity of normalised ``queries (q, d)`` and ``vectors (n, d)``: ``(q, n)``."""
    q, v = _as_matrix(queries, "queries"), _as_matrix(vectors, "vectors")
    if v.shape[0] and q.shape[1] != v.shape[1]:
        raise ValueError(f"dimension mismatch: queries have {q.shape[1]}, vectors {v.shape[1]}")
    return q @ v.T


def fuse(chunk_scores: np.ndarray, global_scores: np.ndarray | None,
         weight: float = DEFAULT_FUSION_WEIGHT) -> np.ndarray:
    """``(1 - weight) * chunk + weight * global``; the chunk scores alone without globals."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.floating)):
        raise TypeError(f"fusion weight must be a number in [0, 1], got {type(weight).__name__} {weight!r}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"fusion weight must be in [0, 1], got {weight}")
    chunk = np.asarray(chunk_scores, dtype=np.float32)
    if global_scores is None:
        return chunk
    glob = np.asarray(global_scores, dtype=np.float32)
    if glob.shape != chunk.shape:
        raise ValueError(f"{glob.shape} global scores for {chunk.shape} chunk scores")
    return ((1.0 - weight) * chunk + weight * glob).astype(np.float32)


ScoreKind = Literal["similarity", "cosine_distance", "l2", "squared_l2"]
"""What a vector store reports for unit vectors ``q`` and ``x``: ``similarity`` is ``q . x``
(cosine, inner product), ``cosine_distance`` is ``1 - q . x``, ``l2`` is ``|q - x|`` and
``squared_l2`` is ``|q - x|^2``."""
SCORE_KINDS: tuple[str, ...] = ("similarity", "cosine_distance", "l2", "squared_l2")


def cosine_from_scores(scores: np.ndarray | Sequence[float], kind: ScoreKind) -> np.ndarray:
    """The cosine similarities behind a vector store's scores for L2-normalised vectors.

    For unit vectors ``|q - x|^2 = 2 - 2 q.x``, so every kind converts exactly:

    >>> cosine_from_scores([0.0, 2.0], "squared_l2").tolist()
    [1.0, 0.0]
    """
    values = np.asarray(scores, dtype=np.float64)
    if kind == "similarity":
        cosine = values
    elif kind == "cosine_distance":
        cosine = 1.0 - values
    elif kind == "l2":
        cosine = 1.0 - values * values / 2.0
    elif kind == "squared_l2":
        cosine = 1.0 - values / 2.0
    else:
        raise ValueError(f"unknown score kind {kind!r}; expected one of {', '.join(SCORE_KINDS)}")
    return cosine.astype(np.float32)


def rank_chunks(query: np.ndarray, chunk_vectors: np.ndarray, doc_ids: Sequence[Hashable],
                global_vectors: np.ndarray | None = None, *, top_k: int = 10,
                fusion_weight: float = DEFAULT_FUSION_WEIGHT) -> list[ScoredChunk]:
    """Top chunks for one query (shape ``(d,)`` or ``(1, d)``) by fused score.

    ``global_vectors`` (optional) is aligned with ``chunk_vectors``: row ``i`` is the global
    embedding of chunk ``i``'s document.
    """
    query = _as_query(query)
    _check_top_k(top_k)
    chunk_vectors = _as_matrix(chunk_vectors, "chunk_vectors")
    if len(doc_ids) != len(chunk_vectors):
        raise ValueError(f"{len(doc_ids)} doc_ids for {len(chunk_vectors)} chunk vectors")
    if global_vectors is not None:
        global_vectors = np.asarray(global_vectors, dtype=np.float32)
        if global_vectors.ndim != 2 or len(global_vectors) != len(chunk_vectors):
            raise ValueError(f"global_vectors must have one row per chunk ({len(chunk_vectors)}), "
                             f"got shape {global_vectors.shape}")
    if not len(chunk_vectors):
        return []
    chunk = similarity(query, chunk_vectors)[0]
    glob = similarity(query, global_vectors)[0] if global_vectors is not None else None
    return rank_chunk_scores(chunk, doc_ids, glob, top_k=top_k, fusion_weight=fusion_weight)


def rank_chunk_scores(chunk_scores: np.ndarray | Sequence[float], doc_ids: Sequence[Hashable],
                      global_scores: np.ndarray | Sequence[float | None] | None = None, *,
                      top_k: int = 10, fusion_weight: float = DEFAULT_FUSION_WEIGHT) -> list[ScoredChunk]:
    """:func:`rank_chunks` from cosine scores already computed (e.g. by a vector store).

    ``global_scores[i]`` is the query's cosine with chunk ``i``'s document; ``None`` or NaN
    where that is unknown: such a chunk is ranked by its own score and reports no global score.

    >>> [h.index for h in rank_chunk_scores([0.5, 0.6], ["a", "b"], [0.9, None], top_k=2)]
    [0, 1]
    """
    _check_top_k(top_k)
    chunk = np.asarray(chunk_scores, dtype=np.float32).reshape(-1)
    if len(doc_ids) != len(chunk):
        raise ValueError(f"{len(doc_ids)} doc_ids for {len(chunk)} chunk scores")
    known = None
    glob = None
    if global_scores is not None:
        glob = np.asarray([np.nan if g is None else g for g in global_scores], dtype=np.float32)
        if glob.shape != chunk.shape:
            raise ValueError(f"{glob.shape} global scores for {chunk.shape} chunk scores")
        known = ~np.isnan(glob)
        glob = np.where(known, glob, chunk)
    fused = fuse(chunk, glob, fusion_weight)
    top = np.argsort(-fused, kind="stable")[:top_k]
    return [ScoredChunk(int(i), doc_ids[i], float(fused[i]), float(chunk[i]),
                        None if known is None or not known[i] else float(glob[i])) for i in top]


def rank_documents(query: np.ndarray, chunk_vectors: np.ndarray, doc_ids: Sequence[Hashable],
                   global_vectors: np.ndarray | None = None, *, top_k: int = 10,
                   fusion_weight: float = DEFAULT_FUSION_WEIGHT) -> list[ScoredDocument]:
    """Top documents for one query: each scored by its best chunk (max-sim) fused with its
    global score."""
    _check_top_k(top_k)
    ranked = rank_chunks(query, chunk_vectors, doc_ids, global_vectors,
                         top_k=max(len(doc_ids), 1), fusion_weight=fusion_weight)
    return _best_per_document(ranked, top_k)


def rank_document_scores(chunk_scores: np.ndarray | Sequence[float], doc_ids: Sequence[Hashable],
                         global_scores: np.ndarray | Sequence[float | None] | None = None, *,
                         top_k: int = 10,
                         fusion_weight: float = DEFAULT_FUSION_WEIGHT) -> list[ScoredDocument]:
    """:func:`rank_documents` from cosine scores already computed (see :func:`rank_chunk_scores`)."""
    _check_top_k(top_k)
    ranked = rank_chunk_scores(chunk_scores, doc_ids, global_scores,
                               top_k=max(len(doc_ids), 1), fusion_weight=fusion_weight)
    return _best_per_document(ranked, top_k)


def _best_per_document(ranked: list[ScoredChunk], top_k: int) -> list[ScoredDocument]:
    best: dict[Hashable, ScoredDocument] = {}
    for hit in ranked:  # best first, so the first hit of a document is its max
        if hit.doc_id not in best:
            best[hit.doc_id] = ScoredDocument(hit.doc_id, hit.score, hit.index,
                                              hit.chunk_score, hit.global_score)
    return list(best.values())[:top_k]
