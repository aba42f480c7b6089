"""The three adapters on a ``dewey serve`` server (``base_url`` / ``api_base_url``): the same
late-chunked vectors and query vectors as dewey-core in process."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")

from dewey_core.serving.app import ServerSettings, create_app
from dewey_core.serving.runner import serve_in_thread

TOPICS = ("try", "yield", "with", "lambda")
CHUNK_SIZE = 64
KEY = "adapter-key"


@pytest.fixture(scope="module")
def url(minilm):
    with serve_in_thread(create_app(minilm, ServerSettings(model_id="minilm", api_key=KEY))) as base:
        yield base


@pytest.fixture(scope="module")
def corpus(pydoc_topics) -> list[tuple[str, str]]:
    return [(name, pydoc_topics[name]) for name in TOPICS]


@pytest.fixture(scope="module")
def reference(minilm, corpus) -> dict[tuple[str, int, int], np.ndarray]:
    docs = minilm.late_chunk([text for _, text in corpus], chunk_size=CHUNK_SIZE)
    return {(name, c.start, c.end): c.embedding
            for (name, _), doc in zip(corpus, docs, strict=True) for c in doc.chunks}


def assert_same(found: dict, reference: dict) -> None:
    assert found.keys() == reference.keys()
    for key, vector in found.items():
        np.testing.assert_allclose(np.asarray(vector, dtype=np.float32), reference[key], atol=1e-5)


def test_langchain_on_a_server(url, corpus, reference, minilm):
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from dewey_core.client import RemoteEncoder
    from langchain_dewey import DeweyEmbeddings, DeweyTextSplitter

    embeddings = DeweyEmbeddings(base_url=url, api_key=KEY)
    assert isinstance(embeddings.encoder, RemoteEncoder)
    docs = [Document(page_content=text, metadata={"topic": name}) for name, text in corpus]
    chunks = DeweyTextSplitter(embeddings, chunk_size=CHUNK_SIZE).split_documents(docs)
    store = InMemoryVectorStore.from_documents(chunks, embeddings)
    found = {}
    for record in store.store.values():
        meta = record["metadata"]
        start = meta["start_index"]
        found[(meta["topic"], start, start + len(record["text"]))] = record["vector"]
    assert_same(found, reference)
    # Boundaries from a LangChain splitter: the server late-chunks the caller's spans.
    base = RecursiveCharacterTextSplitter(chunk_size=300, chunk_overlap=0, add_start_index=True)
    remote = DeweyTextSplitter(embeddings, base_splitter=base).split_documents(docs)
    spans = [[(c.metadata["start_index"], c.metadata["start_index"] + len(c.page_content))
              for c in remote if c.metadata["topic"] == name] for name, _ in corpus]
    local = minilm.late_chunk([text for _, text in corpus], spans, allow_overlap=True)
    np.testing.assert_allclose(embeddings.embed_documents([c.page_content for c in remote]),
                               np.concatenate([d.chunk_embeddings for d in local]), atol=1e-5)
    np.testing.assert_allclose(embeddings.embed_query("with statement"),
                               minilm.encode_queries(["with statement"])[0], atol=1e-5)
    prompted = DeweyEmbeddings(base_url=url, api_key=KEY, document_prompt="passage: ")
    with pytest.warns(UserWarning, match="document prompt 'passage: ' is not used for late chunking"):
        DeweyTextSplitter(prompted, chunk_size=CHUNK_SIZE).split_documents(docs[:1])


def test_llamaindex_on_a_server(url, corpus, reference, minilm):
    from llama_index.core import Document
    from llama_index.core.ingestion import IngestionPipeline

    from llamaindex_dewey import DeweyEmbedding, DeweyNodeParser

    parser = DeweyNodeParser(base_url=url, api_key=KEY, chunk_size=CHUNK_SIZE)
    nodes = IngestionPipeline(transformations=[parser]).run(
        documents=[Document(text=text, metadata={"topic": name}) for name, text in corpus])
    assert_same({(n.metadata["topic"], n.start_char_idx, n.end_char_idx): n.embedding for n in nodes},
                reference)
    embedding = DeweyEmbedding(base_url=url, api_key=KEY)
    assert embedding.to_dict()["base_url"] == url and "api_key" not in embedding.to_dict()
    np.testing.assert_allclose(embedding.get_query_embedding("lambda"), minilm.encode_queries(["lambda"])[0],
                               atol=1e-5)
    texts = [text[:200] for _, text in corpus]
    np.testing.assert_allclose(embedding.get_text_embedding_batch(texts), minilm.encode_documents(texts),
                               atol=1e-5)


def test_haystack_on_a_server(url, corpus, reference, minilm):
    from haystack import Document
    from haystack.utils import Secret

    from haystack_dewey import DeweyDocumentEmbedder, DeweyLateChunker, DeweyTextEmbedder

    chunker = DeweyLateChunker(api_base_url=url, api_key=Secret.from_token(KEY), chunk_size=CHUNK_SIZE,
                               progress_bar=False)
    chunker.warm_up()
    out = chunker.run([Document(content=text, meta={"topic": name}) for name, text in corpus])
    assert_same({(d.meta["topic"], d.meta["split_idx_start"], d.meta["split_idx_start"] + len(d.content)):
                 d.embedding for d in out["documents"]}, reference)
    text = DeweyTextEmbedder(api_base_url=url, api_key=Secret.from_token(KEY))
    text.warm_up()
    np.testing.assert_allclose(text.run(text="yield")["embedding"], minilm.encode_queries(["yield"])[0],
                               atol=1e-5)
    docs = DeweyDocumentEmbedder(api_base_url=url, api_key=Secret.from_token(KEY), progress_bar=False)
    docs.warm_up()
    contents = [t[:200] for _, t in corpus]
    embedded = docs.run([Document(content=c) for c in contents])["documents"]
    np.testing.assert_allclose([d.embedding for d in embedded], minilm.encode_documents(contents), atol=1e-5)


def test_haystack_serialises_the_server_and_an_env_key(url, monkeypatch, minilm):
    from haystack.utils import Secret

    from haystack_dewey import DeweyTextEmbedder

    monkeypatch.setenv("DEWEY_API_KEY", KEY)
    component = DeweyTextEmbedder(api_base_url=url, api_key=Secret.from_env_var("DEWEY_API_KEY"))
    data = component.to_dict()
    assert data["init_parameters"]["api_base_url"] == url
    assert data["init_parameters"]["api_key"] == {"type": "env_var", "env_vars": ["DEWEY_API_KEY"],
                                                  "strict": True}
    restored = DeweyTextEmbedder.from_dict(data)
    restored.warm_up()
    np.testing.assert_allclose(restored.run(text="try")["embedding"], minilm.encode_queries(["try"])[0],
                               atol=1e-5)


def test_haystack_components_check_the_served_model_they_name(url):
    from haystack.utils import Secret

    from dewey_core.client import RemoteEncoderError
    from haystack_dewey import DeweyLateChunker, DeweyTextEmbedder

    wrong = DeweyTextEmbedder(api_base_url=url, api_key=Secret.from_token(KEY), model="bge-large")
    wrong.warm_up()
    with pytest.raises(RemoteEncoderError, match=r"'bge-large' is not served .* it serves \['minilm'\]"):
        wrong.run(text="try")
    named = DeweyLateChunker(api_base_url=url, api_key=Secret.from_token(KEY), model="minilm",
                             progress_bar=False)
    named.warm_up()
    assert named.run([__import__("haystack").Document(content="Ardenvale exports saffron.")])["documents"]


def test_llamaindex_objects_restored_from_dict_take_the_served_model(url, minilm):
    from llama_index.core import Document

    from llamaindex_dewey import DeweyEmbedding, DeweyNodeParser

    embedding = DeweyEmbedding(base_url=url, api_key=KEY)
    assert "model_name" not in embedding.to_dict()  # never given: whatever the server serves
    restored = DeweyEmbedding.from_dict(embedding.to_dict(), api_key=KEY)
    np.testing.assert_allclose(restored.get_query_embedding("lambda"), minilm.encode_queries(["lambda"])[0],
                               atol=1e-5)
    saved = DeweyNodeParser(base_url=url, api_key=KEY, chunk_size=CHUNK_SIZE).to_json()
    parser = DeweyNodeParser.from_json(saved, api_key=KEY)
    assert parser.get_nodes_from_documents([Document(text="Ardenvale exports saffron.")])
    named = DeweyEmbedding(base_url=url, api_key=KEY, model_name="minilm")
    assert DeweyEmbedding.from_dict(named.to_dict(), api_key=KEY).model_name == "minilm"
