"""How late-chunked vectors travel from :class:`~langchain_dewey.DeweyTextSplitter` to a
LangChain vector store, and how each document's global vector is kept.

A vector store hands its ``Embeddings`` nothing but chunk texts, so the splitter files every
contextual chunk vector, in order, in the bounded :class:`ContextualVectorCache` of the
:class:`~langchain_dewey.DeweyEmbeddings` it was given. ``embed_documents(texts)`` then hands
each text its vector by position, checked text by text:

1. The call continues the run of chunks the previous call ended in (a store embedding one
   split in several batches), or its texts match one run of consecutive filed chunks.
2. Otherwise each text on its own: a text filed once (or always with the same vector) is
   unambiguous; a text filed with different vectors (a footer repeated in two documents) gets
   the most recently filed one *and a warning*; a text never filed, or forgotten, is embedded
   without context (a warning names texts that were forgotten or that miss in a call whose
   other texts were filed).

:meth:`ContextualVectorCache.pinned` gives an exact handoff for one ``add_documents`` call
(used by :meth:`~langchain_dewey.DeweyRetriever.add_documents`).

A document's global vector is kept once, in a docstore, as a :func:`global_record` under
:func:`global_key` (never in chunk metadata).
"""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
from collections import Counter, OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.documents import Document

START_INDEX = "start_index"
"""Chunk metadata: character offset of the chunk in its document (LangChain's own key)."""
DOC_ID = "dewey_doc_id"
"""Chunk metadata: id of the chunk's document (its ``Document.id``, else a content hash)."""
CHUNK_INDEX = "dewey_chunk"
"""Chunk metadata: position of the chunk among its document's chunks."""
DOC_HASH = "dewey_doc_hash"
"""Chunk metadata: a digest of the chunk's whole document. A chunk's vector depends on all of
its document, so when the document is edited every chunk's metadata changes with it, and
LangChain's ``index()`` (which skips content it has seen) re-embeds the chunks whose own text
did not change."""
GLOBAL_KEY_PREFIX = "dewey-global/"
"""Docstore keys of the documents' global vectors: ``"dewey-global/<doc id>"``."""
CHUNK_IDS = "dewey_chunk_ids"
"""Global record metadata: the ids of the document's chunks when it was last split."""

_ID_NAMESPACE = uuid.UUID("6f1b3a52-7c1e-4f7e-9a55-2d0c86b9e4a1")


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_ids(texts: Sequence[str], metadatas: Sequence[Mapping[str, Any]],
                 explicit: Sequence[str | None] | None = None) -> list[str]:
    """A document id per text: its ``Document.id`` when given, else ``dewey-`` and a hash of
    ``source`` and text, so that splitting a document again gives the same ids (storing it
    again replaces its chunks). Identical documents without ids in one call get ``-2``,
    ``-3``, ... so that their chunks do not collide."""
    seen: Counter[str] = Counter()
    out = []
    for i, (text, meta) in enumerate(zip(texts, metadatas, strict=True)):
        given = None if explicit is None else explicit[i]
        if given:
            out.append(given)
            continue
        digest = hashlib.sha256(f"{meta.get('source', '')}\x00{text}".encode()).hexdigest()
        base = f"dewey-{digest[:32]}"
        seen[base] += 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out


def chunk_id(doc_id: str, position: int) -> str:
    """A chunk's id: a UUID (what Qdrant and others demand) derived from its document's id
    and its position, so the same document always gives the same chunk ids."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{doc_id}\x00{position}"))


def global_key(doc_id: str) -> str:
    return GLOBAL_KEY_PREFIX + doc_id


def global_record(doc_id: str, vector: np.ndarray, chunk_ids: Sequence[str]) -> Document:
    """The docstore record of a document's global vector (float32, base64 in the content)."""
    data = np.asarray(vector, dtype="<f4").tobytes()
    return Document(id=global_key(doc_id), page_content=base64.b64encode(data).decode("ascii"),
                    metadata={DOC_ID: doc_id, CHUNK_IDS: list(chunk_ids)})


def read_global_record(record: Document) -> np.ndarray:
    return np.frombuffer(base64.b64decode(record.page_content), dtype="<f4").astype(np.float32)


Position = tuple[str, int, int]


@dataclass
class _Entry:
    position: Position
    key: str
    vector: np.ndarray


@dataclass
class Lookup:
    """What :meth:`ContextualVectorCache.take` found for a call's texts."""

    vectors: list[np.ndarray | None]
    """The contextual vector per text; ``None`` where there is none."""
    ambiguous: list[int] = field(default_factory=list)
    """Texts filed with different vectors that could not be told apart by position."""
    forgotten: list[int] = field(default_factory=list)
    """Texts that were filed once but have been forgotten (the cache was full)."""


class HandoffError(RuntimeError):
    """A vector store asked for texts other than the chunks being added, in their order."""


class ContextualVectorCache:
    """Holds at most ``max_chunks`` contextual chunk vectors in filing order; the oldest are
    forgotten first.

    Memory is about ``max_chunks * dim * 4`` bytes (float32), e.g. 50,000 chunks of 2048-d
    dewey_en_beta vectors take about 410 MB, of 384-d MiniLM vectors about 77 MB.
    """

    def __init__(self, max_chunks: int) -> None:
        self.max_chunks = max_chunks
        self._lock = threading.Lock()
        self._next_seq = 0
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._by_position: dict[Position, int] = {}
        self._by_key: dict[str, list[int]] = {}
        self._by_doc: dict[str, list[int]] = {}
        self._doc_keys: dict[str, str | None] = {}  # doc id -> hash of the text it was split from
        self._forgotten: OrderedDict[str, None] = OrderedDict()
        # Per thread: where that thread's previous call's run ended. Two threads storing
        # splits at once must not steer each other's lookups.
        self._cursors = threading.local()
        self._pinned = threading.local()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, doc_id: str, chunks: Sequence[tuple[int, int, str, np.ndarray]],
            document_text: str | None = None) -> None:
        """File the chunks ``(start, end, text, vector)`` of one document, in order.

        When ``document_text`` is the text ``doc_id`` was filed with before, earlier chunks stay
        (another split of the same text, e.g. at another chunk size, is still valid); otherwise
        whatever was filed for ``doc_id`` is replaced (an edited document's old chunks are stale)
        and remembered as forgotten, so storing them later warns instead of silently embedding
        them without context."""
        with self._lock:
            document_key = None if document_text is None else text_key(document_text)
            if document_key is None or self._doc_keys.get(doc_id) != document_key:
                for seq in list(self._by_doc.get(doc_id, ())):
                    self._forgotten[self._entries[seq].key] = None
                    self._remove(seq)
            self._doc_keys[doc_id] = document_key
            for start, end, text, vector in chunks:
                position = (doc_id, start, end)
                if position in self._by_position:  # the same span twice (overlap allowed)
                    self._remove(self._by_position[position])
                seq, self._next_seq = self._next_seq, self._next_seq + 1
                entry = _Entry(position, text_key(text), np.asarray(vector, dtype=np.float32))
                self._entries[seq] = entry
                self._by_position[position] = seq
                self._by_key.setdefault(entry.key, []).append(seq)
                self._by_doc.setdefault(doc_id, []).append(seq)
                self._forgotten.pop(entry.key, None)
            while len(self._entries) > self.max_chunks:
                seq = next(iter(self._entries))
                self._forgotten[self._entries[seq].key] = None
                self._remove(seq)
            while len(self._forgotten) > max(self.max_chunks, 1):
                self._forgotten.popitem(last=False)

    def _remove(self, seq: int) -> None:
        entry = self._entries.pop(seq)
        del self._by_position[entry.position]
        for index, name in ((self._by_key, entry.key), (self._by_doc, entry.position[0])):
            seqs = index[name]
            seqs.remove(seq)
            if not seqs:
                del index[name]
                if index is self._by_doc:
                    self._doc_keys.pop(name, None)

    def by_position(self, doc_id: str, start: int, end: int) -> np.ndarray | None:
        with self._lock:
            seq = self._by_position.get((doc_id, start, end))
            return None if seq is None else self._entries[seq].vector

    # ------------------------------------------------------------------ the handoff
    def take(self, texts: Sequence[str]) -> Lookup:
        """The contextual vectors for a store's ``embed_documents(texts)`` call (see the
        module docstring for how positions are verified)."""
        keys = [text_key(t) for t in texts]
        with self._lock:
            pinned = self._take_pinned(keys)
            if pinned is not None:
                return pinned
            if not keys:
                return Lookup([])
            run = self._find_run(keys)
            if run is not None:
                return run
            return self._one_by_one(keys)

    def _run_at(self, start: int, keys: Sequence[str]) -> bool:
        for i, key in enumerate(keys):
            entry = self._entries.get(start + i)
            if entry is None or entry.key != key:
                return False
        return True

    def _find_run(self, keys: list[str]) -> Lookup | None:
        n = len(keys)
        cursor = getattr(self._cursors, "at", None)
        if cursor is not None and self._run_at(cursor, keys):
            starts = [cursor]
        else:
            starts = [s for s in self._by_key.get(keys[0], ()) if self._run_at(s, keys)]
        if not starts:
            return None
        chosen = starts[-1]  # the most recently filed run
        vectors = [self._entries[chosen + i].vector for i in range(n)]
        ambiguous = [i for i in range(n) if any(
            not np.array_equal(self._entries[s + i].vector, vectors[i]) for s in starts[:-1])]
        self._cursors.at = chosen + n
        return Lookup(list(vectors), ambiguous)

    def _one_by_one(self, keys: list[str]) -> Lookup:
        out = Lookup([])
        for i, key in enumerate(keys):
            seqs = self._by_key.get(key)
            if not seqs:
                out.vectors.append(None)
                if key in self._forgotten:
                    out.forgotten.append(i)
                continue
            vector = self._entries[seqs[-1]].vector
            if any(not np.array_equal(self._entries[s].vector, vector) for s in seqs[:-1]):
                out.ambiguous.append(i)
            out.vectors.append(vector)
        return out

    @contextmanager
    def pinned(self, texts: Sequence[str], vectors: Sequence[np.ndarray]) -> Iterator[None]:
        """Within the block, this thread's ``embed_documents`` calls must ask for exactly
        ``texts``, in order (in one call or several); they get ``vectors``. Anything else
        raises :class:`HandoffError`, and so does a block that leaves texts unasked."""
        if len(texts) != len(vectors):
            raise ValueError(f"{len(texts)} texts for {len(vectors)} vectors")
        self._pinned.queue = [(text_key(t), np.asarray(v, dtype=np.float32))
                              for t, v in zip(texts, vectors, strict=True)]
        self._pinned.next = 0
        try:
            yield
            left = len(self._pinned.queue) - self._pinned.next
            if left:
                raise HandoffError(f"the vector store embedded {self._pinned.next} of the "
                                   f"{len(self._pinned.queue)} chunks it was given; {left} were "
                                   "never embedded, so their contextual vectors were not stored")
        finally:
            self._pinned.queue = None

    def _take_pinned(self, keys: list[str]) -> Lookup | None:
        queue = getattr(self._pinned, "queue", None)
        if queue is None:
            return None
        start = self._pinned.next
        expected = queue[start:start + len(keys)]
        if len(expected) != len(keys) or any(k != e for k, (e, _) in zip(keys, expected, strict=False)):
            raise HandoffError(
                f"the vector store asked to embed {len(keys)} texts that are not chunks "
                f"{start}..{start + len(keys) - 1} of the chunks being added, in order; their "
                "contextual vectors cannot be matched to them")
        self._pinned.next = start + len(keys)
        return Lookup([v for _, v in expected])

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._by_position.clear()
            self._by_key.clear()
            self._by_doc.clear()
            self._doc_keys.clear()
            self._forgotten.clear()
            self._cursors = threading.local()
