"""The split-then-store handoff and DeweyRetriever on real stores (in-process; across a restart
see tests/test_store_roundtrips.py at the repository root)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.stores import InMemoryStore
from langchain_text_splitters import CharacterTextSplitter

from langchain_dewey import DOC_ID, DeweyEmbeddings, DeweyRetriever, DeweyTextSplitter

pytestmark = pytest.mark.stores

FOOTER = "Contact the support team for more help."
DOCS = [Document("Saffron is the most expensive spice by weight.\n\n" + FOOTER, id="spice",
                 metadata={"source": "spice"}),
        Document("Rust is a language with a borrow checker.\n\n" + FOOTER, id="rust",
                 metadata={"source": "rust"}),
        Document("Tea is a drink made from leaves.\n\n" + FOOTER, id="tea", metadata={"source": "tea"})]


def _cosine_384():
    from qdrant_client import models

    return models.VectorParams(size=384, distance=models.Distance.COSINE)


COSINE_384 = _cosine_384()


@pytest.fixture
def emb(minilm_path) -> DeweyEmbeddings:
    return DeweyEmbeddings(model=minilm_path, device="cpu")


def paragraphs(emb: DeweyEmbeddings, docstore=None) -> DeweyTextSplitter:
    return DeweyTextSplitter(emb, docstore=docstore, base_splitter=CharacterTextSplitter(
        separator="\n\n", chunk_size=10, chunk_overlap=0))


def reference(emb: DeweyEmbeddings, chunks: list[Document], docs: list[Document]) -> dict[str, np.ndarray]:
    """Each chunk's late-chunked vector straight from dewey-core, by chunk id."""
    out = {}
    for doc in docs:
        mine = [c for c in chunks if c.metadata["source"] == doc.metadata["source"]]
        spans = [(c.metadata["start_index"], c.metadata["start_index"] + len(c.page_content)) for c in mine]
        [ref] = emb.encoder.late_chunk([doc.page_content], spans=[spans])
        out.update({c.id: v for c, v in zip(mine, ref.chunk_embeddings, strict=True)})
    return out


def qdrant_vectors(store, ids: list[str]) -> dict[str, np.ndarray]:
    points = store.client.retrieve(store.collection_name, ids=ids, with_vectors=True)
    return {str(p.id): np.asarray(p.vector, dtype=np.float32) for p in points}


def test_a_repeated_text_keeps_each_document_s_vector_when_qdrant_embeds_in_batches(emb):
    from langchain_qdrant import QdrantVectorStore

    chunks = paragraphs(emb).split_documents(DOCS)
    assert [c.page_content for c in chunks].count(FOOTER) == 3
    assert all(str(uuid.UUID(c.id)) == c.id for c in chunks)  # Qdrant accepts only UUIDs (or ints)
    store = QdrantVectorStore.from_documents(chunks, emb, location=":memory:", collection_name="c",
                                             batch_size=2)
    stored = qdrant_vectors(store, [c.id for c in chunks])
    for chunk_id, expected in reference(emb, chunks, DOCS).items():
        np.testing.assert_allclose(stored[chunk_id], expected, atol=1e-5)


def test_identical_documents_without_ids_do_not_collide_in_chroma(emb):
    import chromadb
    from langchain_chroma import Chroma

    twins = [Document("The same page.\n\n" + FOOTER), Document("The same page.\n\n" + FOOTER)]
    chunks = paragraphs(emb).split_documents(twins)
    assert len({c.id for c in chunks}) == len(chunks) == 4
    assert len({c.metadata[DOC_ID] for c in chunks}) == 2
    store = Chroma.from_documents(chunks, emb, client=chromadb.EphemeralClient(),
                                  collection_name=f"twins-{uuid.uuid4().hex[:8]}")
    assert len(store.get()["ids"]) == 4


def test_parent_document_retriever_takes_the_splitter_and_qdrant(emb):
    from langchain_classic.retrievers import ParentDocumentRetriever
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    client = QdrantClient(location=":memory:")
    client.create_collection("p", vectors_config=COSINE_384)
    store = QdrantVectorStore(client=client, collection_name="p", embedding=emb)
    retriever = ParentDocumentRetriever(vectorstore=store, docstore=InMemoryStore(),
                                        child_splitter=paragraphs(emb))
    retriever.add_documents(DOCS)
    assert retriever.invoke("Which spice costs the most?")[0].metadata["source"] == "spice"


def test_add_documents_replaces_an_edited_document_s_chunks(emb, model_calls):
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    from langchain_dewey import global_key, read_global_record

    client = QdrantClient(location=":memory:")
    client.create_collection("r", vectors_config=COSINE_384)
    store = QdrantVectorStore(client=client, collection_name="r", embedding=emb)
    parents = InMemoryStore()
    retriever = DeweyRetriever(vectorstore=store, docstore=parents, splitter=paragraphs(emb))
    long = Document("First part.\n\nSecond part.\n\nThird part.\n\n" + FOOTER, id="guide",
                    metadata={"source": "guide"})
    retriever.add_documents([long, *DOCS])
    assert client.count("r").count == 4 + 2 * 3
    short = Document("First part, edited.\n\n" + FOOTER, id="guide", metadata={"source": "guide"})
    ids = retriever.add_documents([short])
    assert client.count("r").count == 2 + 2 * 3  # the guide's last two chunks are gone
    stored = qdrant_vectors(store, ids)
    chunks = paragraphs(emb).split_documents([short])
    for chunk_id, expected in reference(emb, chunks, [short]).items():
        np.testing.assert_allclose(stored[chunk_id], expected, atol=1e-5)
    [record] = parents.mget([global_key("guide")])
    [ref] = emb.encoder.late_chunk([short.page_content], chunk_size=8)
    np.testing.assert_allclose(read_global_record(record), ref.global_embedding, atol=1e-5)
    model_calls.clear()
    hits = DeweyRetriever(vectorstore=store, docstore=parents, k=2).invoke("the edited first part")
    assert hits[0].metadata["source"] == "guide" and hits[0].metadata["dewey_global_score"] is not None
    assert model_calls == {"encode_queries": 1}


def test_add_documents_refuses_a_store_that_embeds_with_other_embeddings(emb, minilm_path):
    from langchain_core.vectorstores import InMemoryVectorStore

    other = DeweyEmbeddings(model=minilm_path, device="cpu")
    retriever = DeweyRetriever(vectorstore=InMemoryVectorStore(other), docstore=InMemoryStore(),
                               splitter=paragraphs(emb))
    with pytest.raises(ValueError, match="must embed with the splitter's DeweyEmbeddings"):
        retriever.add_documents(DOCS)
    with pytest.raises(ValueError, match="add_documents needs splitter="):
        DeweyRetriever(vectorstore=InMemoryVectorStore(emb), docstore=InMemoryStore()).add_documents(DOCS)


def test_a_store_that_embeds_something_else_breaks_the_pinned_handoff(emb):
    from langchain_core.vectorstores import InMemoryVectorStore

    from langchain_dewey import HandoffError

    class Rewriting(InMemoryVectorStore):
        def add_documents(self, documents, **kwargs):  # embeds altered texts
            altered = [Document(d.page_content.upper(), metadata=d.metadata) for d in documents]
            return super().add_documents(altered)

    retriever = DeweyRetriever(vectorstore=Rewriting(emb), docstore=InMemoryStore(), splitter=paragraphs(emb),
                               score_kind="similarity")
    with pytest.raises(HandoffError, match=r"not chunks 0\.\.5 of the chunks being added"):
        retriever.add_documents(DOCS)


def test_faiss_names_a_query_of_another_size(emb, minilm_path):
    from langchain_community.vectorstores import FAISS

    parents = InMemoryStore()
    store = FAISS.from_documents(paragraphs(emb, parents).split_documents(DOCS), emb)
    small = DeweyEmbeddings(model=minilm_path, device="cpu", dim=64)
    with pytest.raises(ValueError, match="dimension mismatch: the query vector has 64 dimensions, the stored "
                                         "chunks 384"):
        DeweyRetriever(vectorstore=store, docstore=parents, embeddings=small).invoke("spice")


def test_a_filter_passes_through_per_call_and_from_search_kwargs(emb):
    from langchain_core.vectorstores import InMemoryVectorStore

    parents = InMemoryStore()
    store = InMemoryVectorStore.from_documents(paragraphs(emb, parents).split_documents(DOCS), emb)
    only_tea = lambda doc: doc.metadata["source"] == "tea"  # noqa: E731 (InMemoryVectorStore's filter)
    per_call = DeweyRetriever(vectorstore=store, docstore=parents, k=4).invoke("spice", filter=only_tea)
    fixed = DeweyRetriever(vectorstore=store, docstore=parents, k=4,
                           search_kwargs={"filter": only_tea}).invoke("spice")
    assert [d.id for d in per_call] == [d.id for d in fixed] and len(fixed) == 2
    assert {d.metadata["source"] for d in fixed} == {"tea"}


GUIDE = Document("First part.\n\nSecond part.\n\nThird part.", id="guide", metadata={"source": "guide"})
EDITED = Document("First part, edited.\n\nSecond part.", id="guide", metadata={"source": "guide"})


@pytest.mark.parametrize("kind", ["faiss", "lancedb"])
def test_add_documents_replaces_an_edited_document_in_stores_that_do_not_upsert(emb, kind, tmp_path):
    """FAISS refuses an id it holds (after adding the vector to its index) and LanceDB adds
    the chunk twice: the earlier version's chunks are deleted first, all of them."""
    if kind == "faiss":
        import faiss
        from langchain_community.docstore.in_memory import InMemoryDocstore
        from langchain_community.vectorstores import FAISS

        store = FAISS(emb, faiss.IndexFlatIP(384), InMemoryDocstore(), {})
        count = lambda: store.index.ntotal  # noqa: E731
    else:
        import lancedb
        from langchain_community.vectorstores import LanceDB

        store = LanceDB(connection=lancedb.connect(str(tmp_path / "lance")), embedding=emb, table_name="t",
                        mode="append")
        count = lambda: store.get_table().count_rows()  # noqa: E731
    retriever = DeweyRetriever(vectorstore=store, docstore=InMemoryStore(), splitter=paragraphs(emb), k=2)
    retriever.add_documents([GUIDE, DOCS[2]])
    assert count() == 3 + 2
    retriever.add_documents([EDITED])
    assert count() == 2 + 2
    hits = retriever.invoke("the edited first part")
    chunks = paragraphs(emb).split_documents([EDITED])
    expected = reference(emb, chunks, [EDITED])
    assert {h.page_content for h in hits} == {c.page_content for c in chunks}
    for hit in hits:
        query = np.asarray(emb.embed_query("the edited first part"))
        assert hit.metadata["dewey_chunk_score"] == pytest.approx(float(expected[hit.id] @ query), abs=1e-4)


def test_add_documents_takes_ids_and_warns_about_documents_without_one(emb):
    from langchain_core.vectorstores import InMemoryVectorStore

    store = InMemoryVectorStore(emb)
    retriever = DeweyRetriever(vectorstore=store, docstore=InMemoryStore(), splitter=paragraphs(emb))
    plain = [Document(d.page_content, metadata=d.metadata) for d in DOCS]
    with pytest.raises(ValueError, match="ids has 1 ids for 3 documents"):
        retriever.add_documents(plain, ids=["one"])
    assert not store.store  # refused before any work
    retriever.add_documents(plain, ids=["spice", "rust", "tea"])  # ParentDocumentRetriever's spelling
    assert {r["metadata"][DOC_ID] for r in store.store.values()} == {"spice", "rust", "tea"}
    with pytest.warns(UserWarning, match="documents without Document.id: an edited version of one is stored "
                                         "as a new document"):
        retriever.add_documents(plain[:1])


def test_the_retriever_returns_the_ids_the_store_holds(emb, tmp_path):
    from langchain_chroma import Chroma

    parents = InMemoryStore()
    chunks = paragraphs(emb, parents).split_documents(DOCS[:1])
    store = Chroma(collection_name="own-ids", embedding_function=emb, persist_directory=str(tmp_path / "c"))
    own = store.add_documents(chunks, ids=[f"spice-{i}" for i in range(len(chunks))])
    hit = DeweyRetriever(vectorstore=store, docstore=parents, k=1).invoke("costly spice")[0]
    documents = DeweyRetriever(vectorstore=store, docstore=parents, k=1, mode="documents")
    best = documents.invoke("costly spice")[0]
    assert hit.id in own and best.metadata["dewey_best_chunk_id"] == hit.id
    assert store.get_by_ids([hit.id])[0].page_content == hit.page_content


def test_langchain_index_re_embeds_every_chunk_of_an_edited_document(emb):
    """``index()`` skips content it has seen; a chunk whose own text did not change still has
    a new vector when its document changed, and its metadata says so (``dewey_doc_hash``)."""
    from langchain_core.indexing import InMemoryRecordManager, index
    from langchain_core.vectorstores import InMemoryVectorStore

    store, records = InMemoryVectorStore(emb), InMemoryRecordManager("dewey")
    records.create_schema()
    first = Document("It is the most expensive item on the list.\n\nSaffron is a spice from crocus flowers.",
                     id="item", metadata={"source": "item"})
    second = Document("It is the most expensive item on the list.\n\nA Ferrari is an Italian sports car.",
                      id="item", metadata={"source": "item"})
    settings = {"cleanup": "incremental", "source_id_key": "source"}
    index(paragraphs(emb).split_documents([first]), records, store, **settings)
    chunks = paragraphs(emb).split_documents([second])
    result = index(chunks, records, store, **settings)
    assert result["num_skipped"] == 0 and result["num_added"] == 2
    stored = {r["text"]: np.asarray(r["vector"]) for r in store.store.values()}
    for chunk_id, vector in reference(emb, chunks, [second]).items():
        text = next(c.page_content for c in chunks if c.id == chunk_id)
        np.testing.assert_allclose(stored[text], vector, atol=1e-5)


def test_a_byte_store_as_docstore_is_refused_with_the_fix(emb, tmp_path):
    from langchain_classic.storage import LocalFileStore, create_kv_docstore
    from langchain_core.stores import InMemoryByteStore
    from langchain_core.vectorstores import InMemoryVectorStore

    for raw in (LocalFileStore(tmp_path / "parents"), InMemoryByteStore()):
        with pytest.raises(TypeError, match=r"stores bytes, not Documents: wrap it, e.g. "
                                            r"docstore=create_kv_docstore\(LocalFileStore\(path\)\)"):
            paragraphs(emb, raw)
        with pytest.raises(TypeError, match="stores bytes, not Documents"):
            DeweyRetriever(vectorstore=InMemoryVectorStore(emb), docstore=raw)
    paragraphs(emb, create_kv_docstore(LocalFileStore(tmp_path / "wrapped")))
