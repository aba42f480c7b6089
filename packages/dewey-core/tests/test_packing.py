"""Packed (padding-free) batches agree with padded ones on every family (CPU, SDPA + masks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dewey_core import DeweyEncoder
from dewey_core.runtime import _packed_batch, _padded_batch, packed_block_mask, split_states
from dewey_core.testing import tiny_dewey, tiny_jasper, tiny_stella

# Mixed lengths, several longer than dewey's local attention window (8 tokens in the tiny model).
TEXTS = ["Saffron is a spice made from crocus flowers. " * k for k in (1, 4, 9, 15)] + [
    "hi", "", "Rust is a language for systems programming."]
BUILDERS = {"dewey": tiny_dewey, "jasper": tiny_jasper, "stella": tiny_stella}


@pytest.fixture(scope="module", params=list(BUILDERS))
def family_path(request, tmp_path_factory):
    return BUILDERS[request.param](tmp_path_factory.mktemp(request.param))


def _pair(path, budget):
    padded = DeweyEncoder.from_pretrained(path, device="cpu", packed=False, token_budget=budget)
    packed = DeweyEncoder.from_pretrained(path, device="cpu", packed=True, token_budget=budget)
    return padded, packed


def _min_cosine(a, b):
    return float((a * b).sum(1).min())


def test_packed_matches_padded(family_path):
    padded, packed = _pair(family_path, 256)
    assert packed.model.packing == "mask" and packed.packed and not padded.packed
    assert _min_cosine(padded.encode_documents(TEXTS), packed.encode_documents(TEXTS)) >= 0.9999
    assert _min_cosine(padded.encode_queries(TEXTS), packed.encode_queries(TEXTS)) >= 0.9999


def test_packed_late_chunking_matches_padded(family_path):
    padded, packed = _pair(family_path, 256)
    docs = [t for t in TEXTS if t.strip()]
    a, b = padded.late_chunk(docs, chunk_size=10), packed.late_chunk(docs, chunk_size=10)
    for x, y in zip(a, b, strict=True):
        assert _min_cosine(x.chunk_embeddings, y.chunk_embeddings) >= 0.9999
        assert float(x.global_embedding @ y.global_embedding) >= 0.9999


def test_packed_images_match_padded(tmp_path_factory):
    padded, packed = _pair(tiny_jasper(tmp_path_factory.mktemp("jasper_img")), 1024)
    images = [Image.new("RGB", (30, 20), "red"), ["A caption", Image.new("RGB", (9, 9), "blue")],
              Image.new("RGB", (12, 40), "green")]
    assert _min_cosine(padded.encode_images(images), packed.encode_images(images)) >= 0.9999


def _first_token_states(model, seqs, mask_kind):
    batch = _packed_batch(seqs, torch.device("cpu"), flash=False)
    with torch.inference_mode():
        if mask_kind == "engine":
            states = model.forward(batch)
        else:
            # "none": restarting position_ids alone; "full_only": one block-diagonal mask for
            # every layer, so the sliding layers lose their local window.
            mask = None if mask_kind == "none" else packed_block_mask(batch)
            states = model.backbone(input_ids=batch.input_ids, attention_mask=mask,
                                    position_ids=batch.position_ids).last_hidden_state
    return [s[0] for s in split_states(batch, states, [len(s) for s in seqs])]


def test_masks_are_what_isolates_packed_sequences(tmp_path_factory):
    # Controls: without a mask packed sequences leak into each other, and ModernBERT needs the
    # local window in its sliding layers' mask; the engine's masks match separate runs.
    model = DeweyEncoder.from_pretrained(tiny_dewey(tmp_path_factory.mktemp("dewey_ctl")),
                                         device="cpu").model
    seqs = [list(range(10, 40)), list(range(50, 70))]
    with torch.inference_mode():
        alone = [model.forward(_padded_batch([s], 0, torch.device("cpu")))[0, 0] for s in seqs]
    for kind, should_match in (("engine", True), ("none", False), ("full_only", False)):
        got = _first_token_states(model, seqs, kind)
        close = all(torch.allclose(g, a, atol=1e-4) for g, a in zip(got, alone, strict=True))
        assert close is should_match, kind


def test_packing_refused_where_unsupported(minilm_path):
    enc = DeweyEncoder.from_pretrained(minilm_path, device="cpu", packed=True)
    assert np.isfinite(enc.encode_documents(["packed works on the generic path too"])).all()
