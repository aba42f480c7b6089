"""DeweyRetriever and DeweyFusionRanker: serialisation with their stores, fused ranking, filters,
top_k, and fusion after another retriever."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import pytest
from haystack import Document
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.document_stores.types import FilterPolicy

from dewey_core import rank_chunks, rank_documents
from haystack_dewey import SOURCE_ID_FIELD, DeweyFusionRanker, DeweyLateChunker, DeweyRetriever

TOPICS = ["assert", "for", "lambda", "try", "with", "yield"]


@pytest.fixture(scope="module")
def chunked(minilm_path, pydoc_topics) -> dict[str, list[Document]]:
    chunker = DeweyLateChunker(model=minilm_path, device="cpu", chunk_size=96, progress_bar=False)
    docs = [Document(content=pydoc_topics[name][:4000], meta={"topic": name}) for name in TOPICS]
    return chunker.run(docs)


@pytest.fixture(scope="module")
def chunks(chunked) -> list[Document]:
    return chunked["documents"]


@pytest.fixture(scope="module")
def store(chunks) -> InMemoryDocumentStore:
    store = InMemoryDocumentStore(index=f"dewey-retriever-{uuid.uuid4()}")
    store.write_documents(chunks)
    return store


@pytest.fixture(scope="module")
def sources(chunked) -> InMemoryDocumentStore:
    store = InMemoryDocumentStore(index=f"dewey-sources-{uuid.uuid4()}")
    store.write_documents(chunked["sources"])
    return store


@pytest.fixture(scope="module")
def globals_of(chunked):
    by_source = {s.meta[SOURCE_ID_FIELD]: s.embedding for s in chunked["sources"]}
    return lambda docs: np.array([by_source[d.meta["source_id"]] for d in docs])


@pytest.fixture(scope="module")
def query(minilm) -> np.ndarray:
    return minilm.encode_queries(["How do I catch an exception and clean up afterwards?"])[0]


def test_init_defaults():
    store = InMemoryDocumentStore()
    retriever = DeweyRetriever(store)
    assert retriever.document_store is store
    assert (retriever.filters, retriever.top_k, retriever.candidates) == (None, 10, 100)
    assert retriever.fusion_weight == 0.25
    assert retriever.group_by_source is True and retriever.source_store is None
    assert retriever.return_embedding is False
    assert retriever.filter_policy is FilterPolicy.REPLACE


def test_init_with_parameters():
    retriever = DeweyRetriever(InMemoryDocumentStore(), filters={"field": "meta.topic", "operator": "==",
                                                                 "value": "try"},
                               top_k=3, candidates=20, fusion_weight=0.5, group_by_source=False,
                               source_store=InMemoryDocumentStore(), return_embedding=True,
                               filter_policy="merge")
    assert retriever.filters == {"field": "meta.topic", "operator": "==", "value": "try"}
    assert (retriever.top_k, retriever.candidates, retriever.fusion_weight) == (3, 20, 0.5)
    assert retriever.group_by_source is False and retriever.return_embedding is True
    assert isinstance(retriever.source_store, InMemoryDocumentStore)
    assert retriever.filter_policy is FilterPolicy.MERGE


@pytest.mark.parametrize("kwargs, message", [({"top_k": 0}, "top_k and candidates must be positive"),
                                             ({"candidates": 0}, "top_k and candidates must be positive"),
                                             ({"fusion_weight": 1.5}, r"fusion_weight must be a number in")])
def test_init_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeweyRetriever(InMemoryDocumentStore(), **kwargs)


def test_init_refuses_a_store_without_embedding_search():
    with pytest.raises(TypeError, match=r"embedding_retrieval\(\).*got dict.*DeweyFusionRanker"):
        DeweyRetriever({"documents": []})


def test_to_dict():
    store = InMemoryDocumentStore(index="dewey-to-dict")
    sources = InMemoryDocumentStore(index="dewey-to-dict-sources")
    assert DeweyRetriever(store, source_store=sources, top_k=5).to_dict() == {
        "type": "haystack_dewey.retriever.DeweyRetriever",
        "init_parameters": {
            "document_store": store.to_dict(),
            "source_store": sources.to_dict(),
            "filters": None,
            "top_k": 5,
            "candidates": 100,
            "fusion_weight": 0.25,
            "group_by_source": True,
            "return_embedding": False,
            "filter_policy": "replace",
        },
    }
    assert store.to_dict()["type"] == \
        "haystack.document_stores.in_memory.document_store.InMemoryDocumentStore"


def test_from_dict(store, sources):
    data = DeweyRetriever(store, source_store=sources, top_k=4, candidates=40, fusion_weight=0.1,
                          group_by_source=False,
                          filters={"field": "meta.topic", "operator": "==", "value": "try"},
                          filter_policy=FilterPolicy.MERGE).to_dict()
    retriever = DeweyRetriever.from_dict(data)
    assert isinstance(retriever.document_store, InMemoryDocumentStore)
    assert retriever.document_store.index == store.index
    assert retriever.document_store.count_documents() == store.count_documents()  # shared index
    assert retriever.source_store.count_documents() == sources.count_documents()
    assert (retriever.top_k, retriever.candidates, retriever.fusion_weight) == (4, 40, 0.1)
    assert retriever.group_by_source is False and retriever.filter_policy is FilterPolicy.MERGE
    assert retriever.to_dict() == data


def test_run_fuses_chunk_and_document_scores(store, sources, chunks, globals_of, query):
    retriever = DeweyRetriever(store, source_store=sources, top_k=4, candidates=1000)
    result = retriever.run(query_embedding=query.tolist())["documents"]
    # Same ranking as dewey_core's max-sim + fusion over every chunk.
    vectors = np.array([c.embedding for c in chunks])
    globals_ = globals_of(chunks)
    expected = rank_documents(query, vectors, [c.meta["source_id"] for c in chunks], globals_, top_k=4)
    assert [d.id for d in result] == [chunks[h.best_chunk].id for h in expected]
    assert [d.score for d in result] == pytest.approx([h.score for h in expected], abs=1e-5)
    assert result[0].meta["topic"] == "try"
    assert len({d.meta["source_id"] for d in result}) == 4  # one chunk per source
    # Embeddings are left out unless asked for; no vector in metadata.
    assert all(d.embedding is None and d.meta.keys() == chunks[0].meta.keys() for d in result)


def test_run_without_grouping_ranks_chunks(store, sources, chunks, globals_of, query):
    retriever = DeweyRetriever(store, source_store=sources, top_k=6, candidates=1000, group_by_source=False,
                               fusion_weight=0.4, return_embedding=True)
    result = retriever.run(query_embedding=query.tolist())["documents"]
    vectors = np.array([c.embedding for c in chunks])
    globals_ = globals_of(chunks)
    expected = rank_chunks(query, vectors, [c.meta["source_id"] for c in chunks], globals_, top_k=6,
                           fusion_weight=0.4)
    assert [d.id for d in result] == [chunks[h.index].id for h in expected]
    assert all(d.embedding is not None for d in result)


def test_global_score_changes_the_ranking(store, sources, query):
    chunk_only = DeweyRetriever(store, source_store=sources, top_k=20, candidates=1000, group_by_source=False,
                                fusion_weight=0.0)
    fused = DeweyRetriever(store, source_store=sources, top_k=20, candidates=1000, group_by_source=False,
                           fusion_weight=0.9)
    ids = [[d.id for d in r.run(query_embedding=query.tolist())["documents"]] for r in (chunk_only, fused)]
    assert ids[0] != ids[1]


def test_filters_and_top_k_pass_through(store, query):
    retriever = DeweyRetriever(store, top_k=5)
    only_yield = {"field": "meta.topic", "operator": "==", "value": "yield"}
    result = retriever.run(query_embedding=query.tolist(), filters=only_yield, top_k=2)["documents"]
    assert len(result) == 1 and result[0].meta["topic"] == "yield"  # grouped: one source matches
    chunks = DeweyRetriever(store, group_by_source=False, filters=only_yield).run(
        query_embedding=query.tolist(), top_k=2)["documents"]
    assert len(chunks) == 2 and {d.meta["topic"] for d in chunks} == {"yield"}


def test_merge_filter_policy(store, query):
    not_try = {"field": "meta.topic", "operator": "!=", "value": "try"}
    retriever = DeweyRetriever(store, filters=not_try, filter_policy="merge", top_k=10,
                               group_by_source=False)
    first_chunks = {"field": "meta.split_id", "operator": "==", "value": 0}
    result = retriever.run(query_embedding=query.tolist(), filters=first_chunks)["documents"]
    assert sorted(d.meta["topic"] for d in result) == sorted(set(TOPICS) - {"try"})
    assert all(d.meta["split_id"] == 0 for d in result)


def test_chunks_without_a_source_use_their_own_score(query, minilm):
    store = InMemoryDocumentStore(index=f"dewey-plain-{uuid.uuid4()}")
    texts = ["Exceptions are caught with try and except.", "A for loop iterates over a sequence."]
    store.write_documents([Document(content=t, embedding=v.tolist())
                           for t, v in zip(texts, minilm.encode_documents(texts), strict=True)])
    result = DeweyRetriever(store, source_store=InMemoryDocumentStore(), top_k=2).run(
        query_embedding=query.tolist())["documents"]
    assert result[0].content == texts[0]
    assert result[0].score == pytest.approx(float(np.dot(minilm.encode_documents(texts[:1])[0], query)),
                                            abs=1e-5)


def test_run_async(store, sources, query):
    retriever = DeweyRetriever(store, source_store=sources, top_k=3)
    sync = retriever.run(query_embedding=query.tolist())["documents"]
    result = asyncio.run(retriever.run_async(query_embedding=query.tolist()))["documents"]
    assert [d.id for d in result] == [d.id for d in sync]


def test_empty_store_returns_nothing(query):
    store = InMemoryDocumentStore(index=f"dewey-empty-{uuid.uuid4()}")
    assert DeweyRetriever(store).run(query_embedding=query.tolist()) == {"documents": []}


@pytest.mark.parametrize("wrong", ["How do I catch an exception?", 3.5, None])
def test_run_wrong_input_type(store, wrong):
    with pytest.raises(TypeError, match="DeweyRetriever expects query_embedding as a list of floats"):
        DeweyRetriever(store).run(query_embedding=wrong)


def test_grouping_fetches_more_candidates_until_it_has_top_k_sources(store, query):
    first_page = store.embedding_retrieval(query_embedding=query.tolist(), top_k=3)
    assert len({d.meta["source_id"] for d in first_page}) < 3  # so three sources need a wider search
    retriever = DeweyRetriever(store, source_store=InMemoryDocumentStore(), top_k=3, candidates=1)
    sync = retriever.run(query_embedding=query.tolist())["documents"]
    result = asyncio.run(retriever.run_async(query_embedding=query.tolist()))["documents"]
    assert len({d.meta["source_id"] for d in sync}) == 3
    assert [d.id for d in result] == [d.id for d in sync]


def test_no_source_store_means_no_fusion_and_says_so(store, query):
    with pytest.warns(UserWarning, match="no source_store: chunks are ranked by their own scores"):
        retriever = DeweyRetriever(store, top_k=2)
    chunk_only = DeweyRetriever(store, source_store=InMemoryDocumentStore(), top_k=2, fusion_weight=0.0)
    assert [d.id for d in retriever.run(query_embedding=query.tolist())["documents"]] == \
        [d.id for d in chunk_only.run(query_embedding=query.tolist())["documents"]]
    empty = DeweyRetriever(store, source_store=InMemoryDocumentStore(), top_k=2)
    with pytest.warns(UserWarning, match=r"none of the \d+ sources of the retrieved chunks is in the source"):
        empty.run(query_embedding=query.tolist())


# ---------------------------------------------------------------------------- fusion after any retriever
def test_fusion_after_the_store_s_own_retriever_equals_dewey_retriever(store, sources, query, model_calls):
    from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever

    expected = DeweyRetriever(store, source_store=sources, top_k=4, candidates=50).run(
        query_embedding=query.tolist())["documents"]
    candidates = InMemoryEmbeddingRetriever(store, top_k=50, return_embedding=True).run(
        query_embedding=query.tolist())["documents"]
    fused = DeweyFusionRanker(sources, top_k=4).run(query_embedding=query.tolist(), documents=candidates)
    assert [d.id for d in fused["documents"]] == [d.id for d in expected]
    assert [d.score for d in fused["documents"]] == pytest.approx([d.score for d in expected], abs=1e-6)
    # Without embeddings the retriever's cosine scores serve, if the ranker is told what they are.
    plain = InMemoryEmbeddingRetriever(store, top_k=50).run(query_embedding=query.tolist())["documents"]
    with pytest.raises(ValueError, match=r"came without an embedding.*return_embedding=True.*score_type="):
        DeweyFusionRanker(sources).run(query_embedding=query.tolist(), documents=plain)
    by_score = DeweyFusionRanker(sources, top_k=4, score_type="similarity").run(
        query_embedding=query.tolist(), documents=plain)["documents"]
    assert [d.id for d in by_score] == [d.id for d in expected]
    assert sum(model_calls.values()) == 0  # nothing is embedded again


def test_fusion_ranker_serialises_with_its_source_store(sources):
    ranker = DeweyFusionRanker(sources, top_k=3, fusion_weight=0.4, group_by_source=False,
                               score_type="squared_l2")
    data = ranker.to_dict()
    assert data == {"type": "haystack_dewey.fusion.DeweyFusionRanker",
                    "init_parameters": {"source_store": sources.to_dict(), "top_k": 3, "fusion_weight": 0.4,
                                        "group_by_source": False, "score_type": "squared_l2"}}
    again = DeweyFusionRanker.from_dict(data)
    assert again.source_store.count_documents() == sources.count_documents()
    assert again.to_dict() == data
    with pytest.raises(ValueError, match="score_type must be one of similarity"):
        DeweyFusionRanker(sources, score_type="manhattan")
    with pytest.raises(TypeError, match="source_store must be a document store, got list"):
        DeweyFusionRanker([])


@pytest.mark.parametrize("top_k", ["3", 2.5, True])
def test_top_k_must_be_an_int(store, query, top_k):
    with pytest.raises(TypeError, match="top_k must be an int"):
        DeweyRetriever(store, top_k=top_k)
    with pytest.raises(TypeError, match="top_k must be an int"):
        DeweyRetriever(store).run(query_embedding=query.tolist(), top_k=top_k)


def test_an_edited_source_gives_new_chunk_ids_and_a_stale_source_is_not_fused(minilm_path, query):
    """Re-indexing an edited document whose id the user chose (a file path): with
    DuplicatePolicy.SKIP no chunk keeps a vector embedded in the old text, and the fusion
    does not read the old source's global vector for the new chunks."""
    from haystack.components.writers import DocumentWriter
    from haystack.document_stores.types import DuplicatePolicy

    chunker = DeweyLateChunker(model=minilm_path, device="cpu", chunk_size=12, progress_bar=False)
    tail = "\n\nThe finally clause runs on the way out, whether or not an exception was raised."
    old = chunker.run([Document(id="notes.txt", content="Exceptions are caught with try." + tail)])
    new = chunker.run([Document(id="notes.txt", content="Errors are handled by except clauses." + tail)])
    assert old["documents"][-1].content == new["documents"][-1].content  # the same text ...
    assert not {d.id for d in old["documents"]} & {d.id for d in new["documents"]}  # ... a new id
    chunks, sources = (InMemoryDocumentStore(index=f"dewey-edit-{uuid.uuid4()}") for _ in range(2))
    for version in (old, new):
        DocumentWriter(chunks, policy=DuplicatePolicy.SKIP).run(version["documents"])
        DocumentWriter(sources, policy=DuplicatePolicy.SKIP).run(version["sources"])
    stored = {d.id: d.embedding for d in chunks.filter_documents()}
    for doc in new["documents"]:
        np.testing.assert_allclose(stored[doc.id], doc.embedding, atol=1e-6)

    ranker = DeweyFusionRanker(sources, top_k=5, fusion_weight=0.5)
    with pytest.warns(UserWarning, match="embedded from another version of their text"):
        stale = ranker.run(query_embedding=query.tolist(), documents=new["documents"])["documents"]
    assert stale[0].score == pytest.approx(float(np.dot(stale[0].embedding, query)), abs=1e-5)
    DocumentWriter(sources, policy=DuplicatePolicy.OVERWRITE).run(new["sources"])
    fused = ranker.run(query_embedding=query.tolist(), documents=new["documents"])["documents"]
    source = np.asarray(new["sources"][0].embedding)
    expected = 0.5 * np.dot(fused[0].embedding, query) + 0.5 * np.dot(source, query)
    assert fused[0].score == pytest.approx(float(expected), abs=1e-5)


def test_a_source_of_another_size_is_named(chunks, query):
    sources = InMemoryDocumentStore(index=f"dewey-small-{uuid.uuid4()}")
    source_id = chunks[0].meta["source_id"]
    sources.write_documents([Document(content="x", embedding=[0.1] * 8, meta={SOURCE_ID_FIELD: source_id})])
    with pytest.raises(ValueError, match=r"dimension mismatch: the query has 384 dimensions, source "
                                         r"document .*'s embedding 8"):
        DeweyFusionRanker(sources, top_k=2).run(query_embedding=query.tolist(), documents=chunks[:2])
