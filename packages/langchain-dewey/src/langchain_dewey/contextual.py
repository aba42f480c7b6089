"""The bounded, in-process store that carries late-chunked vectors from
:class:`~langchain_dewey.DeweyTextSplitter` to :class:`~langchain_dewey.DeweyEmbeddings`.

LangChain vector stores hand an ``Embeddings`` object nothing but chunk texts, so the splitter
files each contextual chunk vector twice: under the chunk's position ``(doc_id, start, end)``
(exact; used by :class:`~langchain_dewey.DeweyRetriever`) and under a hash of the chunk text
(used by ``embed_documents``). Splitting a document again replaces everything filed for it.

A text that occurs in several cached chunks (a shared footer, a repeated heading) keeps one
vector per occurrence, in filing order. An ``embed_documents`` call in which the text occurs
``m`` times gets the ``m`` most recently filed occurrences, in order: exactly right when the
chunks of the latest split reach ``embed_documents`` in one call, in the order the splitter
produced them, however many other documents with the same text were split before. A store that
embeds one split in several batches can give an earlier occurrence of a repeated text the
vector of a later one; such chunks are then told apart only by
:meth:`ContextualVectorCache.by_position` (what :class:`~langchain_dewey.DeweyRetriever` uses).
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

START_INDEX = "start_index"
"""Chunk metadata: character offset of the chunk in its document (LangChain's own key)."""
DOC_ID = "dewey_doc_id"
"""Chunk metadata: id of the chunk's document (its ``Document.id``, else a content hash)."""
CHUNK_INDEX = "dewey_chunk"
"""Chunk metadata: position of the chunk among its document's chunks."""
GLOBAL_EMBEDDING = "dewey_global_embedding"
"""Chunk (and parent) metadata: the document's global embedding, a list of floats."""


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_id(text: str, metadata: Mapping[str, Any], explicit: str | None = None) -> str:
    """``explicit`` (a ``Document.id``) when given, else a hash of the ``source`` and the text,
    so that splitting the same document twice gives the same ids (re-ingestion upserts)."""
    if explicit:
        return explicit
    source = str(metadata.get("source", ""))
    digest = hashlib.sha256(f"{source}\x00{text}".encode()).hexdigest()
    return f"dewey-{digest[:32]}"


Position = tuple[str, int, int]


class ContextualVectorCache:
    """Holds at most ``max_chunks`` contextual chunk vectors; the oldest are forgotten first.

    Memory is about ``max_chunks * dim * 4`` bytes (float32), e.g. 50,000 chunks of 2048-d
    dewey_en_beta vectors take about 410 MB, of 384-d MiniLM vectors about 77 MB.
    """

    def __init__(self, max_chunks: int) -> None:
        self.max_chunks = max_chunks
        self._lock = threading.Lock()
        self._by_position: OrderedDict[Position, tuple[str, np.ndarray]] = OrderedDict()
        self._by_text: dict[str, list[Position]] = {}
        self._by_doc: dict[str, list[Position]] = {}

    def __len__(self) -> int:
        return len(self._by_position)

    def add(self, doc_id: str, chunks: Sequence[tuple[int, int, str, np.ndarray]]) -> None:
        """File the chunks ``(start, end, text, vector)`` of one document, replacing whatever
        was filed for ``doc_id`` before (an edited document's old chunks are stale)."""
        with self._lock:
            for position in self._by_doc.get(doc_id, [])[:]:
                self._forget(position)
            for start, end, text, vector in chunks:
                position = (doc_id, start, end)
                if position in self._by_position:  # the same span twice (overlap allowed)
                    self._forget(position)
                key = text_key(text)
                self._by_position[position] = (key, vector)
                self._by_text.setdefault(key, []).append(position)
                self._by_doc.setdefault(doc_id, []).append(position)
            while len(self._by_position) > self.max_chunks:
                self._forget(next(iter(self._by_position)))

    def _forget(self, position: Position) -> None:
        key, _ = self._by_position.pop(position)
        for index, name in ((self._by_text, key), (self._by_doc, position[0])):
            positions = index[name]
            positions.remove(position)
            if not positions:
                del index[name]

    def by_position(self, doc_id: str, start: int, end: int) -> np.ndarray | None:
        with self._lock:
            hit = self._by_position.get((doc_id, start, end))
        return None if hit is None else hit[1]

    def by_text(self, texts: Sequence[str]) -> list[np.ndarray | None]:
        """A cached vector per text (``None`` where there is none): a text occurring ``m``
        times gets the ``m`` most recently filed occurrences, in filing order."""
        keys = [text_key(text) for text in texts]
        wanted = Counter(keys)
        seen: Counter[str] = Counter()
        out: list[np.ndarray | None] = []
        with self._lock:
            for key in keys:
                positions = self._by_text.get(key)
                if not positions:
                    out.append(None)
                    continue
                first = max(len(positions) - wanted[key], 0)
                n = first + seen[key]
                seen[key] += 1
                out.append(self._by_position[positions[n % len(positions)]][1])
        return out

    def clear(self) -> None:
        with self._lock:
            self._by_position.clear()
            self._by_text.clear()
            self._by_doc.clear()
