"""DeweyRetriever: dewey-core ranking over the chunks of a vector store, chunk and document modes."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.stores import InMemoryStore
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore

from dewey_core import rank_chunks
from langchain_dewey import DOC_ID, DeweyRetriever, UnsupportedStoreError, global_key, read_global_record

# Questions a reader of the Python reference might ask, and the topics that answer them.
QUESTIONS = {
    "How do I define an anonymous function?": {"lambda"},
    "How can I exit a loop early?": {"break"},
    "How do I make a generator function?": {"yield"},
    "What does the with statement call on entry and exit?": {"with", "context-managers"},
    "How do I remove a key from a mapping?": {"del", "dict"},
    "How do I declare that a name refers to a module-level variable?": {"global"},
    "How do I check a condition while debugging and fail if it is false?": {"assert"},
    "How do I signal an error?": {"raise", "exceptions"},
}


class OpaqueStore(VectorStore):
    """A vector store this package does not know, whose hits carry neither ids nor vectors and
    whose scores are squared L2 distances."""

    def __init__(self, inner: InMemoryVectorStore) -> None:
        self.inner = inner

    @property
    def embeddings(self):
        return self.inner.embeddings

    def add_texts(self, texts, metadatas=None, **kwargs):
        return self.inner.add_texts(texts, metadatas, **kwargs)

    def similarity_search(self, query, k=4, **kwargs):
        vector = self.embeddings.embed_query(query)
        return [d for d, _ in self.similarity_search_with_score_by_vector(vector, k)]

    def similarity_search_with_score_by_vector(self, embedding, k=4, **kwargs):
        hits = self.inner.similarity_search_with_score_by_vector(embedding, k)
        return [(Document(page_content=d.page_content, metadata=dict(d.metadata)), 2 - 2 * s)
                for d, s in hits]

    @classmethod
    def from_texts(cls, texts, embedding, metadatas=None, **kwargs):
        raise NotImplementedError


def test_end_to_end_documents_answer_the_questions(ingested, corpus):
    chunks, store, docstore = ingested
    chunk_ids = {(c.metadata[DOC_ID], c.metadata["start_index"]): c.id for c in chunks}
    retriever = DeweyRetriever(vectorstore=store, docstore=docstore, mode="documents", k=3)
    texts = {d.metadata["source"]: d.page_content for d in corpus}
    for question, answers in QUESTIONS.items():
        hits = retriever.invoke(question)
        assert len({h.metadata["source"] for h in hits}) == 3
        assert hits[0].metadata["source"] in answers, (question, [h.metadata["source"] for h in hits])
        scores = [h.metadata["dewey_score"] for h in hits]
        assert scores == sorted(scores, reverse=True)
        for hit in hits:
            assert hit.page_content == texts[hit.metadata["source"]]
            start, best = hit.metadata["dewey_best_chunk_start"], hit.metadata["dewey_best_chunk"]
            assert hit.page_content[start:start + len(best)] == best
            assert hit.metadata["dewey_best_chunk_id"] == chunk_ids[(hit.metadata[DOC_ID], start)]


def test_chunks_mode_equals_dewey_core_ranking_over_the_whole_store(embeddings, ingested):
    chunks, store, docstore = ingested
    retriever = DeweyRetriever(vectorstore=store, docstore=docstore, k=5, fetch_k=len(chunks))
    question = "How can I exit a loop early?"
    hits = retriever.invoke(question)
    query = np.asarray(embeddings.embed_query(question), dtype=np.float32)
    vectors = np.asarray([store.store[c.id]["vector"] for c in chunks], dtype=np.float32)
    globals_ = np.asarray([read_global_record(r) for r in docstore.mget(
        [global_key(c.metadata[DOC_ID]) for c in chunks])], dtype=np.float32)
    expected = rank_chunks(query, vectors, [c.metadata[DOC_ID] for c in chunks], globals_, top_k=5)
    assert [h.id for h in hits] == [chunks[e.index].id for e in expected]
    for hit, exp in zip(hits, expected, strict=True):
        assert hit.metadata["dewey_score"] == pytest.approx(exp.score, abs=1e-5)
        assert hit.metadata["dewey_chunk_score"] == pytest.approx(exp.chunk_score, abs=1e-5)
        assert hit.metadata["dewey_global_score"] == pytest.approx(exp.global_score, abs=1e-5)
        assert not any(isinstance(v, list) for v in hit.metadata.values())  # no vector in results
    # A call-time k overrides the constructor's.
    assert [h.id for h in retriever.invoke(question, k=2)] == [h.id for h in hits[:2]]


def test_fusion_weight_changes_the_scores(ingested):
    _, store, docstore = ingested
    question = "Which statement does nothing?"
    plain = DeweyRetriever(vectorstore=store, docstore=docstore, k=3, fusion_weight=0.0).invoke(question)
    for hit in plain:
        assert hit.metadata["dewey_score"] == pytest.approx(hit.metadata["dewey_chunk_score"], abs=1e-6)
    fused = DeweyRetriever(vectorstore=store, docstore=docstore, k=3, fusion_weight=0.5).invoke(question)
    for hit in fused:
        m = hit.metadata
        assert m["dewey_score"] == pytest.approx(0.5 * m["dewey_chunk_score"] + 0.5 * m["dewey_global_score"],
                                                 abs=1e-5)


def test_an_unknown_store_is_refused_unless_its_scores_are_named(ingested, embeddings, model_calls):
    _, store, docstore = ingested
    question = "How do I make a generator function?"
    with pytest.raises(UnsupportedStoreError, match=r"cannot turn the scores of .*OpaqueStore into cosine"
                                                    r".*score_kind="):
        DeweyRetriever(vectorstore=OpaqueStore(store), docstore=docstore)
    direct = DeweyRetriever(vectorstore=store, docstore=docstore, k=4).invoke(question)
    model_calls.clear()
    opaque = DeweyRetriever(vectorstore=OpaqueStore(store), docstore=docstore, k=4,
                            score_kind="squared_l2").invoke(question)
    assert model_calls == {"encode_queries": 1}  # no chunk text is embedded again
    assert [h.page_content for h in opaque] == [h.page_content for h in direct]
    for a, b in zip(opaque, direct, strict=True):
        assert a.metadata["dewey_score"] == pytest.approx(b.metadata["dewey_score"], abs=1e-5)
    docs = DeweyRetriever(vectorstore=OpaqueStore(store), docstore=docstore, mode="documents",
                          score_kind="squared_l2", k=2).invoke(question)
    assert docs[0].metadata["source"] == "yield"


def test_chunks_from_outside_the_flow_are_their_own_documents(embeddings):
    store = InMemoryVectorStore(embeddings)
    store.add_texts(["Saffron is a costly spice.", "Rust has a borrow checker.", "Tea is a drink."])
    hits = DeweyRetriever(vectorstore=store, docstore=InMemoryStore(), k=3).invoke("expensive spice")
    assert hits[0].page_content == "Saffron is a costly spice."
    for hit in hits:  # no global vector known: the chunk scores alone
        assert hit.metadata["dewey_score"] == pytest.approx(hit.metadata["dewey_chunk_score"], abs=1e-6)


def test_documents_mode_reports_a_parent_missing_from_the_docstore(ingested):
    _, store, _ = ingested
    retriever = DeweyRetriever(vectorstore=store, docstore=InMemoryStore(), mode="documents")
    with pytest.raises(KeyError, match="is not in the docstore"):
        retriever.invoke("lambda")


def test_wrong_call_arguments(ingested):
    _, store, docstore = ingested
    retriever = DeweyRetriever(vectorstore=store, docstore=docstore)
    with pytest.raises(TypeError, match="k must be a positive int, got 0"):
        retriever.invoke("lambda", k=0)
    with pytest.raises(TypeError, match="k must be a positive int, got '3'"):
        retriever.invoke("lambda", k="3")


async def test_ainvoke_takes_k_like_invoke(ingested):
    _, store, docstore = ingested
    retriever = DeweyRetriever(vectorstore=store, docstore=docstore, k=1)
    hits = await retriever.ainvoke("How do I leave a loop early?", k=3)
    assert [h.id for h in hits] == [h.id for h in retriever.invoke("How do I leave a loop early?", k=3)]
    assert len(hits) == 3


def test_a_query_of_another_size_is_named(ingested, minilm_path):
    from langchain_dewey import DeweyEmbeddings

    _, store, docstore = ingested
    small = DeweyEmbeddings(model=minilm_path, device="cpu", dim=64)
    retriever = DeweyRetriever(vectorstore=store, docstore=docstore, embeddings=small)
    with pytest.raises(ValueError, match="dimension mismatch: the query vector has 64 dimensions, "
                                         "the stored chunks 384"):
        retriever.invoke("lambda")


def test_chunks_without_a_document_vector_report_no_global_score(embeddings):
    store = InMemoryVectorStore(embeddings)
    store.add_texts(["Saffron is a spice.", "Rust is a language."])
    [hit] = DeweyRetriever(vectorstore=store, docstore=InMemoryStore(), k=1).invoke("spice")
    assert hit.metadata["dewey_global_score"] is None
    assert hit.metadata["dewey_score"] == pytest.approx(hit.metadata["dewey_chunk_score"])


def test_no_docstore_means_no_fusion_and_says_so(ingested):
    _, store, _ = ingested
    with pytest.warns(UserWarning, match="has no docstore.*fusion_weight has no effect") as caught:
        retriever = DeweyRetriever(vectorstore=store, k=2)
    # Once, and at this line (not inside pydantic), so warning filters by module work.
    assert [w.filename for w in caught if "docstore" in str(w.message)] == [__file__]
    for hit in retriever.invoke("lambda"):
        assert hit.metadata["dewey_global_score"] is None


def test_a_docstore_without_the_documents_vectors_is_named(ingested):
    _, store, _ = ingested
    with pytest.warns(UserWarning, match="none of the .* documents of the candidate chunks has a global"):
        DeweyRetriever(vectorstore=store, docstore=InMemoryStore(), k=2).invoke("lambda")
