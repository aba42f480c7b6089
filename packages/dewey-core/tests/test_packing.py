"""Packed (padding-free) batches agree with padded ones on every backbone the engine runs.

Packed rows pass ``position_ids`` and a block-diagonal mask explicitly, so every backbone
difference shows here: RoBERTa-style position offsets, MPNet's eager attention (additive
masks), causal decoders, ModernBERT's sliding layers, Qwen2 made bidirectional.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from dewey_core import DeweyEncoder
from dewey_core.runtime import _packed_batch, _padded_batch, split_states
from dewey_core.testing import tiny_dewey, tiny_encoder, tiny_jasper, tiny_stella, tiny_stella_400m

# Mixed lengths, several longer than dewey's local attention window (8 tokens in the tiny model).
TEXTS = ["Saffron is a spice made from crocus flowers. " * k for k in (1, 4, 9, 15)] + [
    "hi", "", "Rust is a language for systems programming."]
BUILDERS = {
    "bert (MiniLM)": None,
    "roberta": lambda d: tiny_encoder(d, "roberta"),
    "mpnet": lambda d: tiny_encoder(d, "mpnet"),
    "modernbert (dewey)": tiny_dewey,
    "qwen2 bidirectional (stella)": tiny_stella,
    "qwen2 causal, last token": lambda d: tiny_encoder(d, "qwen2"),
    "gte (stella 400M)": tiny_stella_400m,
    "qwen2 + siglip (jasper)": tiny_jasper,
}


@pytest.fixture(scope="module", params=list(BUILDERS))
def backbone_path(request, tmp_path_factory, minilm_path):
    build = BUILDERS[request.param]
    return minilm_path if build is None else build(tmp_path_factory.mktemp("packing"))


def _pair(path, budget):
    padded = DeweyEncoder.from_pretrained(path, device="cpu", packed=False, token_budget=budget)
    packed = DeweyEncoder.from_pretrained(path, device="cpu", packed=True, token_budget=budget)
    return padded, packed


def _min_cosine(a, b):
    return float((a * b).sum(1).min())


def test_packed_matches_padded(backbone_path):
    padded, packed = _pair(backbone_path, 256)
    assert packed.model.packing == "mask" and packed.packed and not padded.packed
    assert _min_cosine(padded.encode_documents(TEXTS), packed.encode_documents(TEXTS)) >= 0.9999
    assert _min_cosine(padded.encode_queries(TEXTS), packed.encode_queries(TEXTS)) >= 0.9999


def test_packed_late_chunking_matches_padded(backbone_path):
    padded, packed = _pair(backbone_path, 256)
    docs = [t for t in TEXTS if t.strip()]
    a, b = padded.late_chunk(docs, chunk_size=10), packed.late_chunk(docs, chunk_size=10)
    for x, y in zip(a, b, strict=True):
        assert _min_cosine(x.chunk_embeddings, y.chunk_embeddings) >= 0.9999
        assert float(x.global_embedding @ y.global_embedding) >= 0.9999


def test_backbone_traits_are_read_off_the_model(tmp_path):
    spec = {name: DeweyEncoder.from_pretrained(build(tmp_path / str(i)), device="cpu").model.attention
            for i, (name, build) in enumerate(BUILDERS.items()) if build is not None}
    assert spec["roberta"].position_offset == 2 and spec["mpnet"].position_offset == 2
    assert spec["mpnet"].kernel == "eager"  # no SDPA for MPNet in transformers 5
    assert spec["qwen2 causal, last token"].causal
    assert not any(s.causal for name, s in spec.items() if name != "qwen2 causal, last token")
    assert spec["modernbert (dewey)"].layer_masks == ("full_attention", "sliding_attention")
    assert spec["qwen2 bidirectional (stella)"].forced_bidirectional


def test_packed_images_match_padded(tmp_path_factory):
    padded, packed = _pair(tiny_jasper(tmp_path_factory.mktemp("jasper_img")), 1024)
    images = [Image.new("RGB", (30, 20), "red"), ["A caption", Image.new("RGB", (9, 9), "blue")],
              Image.new("RGB", (12, 40), "green")]
    assert _min_cosine(padded.encode_images(images), packed.encode_images(images)) >= 0.9999


def _first_token_states(model, seqs, spec):
    batch = _packed_batch(seqs, torch.device("cpu"), flash=False)
    with torch.inference_mode():
        if spec is None:  # restarting position_ids alone, no mask
            states = model.backbone(input_ids=batch.input_ids,
                                    position_ids=batch.position_ids).last_hidden_state
        else:
            states = model.backbone(input_ids=batch.input_ids,
                                    **spec.inputs(batch, torch.float32)).last_hidden_state
    return [s[0] for s in split_states(batch, states, [len(s) for s in seqs])]


def test_masks_are_what_isolates_packed_sequences(tmp_path_factory):
    # Controls: without a mask packed sequences leak into each other, and ModernBERT needs the
    # local window in its sliding layers' mask; the engine's masks match separate runs.
    model = DeweyEncoder.from_pretrained(tiny_dewey(tmp_path_factory.mktemp("dewey_ctl")),
                                         device="cpu").model
    seqs = [list(range(10, 40)), list(range(50, 70))]
    with torch.inference_mode():
        alone = [model.forward(_padded_batch([s], 0, torch.device("cpu")))[0, 0] for s in seqs]
    one_mask_for_all_layers = dataclasses.replace(model.attention, layer_masks=())
    for spec, should_match in ((model.attention, True), (None, False),
                               (one_mask_for_all_layers, False)):
        got = _first_token_states(model, seqs, spec)
        close = all(torch.allclose(g, a, atol=1e-4) for g, a in zip(got, alone, strict=True))
        assert close is should_match, spec


def test_causal_packing_does_not_see_later_tokens(tmp_path):
    # A decoder's first tokens must not change when later tokens (of its own sequence or the
    # next one in the row) change: the packed mask is causal as well as block-diagonal.
    model = DeweyEncoder.from_pretrained(tiny_encoder(tmp_path, "qwen2"), device="cpu").model
    a = _first_token_states(model, [[11, 12, 13, 14], [20, 21, 22]], model.attention)
    b = _first_token_states(model, [[11, 12, 13, 99], [98, 21, 22]], model.attention)
    assert torch.allclose(a[0], b[0], atol=1e-5)


def test_packing_works_on_the_generic_path(minilm_path):
    enc = DeweyEncoder.from_pretrained(minilm_path, device="cpu", packed=True)
    assert np.isfinite(enc.encode_documents(["packed works on the generic path too"])).all()


@pytest.mark.parametrize("name", [n for n in BUILDERS if n != "mpnet"])
def test_varlen_kernel_matches_padded_sdpa(name, tmp_path, minilm_path):
    # The varlen attention function registered with transformers (on CUDA: torch's
    # FlashAttention varlen kernels; here: the same computation per sequence) gets packed rows
    # as cu_seq_lens and padded batches as 2-D masks; both must equal padded SDPA.
    path = minilm_path if BUILDERS[name] is None else BUILDERS[name](tmp_path)
    sdpa = DeweyEncoder.from_pretrained(path, device="cpu", packed=False, token_budget=256)
    packed = DeweyEncoder.from_pretrained(path, device="cpu", attention="varlen", token_budget=256)
    assert packed.model.packing == "flash" and packed.packed  # varlen packs by default
    padded = DeweyEncoder.from_pretrained(path, device="cpu", attention="varlen", packed=False,
                                          token_budget=256)
    expected = sdpa.encode_documents(TEXTS)
    assert _min_cosine(expected, packed.encode_documents(TEXTS)) >= 0.9999
    assert _min_cosine(expected, padded.encode_documents(TEXTS)) >= 0.9999


def _reference_varlen(q, k, v, cu_q, cu_k, scale, window):
    from dewey_core.attention import _per_sequence_attention

    return _per_sequence_attention(q, k, v, cu_q, cu_k, scale, window)


def _varlen_2_10(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, is_causal=False, return_aux=None):
    # torch 2.10's signature: no scale, window or grouped-query heads.
    assert key.shape[1] == query.shape[1], "2.10 has no grouped-query attention"
    return _reference_varlen(query, key, value, cu_seq_q, cu_seq_k, None, (-1, 0 if is_causal else -1))


def _varlen_later(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, return_aux=None,
                  scale=None, window_size=(-1, -1), enable_gqa=False):
    assert enable_gqa or key.shape[1] == query.shape[1]
    return _reference_varlen(query, key, value, cu_seq_q, cu_seq_k, scale, tuple(window_size))


@pytest.mark.parametrize("kernel", [_varlen_2_10, _varlen_later], ids=["torch-2.10", "torch-2.11+"])
@pytest.mark.parametrize("window", [(-1, -1), (-1, 0), (2, 2)], ids=["full", "causal", "sliding"])
@pytest.mark.parametrize("kv_heads", [4, 2], ids=["mha", "gqa"])
def test_varlen_call_adapts_to_each_torch_signature(kernel, window, kv_heads):
    # torch's varlen_attn changed its arguments between releases (2.10: is_causal only; later:
    # scale, window_size, enable_gqa). Every release must compute the same attention.
    from dewey_core.attention import call_varlen_attn

    gen = torch.Generator().manual_seed(0)
    q = torch.randn(9, 4, 8, generator=gen)
    k, v = (torch.randn(9, kv_heads, 8, generator=gen) for _ in range(2))
    cu = torch.tensor([0, 4, 9], dtype=torch.int32)
    expected = _reference_varlen(q, k.repeat_interleave(4 // kv_heads, 1),
                                 v.repeat_interleave(4 // kv_heads, 1), cu, cu, 0.3, window)
    got = call_varlen_attn(kernel, q, k, v, cu, cu, 5, 5, 0.3, window)
    assert torch.allclose(got, expected, atol=1e-5)
