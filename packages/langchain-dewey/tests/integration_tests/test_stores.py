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
DOCS = [Document("Saffron is the most expensive spice by weight.\n\n" + FOOTER, metadata={"source": "spice"}),
        Document("Rust is a language with a borrow checker.\n\n" + FOOTER, metadata={"source": "rust"}),
        Document("Tea is a drink made from leaves.\n\n" + FOOTER, metadata={"source": "tea"})]


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
