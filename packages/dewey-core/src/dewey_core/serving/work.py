"""Units of work and how a group of them runs as one call of the engine.

A request becomes one work item. Items with the same :attr:`key` (same operation and
settings) are merged: their inputs are concatenated, encoded by one
:class:`~dewey_core.DeweyEncoder` call (which tokenises, plans token-budget batches and pools
as it does in process), and the outputs are split back per item, in order.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from dewey_core.encoder import DeweyEncoder
from dewey_core.types import LateChunkedDocument


@dataclass(frozen=True)
class EmbedWork:
    """Texts to embed with the query or document prompt (``prompt`` overrides it)."""

    texts: list[str]
    input_type: Literal["query", "document"]
    prompt: str | None
    dim: int | None
    normalize: bool = True

    @property
    def key(self) -> Hashable:
        return ("embed", self.input_type, self.prompt, self.dim, self.normalize)

    @staticmethod
    def run(encoder: DeweyEncoder, items: Sequence[EmbedWork]) -> list[np.ndarray]:
        first = items[0]
        method = encoder.encode_queries if first.input_type == "query" else encoder.encode_documents
        vectors = method([t for w in items for t in w.texts], first.dim, prompt=first.prompt,
                         show_progress=False, normalize=first.normalize)
        return _split(vectors, [len(w.texts) for w in items])


@dataclass(frozen=True)
class LateChunkWork:
    """Documents to late-chunk, with caller spans (checked already) or chunker settings."""

    texts: list[str]
    spans: list[list[tuple[int, int]]] | None
    chunk_size: int
    chunk_overlap: int
    chunking: str
    context_tokens: int | None
    window_overlap: int | None
    dim: int | None

    @property
    def key(self) -> Hashable:
        # Items with spans merge with each other only; chunker settings matter only without.
        chunker = None if self.spans is not None else (self.chunk_size, self.chunk_overlap, self.chunking)
        return ("late", chunker, self.context_tokens, self.window_overlap, self.dim)

    @staticmethod
    def run(encoder: DeweyEncoder, items: Sequence[LateChunkWork]) -> list[list[LateChunkedDocument]]:
        first = items[0]
        spans = None if first.spans is None else [s for w in items for s in w.spans]
        # Each item's spans were checked with its own allow_overlap when it was admitted.
        docs = encoder.late_chunk([t for w in items for t in w.texts], spans, first.chunk_size,
                                  first.chunk_overlap, first.dim, chunking=first.chunking,
                                  allow_overlap=True, context_tokens=first.context_tokens,
                                  window_overlap=first.window_overlap, show_progress=False)
        return _split(docs, [len(w.texts) for w in items])


@dataclass(frozen=True)
class ImageWork:
    """Images or mixed text + image inputs (decoded PIL images and ``str`` parts)."""

    items: list[Any]
    prompt: str | None
    dim: int | None

    @property
    def key(self) -> Hashable:
        return ("images", self.prompt, self.dim)

    @staticmethod
    def run(encoder: DeweyEncoder, items: Sequence[ImageWork]) -> list[np.ndarray]:
        first = items[0]
        vectors = encoder.encode_images([x for w in items for x in w.items], first.dim,
                                        prompt=first.prompt, show_progress=False)
        return _split(vectors, [len(w.items) for w in items])


Work = EmbedWork | LateChunkWork | ImageWork


def _split(values, sizes: list[int]) -> list:
    out, at = [], 0
    for n in sizes:
        out.append(values[at:at + n])
        at += n
    if at != len(values):  # the engine returns one output per input; anything else is a bug
        raise RuntimeError(f"the engine returned {len(values)} outputs for {at} inputs")
    return out
