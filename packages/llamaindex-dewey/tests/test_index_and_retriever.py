"""Late-chunked nodes in a VectorStoreIndex (no second embedding pass) and DeweyRetriever."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.schema import QueryBundle, TextNode
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.core.vector_stores.types import BasePydanticVectorStore, VectorStoreQueryResult

from dewey_core import rank_chunks
from llamaindex_dewey import DeweyEmbedding, DeweyRetriever, get_global_vectors


@pytest.fixture(scope="module")
def embed(minilm_path) -> DeweyEmbedding:
    return DeweyEmbedding(model_name=minilm_path, device="cpu")


@pytest.fixture(scope="module")
def query_bundles(embed, questions) -> dict[str, QueryBundle]:
    """Each question with its embedding, computed once (retrievers use a bundle's embedding)."""
    return {q: QueryBundle(q, embedding=embed.get_query_embedding(q)) for q in questions}


@pytest.fixture(scope="module")
def index(pipeline_nodes, pipeline_parser, embed) -> VectorStoreIndex:
    storage = StorageContext.from_defaults(docstore=pipeline_parser.docstore)
    return VectorStoreIndex(pipeline_nodes, storage_context=storage, embed_model=embed)


@pytest.fixture(scope="module")
def docstore(pipeline_parser):
    return pipeline_parser.docstore


def test_index_makes_no_embedding_call_for_parsed_nodes(pipeline_nodes, embed, model_calls):
    index = VectorStoreIndex(pipeline_nodes, embed_model=embed)
    assert sum(model_calls.values()) == 0
    stored = index.vector_store.to_dict()["embedding_dict"]
    assert len(stored) == len(pipeline_nodes)
    for node in pipeline_nodes:
        assert stored[node.node_id] == node.embedding


def test_index_queries_return_the_expected_passages(index, questions, model_calls):
    retriever = index.as_retriever(similarity_top_k=2)
    for question, topic in questions.items():
        hits = retriever.retrieve(question)
        assert hits[0].node.ref_doc_id == f"pydoc-{topic}", question
        assert hits[0].node.metadata["topic"] == topic
    assert model_calls == {"encode_queries": len(questions)}


def test_retriever_over_nodes_equals_rank_chunks(pipeline_nodes, embed, docstore, questions, query_bundles):
    retriever = DeweyRetriever(embed, nodes=pipeline_nodes, docstore=docstore, similarity_top_k=4)
    vectors = np.asarray([n.embedding for n in pipeline_nodes], dtype=np.float32)
    stored = get_global_vectors(docstore, [n.ref_doc_id for n in pipeline_nodes])
    globals_ = np.asarray([stored[n.ref_doc_id] for n in pipeline_nodes], dtype=np.float32)
    doc_ids = [n.ref_doc_id for n in pipeline_nodes]
    for question, topic in questions.items():
        bundle = query_bundles[question]
        hits = retriever.retrieve(bundle)
        expected = rank_chunks(np.asarray(bundle.embedding), vectors, doc_ids, globals_, top_k=4)
        assert [h.node.node_id for h in hits] == [pipeline_nodes[e.index].node_id for e in expected]
        assert np.allclose([h.score for h in hits], [e.score for e in expected], atol=1e-5)
        assert hits[0].node.ref_doc_id == f"pydoc-{topic}", question


def test_retriever_over_index_fuses_candidate_scores(index, pipeline_nodes, embed, docstore, questions,
                                                      query_bundles, model_calls):
    exact = DeweyRetriever(embed, nodes=pipeline_nodes, docstore=docstore, similarity_top_k=3)
    # With every node as a candidate, re-scoring the index's hits is the exact ranking.
    via_index = DeweyRetriever(index=index, similarity_top_k=3, candidate_top_k=len(pipeline_nodes))
    assert via_index.embed_model is embed
    for question, topic in questions.items():
        a, b = exact.retrieve(query_bundles[question]), via_index.retrieve(query_bundles[question])
        assert [h.node.node_id for h in a] == [h.node.node_id for h in b]
        assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
        assert b[0].node.ref_doc_id == f"pydoc-{topic}"
    assert sum(model_calls.values()) == 0  # the bundles' embeddings were used
    few = DeweyRetriever(index=index, similarity_top_k=2)
    assert few.candidate_top_k == 8 and len(few.retrieve("loops")) == 2


def test_fusion_weight_zero_is_plain_chunk_ranking(index, pipeline_nodes, embed):
    plain = index.as_retriever(similarity_top_k=5).retrieve("How do I exit a loop early?")
    chunk_only = DeweyRetriever(embed, nodes=pipeline_nodes, similarity_top_k=5, fusion_weight=0.0)
    hits = chunk_only.retrieve("How do I exit a loop early?")
    assert [h.node.node_id for h in hits] == [h.node.node_id for h in plain]
    assert np.allclose([h.score for h in hits], [h.score for h in plain], atol=1e-5)


def test_async_retrieval_matches_sync(index, pipeline_nodes, embed, docstore):
    for retriever in (DeweyRetriever(embed, nodes=pipeline_nodes, docstore=docstore, similarity_top_k=3),
                      DeweyRetriever(index=index, similarity_top_k=3)):
        sync = retriever.retrieve("What is an anonymous function?")
        result = asyncio.run(retriever.aretrieve("What is an anonymous function?"))
        assert [h.node.node_id for h in result] == [h.node.node_id for h in sync]


def test_nodes_without_global_embedding_rank_by_chunk_score(embed):
    texts = ["Saffron is the most expensive spice.", "Rust is a systems language."]
    vectors = embed.get_text_embedding_batch(texts)
    nodes = [TextNode(text=t, id_=f"n{i}", embedding=v)
             for i, (t, v) in enumerate(zip(texts, vectors, strict=True))]
    hits = DeweyRetriever(embed, nodes=nodes, docstore=SimpleDocumentStore(),
                          similarity_top_k=2).retrieve("expensive spice")
    query = np.asarray(embed.get_query_embedding("expensive spice"))
    assert hits[0].node.node_id == "n0"
    assert np.isclose(hits[0].score, float(query @ np.asarray(vectors[0])), atol=1e-5)


def test_bad_arguments_are_refused(pipeline_nodes, embed, index):
    with pytest.raises(ValueError, match="exactly one of nodes"):
        DeweyRetriever(embed)
    with pytest.raises(ValueError, match="exactly one of nodes"):
        DeweyRetriever(embed, nodes=pipeline_nodes, index=index)
    with pytest.raises(ValueError, match="embed_model is needed"):
        DeweyRetriever(nodes=pipeline_nodes)
    with pytest.raises(TypeError, match="index must be a VectorStoreIndex"):
        DeweyRetriever(embed, index=pipeline_nodes)
    with pytest.raises(ValueError, match="similarity_top_k must be a positive int"):
        DeweyRetriever(embed, nodes=pipeline_nodes, similarity_top_k=0)
    with pytest.raises(ValueError, match=r"fusion weight must be in \[0, 1\]"):
        DeweyRetriever(embed, nodes=pipeline_nodes, fusion_weight=1.5)
    with pytest.raises(ValueError, match=r"node 'bare' \(nodes\[0\]\) has no embedding"):
        DeweyRetriever(embed, nodes=[TextNode(text="x", id_="bare")])
    with pytest.raises(TypeError, match=r"nodes\[0\] must be a LlamaIndex node, got str"):
        DeweyRetriever(embed, nodes=["text"])
    with pytest.raises(TypeError, match=r"fusion weight must be a number in \[0, 1\], got str"):
        DeweyRetriever(embed, nodes=pipeline_nodes, fusion_weight="0.5")
    with pytest.raises(TypeError, match="embed_model must be a LlamaIndex BaseEmbedding"):
        DeweyRetriever("local", nodes=pipeline_nodes)


def test_no_nodes_retrieve_nothing(embed):
    assert DeweyRetriever(embed, nodes=[]).retrieve("anything") == []


def test_a_query_of_another_size_is_named(pipeline_nodes, index, minilm_path):
    small = DeweyEmbedding(model_name=minilm_path, device="cpu", dim=64)
    with pytest.raises(ValueError, match="dimension mismatch"):
        DeweyRetriever(small, nodes=pipeline_nodes).retrieve("lambda")
    with pytest.raises(ValueError, match="dimension mismatch"):
        DeweyRetriever(small, index=index).retrieve("lambda")


def test_filters_doc_ids_and_store_options_pass_through(index, pipeline_nodes, monkeypatch):
    from llama_index.core.vector_stores import MetadataFilter, MetadataFilters

    only_while = MetadataFilters(filters=[MetadataFilter(key="topic", value="while")])
    hits = DeweyRetriever(index=index, filters=only_while, similarity_top_k=3).retrieve("exit a loop")
    assert hits and {h.node.metadata["topic"] for h in hits} == {"while"}
    some = [n.node_id for n in pipeline_nodes[:5]]
    hits = DeweyRetriever(index=index, node_ids=some, similarity_top_k=8).retrieve("loop")
    assert sorted(h.node.node_id for h in hits) == sorted(some)
    asked = []
    store_class = type(index.vector_store)
    query = store_class.query

    def spy(self, q, **kwargs):
        asked.append((q.doc_ids, kwargs))
        return query(self, q, **kwargs)

    monkeypatch.setattr(store_class, "query", spy)
    DeweyRetriever(index=index, doc_ids=["pydoc-del"], vector_store_kwargs={"hint": 1}).retrieve("loop")
    assert asked == [(["pydoc-del"], {"hint": 1})]


def test_no_docstore_means_no_fusion_and_says_so(pipeline_nodes, embed):
    with pytest.warns(UserWarning, match="has no docstore.*fusion_weight has no effect"):
        DeweyRetriever(embed, nodes=pipeline_nodes)
    with pytest.warns(UserWarning, match="none of the candidate nodes' documents has a global embedding"):
        DeweyRetriever(embed, nodes=pipeline_nodes, docstore=SimpleDocumentStore()).retrieve("loops")


class Elsewhere(BasePydanticVectorStore):
    """A vector store this package does not know."""

    stores_text: bool = True

    @property
    def client(self):
        return None

    def add(self, nodes, **kwargs):
        return [n.node_id for n in nodes]

    def delete(self, ref_doc_id, **kwargs):
        pass

    def query(self, query, **kwargs):
        return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])


def test_an_unknown_store_is_refused_unless_its_scores_are_named(embed):
    from llamaindex_dewey import UnsupportedStoreError

    other = VectorStoreIndex.from_vector_store(Elsewhere(), embed_model=embed)
    with pytest.raises(UnsupportedStoreError, match=r"similarities of .*Elsewhere into cosine"):
        DeweyRetriever(index=other)
    assert DeweyRetriever(index=other, score_kind="similarity").retrieve("anything") == []


def test_custom_embedding_strs_are_what_is_embedded(index, pipeline_nodes, embed, docstore):
    """Query transforms (HyDE) put the text to embed in ``custom_embedding_strs``; the query
    string is then only for the LLM. Several strings are averaged (and normalised)."""
    text = "The assert statement is a convenient way to insert debugging assertions into a program"
    bundle = QueryBundle("?", custom_embedding_strs=[text])
    for retriever in (DeweyRetriever(embed, nodes=pipeline_nodes, docstore=docstore, similarity_top_k=3),
                      DeweyRetriever(index=index, similarity_top_k=3)):
        want = retriever.retrieve(text)
        for got in (retriever.retrieve(bundle), asyncio.run(retriever.aretrieve(bundle))):
            assert [h.node.node_id for h in got] == [h.node.node_id for h in want]
            assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-5)
        assert want[0].node.ref_doc_id == "pydoc-assert"
    two = ["How do I exit a loop early?", "What does the break statement do?"]
    mean = np.mean([embed.get_query_embedding(t) for t in two], axis=0)
    exact = DeweyRetriever(embed, nodes=pipeline_nodes, docstore=docstore, similarity_top_k=3)
    want = exact.retrieve(QueryBundle("?", embedding=(mean / np.linalg.norm(mean)).tolist()))
    got = exact.retrieve(QueryBundle("?", custom_embedding_strs=two))
    assert [h.node.node_id for h in got] == [h.node.node_id for h in want]
    assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-5)
