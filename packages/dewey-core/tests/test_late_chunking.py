"""Late chunking: exactness against a plain transformers forward pass, spans, windows, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from transformers import AutoModel

from dewey_core import DeweyEncoder
from dewey_core.chunking import char_spans, chunk_token_ranges


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def hf_model(minilm_path):
    return AutoModel.from_pretrained(minilm_path).eval()


@pytest.fixture(scope="module")
def paragraph(pydoc_topics) -> str:
    """Real text that fits one 256-token window."""
    return " ".join(pydoc_topics["assignment"].split()[8:110])


def plain_token_states(hf_model, tokenizer, text):
    enc = tokenizer(text, return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0]
    with torch.no_grad():
        states = hf_model(**enc).last_hidden_state[0]
    return states.numpy(), offsets.numpy()


def test_chunk_equals_mean_of_plain_forward_states(minilm, hf_model, paragraph):
    spans = [(0, 120), (120, 400), (400, len(paragraph))]
    doc = minilm.late_chunk([paragraph], spans=[spans])[0]
    assert doc.num_windows == 1
    states, offsets = plain_token_states(hf_model, minilm.tokenizer, paragraph)
    content = (offsets[:, 1] > offsets[:, 0])  # special tokens have empty offsets
    for chunk, (start, end) in zip(doc.chunks, spans, strict=True):
        inside = content & (offsets[:, 0] >= start) & (offsets[:, 0] < end)
        assert cos(chunk.embedding, states[inside].mean(0)) >= 0.9999
        assert chunk.text == paragraph[start:end] and (chunk.start, chunk.end) == (start, end)


def test_single_chunk_equals_mean_pooled_document(minilm, hf_model, paragraph):
    doc = minilm.late_chunk([paragraph], spans=[[(0, len(paragraph))]])[0]
    states, offsets = plain_token_states(hf_model, minilm.tokenizer, paragraph)
    content_mean = states[offsets[:, 1] > offsets[:, 0]].mean(0)
    assert cos(doc.chunks[0].embedding, content_mean) >= 0.9999
    # The global vector follows the model's pooling (mean over all tokens, as encode does).
    assert cos(doc.global_embedding, minilm.encode_documents([paragraph])[0]) >= 0.9999


def test_batched_and_unbatched_agree(minilm, pydoc_topics):
    texts = [v[:n] for v, n in zip(list(pydoc_topics.values())[:6], (300, 5000, 80, 1200, 9000, 40),
                                    strict=True)]
    together = minilm.late_chunk(texts, chunk_size=64)
    for text, doc in zip(texts, together, strict=True):
        (alone,) = DeweyEncoder(minilm.model, token_budget=10**6).late_chunk([text], chunk_size=64)
        assert [c.text for c in alone.chunks] == [c.text for c in doc.chunks]
        assert np.min(np.sum(alone.chunk_embeddings * doc.chunk_embeddings, axis=1)) >= 0.9999
        assert cos(alone.global_embedding, doc.global_embedding) >= 0.9999


@pytest.mark.parametrize("mode", ["boundaries", "fixed"])
def test_builtin_chunks_tile_the_text(minilm, pydoc_topics, mode):
    texts = list(pydoc_topics.values())[:8]
    for text, doc in zip(texts, minilm.late_chunk(texts, chunk_size=48, chunking=mode), strict=True):
        assert doc.chunks[0].start == 0 and doc.chunks[-1].end == len(text)
        for a, b in zip(doc.chunks, doc.chunks[1:], strict=False):
            assert a.end == b.start
        assert "".join(c.text for c in doc.chunks) == text


def test_builtin_chunks_respect_the_token_budget(minilm, pydoc_topics):
    text = pydoc_topics["exceptions"]
    tok = minilm.model.tokenizer.tokenize([text], minilm.model.prompts.document)[0]
    ranges = chunk_token_ranges(text, tok, 40, 0, "boundaries")
    assert all(0 < b - a <= 40 for a, b in ranges)
    assert [r[0] for r in ranges[1:]] == [r[1] for r in ranges[:-1]] and ranges[-1][1] == len(tok)
    fixed = chunk_token_ranges(text, tok, 40, 0, "fixed")
    assert all(b - a == 40 for a, b in fixed[:-1])


def test_boundary_mode_prefers_paragraphs_and_sentences(minilm):
    first = "The first paragraph has two sentences. It ends after sixteen tokens.\n\n"
    text = (first + "Second paragraph sentence. " * 12).strip()
    doc = minilm.late_chunk([text], chunk_size=24)[0]
    assert doc.chunks[0].text == first
    assert all(c.text.rstrip().endswith(".") for c in doc.chunks)


def test_overlap_is_shared_between_neighbours(minilm, pydoc_topics):
    text = pydoc_topics["if"]
    tok = minilm.model.tokenizer.tokenize([text])[0]
    ranges = chunk_token_ranges(text, tok, 32, 8, "fixed")
    assert all(b[0] == a[1] - 8 for a, b in itertools.pairwise(ranges))
    spans = char_spans(text, tok, ranges)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(b[0] < a[1] for a, b in itertools.pairwise(spans))


def test_unicode_spans_map_exactly(minilm, hf_model):
    text = "東京は日本の首都です。 Café naïve 😀🎉 e\u0301te\u0301 — résumé! 한국어 텍스트."
    cuts = [0, 6, 12, 19, 26, 30, 38, len(text)]
    spans = [(a, b) for a, b in itertools.pairwise(cuts)]
    doc = minilm.late_chunk([text], spans=[spans])[0]
    states, offsets = plain_token_states(hf_model, minilm.tokenizer, text)
    content = offsets[:, 1] > offsets[:, 0]
    for chunk, (start, end) in zip(doc.chunks, spans, strict=True):
        assert chunk.text == text[start:end]
        inside = content & (offsets[:, 0] >= start) & (offsets[:, 0] < end)
        if inside.any():
            assert cos(chunk.embedding, states[inside].mean(0)) >= 0.9999
        assert np.isfinite(chunk.embedding).all()


def test_document_several_windows_long_is_chunked_to_its_end(minilm, pydoc_topics):
    text = pydoc_topics["specialnames"]  # thousands of tokens: many 256-token windows
    doc = minilm.late_chunk([text], chunk_size=128)[0]
    assert doc.num_windows > 3 and doc.num_tokens > 4 * 256
    assert doc.chunks[-1].end == len(text) and "".join(c.text for c in doc.chunks) == text
    norms = np.linalg.norm(doc.chunk_embeddings, axis=1)
    np.testing.assert_allclose(norms, 1, atol=1e-5)


def test_every_window_sees_the_opening(minilm, pydoc_topics):
    """Carried context changes deep chunks; without it they match plain sliding windows."""
    text = pydoc_topics["specialnames"]
    carried = minilm.late_chunk([text], chunk_size=128)[0]
    plain = minilm.late_chunk([text], chunk_size=128, context_tokens=0)[0]
    first, last = carried.chunks[0], carried.chunks[-1]
    assert cos(first.embedding, plain.chunks[0].embedding) > 0.9999  # first window is identical
    assert cos(last.embedding, plain.chunks[-1].embedding) < 0.999


def test_dim_applies_to_chunks_and_global(minilm, paragraph):
    doc = minilm.late_chunk([paragraph], chunk_size=32, dim=96)[0]
    assert doc.global_embedding.shape == (96,) and doc.chunk_embeddings.shape[1] == 96


@pytest.mark.parametrize("text", ["", "   \n\t  "])
def test_empty_or_whitespace_document(minilm, text):
    doc = minilm.late_chunk([text, "A real sentence."])[0]
    assert doc.chunks == [] and doc.num_tokens == 0
    np.testing.assert_allclose(doc.global_embedding, minilm.encode_documents([text])[0], atol=1e-5)


def test_no_documents_give_no_results(minilm):
    assert minilm.late_chunk([]) == []
    assert minilm.late_chunk([], spans=[]) == []


def test_span_in_whitespace_only_document_gets_the_global_vector(minilm):
    doc = minilm.late_chunk(["    "], spans=[[(0, 4)]])[0]
    np.testing.assert_allclose(doc.chunks[0].embedding, doc.global_embedding, atol=1e-6)


@pytest.mark.parametrize(
    ("spans", "message"),
    [
        ([[(0, 5), (5, 99)]], r"document 0, span 1 \(5, 99\): out of range"),
        ([[(-1, 5)]], r"document 0, span 0 \(-1, 5\): out of range"),
        ([[(4, 4)]], r"document 0, span 0 \(4, 4\): empty span"),
        ([[(5, 3)]], r"empty span"),
        ([[(5, 10), (0, 5)]], r"span 1 \(0, 5\): spans are not sorted"),
        ([[(0, 6), (5, 10)]], r"span 1 \(5, 10\): overlaps the previous span"),
        ([[(0, 5)], [(0, 5)]], r"spans has 2 entries for 1 texts"),
    ],
)
def test_bad_spans(minilm, spans, message):
    with pytest.raises(ValueError, match=message):
        minilm.late_chunk(["Twenty characters!!"], spans=spans)


def test_overlapping_spans_when_allowed(minilm):
    doc = minilm.late_chunk(["Twenty characters!!"], spans=[[(5, 19), (0, 10)]], allow_overlap=True)[0]
    assert [(c.start, c.end) for c in doc.chunks] == [(5, 19), (0, 10)]


def test_numpy_integer_spans_are_spans(minilm):
    ends = np.cumsum([5, 14])  # spans computed with numpy
    [doc] = minilm.late_chunk(["Twenty characters!!"], spans=[[(0, ends[0]), (ends[0], ends[1])]])
    assert [(c.start, c.end) for c in doc.chunks] == [(0, 5), (5, 19)]
    assert all(type(c.start) is int and type(c.end) is int for c in doc.chunks)


@pytest.mark.parametrize("spans", [[[("a", 3)]], [[(0.0, 3)]], [[(False, 3)]], [(0, 3)], "0-3"])
def test_malformed_spans_are_type_errors(minilm, spans):
    with pytest.raises(TypeError):
        minilm.late_chunk(["Twenty characters!!"], spans=spans)


def test_bad_chunking_knobs(minilm):
    with pytest.raises(ValueError, match="chunk_overlap"):
        minilm.late_chunk(["text"], chunk_size=8, chunk_overlap=8)
    with pytest.raises(ValueError, match="chunking mode"):
        minilm.late_chunk(["text"], chunking="semantic")
    with pytest.raises(ValueError, match="capacity"):
        minilm.late_chunk(["word " * 600], context_tokens=200, window_overlap=100)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"context_tokens": 10_000}, ValueError, r"context_tokens \+ window_overlap \(10000 \+ 15\)"),
    ({"context_tokens": -1}, ValueError, "context_tokens must be >= 0"),
    ({"window_overlap": -2}, ValueError, "window_overlap must be >= 0"),
    ({"window_overlap": 1.5}, TypeError, "window_overlap must be an int"),
    ({"chunk_size": 0}, ValueError, "chunk_size must be positive"),
    ({"chunk_size": 4.0}, TypeError, "chunk_size must be an int, got float"),
    ({"chunking": "bogus"}, ValueError, "unknown chunking mode"),
])
def test_settings_are_checked_for_every_input(minilm, kwargs, error, message):
    # A short document would never reach the windowing or chunking code: still refused.
    for texts, spans in ((["short"], None), (["short"], [[(0, 5)]]), ([], None)):
        with pytest.raises(error, match=message):
            minilm.late_chunk(texts, spans, **kwargs)


def test_numpy_integers_are_accepted_as_settings(minilm):
    text = "word " * 600
    plain = minilm.late_chunk([text], chunk_size=64, context_tokens=8, window_overlap=4)
    numpy = minilm.late_chunk([text], chunk_size=np.int64(64), context_tokens=np.int32(8),
                              window_overlap=np.int64(4))
    np.testing.assert_array_equal(plain[0].chunk_embeddings, numpy[0].chunk_embeddings)
