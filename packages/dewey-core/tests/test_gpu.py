"""GPU runtime: bf16 by default, packed batches (torch's varlen kernels, or the flash-attn
package where installed) agree with padded ones. Skipped without CUDA (see the root conftest.py)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from dewey_core import DeweyEncoder
from dewey_core.testing import tiny_dewey, tiny_jasper, tiny_stella

pytestmark = pytest.mark.gpu
HAS_FLASH = importlib.util.find_spec("flash_attn") is not None
TEXTS = ["Saffron is a spice made from crocus flowers. " * k for k in (1, 5, 11, 30)] + [
    "hi", "", "Rust is a language for systems programming."]
BUILDERS = {"dewey": tiny_dewey, "jasper": tiny_jasper, "stella": tiny_stella}


@pytest.fixture(scope="module", params=list(BUILDERS))
def family_path(request, tmp_path_factory):
    return BUILDERS[request.param](tmp_path_factory.mktemp(request.param))


def _min_cosine(a, b):
    return float((a * b).sum(1).min())


def test_bf16_by_default_and_finite(family_path):
    enc = DeweyEncoder.from_pretrained(family_path, device="cuda")
    assert enc.model.dtype == torch.bfloat16 and enc.model.device.type == "cuda"
    assert enc.packed is (enc.model.packing == "flash")
    vectors = enc.encode_documents(TEXTS)
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    fp32 = DeweyEncoder.from_pretrained(family_path, device="cuda", dtype="float32")
    assert _min_cosine(vectors, fp32.encode_documents(TEXTS)) >= 0.99


def test_packed_matches_padded_bf16(family_path):
    padded = DeweyEncoder.from_pretrained(family_path, device="cuda", attention="sdpa")
    packed = DeweyEncoder.from_pretrained(family_path, device="cuda")
    assert packed.model.packing == "flash" and packed.packed  # padding-free by default
    assert packed.model.attention.kernel == ("flash_attention_2" if HAS_FLASH else "varlen")
    assert _min_cosine(padded.encode_documents(TEXTS), packed.encode_documents(TEXTS)) >= 0.9999
    docs = [t for t in TEXTS if t.strip()]
    for x, y in zip(padded.late_chunk(docs, chunk_size=16), packed.late_chunk(docs, chunk_size=16),
                    strict=True):
        assert _min_cosine(x.chunk_embeddings, y.chunk_embeddings) >= 0.9999


KERNELS = ["varlen", pytest.param("flash_attention_2", marks=pytest.mark.skipif(
    not HAS_FLASH, reason="flash-attn is not installed"))]


@pytest.mark.parametrize("kernel", KERNELS)
def test_varlen_kernels_match_sdpa(family_path, kernel):
    enc = DeweyEncoder.from_pretrained(family_path, device="cuda", attention=kernel)
    assert enc.model.packing == "flash" and enc.packed
    assert enc.model.backbone.config._attn_implementation == kernel
    sdpa = DeweyEncoder.from_pretrained(family_path, device="cuda", attention="sdpa")
    assert _min_cosine(enc.encode_queries(TEXTS), sdpa.encode_queries(TEXTS)) >= 0.9999
    padded = DeweyEncoder.from_pretrained(family_path, device="cuda", attention=kernel, packed=False)
    assert _min_cosine(padded.encode_queries(TEXTS), sdpa.encode_queries(TEXTS)) >= 0.9999


def test_causal_decoder_and_roberta_on_varlen(tmp_path):
    from dewey_core.testing import tiny_encoder

    for path in (tiny_encoder(tmp_path, "qwen2"), tiny_encoder(tmp_path / "r", "roberta")):
        packed = DeweyEncoder.from_pretrained(path, device="cuda", attention="varlen")
        sdpa = DeweyEncoder.from_pretrained(path, device="cuda", attention="sdpa")
        assert _min_cosine(packed.encode_documents(TEXTS), sdpa.encode_documents(TEXTS)) >= 0.9999


def test_jasper_images_packed_match_padded_on_gpu(tmp_path):
    path = tiny_jasper(tmp_path)
    images = [Image.new("RGB", (30, 20), "red"), ["A caption", Image.new("RGB", (9, 9), "blue")]]
    padded = DeweyEncoder.from_pretrained(path, device="cuda", packed=False).encode_images(images)
    packed = DeweyEncoder.from_pretrained(path, device="cuda", packed=True).encode_images(images)
    assert _min_cosine(padded, packed) >= 0.9999
