"""JasperEmbeddings on a tiny randomly initialised checkpoint in Jasper's released layout."""

from __future__ import annotations

import io

import numpy as np
import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from PIL import Image

from langchain_dewey import JasperEmbeddings


@pytest.fixture(scope="module")
def jasper_path(tmp_path_factory) -> str:
    from dewey_core.testing import tiny_jasper

    return str(tiny_jasper(tmp_path_factory.mktemp("jasper")))


@pytest.fixture(scope="module")
def jasper(jasper_path) -> JasperEmbeddings:
    return JasperEmbeddings(model=jasper_path, device="cpu", dim=32)


class TestJasperEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @pytest.fixture(autouse=True)
    def _model_path(self, jasper_path):
        self._path = jasper_path

    @property
    def embeddings_class(self) -> type[JasperEmbeddings]:
        return JasperEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": self._path, "device": "cpu"}


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_paths_bytes_and_pil_images_embed_alike(jasper, tmp_path):
    red, blue = Image.new("RGB", (40, 30), "red"), Image.new("RGB", (40, 30), "blue")
    red.save(tmp_path / "red.png")
    vectors = np.asarray(jasper.embed_images([red, str(tmp_path / "red.png"), _png(red), tmp_path / "red.png",
                                              blue]))
    assert vectors.shape == (5, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    for row in vectors[1:4]:
        np.testing.assert_allclose(row, vectors[0], atol=1e-5)
    assert not np.allclose(vectors[4], vectors[0], atol=1e-3)
    np.testing.assert_allclose(jasper.embed_image(blue), vectors[4], atol=1e-5)
    reference = jasper.encoder.encode_images([red, blue], dim=32)
    np.testing.assert_allclose(vectors[[0, 4]], reference, atol=1e-5)
    assert len(jasper.embed_query("a red rectangle")) == 32
    assert jasper.embed_images([]) == []


async def test_async_image_embedding_matches(jasper):
    red = Image.new("RGB", (20, 20), "red")
    np.testing.assert_allclose(await jasper.aembed_images([red]), jasper.embed_images([red]), atol=1e-6)
    np.testing.assert_allclose(await jasper.aembed_image(red), jasper.embed_image(red), atol=1e-6)


def test_query_prompt_override_is_used(jasper_path):
    default = JasperEmbeddings(model=jasper_path, device="cpu")
    symmetric = JasperEmbeddings(model=jasper_path, device="cpu",
                                 query_prompt="Instruct: Retrieve semantically similar text.\nQuery: ")
    a, b = default.embed_query("red square"), symmetric.embed_query("red square")
    assert not np.allclose(a, b, atol=1e-4)
    expected = symmetric.encoder.encode_queries(["red square"], prompt=symmetric.query_prompt)[0]
    np.testing.assert_allclose(b, expected, atol=1e-6)


def test_missing_file_and_text_only_model_are_reported(jasper, minilm_path):
    with pytest.raises(FileNotFoundError, match=r"images\[1\]"):
        jasper.embed_images([Image.new("RGB", (8, 8)), "no-such-image.png"])
    with pytest.raises(TypeError, match="embeds text only"):
        JasperEmbeddings(model=minilm_path, device="cpu").embed_image(Image.new("RGB", (8, 8)))
