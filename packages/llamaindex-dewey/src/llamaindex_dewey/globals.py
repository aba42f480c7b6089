"""Where each document's global vector is kept: once per document, in a LlamaIndex docstore.

The vectors go into a collection of their own inside the docstore's key-value store, next to
(not among) its nodes: ``docstore.docs``, ref-doc bookkeeping and retrievers built over the
docstore (BM25, auto-merging) never see them, and ``StorageContext.persist()`` (or a Redis,
Mongo, Postgres... docstore) keeps them for other processes. Every LlamaIndex docstore is a
``KVDocumentStore``; its key-value store and namespace are private attributes, read here only.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

import numpy as np
from llama_index.core.storage.docstore import BaseDocumentStore
from llama_index.core.storage.docstore.keyval_docstore import KVDocumentStore

_COLLECTION_SUFFIX = "/dewey_global_embeddings"


def _collection(docstore: BaseDocumentStore) -> tuple[object, str]:
    if not isinstance(docstore, KVDocumentStore):
        raise TypeError(f"the global vectors need a key-value docstore (SimpleDocumentStore, Redis, "
                        f"Mongo, ...), got {type(docstore).__name__}")
    return docstore._kvstore, f"{docstore._namespace}{_COLLECTION_SUFFIX}"


def put_global_vectors(docstore: BaseDocumentStore, vectors: Mapping[str, np.ndarray]) -> None:
    """Keep ``{ref_doc_id: global vector}`` (float32) in ``docstore``."""
    kvstore, collection = _collection(docstore)
    kvstore.put_all([(ref_doc_id, {"vector": base64.b64encode(np.asarray(v, dtype="<f4").tobytes()
                                                               ).decode("ascii")})
                     for ref_doc_id, v in vectors.items()], collection=collection)


def delete_global_vectors(docstore: BaseDocumentStore, ref_doc_ids: Sequence[str]) -> None:
    """Forget the global vectors of ``ref_doc_ids`` (those ``docstore`` holds)."""
    kvstore, collection = _collection(docstore)
    for ref_doc_id in dict.fromkeys(ref_doc_ids):
        kvstore.delete(ref_doc_id, collection=collection)


def get_global_vectors(docstore: BaseDocumentStore, ref_doc_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """The global vectors of those of ``ref_doc_ids`` that ``docstore`` holds."""
    kvstore, collection = _collection(docstore)
    out = {}
    for ref_doc_id in dict.fromkeys(ref_doc_ids):
        value = kvstore.get(ref_doc_id, collection=collection)
        if value is not None:
            out[ref_doc_id] = np.frombuffer(base64.b64decode(value["vector"]), dtype="<f4").astype(np.float32)
    return out
