"""LangChain's standard integration suites, unmodified, on the real all-MiniLM-L6-v2."""

from __future__ import annotations

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, RetrieversIntegrationTests

from langchain_dewey import DeweyEmbeddings, DeweyRetriever


class TestDeweyEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @pytest.fixture(autouse=True)
    def _model_path(self, minilm_path):
        # The suite reads parameters from a property; the model path comes from a fixture.
        self._path = minilm_path

    @property
    def embeddings_class(self) -> type[DeweyEmbeddings]:
        return DeweyEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": self._path, "device": "cpu"}


class TestDeweyRetrieverChunks(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _store(self, ingested):
        self._ingested = ingested

    @property
    def retriever_constructor(self) -> type[DeweyRetriever]:
        return DeweyRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        _, store, _ = self._ingested
        return {"vectorstore": store}

    @property
    def retriever_query_example(self) -> str:
        return "How do I catch an exception and clean up afterwards?"


class TestDeweyRetrieverDocuments(TestDeweyRetrieverChunks):
    @property
    def retriever_constructor_params(self) -> dict:
        _, store, docstore = self._ingested
        return {"vectorstore": store, "docstore": docstore, "mode": "documents"}
