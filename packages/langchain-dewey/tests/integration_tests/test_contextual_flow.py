"""The split-then-store flow stores dewey-core's late-chunked vectors, not per-chunk ones."""

from __future__ import annotations

import asyncio
import time
import warnings

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_text_splitters import CharacterTextSplitter, RecursiveCharacterTextSplitter

from langchain_dewey import DeweyEmbeddings, DeweyTextSplitter, HandoffWarning, global_key, read_global_record


def stored_vectors(store: InMemoryVectorStore, chunks: list[Document]) -> np.ndarray:
    return np.asarray([store.store[c.id]["vector"] for c in chunks], dtype=np.float32)


def spans_of(chunks: list[Document]) -> list[tuple[int, int]]:
    return [(c.metadata["start_index"], c.metadata["start_index"] + len(c.page_content)) for c in chunks]


def test_builtin_chunker_flow_stores_late_chunk_vectors(embeddings, corpus, ingested):
    chunks, store, docstore = ingested
    assert len(store.store) == len(chunks)
    picked = [d for d in corpus if d.metadata["source"] in ("class", "with")]
    for doc in picked:
        mine = [c for c in chunks if c.metadata["source"] == doc.metadata["source"]]
        assert len(mine) > 1
        assert [doc.page_content[s:e] for s, e in spans_of(mine)] == [c.page_content for c in mine]
        [reference] = embeddings.encoder.late_chunk([doc.page_content], spans=[spans_of(mine)])
        np.testing.assert_allclose(stored_vectors(store, mine), reference.chunk_embeddings, atol=1e-5)
        [record] = docstore.mget([global_key(mine[0].metadata["dewey_doc_id"])])
        np.testing.assert_allclose(read_global_record(record), reference.global_embedding, atol=1e-6)
        plain = embeddings.encoder.encode_documents([c.page_content for c in mine])
        cosines = np.sum(plain * stored_vectors(store, mine), axis=1)
        assert cosines.max() < 0.995, cosines  # every chunk vector carries its document's context


def test_any_langchain_splitter_with_overlap_gives_late_chunk_vectors(embeddings, corpus):
    base = RecursiveCharacterTextSplitter(chunk_size=400, chunk_overlap=80)
    splitter = DeweyTextSplitter(embeddings, base_splitter=base)
    docs = corpus[2:4]
    chunks = splitter.split_documents(docs)
    # The same chunks LangChain's own add_start_index would report.
    reference_split = RecursiveCharacterTextSplitter(chunk_size=400, chunk_overlap=80,
                                                     add_start_index=True).split_documents(docs)
    assert [(c.page_content, c.metadata["start_index"]) for c in chunks] == \
        [(c.page_content, c.metadata["start_index"]) for c in reference_split]
    store = InMemoryVectorStore.from_documents(chunks, embeddings)
    texts = [d.page_content for d in docs]
    per_doc = [[c for c in chunks if c.metadata["source"] == d.metadata["source"]] for d in docs]
    overlapping = [s2 < e1 for mine in per_doc
                   for (_, e1), (s2, _) in zip(spans_of(mine), spans_of(mine)[1:], strict=False)]
    assert any(overlapping)
    reference = embeddings.encoder.late_chunk(texts, spans=[spans_of(m) for m in per_doc],
                                              allow_overlap=True)
    for mine, ref in zip(per_doc, reference, strict=True):
        np.testing.assert_allclose(stored_vectors(store, mine), ref.chunk_embeddings, atol=1e-5)
        per_chunk = embeddings.encoder.encode_documents([c.page_content for c in mine])
        assert not np.allclose(per_chunk, ref.chunk_embeddings, atol=1e-3)


def test_same_chunk_text_in_two_documents_keeps_each_context(embeddings):
    shared = "The committee approved the proposal after a long debate."
    docs = [Document("Cats sleep most of the day and hunt at night.\n\n" + shared, metadata={"source": "a"}),
            Document("The central bank raised interest rates again.\n\n" + shared, metadata={"source": "b"})]
    splitter = DeweyTextSplitter(embeddings, base_splitter=CharacterTextSplitter(
        separator="\n\n", chunk_size=60, chunk_overlap=0))
    chunks = splitter.split_documents(docs)
    assert [c.page_content for c in chunks].count(shared) == 2
    store = InMemoryVectorStore.from_documents(chunks, embeddings)
    shared_chunks = [c for c in chunks if c.page_content == shared]
    vectors = stored_vectors(store, shared_chunks)
    assert float(vectors[0] @ vectors[1]) < 0.999
    for chunk, vector in zip(shared_chunks, vectors, strict=True):
        doc = docs[0] if chunk.metadata["source"] == "a" else docs[1]
        [ref] = embeddings.encoder.late_chunk([doc.page_content], spans=[spans_of([
            c for c in chunks if c.metadata["source"] == chunk.metadata["source"]])])
        np.testing.assert_allclose(vector, ref.chunk_embeddings[chunk.metadata["dewey_chunk"]], atol=1e-5)


def test_split_text_then_from_texts_also_gets_contextual_vectors(embeddings, corpus):
    text = corpus[5].page_content
    splitter = DeweyTextSplitter(embeddings, chunk_size=96)
    pieces = splitter.split_text(text)
    store = InMemoryVectorStore.from_texts(pieces, embeddings)
    vectors = np.asarray([r["vector"] for r in store.store.values()], dtype=np.float32)
    [ref] = embeddings.encoder.late_chunk([text], chunk_size=96)
    assert [c.text for c in ref.chunks] == pieces
    np.testing.assert_allclose(vectors, ref.chunk_embeddings, atol=1e-5)


def test_texts_outside_the_flow_are_embedded_on_their_own(minilm_path, corpus):
    emb = DeweyEmbeddings(model=minilm_path, device="cpu", contextual_cache_chunks=4)
    splitter = DeweyTextSplitter(emb, chunk_size=48)
    first = splitter.split_text(corpus[0].page_content[:400])
    second = splitter.split_text(corpus[1].page_content[:300])  # pushes out the oldest vectors
    forgotten = len(first) + len(second) - 4
    assert 0 < forgotten < len(first) <= 4, (len(first), len(second))
    queried = [*first, "never split"]
    got = np.asarray(emb.embed_documents(queried), dtype=np.float32)
    plain = emb.encoder.encode_documents(queried)
    np.testing.assert_allclose(got[:forgotten], plain[:forgotten], atol=1e-5)
    assert not np.allclose(got[forgotten:-1], plain[forgotten:-1], atol=1e-3)
    np.testing.assert_allclose(got[-1], plain[-1], atol=1e-5)


def test_a_call_larger_than_the_cache_is_refused(minilm_path, corpus):
    emb = DeweyEmbeddings(model=minilm_path, device="cpu", contextual_cache_chunks=2)
    splitter = DeweyTextSplitter(emb, base_splitter=RecursiveCharacterTextSplitter(chunk_size=200,
                                                                                   chunk_overlap=0))
    with pytest.raises(ValueError, match=r"makes \d+ chunks but the embeddings keep at most 2"):
        splitter.split_documents(corpus[:1])


def test_a_splitter_that_rewrites_text_is_refused(embeddings):
    class Upper(CharacterTextSplitter):
        def split_text(self, text):
            return [t.upper() for t in super().split_text(text)]

    splitter = DeweyTextSplitter(embeddings, base_splitter=Upper(separator=" ", chunk_size=10,
                                                                 chunk_overlap=0))
    with pytest.raises(ValueError, match=r"Upper returned chunk 0 of document 0 .* not a verbatim part"):
        splitter.split_documents([Document("lower case text here")])


@pytest.mark.parametrize("size", [{"dim": 128}, {"model_kwargs": {"truncate_dim": 128}}],
                         ids=["dim", "truncate_dim"])
def test_dim_truncation_flows_through(minilm_path, corpus, size):
    emb = DeweyEmbeddings(model=minilm_path, device="cpu", **size)
    split = DeweyTextSplitter(emb, chunk_size=64).split_for_storage(corpus[:1])
    chunks = split.chunks
    store = InMemoryVectorStore.from_documents(chunks, emb)
    vectors = stored_vectors(store, chunks)
    assert emb.output_dim == 128
    assert vectors.shape[1] == 128 and len(emb.embed_query("q")) == 128
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    [record] = [r for k, r in split.records if k == global_key(chunks[0].metadata["dewey_doc_id"])]
    assert read_global_record(record).shape == (128,)


async def test_async_embedding_does_not_block_the_event_loop(embeddings, pydoc_topics):
    texts = [t[:600] for t in pydoc_topics.values()][:16]
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    vectors = await embeddings.aembed_documents(texts)
    elapsed = time.perf_counter() - started
    task.cancel()
    assert len(vectors) == len(texts)
    assert elapsed > 0.05 and ticks >= 3, (elapsed, ticks)
    sync = embeddings.embed_documents(texts)
    np.testing.assert_allclose(vectors, sync, atol=1e-5)
    np.testing.assert_allclose(await embeddings.aembed_query("lambda"), embeddings.embed_query("lambda"),
                               atol=1e-6)


def test_documents_stored_one_at_a_time_keep_their_own_vector_for_a_shared_text(embeddings):
    footer = "Contact the support team for more help."
    docs = [Document("Saffron is the most expensive spice by weight.\n\n" + footer, id="spice"),
            Document("Rust is a language with a borrow checker.\n\n" + footer, id="rust"),
            Document("Rust now has a faster compiler and a new borrow checker.\n\n" + footer, id="rust")]
    splitter = DeweyTextSplitter(embeddings, base_splitter=CharacterTextSplitter(
        separator="\n\n", chunk_size=10, chunk_overlap=0))
    store = InMemoryVectorStore(embeddings)
    for doc in docs:  # the third is an edit of the second: same id, the footer moved
        chunks = splitter.split_documents([doc])
        store.add_documents(chunks)
        [ref] = embeddings.encoder.late_chunk([doc.page_content], spans=[spans_of(chunks)])
        np.testing.assert_allclose(stored_vectors(store, chunks), ref.chunk_embeddings, atol=1e-5)


def test_two_chunk_sizes_of_the_same_documents_each_keep_their_context(embeddings, corpus):
    small = DeweyTextSplitter(embeddings, chunk_size=32).split_documents(corpus[:2])
    large = DeweyTextSplitter(embeddings, chunk_size=96).split_documents(corpus[:2])
    for chunks in (small, large):  # stored after both splits, in either order
        with warnings.catch_warnings():
            warnings.simplefilter("error", HandoffWarning)
            store = InMemoryVectorStore.from_documents(chunks, embeddings)
        for doc in corpus[:2]:
            mine = [c for c in chunks if c.metadata["source"] == doc.metadata["source"]]
            [reference] = embeddings.encoder.late_chunk([doc.page_content], spans=[spans_of(mine)])
            np.testing.assert_allclose(stored_vectors(store, mine), reference.chunk_embeddings, atol=1e-5)


def test_an_edited_document_s_old_chunks_warn_when_stored(embeddings, corpus):
    old = DeweyTextSplitter(embeddings, chunk_size=64).split_documents(corpus[:1])
    edited = Document("Edited. " + corpus[0].page_content, id=old[0].metadata["dewey_doc_id"])
    DeweyTextSplitter(embeddings, chunk_size=64).split_documents([edited])
    with pytest.warns(HandoffWarning, match="have no contextual vector"):
        InMemoryVectorStore.from_documents(old, embeddings)


@pytest.mark.parametrize("prompt", [{"document_prompt": "passage: "},
                                    {"encode_kwargs": {"prompt": "passage: "}}],
                         ids=["document_prompt", "encode_kwargs"])
def test_a_document_prompt_late_chunking_cannot_use_is_named(minilm_path, corpus, prompt):
    emb = DeweyEmbeddings(model=minilm_path, device="cpu", **prompt)
    unused = "document prompt 'passage: ' is not used for late chunking"
    with pytest.warns(UserWarning, match=unused) as caught:
        DeweyTextSplitter(emb, chunk_size=64).split_documents(corpus[:1])
    assert [w.filename for w in caught] == [__file__]


def test_cache_size_zero_turns_the_flow_off(minilm_path, corpus):
    emb = DeweyEmbeddings(model=minilm_path, device="cpu", contextual_cache_chunks=0)
    chunks = DeweyTextSplitter(emb, chunk_size=48).split_documents(corpus[:1])
    assert len(chunks) > 1 and len(emb.contextual_cache) == 0
    store = InMemoryVectorStore.from_documents(chunks, emb)
    plain = emb.encoder.encode_documents([c.page_content for c in chunks])
    np.testing.assert_allclose(stored_vectors(store, chunks), plain, atol=1e-5)


def test_a_base_splitter_with_overlap_equal_to_its_size_is_accepted(embeddings):
    # LangChain allows chunk_overlap == chunk_size; those are its sizes, not dewey-core's.
    base = CharacterTextSplitter(separator="\n\n", chunk_size=20, chunk_overlap=20)
    text = "Saffron is a spice.\n\nIt is costly.\n\nIt grows in autumn."
    chunks = DeweyTextSplitter(embeddings, base_splitter=base).split_documents([Document(text)])
    assert [c.page_content for c in chunks] == base.split_text(text)


def test_two_threads_storing_at_once_do_not_steer_each_other(embeddings):
    """Two ingestion threads share one DeweyEmbeddings, each storing its split text by text;
    their calls interleave (A, B, A's footer, B's footer). The footer is in both documents:
    each thread's footer gets its own document's vector."""
    import threading

    footer = "Contact the support team for more help."
    splitter = DeweyTextSplitter(embeddings, base_splitter=CharacterTextSplitter(
        separator="\n\n", chunk_size=10, chunk_overlap=0))
    docs = [Document("Saffron is the most expensive spice by weight.\n\n" + footer, id="spice"),
            Document("Rust is a language with a borrow checker.\n\n" + footer, id="rust")]
    splits = [splitter.split_documents([d]) for d in docs]
    expected = {}
    for doc, chunks in zip(docs, splits, strict=True):
        [ref] = embeddings.encoder.late_chunk([doc.page_content], spans=[spans_of(chunks)])
        expected.update({c.id: v for c, v in zip(chunks, ref.chunk_embeddings, strict=True)})
    turns = [threading.Event() for _ in range(5)]
    turns[0].set()
    got, warned = {}, []

    def store(chunks, mine):  # one text per embed call, in turn
        for chunk, turn in zip(chunks, mine, strict=True):
            turns[turn].wait()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", HandoffWarning)
                got[chunk.id] = np.asarray(embeddings.embed_documents([chunk.page_content])[0])
            warned.extend(caught)
            turns[turn + 1].set()

    threads = [threading.Thread(target=store, args=(splits[0], [0, 2])),
               threading.Thread(target=store, args=(splits[1], [1, 3]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not warned
    for chunk_id, vector in expected.items():
        np.testing.assert_allclose(got[chunk_id], vector, atol=1e-6)
