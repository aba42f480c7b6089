"""LangChain's standard unit suite, unmodified (construction needs no model download)."""

from __future__ import annotations

from langchain_tests.unit_tests import EmbeddingsUnitTests

from langchain_dewey import DeweyEmbeddings, JasperEmbeddings


class TestDeweyEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[DeweyEmbeddings]:
        return DeweyEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": "infgrad/dewey_en_beta", "dim": 1024, "device": "cpu"}


class TestJasperEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[JasperEmbeddings]:
        return JasperEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"dim": 512}
