"""Fixtures for the langchain-dewey tests: one MiniLM-backed embeddings object and a small
pydoc corpus ingested once through the split-then-store flow."""

from __future__ import annotations

import inspect

import pytest
from langchain_core.documents import Document
from langchain_core.stores import InMemoryStore
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_dewey import DeweyEmbeddings, DeweyTextSplitter

# A subset of the pydoc topics (~3.9K words) keeps late chunking to a few seconds on 2 cores.
TOPICS = ("assert", "break", "class", "context-managers", "del", "dict", "exceptions", "for",
          "global", "lambda", "pass", "raise", "return", "while", "with", "yield")


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_pycollect_makeitem(collector, name, obj):
    """Run the standard suites' async tests under pytest-asyncio (the workspace uses strict
    mode, and the suites do not mark their coroutines)."""
    outcome = yield
    result = outcome.get_result()
    for item in result if isinstance(result, list) else [result]:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.add_marker(pytest.mark.asyncio)


@pytest.fixture(scope="session")
def embeddings(minilm_path) -> DeweyEmbeddings:
    return DeweyEmbeddings(model=minilm_path, device="cpu")


@pytest.fixture(scope="session")
def corpus(pydoc_topics) -> list[Document]:
    return [Document(page_content=pydoc_topics[t], metadata={"source": t}) for t in TOPICS]


@pytest.fixture(scope="session")
def ingested(embeddings, corpus):
    """(chunks, vector store, docstore) from the standard LangChain flow:
    split_documents -> InMemoryVectorStore.from_documents."""
    docstore = InMemoryStore()
    splitter = DeweyTextSplitter(embeddings, chunk_size=128, docstore=docstore)
    chunks = splitter.split_documents(corpus)
    store = InMemoryVectorStore.from_documents(chunks, embeddings)
    return chunks, store, docstore
