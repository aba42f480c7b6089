"""Jasper images over HTTP: base64, data URLs and mixed content parts equal in-process vectors."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

pytest.importorskip("fastapi")
from PIL import Image

from dewey_core import DeweyEncoder
from dewey_core.client import RemoteEncoder
from dewey_core.serving.app import ServerSettings, create_app
from dewey_core.serving.runner import serve_in_thread
from dewey_core.testing import tiny_jasper


@pytest.fixture(scope="module")
def jasper(tmp_path_factory):
    return DeweyEncoder.from_pretrained(tiny_jasper(tmp_path_factory.mktemp("jasper")), device="cpu")


@pytest.fixture(scope="module")
def url(jasper):
    with serve_in_thread(create_app(jasper, ServerSettings(model_id="jasper"))) as base:
        yield base


def _png(color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buffer, format="PNG")
    return buffer.getvalue()


RED, BLUE = _png((200, 30, 30)), _png((20, 40, 220))


def _close(got, want) -> None:
    got = np.asarray(got)
    assert got.shape == want.shape
    assert (got * want).sum(1).min() >= 0.9999


def test_images_as_base64_data_urls_and_parts(url, jasper):
    import httpx

    b64 = base64.b64encode(RED).decode()
    body = {"model": "jasper", "dimensions": 32, "input": [
        b64, f"data:image/png;base64,{base64.b64encode(BLUE).decode()}",
        [{"type": "text", "text": "a red square"}, {"type": "image_url", "image_url": {"url": b64}}],
        # As OpenAI chat messages carry them, and MIME base64 with its line breaks.
        [{"type": "image_url", "image_url": {"url": b64, "detail": "auto"}}],
        base64.encodebytes(BLUE).decode()]}
    response = httpx.post(f"{url}/v1/images/embeddings", json=body, timeout=120)
    assert response.status_code == 200, response.text
    got = [d["embedding"] for d in response.json()["data"]]
    _close(got, jasper.encode_images([RED, BLUE, ["a red square", RED], [RED], BLUE], dim=32))


def test_remote_encoder_images_and_text_share_the_space(url, jasper, tmp_path):
    path = tmp_path / "blue.png"
    path.write_bytes(BLUE)
    items = [Image.open(io.BytesIO(RED)), str(path), RED, ["caption", Image.open(io.BytesIO(BLUE))]]
    with RemoteEncoder(url) as remote:
        assert remote.supports_images
        _close(remote.encode_images(items, 16), jasper.encode_images(items, 16))
        _close(remote.encode_queries(["a red square"], 64), jasper.encode_queries(["a red square"], 64))
        with pytest.raises(FileNotFoundError, match="does not exist"):
            remote.encode_images([str(tmp_path / "missing.png")])


@pytest.mark.parametrize(("item", "message"), [
    ("not base64 at all!", "is not valid base64"),
    (base64.b64encode(b"plain text, not an image").decode(), "is not a readable image"),
    ("data:image/png,abc", "must look like 'data:image/png;base64,...'"),
    ("https://example.com/cat.png", "image URLs are not fetched"),
    ([{"type": "image_url", "image_url": {"url": "@@"}}], "input[0][0] is not valid base64"),
    ([], "empty list of parts"),
])
def test_bad_images_get_422_naming_the_input(url, item, message):
    import httpx

    response = httpx.post(f"{url}/v1/images/embeddings", json={"model": "jasper", "input": [item]},
                          timeout=60)
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]["message"]
    ok = httpx.post(f"{url}/v1/images/embeddings",
                    json={"model": "jasper", "input": [base64.b64encode(RED).decode()]}, timeout=60)
    assert ok.status_code == 200
