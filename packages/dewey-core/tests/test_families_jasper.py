"""Jasper VL loaded natively from a tiny checkpoint: text, images, mixed inputs, heads."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from dewey_core import DeweyEncoder
from dewey_core.models.checkpoint import CheckpointKeyError
from dewey_core.models.jasper import S2P_QUERY, S2S_QUERY
from dewey_core.testing import save_state, tiny_jasper

TEXTS = ["A red square on a white page.", "Rust is a language for systems programming."]


@pytest.fixture(scope="module")
def jasper_path(tmp_path_factory):
    return tiny_jasper(tmp_path_factory.mktemp("jasper"))


@pytest.fixture(scope="module")
def jasper(jasper_path):
    return DeweyEncoder.from_pretrained(jasper_path, device="cpu")


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    Image.new("RGB", (60, 40), (200, 30, 30)).save(folder / "red.png")
    Image.new("RGB", (30, 30), (20, 40, 220)).save(folder / "blue.jpg")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    (folder / "notes.txt").write_text("plain text, not an image")
    return folder


def test_loads_natively(jasper):
    model = jasper.model
    assert model.family == "jasper" and jasper.supports_images
    assert type(model.backbone).__name__ == "Qwen2Model"
    assert type(model.vision).__name__ == "SiglipVisionModel"
    assert all(not layer.self_attn.is_causal for layer in model.backbone.layers)
    assert model.head_dims == (16, 32, 64, 128) and jasper.dimension == 64
    assert model.num_img_tokens == 300


def test_prompts(jasper):
    prompts = jasper.model.prompts
    assert prompts.query == S2P_QUERY and prompts.document == ""
    assert prompts.named["s2s_query"] == S2S_QUERY
    s2s = jasper.encode_queries(TEXTS, prompt=prompts.named["s2s_query"])
    assert not np.allclose(s2s, jasper.encode_queries(TEXTS))


def test_attention_is_bidirectional(jasper):
    # Changing the last token changes the first token's state only without a causal mask.
    from dewey_core.models.bidirectional import bidirectional_forward
    from dewey_core.runtime import _padded_batch

    backbone = jasper.model.backbone
    batch = _padded_batch([[5, 6, 7, 8], [5, 6, 7, 9]], 0, torch.device("cpu"))
    with torch.inference_mode():
        states = bidirectional_forward(backbone, jasper.model.attention, batch)
    assert not torch.allclose(states[0, 0], states[1, 0])


@pytest.mark.parametrize("dim", [16, 32, 64, 128])
def test_each_head_size(jasper, dim):
    vectors = jasper.encode_documents(TEXTS, dim)
    assert vectors.shape == (2, dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    if dim < 128:  # the head of that size, not a truncation of the largest head
        largest = jasper.encode_documents(TEXTS, 128)[:, :dim]
        assert not np.allclose(vectors, largest / np.linalg.norm(largest, axis=1, keepdims=True))


def test_dim_without_head_truncates_next_larger_head(jasper):
    v20 = jasper.encode_documents(TEXTS, 20)
    full = jasper.encode_documents(TEXTS, 32)
    assert v20.shape == (2, 20)
    # Renormalising the first 20 dimensions of the 32-d head's (normalised) output gives v20.
    expected = full[:, :20] / np.linalg.norm(full[:, :20], axis=1, keepdims=True)
    np.testing.assert_allclose(v20, expected, atol=1e-5)


def test_default_head_chosen_at_load(jasper_path):
    enc = DeweyEncoder.from_pretrained(jasper_path, device="cpu", vector_dim=128)
    assert enc.dimension == 128 and enc.encode_queries(TEXTS).shape == (2, 128)
    with pytest.raises(ValueError, match="no vector_linear_100 head"):
        DeweyEncoder.from_pretrained(jasper_path, device="cpu", vector_dim=100)


def test_images_from_pil_path_and_bytes_agree(jasper, image_files):
    red = image_files / "red.png"
    vectors = jasper.encode_images([Image.open(red), red, str(red), red.read_bytes()])
    assert vectors.shape == (4, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    for v in vectors[1:]:
        np.testing.assert_allclose(v, vectors[0], atol=1e-5)


def test_images_change_the_embedding_and_batches_do_not_mix(jasper, image_files):
    images = [image_files / "red.png", image_files / "blue.jpg", image_files / "red.png"]
    batch = jasper.encode_images(images)
    one_by_one = np.stack([jasper.encode_images([i])[0] for i in images])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-5)
    assert float(batch[0] @ batch[1]) < 0.9999


def test_image_tokens_sit_between_start_and_end(jasper):
    seq = jasper.model.image_sequences([Image.new("RGB", (9, 9))])[0]
    start, token, end = jasper.model.image_ids
    assert seq.ids == [start, *[token] * 300, end] and seq.pixels.shape == (1, 3, 28, 28)


def test_mixed_text_and_images(jasper, image_files):
    red = image_files / "red.png"
    mixed = jasper.encode_images([["A photo:", red, "and its caption."], [red]], dim=32)
    assert mixed.shape == (2, 32)
    assert float(mixed[0] @ mixed[1]) < 0.9999  # the text parts count
    np.testing.assert_allclose(mixed[1], jasper.encode_images([red], dim=32)[0], atol=1e-5)
    seq = jasper.model.image_sequences([["A photo:", red]])[0]
    assert seq.ids[-302] == jasper.model.image_ids[0] and seq.pixels.shape[0] == 1


def test_image_and_text_vectors_share_one_space(jasper, image_files):
    img = jasper.encode_images([image_files / "red.png"])
    txt = jasper.encode_documents(TEXTS)
    assert img.shape[1] == txt.shape[1] == jasper.dimension


@pytest.mark.parametrize("name, error, match", [
    ("corrupt.png", ValueError, r"images\[1\] \(file '.*corrupt.png'\) is not a readable image"),
    ("notes.txt", ValueError, r"images\[1\] \(file '.*notes.txt'\) is not a readable image"),
    ("missing.png", FileNotFoundError, r"images\[1\]: image file '.*missing.png' does not exist"),
])
def test_bad_image_files_are_named(jasper, image_files, name, error, match):
    with pytest.raises(error, match=match):
        jasper.encode_images([image_files / "red.png", image_files / name])


def test_bad_image_bytes_and_types_are_named(jasper):
    with pytest.raises(ValueError, match=r"images\[0\] \(11 bytes\) is not a readable image"):
        jasper.encode_images([b"hello world"])
    with pytest.raises(TypeError, match=r"images\[0\]\[1\] must be a PIL image"):
        jasper.encode_images([["text", 3.5]])
    with pytest.raises(TypeError, match="images must be a list"):
        jasper.encode_images(Image.new("RGB", (4, 4)))
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    assert jasper.encode_images([buf.getvalue()]).shape == (1, 64)


def test_a_data_url_is_an_image_and_a_bad_one_is_named_briefly(jasper, image_files):
    import base64

    data = (image_files / "red.png").read_bytes()
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    np.testing.assert_allclose(jasper.encode_images([url]), jasper.encode_images([data]), atol=1e-6)
    with pytest.raises(ValueError, match=r"images\[0\]: a data URL must look like"):
        jasper.encode_images(["data:image/png," + "A" * 10_000])
    with pytest.raises(FileNotFoundError, match=r"image file '/nowhere/A+\.\.\.' does not exist") as caught:
        jasper.encode_images(["/nowhere/" + "A" * 10_000])  # e.g. bare base64 taken for a path
    assert len(str(caught.value)) < 300


def test_late_chunk(jasper):
    text = "A red square. " * 10 + "Rust is a language. " * 10
    doc = jasper.late_chunk([text], chunk_size=16, dim=32)[0]
    assert len(doc.chunks) >= 3 and doc.chunk_embeddings.shape[1] == 32
    np.testing.assert_allclose(np.linalg.norm(doc.chunk_embeddings, axis=1), 1.0, atol=1e-5)
    assert "".join(c.text for c in doc.chunks) == text


def test_other_vision_prefix_loads(tmp_path, jasper):
    path = tiny_jasper(tmp_path, vision_prefix="vision_model.")
    enc = DeweyEncoder.from_pretrained(path, device="cpu")
    image = Image.new("RGB", (20, 20), "green")
    np.testing.assert_allclose(enc.encode_images([image]), jasper.encode_images([image]), atol=1e-6)


def test_unknown_key_is_refused_by_name(tmp_path):
    path = tiny_jasper(tmp_path)
    state = load_file(str(path / "model.safetensors"))
    state["mlp1.0.weight"] = torch.zeros(2, 2)
    save_state(path / "model.safetensors", state)
    with pytest.raises(CheckpointKeyError, match=r"unrecognised keys \['mlp1.0.weight'\]"):
        DeweyEncoder.from_pretrained(path, device="cpu")


def test_tokenizer_must_match_config_image_ids(tmp_path):
    import json

    path = tiny_jasper(tmp_path)
    config = json.loads((path / "config.json").read_text())
    config["img_token_id"] += 1
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=re.escape("does not map '<|jasper_img_token|>'")):
        DeweyEncoder.from_pretrained(path, device="cpu")


def test_remote_code_heads_are_chosen_as_the_native_loaders_choose_them():
    # trust_remote_code=True keeps the authors' Linear heads: a size between heads must come from
    # the next larger head (then truncated), never from the default head or a smaller one.
    from dewey_core.models.remote import RemoteCodeModel
    from dewey_core.models.stella import select_head

    torch.manual_seed(0)
    heads = {d: torch.nn.Linear(8, d) for d in (256, 512, 1024, 12288)}
    model = object.__new__(RemoteCodeModel)  # the checkpoint's own code is not needed to project
    model.heads, model.dimension = heads, 1024
    pooled = torch.randn(2, 8)
    for dim, size in ((None, 1024), (256, 256), (300, 512), (2048, 12288)):
        out = model.project(pooled, dim)
        assert out.shape == (2, size) and select_head(heads, 1024, dim) is heads[size]
        torch.testing.assert_close(out, heads[size](pooled))
