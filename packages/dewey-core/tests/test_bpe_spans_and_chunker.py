"""Byte-level BPE (a word's token carries its leading space): spans and the built-in chunker.

The tiny checkpoints use real vocabularies (Qwen's BPE ranks; bert-base-uncased WordPiece), so
``" Rust"`` is one token starting at the space, as in dewey_en_beta, Jasper and Stella.
References (:mod:`dewey_core.testing.reference`) come from the Hugging Face tokenizer's offsets
and a plain forward of the backbone, not from the engine's own span code.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from dewey_core import DeweyEncoder
from dewey_core.chunking import char_spans, chunk_token_ranges
from dewey_core.testing import tiny_dewey, tiny_encoder, tiny_stella
from dewey_core.testing.reference import reference_chunks

TEXT = "Saffron is a spice. Rust is a language. Tea is a drink."
BPE = {"modernbert (dewey)": tiny_dewey, "qwen2 (stella)": tiny_stella,
       "roberta (trimmed offsets)": lambda d: tiny_encoder(d, "roberta")}


@pytest.fixture(scope="module", params=list(BPE))
def bpe(request, tmp_path_factory) -> DeweyEncoder:
    return DeweyEncoder.from_pretrained(BPE[request.param](tmp_path_factory.mktemp("bpe")),
                                        device="cpu")


def test_a_span_without_its_leading_space_keeps_its_first_word(bpe):
    # Splitters strip whitespace: (20, 39) is "Rust is a language.", (19, 39) the same with
    # the space before it. Both must give the same chunk, the first word included.
    assert TEXT[20:39] == "Rust is a language."
    stripped, spaced = bpe.late_chunk([TEXT, TEXT], spans=[[(20, 39)], [(19, 39)]])
    a, b = stripped.chunks[0].embedding, spaced.chunks[0].embedding
    assert float(a @ b) >= 0.99999
    np.testing.assert_allclose(a, reference_chunks(bpe, TEXT, [(20, 39)])[0], atol=1e-5)


def test_every_word_of_a_span_is_in_its_chunk(bpe, pydoc_topics):
    text = pydoc_topics["if"][:1500]
    words = [m.span() for m in re.finditer(r"\S+", text)]
    spans = [words[i][0:1] + words[min(i + 9, len(words) - 1)][1:] for i in range(0, len(words), 10)]
    doc = bpe.late_chunk([text], spans=[spans])[0]
    np.testing.assert_allclose(doc.chunk_embeddings, reference_chunks(bpe, text, spans), atol=1e-5)


def _boundary_quality(enc: DeweyEncoder, texts: list[str], chunk_size: int) -> tuple[int, float]:
    """(words cut in two, share of chunks ending at a sentence, line or paragraph break)."""
    cut, clean, total = 0, 0, 0
    for text in texts:
        (tok,) = enc.model.tokenizer.tokenize([text], enc.model.prompts.document)
        spans = char_spans(text, tok, chunk_token_ranges(text, tok, chunk_size))
        for start, end in spans[:-1]:
            total += 1
            cut += text[end - 1].isalnum() and text[end].isalnum()
            tail = text[start:end]
            clean += "\n" in tail[len(tail.rstrip()):] or tail.rstrip().endswith((".", "!", "?", ":"))
    return cut, clean / total


def test_builtin_chunker_finds_breaks_with_byte_level_bpe(bpe, minilm, pydoc_topics):
    texts = [pydoc_topics[name][:6000] for name in ("assignment", "class", "exprlists", "for",
                                                    "if", "import", "lambda", "try")]
    cut, clean = _boundary_quality(bpe, texts, 64)
    wordpiece_cut, wordpiece_clean = _boundary_quality(minilm, texts, 64)
    assert cut == 0 and wordpiece_cut == 0
    assert clean >= 0.9 * wordpiece_clean and clean > 0.8


def test_no_cut_inside_a_word_while_a_word_break_fits(bpe):
    # Long words leave no break in the second half of a chunk's budget; the chunker falls back
    # to the last word break in the first half instead of cutting a word.
    text = " ".join(["extraordinarily", "incomprehensibilities", "a", "b"] * 30)
    (tok,) = bpe.model.tokenizer.tokenize([text])
    for size in (6, 9, 13):
        spans = char_spans(text, tok, chunk_token_ranges(text, tok, size))
        assert all(text[s - 1] == " " for s, _ in spans[1:]), size


@pytest.mark.parametrize("chunking", ["boundaries", "fixed"])
def test_a_budget_smaller_than_a_character_never_gives_an_empty_chunk(bpe, chunking):
    # Byte-level BPE spends several tokens on one emoji or accented letter; a chunk_size below
    # that takes the whole character rather than cut it into chunks with no text.
    text = "👍🏽 ok e\u0301 naïve 🇳🇴!"
    for size in (1, 2, 3):
        [doc] = bpe.late_chunk([text], chunk_size=size, chunking=chunking)
        assert all(c.end > c.start and c.text == text[c.start:c.end] for c in doc.chunks), size
        assert "".join(c.text for c in doc.chunks) == text
