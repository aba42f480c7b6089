"""DeweyImageDocumentEmbedder on a tiny randomly initialised Jasper checkpoint (released layout)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
from haystack import Document
from haystack.dataclasses import ByteStream
from haystack.utils import ComponentDevice
from PIL import Image

from dewey_core import DeweyEncoder
from dewey_core.testing import tiny_jasper
from haystack_dewey import DeweyImageDocumentEmbedder, DeweyTextEmbedder
from haystack_dewey import _common as common_module

CPU = ComponentDevice.from_str("cpu")


@pytest.fixture(scope="module")
def jasper_path(tmp_path_factory) -> str:
    return str(tiny_jasper(tmp_path_factory.mktemp("jasper")))


@pytest.fixture(scope="module")
def jasper(jasper_path) -> DeweyEncoder:
    return DeweyEncoder.from_pretrained(jasper_path, device="cpu")


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    (root / "shapes").mkdir()
    Image.new("RGB", (40, 30), "red").save(root / "shapes" / "red.png")
    Image.new("RGB", (16, 48), "green").save(root / "green.jpg")
    return root


def png_bytes(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_init_defaults():
    embedder = DeweyImageDocumentEmbedder()
    assert embedder.file_path_meta_field == "file_path"
    assert embedder.root_path is None
    assert embedder.model == "NovaSearch/jasper_en_vision_language_v1"
    assert embedder.device == ComponentDevice.resolve_device(None)
    assert (embedder.dtype, embedder.max_length, embedder.token_budget, embedder.model_options) == \
        (None, None, None, None)
    assert embedder.dim is None and embedder.progress_bar is True
    assert embedder._encoder is None


def test_init_with_parameters():
    embedder = DeweyImageDocumentEmbedder(file_path_meta_field="image", root_path="/data", model="m",
                                          device="cpu", dtype="bfloat16", token_budget=4096, dim=512,
                                          progress_bar=False)
    assert (embedder.file_path_meta_field, embedder.root_path, embedder.model) == ("image", "/data", "m")
    assert (embedder.device, embedder.dtype, embedder.token_budget, embedder.dim) == \
        (CPU, "bfloat16", 4096, 512)
    assert embedder.progress_bar is False


def test_to_dict():
    assert DeweyImageDocumentEmbedder(device="cpu", root_path="images").to_dict() == {
        "type": "haystack_dewey.image_embedder.DeweyImageDocumentEmbedder",
        "init_parameters": {
            "file_path_meta_field": "file_path",
            "root_path": "images",
            "model": "NovaSearch/jasper_en_vision_language_v1",
            "device": {"type": "single", "device": "cpu"},
            "dtype": None,
            "max_length": None,
            "token_budget": None,
            "batch_size": None,
            "model_options": None,
            "model_kwargs": None,
            "token": {"type": "env_var", "env_vars": ["HF_API_TOKEN", "HF_TOKEN"], "strict": False},
            "local_files_only": False,
            "trust_remote_code": False,
            "api_base_url": None,
            "api_key": None,
            "dim": None,
            "progress_bar": True,
        },
    }


def test_from_dict():
    data = DeweyImageDocumentEmbedder(file_path_meta_field="img", root_path="r", model="m", device="cpu",
                                      dim=256, progress_bar=False).to_dict()
    embedder = DeweyImageDocumentEmbedder.from_dict(data)
    assert (embedder.file_path_meta_field, embedder.root_path, embedder.model, embedder.device) == \
        ("img", "r", "m", CPU)
    assert embedder.dim == 256 and embedder.progress_bar is False
    assert embedder.to_dict() == data


def test_warm_up_loads_once(jasper_path, image_dir, monkeypatch):
    calls = []
    real = common_module.load_encoder
    monkeypatch.setattr(common_module, "load_encoder",
                        lambda model, *args, **kw: calls.append(model) or real(model, *args, **kw))
    embedder = DeweyImageDocumentEmbedder(model=jasper_path, root_path=str(image_dir), device="cpu",
                                          progress_bar=False)
    embedder.warm_up()
    encoder = embedder._encoder
    embedder.warm_up()
    embedder.run([Document(meta={"file_path": "green.jpg"})])
    assert calls == [jasper_path] and embedder._encoder is encoder


def test_run(jasper_path, jasper, image_dir):
    docs = [Document(content="a red rectangle", meta={"file_path": "shapes/red.png"}),
            Document(content="blue square", blob=ByteStream(png_bytes("blue"), mime_type="image/png")),
            Document(meta={"file_path": "green.jpg", "kind": "photo"})]
    before = [(d.id, dict(d.meta), d.embedding) for d in docs]
    embedder = DeweyImageDocumentEmbedder(model=jasper_path, root_path=str(image_dir), device="cpu",
                                          progress_bar=False)
    out = embedder.run(docs)["documents"]
    expected = jasper.encode_images([str(image_dir / "shapes" / "red.png"), png_bytes("blue"),
                                     str(image_dir / "green.jpg")])
    np.testing.assert_allclose([d.embedding for d in out], expected, atol=1e-5)
    assert [(d.id, d.content) for d in out] == [(d.id, d.content) for d in docs]
    source = {"type": "image", "file_path_meta_field": "file_path"}
    assert out[2].meta == {"file_path": "green.jpg", "kind": "photo", "embedding_source": source}
    assert [(d.id, d.meta, d.embedding) for d in docs] == before


def test_run_with_absolute_paths_and_dim(jasper_path, jasper, image_dir):
    path = str(image_dir / "green.jpg")
    embedder = DeweyImageDocumentEmbedder(model=jasper_path, file_path_meta_field="image", device="cpu",
                                          dim=32, progress_bar=False)
    out = embedder.run([Document(meta={"image": path})])["documents"]
    assert len(out[0].embedding) == 32
    np.testing.assert_allclose(out[0].embedding, jasper.encode_images([path], 32)[0], atol=1e-5)


def test_text_embedder_shares_the_image_space(jasper_path, jasper, image_dir):
    text = DeweyTextEmbedder(model=jasper_path, device="cpu").run("a red rectangle")["embedding"]
    images = DeweyImageDocumentEmbedder(model=jasper_path, root_path=str(image_dir), device="cpu",
                                        progress_bar=False)
    image = images.run([Document(meta={"file_path": "shapes/red.png"})])["documents"][0].embedding
    assert len(text) == len(image) == jasper.dimension
    np.testing.assert_allclose(text, jasper.encode_queries(["a red rectangle"])[0], atol=1e-5)


def test_bad_image_sources_are_named(jasper_path, image_dir):
    embedder = DeweyImageDocumentEmbedder(model=jasper_path, root_path=str(image_dir), device="cpu",
                                          progress_bar=False)
    missing = Document(meta={"file_path": "nowhere.png"})
    with pytest.raises(ValueError, match=rf"Document {missing.id}: image file .*nowhere.png.* not exist"):
        embedder.run([missing])
    with pytest.raises(ValueError, match="is a PDF; convert its pages to images"):
        embedder.run([Document(meta={"file_path": "report.pdf"})])
    with pytest.raises(ValueError, match=r"no meta\['file_path'\] and no blob"):
        embedder.run([Document(content="text only")])
    with pytest.raises(ValueError, match=r"no meta\['file_path'\] and a text/plain blob"):
        embedder.run([Document(blob=ByteStream(b"hello", mime_type="text/plain"))])
    broken = Document(blob=ByteStream(b"not an image at all"))
    with pytest.raises(ValueError, match=rf"Document {broken.id}: its blob \(19 bytes\) is not a readable"):
        embedder.run([Document(blob=ByteStream(png_bytes("red"))), broken])
    (image_dir / "broken.png").write_bytes(b"\x89PNG truncated")
    bad_file = Document(meta={"file_path": "broken.png"})
    with pytest.raises(ValueError, match=rf"Document {bad_file.id}: .*broken.png is not a readable image"):
        embedder.run([bad_file])


def test_a_blob_without_mime_type_is_read_as_an_image(jasper_path, jasper):
    embedder = DeweyImageDocumentEmbedder(model=jasper_path, device="cpu", progress_bar=False)
    data = png_bytes("blue")
    out = embedder.run([Document(blob=ByteStream(data))])["documents"]
    np.testing.assert_allclose(out[0].embedding, jasper.encode_images([data])[0], atol=1e-5)


def test_text_only_model_is_refused(minilm_path):
    embedder = DeweyImageDocumentEmbedder(model=minilm_path, device="cpu")
    with pytest.raises(ValueError, match="does not embed images; use a Jasper model"):
        embedder.warm_up()


def test_run_async(jasper_path, image_dir):
    embedder = DeweyImageDocumentEmbedder(model=jasper_path, root_path=str(image_dir), device="cpu",
                                          progress_bar=False)
    docs = [Document(meta={"file_path": "green.jpg"})]
    sync = embedder.run(docs)["documents"][0].embedding
    assert asyncio.run(embedder.run_async(docs))["documents"][0].embedding == pytest.approx(sync, abs=1e-6)


@pytest.mark.parametrize("wrong", ["cat.jpg", Document(meta={"file_path": "cat.jpg"}), ["cat.jpg"]])
def test_run_wrong_input_type(wrong):
    embedder = DeweyImageDocumentEmbedder(device="cpu")
    with pytest.raises(TypeError, match=r"expects a list of Documents.*image path in meta"):
        embedder.run(wrong)
    assert embedder._encoder is None
